//! `memfit audit --from run.json`: python-workers-over-limit sized from the workers a
//! `memfit run` of the service measured instead of a default (issue 15). The reports come
//! from real runs: a small prefork Python server shaped as gunicorn (always), and gunicorn,
//! uvicorn and celery themselves where they are installed (`MEMFIT_PYTHON_SERVER_TESTS=required`,
//! as CI sets it, makes a missing one a failure).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

const RULE: &str = "python-workers-over-limit";

/// What each worker of the prefork server allocates and touches.
const WORKER_MIB: u64 = 100;

/// A prefork server shaped as gunicorn: the master forks `-w` workers (fork without exec, so
/// the workers carry the master's command line, as gunicorn's do without setproctitle); each
/// allocates WORKER_MIB and touches it, says it is ready, and waits for the master to close
/// its pipe; the master waits for all of them, then stops them and exits 0.
const PREFORK: &str = r#"
import os, sys
args = sys.argv[1:]
workers = int(args[args.index("-w") + 1])
mib = int(os.environ["WORKER_MIB"])
ready_r, ready_w = os.pipe()
stop_r, stop_w = os.pipe()
children = []
for _ in range(workers):
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(stop_w)
        ballast = b"\x01" * (mib << 20)
        os.write(ready_w, b"r")
        os.read(stop_r, 1)
        os._exit(0)
    children.append(pid)
os.close(ready_w)
os.close(stop_r)
ready = 0
while ready < workers:
    got = os.read(ready_r, workers - ready)
    if not got:
        sys.exit("a worker died before it was ready")
    ready += len(got)
os.close(stop_w)
for pid in children:
    os.waitpid(pid, 0)
"#;

/// The Python interpreter itself (not a version manager's shim), if there is one.
fn python() -> Option<PathBuf> {
    let output = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    let path = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (output.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
}

/// A measured run: the report's path and its JSON.
struct Measured {
    _dir: tempfile::TempDir,
    path: PathBuf,
    report: Value,
}

impl Measured {
    /// The workers' and the master's peaks, by the report's process tree: the processes
    /// whose parent is the master (`processes[0]`, the command memfit started).
    fn peaks(&self) -> (u64, Vec<u64>) {
        let processes = self.report["processes"].as_array().unwrap();
        let master = &processes[0];
        let workers = processes
            .iter()
            .filter(|p| p["ppid"] == master["pid"] && p["command"] == master["command"])
            .map(|p| p["peak_rss_bytes"].as_u64().unwrap())
            .collect();
        (master["peak_rss_bytes"].as_u64().unwrap(), workers)
    }
}

/// `memfit run --json run.json -- DIR/gunicorn -w 3 app:app` of the prefork server.
fn measure_prefork(test: &str) -> Option<Measured> {
    let Some(python) = python() else {
        eprintln!("\n*** {test} NOT RUN: no python3 here ***\n");
        return None;
    };
    if !cgroups_available(test) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = dir.path().join("gunicorn");
    std::fs::write(&server, format!("#!{}\n{PREFORK}", python.display())).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&server, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("run.json");
    let output = memfit()
        .env("WORKER_MIB", WORKER_MIB.to_string())
        .args(["run", "-q", "--json"])
        .arg(&path)
        .arg("--")
        .arg(&server)
        .args(["-w", "3", "app:app"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    Some(Measured {
        _dir: dir,
        path,
        report,
    })
}

/// A size as memfit prints it: `111.3 MiB`, `112 MiB`.
fn mib_text(bytes: u64) -> String {
    let rounded = (bytes as f64 / MIB as f64 * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{} MiB", rounded as u64)
    } else {
        format!("{rounded:.1} MiB")
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `memfit audit DIR ARGS --format FORMAT`.
fn audit_as(dir: &Path, args: &[&str], format: &str) -> Output {
    memfit()
        .arg("audit")
        .arg(dir)
        .args(args)
        .args(["--format", format])
        .output()
        .unwrap()
}

/// `memfit audit DIR --limit 512M ARGS --format json`: (exit code, report).
fn audit_json(dir: &Path, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["--limit", "512M"];
    all.extend_from_slice(args);
    let output = audit_as(dir, &all, "json");
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stderr(&output)));
    (output.status.code().unwrap(), report)
}

fn findings(report: &Value) -> Vec<&Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == RULE)
        .collect()
}

fn procfile(workers: u32, app: &str) -> tempfile::TempDir {
    project(&[(
        "Procfile",
        format!("web: gunicorn -w {workers} -b 0.0.0.0:$PORT {app}\n"),
    )])
}

fn from(measured: &Measured) -> [&str; 2] {
    ["--from", measured.path.to_str().unwrap()]
}

#[test]
fn measured_gunicorn_workers_size_the_rule_instead_of_the_default() {
    let Some(measured) = measure_prefork("measured_gunicorn_workers_size_the_rule") else {
        return;
    };
    let (master, workers) = measured.peaks();
    assert_eq!(workers.len(), 3, "{}", measured.report["processes"]);
    let largest = *workers.iter().max().unwrap();
    assert!(
        largest >= WORKER_MIB * MIB,
        "a worker touched {WORKER_MIB} MiB: {workers:?}"
    );

    // Eight workers of the measured size do not fit in 512 MiB: the finding says the figure
    // was measured, where, and how many workers it saw.
    let dir = procfile(8, "app:app");
    let (code, report) = audit_json(dir.path(), &from(&measured));
    assert_eq!(code, 1, "{}", report["findings"]);
    let found = findings(&report);
    assert_eq!(found.len(), 1, "{}", report["findings"]);
    let message = found[0]["message"].as_str().unwrap();
    let each = mib_text(largest);
    assert!(
        message.contains("measured")
            && message.contains("3 workers")
            && message.contains("run.json")
            && message.contains(&each),
        "{message} (expected {each})"
    );
    assert_eq!(report["from_run"]["file"], measured.path.to_str().unwrap());
    let sized = &report["from_run"]["servers"][0];
    assert_eq!(sized["server"], "gunicorn");
    assert_eq!(sized["workers"], 3);
    assert_eq!(sized["worker_peak_bytes"], largest);
    assert_eq!(sized["master_peak_bytes"], master);

    // The same figure in the human form and in SARIF.
    let human = audit_as(
        dir.path(),
        &["--limit", "512M", "--from", measured.path.to_str().unwrap()],
        "human",
    );
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("measured") && text.contains(&each), "{text}");
    let sarif = audit_as(
        dir.path(),
        &["--limit", "512M", "--from", measured.path.to_str().unwrap()],
        "sarif",
    );
    let sarif: Value = serde_json::from_slice(&sarif.stdout).unwrap();
    let result = &sarif["runs"][0]["results"][0];
    assert_eq!(result["ruleId"], RULE);
    assert!(result["message"]["text"]
        .as_str()
        .unwrap()
        .contains("measured"));

    // memfit fix sets the workers that fit by the measurement: (limit − master) / worker.
    let fit = (512 * MIB - master) / largest;
    let output = memfit()
        .arg("fix")
        .arg(dir.path())
        .args(["--limit", "512M"])
        .args(from(&measured))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("Procfile")).unwrap(),
        format!("web: gunicorn -w {fit} -b 0.0.0.0:$PORT app:app\n")
    );
    let (code, report) = audit_json(dir.path(), &from(&measured));
    assert_eq!((code, findings(&report).len()), (0, 0), "{report}");

    // Two workers fit: silent.
    let dir = project(&[(
        "Dockerfile",
        "FROM python:3.12-slim\nCOPY . /app\nCMD [\"gunicorn\", \"-w\", \"2\", \"app:app\"]\n",
    )]);
    let (code, report) = audit_json(dir.path(), &from(&measured));
    assert_eq!((code, findings(&report).len()), (0, 0), "{report}");

    // Four workers: too many for the default of 256 MiB a worker, not for the measured size.
    let dir = procfile(4, "app:app");
    assert!(master + 4 * largest < 512 * MIB, "{master} + 4 × {largest}");
    let (code, report) = audit_json(dir.path(), &from(&measured));
    assert_eq!((code, findings(&report).len()), (0, 0), "{report}");
    let (code, report) = audit_json(dir.path(), &[]);
    assert_eq!(code, 1);
    let found = findings(&report);
    let message = found[0]["message"].as_str().unwrap();
    assert!(
        message.contains("default") && message.contains("256 MiB"),
        "{message}"
    );
}

#[test]
fn without_a_report_the_fix_text_gives_the_commands_that_measure() {
    let dir = procfile(8, "mysite.wsgi:application");
    let (code, report) = audit_json(dir.path(), &[]);
    assert_eq!(code, 1);
    let found = findings(&report);
    assert_eq!(found.len(), 1, "{}", report["findings"]);
    let fix = found[0]["fix"].as_str().unwrap();
    assert!(
        fix.contains(
            "memfit run --json run.json -- gunicorn -w 8 -b 0.0.0.0:$PORT mysite.wsgi:application && memfit audit --from run.json"
        ),
        "{fix}"
    );
    assert!(report["from_run"].is_null(), "{report}");
}

#[test]
fn a_report_of_another_command_falls_back_to_the_default_with_a_note() {
    let Some(measured) = measure_prefork("a_report_of_another_command") else {
        return;
    };
    // The same server, another application: not this project's start command.
    let dir = procfile(8, "mysite.wsgi:application");
    let (code, report) = audit_json(dir.path(), &from(&measured));
    assert_eq!(code, 1);
    let found = findings(&report);
    assert_eq!(found.len(), 1, "{}", report["findings"]);
    let message = found[0]["message"].as_str().unwrap();
    assert!(
        message.contains("default") && message.contains("256 MiB"),
        "{message}"
    );
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("does not match") && notes.contains("mysite.wsgi:application"),
        "{notes}"
    );

    // A run of something else entirely.
    let other = run(&[], &[workload(), "exit", "0"]);
    let dir2 = tempfile::tempdir().unwrap();
    let path = dir2.path().join("other.json");
    std::fs::write(&path, other.report.to_string()).unwrap();
    let (code, report) = audit_json(dir.path(), &["--from", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(findings(&report)[0]["message"]
        .as_str()
        .unwrap()
        .contains("default"));
    assert!(
        report["notes"].to_string().contains("does not match"),
        "{}",
        report["notes"]
    );
}

/// Bad --from input: exit 2, one line that says what to give, and no output file.
#[test]
fn a_bad_report_is_a_usage_error_with_one_line_and_nothing_written() {
    let dir = procfile(8, "app:app");
    let files = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = files.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let big = files.path().join("big.json");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(64 * MIB + 1)
        .unwrap();
    let cases: Vec<(PathBuf, &str)> = vec![
        (files.path().join("missing.json"), "cannot read"),
        (PathBuf::from("/dev/zero"), "not a regular file"),
        (big, "larger than"),
        (
            write("broken.json", b"{\"schema\": \"memfit.run/1\", "),
            "not JSON",
        ),
        (write("binary.json", &[0xff, 0xfe, 0x00]), "UTF-8"),
        (
            write(
                "audit.json",
                br#"{"schema": "memfit.audit/1", "findings": []}"#,
            ),
            "not a memfit run report",
        ),
        (
            write(
                "partial.json",
                br#"{"schema": "memfit.run/1", "processes": 3}"#,
            ),
            "not a memfit run report",
        ),
        (
            write("deep.json", "[".repeat(100_000).as_bytes()),
            "not JSON",
        ),
    ];
    for (path, says) in cases {
        let out = files.path().join("out.json");
        let output = memfit()
            .arg("audit")
            .arg(dir.path())
            .args(["--limit", "512M", "--format", "json", "-o"])
            .arg(&out)
            .arg("--from")
            .arg(&path)
            .output()
            .unwrap();
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{}: {text}", path.display());
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains(says) && text.contains("memfit run --json"),
            "{}: {text}",
            path.display()
        );
        assert!(!out.exists(), "{} left an output", path.display());
    }
}

/// A report is untrusted: absurd peaks, a parent loop and zero peaks size nothing wrongly
/// and crash nothing.
#[test]
fn a_hostile_report_crashes_nothing() {
    let Some(measured) = measure_prefork("a_hostile_report_crashes_nothing") else {
        return;
    };
    let mut report = measured.report.clone();
    let processes = report["processes"].as_array_mut().unwrap();
    let master = processes[0].clone();
    let mut absurd = master.clone();
    absurd["pid"] = 999_999.into();
    absurd["ppid"] = master["pid"].clone();
    absurd["peak_rss_bytes"] = u64::MAX.into();
    let mut zero = absurd.clone();
    zero["pid"] = 999_998.into();
    zero["peak_rss_bytes"] = 0.into();
    // A master whose parent is its own worker.
    processes[0]["ppid"] = 999_999.into();
    processes.push(absurd);
    processes.push(zero);
    // A hundred more servers of another application, with megabyte titles and escapes.
    for n in 0..100 {
        let mut other = master.clone();
        other["pid"] = (2_000_000 + n).into();
        other["command"] = format!("gunicorn: master [x\x1b[31m{}]", "y".repeat(1 << 17)).into();
        processes.push(other);
    }
    report["command"] = serde_json::json!(["gunicorn", "z".repeat(1 << 20)]);
    let path = measured.path.with_file_name("hostile.json");
    std::fs::write(&path, report.to_string()).unwrap();
    let dir = procfile(2, "app:app");
    let (code, json) = audit_json(dir.path(), &["--from", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{json}");
    let message = findings(&json)[0]["message"].as_str().unwrap();
    assert!(message.contains("measured"), "{message}");
    assert_eq!(json["from_run"]["servers"].as_array().unwrap().len(), 32);
    assert_eq!(json["from_run"]["servers_omitted"], 69);

    // The human form: bounded lines, no escape sequence from the report.
    let human = audit_as(
        dir.path(),
        &["--limit", "512M", "--from", path.to_str().unwrap()],
        "human",
    );
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("… and 69 more"), "{text}");
    assert!(!text.contains('\x1b'));
    assert!(text.lines().all(|l| l.chars().count() < 1200), "{text}");
}

/// A real Python server: from `MEMFIT_TEST_PYTHON_BIN` (the venv .ci/run makes), else PATH;
/// `Err` says why it cannot run.
fn python_server(name: &str) -> Result<PathBuf, String> {
    let program = match std::env::var_os("MEMFIT_TEST_PYTHON_BIN") {
        Some(dir) => Path::new(&dir).join(name),
        None => PathBuf::from(name),
    };
    let output = Command::new(&program)
        .arg("--version")
        .output()
        .map_err(|e| format!("{name} is not installed ({e}); .ci/run installs it with pip"))?;
    if !output.status.success() {
        return Err(format!("{name} --version failed: {}", stderr(&output)));
    }
    Ok(program)
}

/// `memfit run --json run.json -- SERVER ARGS` in `app` (whose code stops the server once
/// its workers are up), then audits of a Procfile that starts `procfile(workers)` under
/// 512 MiB: 8 workers fire with the measured size, 2 are silent.
fn real_server_measured_then_audited(
    name: &str,
    app: &tempfile::TempDir,
    args: &[&str],
    procfile: impl Fn(u32) -> String,
) {
    let server = match python_server(name) {
        Ok(path) => path,
        Err(why) => {
            common::docker::gate(&Err(why), name, "MEMFIT_PYTHON_SERVER_TESTS");
            return;
        }
    };
    if !cgroups_available(name) {
        return;
    }
    let ready = app.path().join("ready");
    std::fs::create_dir(&ready).unwrap();
    let path = app.path().join("run.json");
    let output = memfit()
        .current_dir(app.path())
        .env("READY_DIR", &ready)
        .args(["run", "-q", "--json"])
        .arg(&path)
        .arg("--")
        .arg(&server)
        .args(args)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let from = ["--from", path.to_str().unwrap()];

    let dir = project(&[("Procfile", procfile(8))]);
    let (code, report) = audit_json(dir.path(), &from);
    assert_eq!(code, 1, "{report}");
    let message = findings(&report)[0]["message"].as_str().unwrap();
    assert!(
        message.contains("measured") && message.contains("2 workers"),
        "{message}"
    );
    let sized = &report["from_run"]["servers"][0];
    assert_eq!(sized["server"], name, "{report}");
    assert!(
        sized["worker_peak_bytes"].as_u64().unwrap() >= WORKER_MIB * MIB,
        "{report}"
    );

    let dir = project(&[("Procfile", procfile(2))]);
    let (code, report) = audit_json(dir.path(), &from);
    assert_eq!((code, findings(&report).len()), (0, 0), "{report}");
}

/// gunicorn itself (with setproctitle where installed: `gunicorn: worker [app:app]`).
#[test]
fn gunicorn_measured_then_audited() {
    let app = project(&[
        (
            "app.py",
            format!(
                "BALLAST = b\"\\x01\" * ({WORKER_MIB} << 20)\n\ndef app(environ, start_response):\n    start_response(\"200 OK\", [])\n    return [b\"ok\"]\n"
            ),
        ),
        // When both workers have loaded the application, the last one asks the master to
        // stop (SIGTERM: a graceful shutdown, exit 0).
        (
            "conf.py",
            "import os, signal\n\ndef post_worker_init(worker):\n    ready = os.environ[\"READY_DIR\"]\n    open(os.path.join(ready, str(os.getpid())), \"w\").close()\n    if len(os.listdir(ready)) >= 2:\n        os.kill(os.getppid(), signal.SIGTERM)\n".to_string(),
        ),
    ]);
    // Recent gunicorn (27 here) opens a control socket in ~/.gunicorn by default: here, in the
    // project, where it has one.
    let control = python_server("gunicorn")
        .ok()
        .and_then(|g| Command::new(g).arg("--help").output().ok())
        .is_some_and(|o| String::from_utf8_lossy(&o.stdout).contains("--control-socket "));
    let mut args = vec!["-w", "2", "-c", "conf.py", "-b", "127.0.0.1:0"];
    if control {
        args.extend(["--control-socket", "gunicorn.ctl"]);
    }
    args.push("app:app");
    real_server_measured_then_audited("gunicorn", &app, &args, |n| {
        format!("web: gunicorn -w {n} -b 0.0.0.0:$PORT app:app\n")
    });
}

/// uvicorn --workers: its workers are multiprocessing spawn children.
#[test]
fn uvicorn_measured_then_audited() {
    // Each worker imports the application; when both have started, the last one asks the
    // supervisor to stop (SIGINT, as Ctrl-C: exit 0).
    let app = project(&[(
        "asgi.py",
        format!(
            r#"import os, signal

BALLAST = b"\x01" * ({WORKER_MIB} << 20)


async def app(scope, receive, send):
    if scope["type"] != "lifespan":
        return
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({{"type": "lifespan.startup.complete"}})
            ready = os.environ["READY_DIR"]
            open(os.path.join(ready, str(os.getpid())), "w").close()
            if len(os.listdir(ready)) >= 2:
                os.kill(os.getppid(), signal.SIGINT)
        elif message["type"] == "lifespan.shutdown":
            await send({{"type": "lifespan.shutdown.complete"}})
            return
"#
        ),
    )]);
    real_server_measured_then_audited(
        "uvicorn",
        &app,
        &[
            "--workers",
            "2",
            "--port",
            "0",
            "--lifespan",
            "on",
            "asgi:app",
        ],
        |n| format!("web: uvicorn asgi:app --host 0.0.0.0 --port $PORT --workers {n}\n"),
    );
}

/// celery's prefork pool (with setproctitle: `[celeryd: celery@host:ForkPoolWorker-1]`), on
/// kombu's in-memory broker.
#[test]
fn celery_measured_then_audited() {
    // Each pool process allocates when it starts; when both have, the last one asks the
    // main process for a warm shutdown (SIGTERM: exit 0).
    let app = project(&[(
        "tasks.py",
        format!(
            r#"import os, signal

from celery import Celery
from celery.signals import worker_process_init

app = Celery("tasks", broker="memory://")
BALLAST = None


@worker_process_init.connect
def grow(**_):
    global BALLAST
    BALLAST = b"\x01" * ({WORKER_MIB} << 20)
    ready = os.environ["READY_DIR"]
    open(os.path.join(ready, str(os.getpid())), "w").close()
    if len(os.listdir(ready)) >= 2:
        os.kill(os.getppid(), signal.SIGTERM)
"#
        ),
    )]);
    real_server_measured_then_audited(
        "celery",
        &app,
        &["-A", "tasks", "worker", "-c", "2", "--loglevel=warning"],
        |n| format!("worker: celery -A tasks worker --concurrency={n} --loglevel=info\n"),
    );
}
