//! `memfit run --python-tracemalloc`: a `sitecustomize` on PYTHONPATH starts `tracemalloc` in
//! every Python process of the command (children and multiprocessing workers too) and reports
//! its traced memory to memfit, so the verdict can say whether the memory was Python's own
//! objects or outside Python's allocator. Real python3 processes, real cgroups.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

const FLAG: &str = "--python-tracemalloc";

/// Debian's python3 (the one CI installs; readable by any user, unlike a pyenv under /root),
/// else the python3 on PATH; `None` (the test is skipped) without one.
fn python() -> Option<String> {
    let candidates = ["/usr/bin/python3", "python3"];
    let found = candidates.iter().find(|p| {
        Command::new(p)
            .args(["-c", "import sys; assert sys.version_info >= (3, 9)"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        eprintln!("skipping: no python3 ≥ 3.9 (the view is for Python)");
    }
    found.map(|p| p.to_string())
}

fn script(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The `processes[]` entries with a `python` record.
fn python_processes(run: &Run) -> Vec<Value> {
    run.report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p.get("python").is_some_and(|v| !v.is_null()))
        .cloned()
        .collect()
}

fn field(process: &Value, name: &str) -> u64 {
    process["python"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("python.{name} missing in {process}"))
}

fn verdict(run: &Run) -> String {
    run.stderr()
        .lines()
        .find(|l| l.trim_start().starts_with("verdict"))
        .unwrap_or_else(|| panic!("no verdict in {}", run.stderr()))
        .to_string()
}

/// 100 MiB of objects Python allocates (1 KiB bytearrays in a list), held, then released.
const OBJECTS: &str = r#"
keep = [bytearray(1024) for _ in range(100 * 1024)]
print("kept", len(keep))
"#;

#[test]
fn objects_python_holds_are_traced_and_named_the_programs_own() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let program = script(dir.path(), "objects.py", OBJECTS);
    let run = run(&[FLAG, "--limit", "512M"], &[&python, &program]);
    assert_eq!(run.status(), 0, "{}", run.stderr());
    assert_eq!(run.stdout(), "kept 102400\n");
    assert_eq!(run.report["runtime_view"]["python"], true, "{}", run.report);
    let pythons = python_processes(&run);
    assert_eq!(pythons.len(), 1, "{}", run.report["processes"]);
    let peak = field(&pythons[0], "traced_peak_bytes");
    assert!(peak >= 90 * MIB, "traced peak {} MiB", peak / MIB);
    // The report at exit still sees the list: module globals are freed after exit handlers.
    let current = field(&pythons[0], "traced_current_bytes");
    assert!(current >= 90 * MIB, "traced at exit {} MiB", current / MIB);
    assert_eq!(pythons[0]["python"]["exit_reported"], true);
    let verdict = verdict(&run);
    assert!(verdict.contains("Python objects"), "{verdict}");
    assert!(
        verdict.contains("the program's own allocations"),
        "{verdict}"
    );
    assert!(run.stderr().contains("  python "), "{}", run.stderr());
    assert_cgroup_removed(&run);
}

/// Anonymous memory mapped and touched page by page: resident, yet never through Python's
/// allocator, as a native extension's buffers.
const MAPPED: &str = r#"
import mmap
size = 200 << 20
m = mmap.mmap(-1, size)
for offset in range(0, size, 4096):
    m[offset] = 1
print("mapped", size >> 20)
"#;

#[test]
fn memory_outside_pythons_allocator_is_named_native() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let program = script(dir.path(), "mapped.py", MAPPED);
    let run = run(&[FLAG, "--limit", "512M"], &[&python, &program]);
    assert_eq!(run.status(), 0, "{}", run.stderr());
    assert_eq!(run.stdout(), "mapped 200\n");
    let pythons = python_processes(&run);
    assert_eq!(pythons.len(), 1, "{}", run.report["processes"]);
    let peak = field(&pythons[0], "traced_peak_bytes");
    assert!(peak < 16 * MIB, "traced peak {} MiB", peak / MIB);
    let rss = pythons[0]["peak_rss_bytes"].as_u64().unwrap();
    assert!(rss >= 190 * MIB, "peak RSS {} MiB", rss / MIB);
    let verdict = verdict(&run);
    assert!(verdict.contains("outside Python's allocator"), "{verdict}");
    assert!(!verdict.contains("the program's own"), "{verdict}");
}

#[test]
fn an_oom_killed_python_process_is_judged_from_its_periodic_reports() {
    let Some(python) = python() else { return };
    if !cgroups_available("an_oom_killed_python_process_is_judged") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Objects added a few MiB at a time, with pauses, until the kernel kills the process.
    let program = script(
        dir.path(),
        "grow.py",
        "import time\nkeep = []\nwhile True:\n    keep.extend(bytearray(1024) for _ in range(4096))\n    time.sleep(0.02)\n",
    );
    let run = run(&[FLAG, "--limit", "160M"], &[&python, &program]);
    assert_eq!(run.status(), 137, "{}", run.stderr());
    let pythons = python_processes(&run);
    assert_eq!(pythons.len(), 1, "{}", run.report["processes"]);
    assert_eq!(pythons[0]["python"]["exit_reported"], false);
    let peak = field(&pythons[0], "traced_peak_bytes");
    assert!(peak >= 64 * MIB, "traced peak {} MiB", peak / MIB);
    let verdict = verdict(&run);
    assert!(verdict.contains("OOM-killed"), "{verdict}");
    assert!(verdict.contains("Python objects"), "{verdict}");
}

#[test]
fn multiprocessing_workers_forked_or_spawned_report_too() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        dir.path(),
        "workers.py",
        r#"
import multiprocessing as mp

def work(mib):
    keep = [bytearray(1024) for _ in range(mib * 1024)]
    return len(keep)

if __name__ == "__main__":
    for method in ("fork", "spawn"):
        worker = mp.get_context(method).Process(target=work, args=(40,))
        worker.start()
        worker.join()
        print(method, worker.exitcode)
"#,
    );
    let run = run(&[FLAG], &[&python, &program]);
    assert_eq!(run.status(), 0, "{}", run.stderr());
    assert_eq!(run.stdout(), "fork 0\nspawn 0\n");
    let pythons = python_processes(&run);
    let pid = |p: &Value| p["pid"].as_i64().unwrap();
    // The command itself: the one Python process whose parent is not a Python process.
    let main = pythons
        .iter()
        .find(|p| {
            !pythons
                .iter()
                .any(|other| pid(other) == p["ppid"].as_i64().unwrap())
        })
        .unwrap_or_else(|| panic!("no main process in {}", run.report["processes"]));
    let children: Vec<&Value> = pythons
        .iter()
        .filter(|p| p["ppid"].as_i64() == Some(pid(main)))
        .collect();
    // Its own peak, not a child's.
    assert!(field(main, "traced_peak_bytes") < 36 * MIB, "{main}");
    // The forked worker (the parent's command line, its own pid)…
    let forked = children
        .iter()
        .find(|p| p["command"] == main["command"])
        .unwrap_or_else(|| panic!("no forked worker in {}", run.report["processes"]));
    assert!(field(forked, "traced_peak_bytes") >= 36 * MIB, "{forked}");
    // It leaves through os._exit, which skips exit handlers: its last report is memfit's
    // wrapper's.
    assert_eq!(forked["python"]["exit_reported"], true, "{forked}");
    // …and the spawned one, a new interpreter that inherits PYTHONPATH.
    let spawned = children
        .iter()
        .find(|p| p["command"].as_str().unwrap().contains("spawn_main"))
        .unwrap_or_else(|| panic!("no spawned worker in {}", run.report["processes"]));
    assert!(field(spawned, "traced_peak_bytes") >= 36 * MIB, "{spawned}");
    assert_eq!(spawned["python"]["exit_reported"], true, "{spawned}");
}

#[test]
fn a_users_sitecustomize_still_runs_and_their_pythonpath_follows_ours() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let user_path = dir.path().join("user lib");
    std::fs::create_dir(&user_path).unwrap();
    let marker = dir.path().join("marker");
    script(
        &user_path,
        "sitecustomize.py",
        &format!(
            "import os\nopen({:?}, 'w').write('ran as ' + __name__ + '\\n')\n",
            marker.display().to_string()
        ),
    );
    script(&user_path, "usermod.py", "VALUE = 42\n");
    let program = script(
        dir.path(),
        "probe.py",
        r#"
import os, sys, sitecustomize, usermod, threading
print("usermod", usermod.VALUE)
print("sitecustomize", sitecustomize.__file__)
print("last entry", os.environ["PYTHONPATH"].split(os.pathsep)[-1])
print("threads", threading.active_count())
print("to stderr", file=sys.stderr)
"#,
    );
    let user = user_path.display().to_string();
    let with = run_env(&[FLAG], &[&python, &program], &[("PYTHONPATH", &user)]);
    assert_eq!(with.status(), 0, "{}", with.stderr());
    let expected = format!(
        "usermod 42\nsitecustomize {user}/sitecustomize.py\nlast entry {user}\nthreads 1\n"
    );
    assert_eq!(with.stdout(), expected);
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "ran as sitecustomize\n"
    );
    assert!(
        with.stderr().starts_with("to stderr\n"),
        "{}",
        with.stderr()
    );
    assert_eq!(python_processes(&with).len(), 1, "{}", with.report);

    // The same without the flag: the program's own output is the same.
    std::fs::remove_file(&marker).unwrap();
    let without = run_env(&[], &[&python, &program], &[("PYTHONPATH", &user)]);
    assert_eq!(without.stdout(), expected);
    assert!(marker.exists());
}

#[test]
fn the_systems_own_sitecustomize_is_chained_too() {
    let Some(python) = python() else { return };
    let probe = "import sys; print(sys.modules.get('sitecustomize').__file__)";
    let plain = Command::new(&python).args(["-c", probe]).output().unwrap();
    if !plain.status.success() {
        eprintln!("skipping: this python3 has no sitecustomize of its own");
        return;
    }
    let run = run(&[FLAG], &[&python, "-c", probe]);
    assert_eq!(run.status(), 0, "{}", run.stderr());
    assert_eq!(run.stdout(), String::from_utf8_lossy(&plain.stdout));
    assert_eq!(python_processes(&run).len(), 1, "{}", run.report);
}

#[test]
fn a_failing_user_sitecustomize_fails_as_it_would_without_memfit() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "sitecustomize.py", "raise ValueError('boom')\n");
    let user = dir.path().display().to_string();
    let probe = "import sys; print(sys.path[1:2], 'sitecustomize' in sys.modules)";
    let env = [("PYTHONPATH", user.as_str())];
    let with = run_env(&[FLAG], &[&python, "-c", probe], &env);
    let without = run_env(&[], &[&python, "-c", probe], &env);
    assert_eq!(with.status(), 0, "{}", with.stderr());
    assert_eq!(with.stdout(), without.stdout());
    assert_eq!(with.stdout(), format!("['{user}'] False\n"));
    let message = "Error in sitecustomize; set PYTHONVERBOSE for traceback:\nValueError: boom\n";
    assert!(with.stderr().starts_with(message), "{}", with.stderr());
    assert!(
        without.stderr().starts_with(message),
        "{}",
        without.stderr()
    );
    // The view still started before the user's module failed.
    assert_eq!(python_processes(&with).len(), 1, "{}", with.report);
}

#[test]
fn an_isolated_python_runs_untraced_and_the_summary_says_why() {
    let Some(python) = python() else { return };
    let run = run(&[FLAG], &[&python, "-I", "-c", "print('isolated')"]);
    assert_eq!(run.status(), 0, "{}", run.stderr());
    assert_eq!(run.stdout(), "isolated\n");
    assert!(python_processes(&run).is_empty());
    let stderr = run.stderr();
    let note = stderr
        .lines()
        .find(|l| l.contains("did not report"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(note.contains("-I") && note.contains("-S"), "{note}");
}

/// A Python 3.12 or later (pyenv's, else on PATH), or `None`: the test is skipped.
fn python_312_or_later() -> Option<String> {
    let pyenv = std::fs::read_dir("/root/.pyenv/versions")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin/python").display().to_string());
    let candidates: Vec<String> = ["python3.13", "python3.12"]
        .iter()
        .map(|s| s.to_string())
        .chain(pyenv)
        .collect();
    let found = candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import sys; assert sys.version_info >= (3, 12)"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        eprintln!("skipping: no Python 3.12 or later (its fork warning is what is tested)");
    }
    found
}

/// Python 3.12+ warns at a fork when other threads exist: the reporter's thread must not make
/// a program that forks warn, and the program's own threads must, from the same line.
#[test]
fn a_fork_on_python_312_warns_only_for_the_programs_own_threads() {
    let Some(python) = python_312_or_later() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        dir.path(),
        "fork.py",
        r#"import os, threading, time
def fork_and_wait():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
fork_and_wait()
t = threading.Thread(target=time.sleep, args=(0.3,))
t.start()
fork_and_wait()
t.join()
"#,
    );
    let args = [
        python.as_str(),
        "-W",
        "always::DeprecationWarning",
        &program,
    ];
    let with = run(&["-q", FLAG], &args);
    let without = run(&["-q"], &args);
    assert_eq!(with.status(), 0, "{}", with.stderr());
    // The pid in the message differs from run to run.
    let unpid = |text: String| {
        let (head, rest) = text.split_once("(pid=").unwrap_or_else(|| panic!("{text}"));
        format!("{head}(pid=N{}", &rest[rest.find(')').unwrap()..])
    };
    let expected = format!(
        "{program}:3: DeprecationWarning: This process (pid=N) is multi-threaded, use of fork() may lead to deadlocks in the child.\n  pid = os.fork()\n"
    );
    assert_eq!(unpid(without.stderr()), expected);
    assert_eq!(unpid(with.stderr()), expected);
    assert!(python_processes(&with).len() >= 2, "{}", with.report);
}

#[test]
fn a_python_process_of_another_user_starts_and_reports() {
    let Some(python) = python() else { return };
    if !python.starts_with('/') {
        eprintln!("skipping: only a system python3 can run as nobody");
        return;
    }
    let run = run(
        &[FLAG],
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            &python,
            "-c",
            "import os; keep = [bytearray(1024) for _ in range(16 * 1024)]; print('uid', os.getuid())",
        ],
    );
    assert_eq!(run.status(), 0, "{}", run.stderr());
    assert_eq!(run.stdout(), "uid 65534\n");
    let pythons = python_processes(&run);
    assert_eq!(pythons.len(), 1, "{}", run.report["processes"]);
    assert!(field(&pythons[0], "traced_peak_bytes") >= 16 * MIB);
}

#[test]
fn without_the_flag_the_environment_is_the_commands_own() {
    let Some(python) = python() else { return };
    // A child's environment as the kernel holds it.
    let program = "import subprocess; print(subprocess.run(['sh', '-c', 'tr \"\\\\0\" \"\\\\n\" < /proc/$$/environ | grep ^PYTHONPATH= || echo none'], capture_output=True, text=True).stdout, end='')";
    let without = run(&[], &[&python, "-c", program]);
    assert_eq!(without.status(), 0, "{}", without.stderr());
    assert_eq!(without.stdout(), "none\n");
    assert!(python_processes(&without).is_empty());
    assert!(without.report["runtime_view"].get("python").is_none());
    let kept = run_env(&[], &[&python, "-c", program], &[("PYTHONPATH", "/opt/x")]);
    assert_eq!(kept.stdout(), "PYTHONPATH=/opt/x\n");

    let with = run_env(
        &[FLAG],
        &[&python, "-c", program],
        &[("PYTHONPATH", "/opt/x")],
    );
    let line = with.stdout();
    assert!(
        line.starts_with("PYTHONPATH=/") && line.ends_with(":/opt/x\n"),
        "{line}"
    );
}

#[test]
fn the_flag_with_no_runtime_view_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = memfit()
        .env("TMPDIR", dir.path())
        .args(["run", FLAG, "--no-runtime-view", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--python-tracemalloc"), "{stderr}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// memfit SIGKILLed under a Python program (a grandchild, which outlives it): the reports have
/// nowhere to go, and the program must not notice, even with SIGPIPE's default action.
#[test]
fn a_program_outlives_a_killed_memfit_unharmed() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| -> PathBuf { dir.path().join(name) };
    let program = script(
        dir.path(),
        "outlive.py",
        &format!(
            r#"
import os, signal, sys, time
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
open({ready:?}, "w").write("ready\n")
while not os.path.exists({go:?}):
    time.sleep(0.01)
keep = []
for _ in range(30):
    keep.append(bytearray(1 << 20))
    time.sleep(0.01)
print("still here", file=sys.stderr)
open({done:?}, "w").write("done %d\n" % len(keep))
"#,
            ready = path("ready").display().to_string(),
            go = path("go").display().to_string(),
            done = path("done").display().to_string(),
        ),
    );
    let mut memfit = memfit()
        .args(["run", "--measure-only", "--quiet", FLAG, "--", "sh", "-c"])
        .arg(format!("{python} {program} 2>{}", path("stderr").display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_file(&path("ready"));
    memfit.kill().unwrap();
    memfit.wait().unwrap();
    std::fs::write(path("go"), "").unwrap();
    assert_eq!(wait_for_file(&path("done")), "done 30\n");
    assert_eq!(
        std::fs::read_to_string(path("stderr")).unwrap(),
        "still here\n"
    );
}
