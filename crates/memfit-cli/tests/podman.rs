//! `memfit run -- podman run|build` against Debian's podman 4.3 (as root, cgroupfs cgroup
//! manager): podman takes `--cgroup-parent` for containers and for a build's RUN steps, so
//! they are measured as docker's are.
//!
//! `MEMFIT_PODMAN_TESTS=required` (CI) makes a missing podman a failure; elsewhere the suite
//! says loudly that it did not run.

mod common;

use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use common::docker::IMAGE;
use common::*;

fn podman_suite(test: &str) -> Option<MutexGuard<'static, ()>> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let ready = READY.get_or_init(|| {
        let info = Command::new("podman")
            .args(["info", "--format", "{{.Host.CgroupManager}}"])
            .output()
            .map_err(|e| format!("no podman ({e}); Debian: apt-get install podman"))?;
        let manager = String::from_utf8_lossy(&info.stdout).trim().to_string();
        if manager != "cgroupfs" {
            return Err(format!(
                "podman uses the {manager:?} cgroup manager; the suite needs cgroupfs: {}",
                String::from_utf8_lossy(&info.stderr).trim()
            ));
        }
        common::docker::ensure_image("podman")
    });
    (common::docker::gate(ready, "podman", "MEMFIT_PODMAN_TESTS") && cgroups_available(test))
        .then_some(guard)
}

/// Podman sets RLIMIT_NOFILE/NPROC of its own as root (1048576); where the hard limits are
/// lower (a CI runner, this sandbox) runc cannot, so the containers get modest ones.
const ULIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

const TOUCH_300M: &str =
    "const b = []; for (let i = 0; i < 300; i++) b.push(Buffer.alloc(1 << 20, 1))";

#[test]
fn podman_run_over_the_limit_is_oom_killed_and_counted() {
    let Some(_one) = podman_suite("podman run") else {
        return;
    };
    let mut command = vec!["podman", "run", "--rm", "--network", "none"];
    command.extend(ULIMITS);
    command.extend([IMAGE, "node", "-e", TOUCH_300M]);
    let run = run(&["--limit", "100M"], &command);
    assert_eq!(run.status(), 137, "{}", run.stderr());
    assert_eq!(run.report["oom_killed"], true);
    let containers = run.report["containers"].as_array().unwrap();
    // The container itself; podman's conmon is counted in the run, not listed.
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert!(
        containers[0]["oom_kills"].as_u64().unwrap() >= 1,
        "{containers:?}"
    );
    assert_cgroup_removed(&run);
}

#[test]
fn podman_run_that_fits_is_counted_in_the_peak() {
    let Some(_one) = podman_suite("podman run") else {
        return;
    };
    let hold = "const b = []; for (let i = 0; i < 60; i++) b.push(Buffer.alloc(1 << 20, 1)); setTimeout(() => {}, 300)";
    let mut command = vec!["podman", "run", "--rm", "--network", "none"];
    command.extend(ULIMITS);
    command.extend([IMAGE, "node", "-e", hold]);
    let run = run(&["--limit", "256M"], &command);
    assert_eq!(run.status(), 0, "{}", run.stderr());
    assert_eq!(run.report["oom_killed"], false);
    assert!(
        run.u64("/peak/charged_bytes") >= 60 * MIB,
        "{}",
        run.stderr()
    );
    let containers = run.report["containers"].as_array().unwrap();
    assert!(containers[0]["peak_bytes"].as_u64().unwrap() >= 60 * MIB);
}

#[test]
fn a_podman_build_run_step_is_measured_and_named_with_its_line() {
    let Some(_one) = podman_suite("podman build") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {IMAGE}\nRUN echo first\nRUN node -e '{TOUCH_300M}'\nRUN echo never\n"),
    )
    .unwrap();
    let tag = format!("localhost/memfit-test-build:{}", std::process::id());
    let dir_text = dir.path().to_str().unwrap();
    let mut command = vec![
        "podman",
        "build",
        "--no-cache",
        "--network",
        "none",
        "-t",
        &tag,
    ];
    command.extend(ULIMITS);
    command.push(dir_text);
    let run = run(&["--limit", "100M"], &command);
    let _ = Command::new("podman").args(["rmi", "-f", &tag]).output();
    assert_ne!(run.status(), 0, "{}", run.stderr());
    assert_eq!(run.report["oom_killed"], true, "{}", run.stderr());
    let steps = run.report["steps"].as_array().unwrap();
    let killed = steps
        .iter()
        .find(|s| s["oom_killed"] == true)
        .unwrap_or_else(|| panic!("no killed step in {steps:?}"));
    assert_eq!(killed["line"], 3, "{steps:?}");
    assert!(
        run.stderr().contains("Dockerfile:3) OOM-killed at 100 MiB"),
        "{}",
        run.stderr()
    );
    assert_cgroup_removed(&run);
}
