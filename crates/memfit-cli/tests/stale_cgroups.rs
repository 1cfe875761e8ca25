//! A memfit that is SIGKILLed (by the OOM killer, a CI runner's timeout, `docker kill`) cannot
//! remove its cgroup: the next memfit finds it, kills what it holds, as a container runtime
//! would, removes it and says so. It never touches the cgroup of a memfit that still runs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::*;

/// A shell that starts a long sleep in the background (a grandchild of memfit, so it outlives
/// memfit as a build's processes do), writes the sleep's pid to `pid_file` and waits.
fn sleeper_script(pid_file: &Path) -> String {
    let temp = pid_file.with_extension("tmp");
    format!(
        "sleep 600 & echo $! > {temp}; mv {temp} {pid}; wait",
        temp = temp.display(),
        pid = pid_file.display()
    )
}

/// The memory cgroup directory a process is in, as the host sees it.
fn memory_cgroup_of(pid: i32) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let v1 = text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then(|| path.to_string())
    });
    match v1 {
        Some(path) => Path::new("/sys/fs/cgroup/memory").join(path.trim_start_matches('/')),
        None => {
            let path = text.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
            Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'))
        }
    }
}

fn sigkill(pid: i32) {
    // SAFETY: signalling a process this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// The only child of `pid` (unshare's forked PID 1, memfit's command).
fn only_child(pid: i32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        if let Some(child) = children.split_whitespace().next() {
            return child.parse().unwrap();
        }
        assert!(Instant::now() < deadline, "{pid} has no child");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start(command: &mut Command) -> Child {
    command.stderr(Stdio::piped()).spawn().unwrap()
}

const SWEPT: &str = "left by a memfit that no longer runs";

/// Every memfit sweeps what a killed one left: the tests of this file, which kill memfits
/// and watch what the next one does, take turns.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn a_killed_memfits_cgroup_and_processes_are_swept_by_the_next_run() {
    let _turn = one_at_a_time();
    if !cgroups_available("a_killed_memfits_cgroup_and_processes_are_swept_by_the_next_run") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("sleep.pid");
    let mut killed = start(
        memfit()
            .args(["run", "-q", "--limit", "256M", "--", "sh", "-c"])
            .arg(sleeper_script(&pid_file)),
    );
    let sleep_pid: i32 = wait_for_file(&pid_file).trim().parse().unwrap();
    let stale = memory_cgroup_of(sleep_pid);
    sigkill(killed.id() as i32);
    killed.wait().unwrap();
    assert!(stale.is_dir(), "{} is gone already", stale.display());
    assert!(
        process_alive(sleep_pid as i64),
        "the sleep died with memfit"
    );

    let next = memfit().args(["run", "-q", "--", "true"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&next.stderr);
    assert_eq!(next.status.code(), Some(0), "{stderr}");
    assert!(
        !stale.exists(),
        "{} was not swept: {stderr}",
        stale.display()
    );
    assert!(
        !process_alive(sleep_pid as i64),
        "the sleep it held still runs"
    );
    let said: Vec<&str> = stderr.lines().filter(|l| l.contains(SWEPT)).collect();
    assert_eq!(said.len(), 1, "{stderr}");
    let name = stale.file_name().unwrap().to_str().unwrap();
    assert!(said[0].contains(name), "{stderr}");
    assert!(said[0].contains("1 process"), "{stderr}");
}

#[test]
fn the_cgroup_of_a_memfit_that_still_runs_is_left_alone() {
    let _turn = one_at_a_time();
    if !cgroups_available("the_cgroup_of_a_memfit_that_still_runs_is_left_alone") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("sleep.pid");
    let running = start(
        memfit()
            .args(["run", "-q", "--", "sh", "-c"])
            .arg(sleeper_script(&pid_file)),
    );
    let sleep_pid: i32 = wait_for_file(&pid_file).trim().parse().unwrap();
    let live = memory_cgroup_of(sleep_pid);

    let other = memfit().args(["run", "-q", "--", "true"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert_eq!(other.status.code(), Some(0), "{stderr}");
    let live_name = live.file_name().unwrap().to_str().unwrap();
    assert!(
        !stderr
            .lines()
            .any(|l| l.contains(SWEPT) && l.contains(live_name)),
        "{stderr}"
    );
    assert!(live.is_dir(), "a live run's cgroup was removed");
    assert!(
        process_alive(sleep_pid as i64),
        "a live run's process was killed"
    );

    // SAFETY: signalling the memfit this test started.
    unsafe { libc::kill(running.id() as i32, libc::SIGTERM) };
    let output = running.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(143));
    assert!(!live.exists());
}

fn unshare_works() -> bool {
    Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `memfit run` as PID 1 of a new PID namespace, as in a container whose entrypoint it is.
fn in_pid_namespace() -> Command {
    let mut command = Command::new("unshare");
    command
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(env!("CARGO_BIN_EXE_memfit"));
    command
}

#[test]
fn a_memfit_killed_as_pid_1_of_a_namespace_does_not_block_the_next() {
    let _turn = one_at_a_time();
    if !cgroups_available("a_memfit_killed_as_pid_1_of_a_namespace_does_not_block_the_next") {
        return;
    }
    if !unshare_works() {
        eprintln!("skipping a_memfit_killed_as_pid_1_of_a_namespace_does_not_block_the_next: unshare --pid --fork --mount-proc does not work here (needs root and util-linux)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("sleep.pid");
    let mut unshare = start(
        in_pid_namespace()
            .args(["run", "-q", "--", "sh", "-c"])
            .arg(sleeper_script(&pid_file)),
    );
    wait_for_file(&pid_file);
    let memfit_pid = only_child(unshare.id() as i32);
    let stale = memory_cgroup_of(only_child(memfit_pid));
    sigkill(memfit_pid);
    unshare.wait().unwrap();
    // PID 1 gone, the kernel killed the namespace; its cgroup stays.
    assert!(stale.is_dir(), "{} is gone already", stale.display());

    for _ in 0..2 {
        let next = in_pid_namespace()
            .args(["run", "-q", "--", "true"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&next.stderr);
        assert_eq!(next.status.code(), Some(0), "{stderr}");
    }
    assert!(!stale.exists(), "{} was not swept", stale.display());
}
