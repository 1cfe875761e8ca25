//! cgroup v2 placement, for real: these run in the cgroup-v2 guest of tests/vm/run.sh (and on
//! any v2 host); on a v1 host they say so and return.
//!
//! The kernel's rules they exercise
//! (https://docs.kernel.org/admin-guide/cgroup-v2.html): a non-root cgroup that holds
//! processes cannot enable controllers for children ("no internal process"), and an
//! unprivileged user may manage a subtree delegated to it (its directory and `cgroup.procs`,
//! `cgroup.subtree_control`, `cgroup.threads` chowned to the user, as `systemd-run --user
//! --scope -p Delegate=yes` does).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// This process's v2 cgroup directory, or None (with a message) on a v1 memory controller.
fn own_v2_cgroup(test: &str) -> Option<PathBuf> {
    let v2_memory = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
        .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"));
    if !v2_memory {
        eprintln!("skipping {test}: the memory controller here is not cgroup v2 (tests/vm/run.sh runs it in a cgroup-v2 guest)");
        return None;
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let path = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    Some(Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/')))
}

/// A cgroup made for one test beside this process's own, with the memory controller
/// enabled above it; removed (with what memfit might have left) on drop.
struct TestCgroup(PathBuf);

impl TestCgroup {
    fn beside(own: &Path, name: &str) -> TestCgroup {
        let parent = own.parent().unwrap();
        for c in ["+memory", "+pids"] {
            let _ = std::fs::write(parent.join("cgroup.subtree_control"), c);
        }
        let dir = parent.join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        TestCgroup(dir)
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(&self.0) {
            for e in entries.flatten() {
                if e.path().is_dir() {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// `sh -c 'echo $$ > CGROUP/cgroup.procs && exec PREFIX memfit ARGS'`: memfit starts alone in
/// the cgroup, as under `systemd-run --scope` or as a container's command.
fn memfit_in(cgroup: &Path, prefix: &[&str], args: &[&str]) -> std::process::Output {
    let mut script = format!("echo $$ > '{}/cgroup.procs' && exec", cgroup.display());
    for word in prefix
        .iter()
        .copied()
        .chain([env!("CARGO_BIN_EXE_memfit")])
        .chain(args.iter().copied())
    {
        script.push_str(&format!(" '{word}'"));
    }
    Command::new("sh").args(["-c", &script]).output().unwrap()
}

fn children(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect()
}

#[test]
fn memfit_alone_in_a_limited_cgroup_runs_inside_it_and_leaves_it_as_it_was() {
    let Some(own) = own_v2_cgroup("memfit_alone_in_a_limited_cgroup_runs_inside_it") else {
        return;
    };
    let scope = TestCgroup::beside(&own, "memfit-test-scope");
    std::fs::write(scope.0.join("memory.max"), (100 * MIB).to_string()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let json_text = json.to_str().unwrap();
    let output = memfit_in(
        &scope.0,
        &[],
        &[
            "run",
            "--limit",
            "1G",
            "--json",
            json_text,
            "--",
            workload(),
            "alloc",
            "300M",
            "100",
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(137), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["mode"], "cgroup-v2", "{stderr}");
    let cgroup_path = report["cgroup_path"].as_str().unwrap();
    assert!(
        Path::new(cgroup_path).starts_with(&scope.0),
        "the run's cgroup {cgroup_path} escaped {}",
        scope.0.display()
    );
    assert_eq!(report["effective_limit_bytes"], 100 * MIB, "{stderr}");
    assert_eq!(report["oom_killed"], true, "{stderr}");
    // Left as it was: no leaf, no cgroup of a run, no controller enabled for children.
    assert!(children(&scope.0).is_empty(), "{:?}", children(&scope.0));
    let subtree = std::fs::read_to_string(scope.0.join("cgroup.subtree_control")).unwrap();
    assert_eq!(subtree.trim(), "", "controllers left enabled");
}

#[test]
fn memfit_beside_other_processes_makes_its_cgroup_next_to_its_own() {
    let Some(own) = own_v2_cgroup("memfit_beside_other_processes_makes_its_cgroup_next_to_its_own")
    else {
        return;
    };
    // This test process shares its cgroup with memfit: memfit cannot use it, nor move us.
    let run = run(&["--limit", "128M"], &[workload(), "alloc", "20M", "50"]);
    assert_eq!(run.status(), 0, "{}", run.stderr());
    assert_eq!(run.report["mode"], "cgroup-v2");
    let cgroup_path = PathBuf::from(run.report["cgroup_path"].as_str().unwrap());
    assert_eq!(
        cgroup_path.parent(),
        own.parent(),
        "not beside {}",
        own.display()
    );
    assert_cgroup_removed(&run);
}

#[test]
fn a_user_in_a_delegated_subtree_runs_for_real() {
    let Some(own) = own_v2_cgroup("a_user_in_a_delegated_subtree_runs_for_real") else {
        return;
    };
    // Delegate as systemd does: the directory and its three delegation files to the user.
    const NOBODY: u32 = 65534;
    let scope = TestCgroup::beside(&own, "memfit-test-delegated");
    for file in [
        "",
        "cgroup.procs",
        "cgroup.subtree_control",
        "cgroup.threads",
    ] {
        std::os::unix::fs::chown(scope.0.join(file), Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let json = dir.path().join("run.json");
    let json_text = json.to_str().unwrap();
    // util-linux's setpriv by its path: busybox's sh would run its own applet, which cannot
    // change the user.
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("util-linux's setpriv");
    let output = memfit_in(
        &scope.0,
        &[setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"],
        &[
            "run",
            "--limit",
            "64M",
            "--json",
            json_text,
            "--",
            workload(),
            "alloc",
            "100M",
            "100",
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&json).unwrap_or_else(|e| panic!("no report ({e}): {stderr}")),
    )
    .unwrap();
    assert_eq!(report["mode"], "cgroup-v2", "not for real: {stderr}");
    assert_eq!(report["oom_killed"], true, "{stderr}");
    assert_eq!(output.status.code(), Some(137), "{stderr}");
    assert!(children(&scope.0).is_empty(), "{:?}", children(&scope.0));
}

/// A guard in a cgroup with `memory.oom.group` = 1 (Kubernetes ≥ 1.28 on cgroup v2) says at
/// start that a kernel OOM kill takes it with the service, and that only its action before
/// the limit can keep the service up; with `--on-critical log` that nothing would.
#[test]
fn a_guard_in_an_oom_group_says_a_kernel_kill_takes_it_too() {
    let Some(own) = own_v2_cgroup("a_guard_in_an_oom_group_says_a_kernel_kill_takes_it_too") else {
        return;
    };
    let scope = TestCgroup::beside(&own, "memfit-test-oom-group");
    std::fs::write(scope.0.join("memory.max"), (256 * MIB).to_string()).unwrap();
    std::fs::write(scope.0.join("memory.oom.group"), "1").unwrap();
    let output = memfit_in(
        &scope.0,
        &[],
        &["guard", "--on-critical", "log", "--", "sleep", "0.2"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("memory.oom.group"))
        .unwrap_or_else(|| panic!("no oom.group line: {stderr}"));
    assert!(
        line.contains("the guard included") && line.contains("--on-critical restart"),
        "{line}"
    );
    // Without the group, nothing is said.
    std::fs::write(scope.0.join("memory.oom.group"), "0").unwrap();
    let output = memfit_in(&scope.0, &[], &["guard", "--", "sleep", "0.2"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("memory.oom.group"), "{stderr}");
}
