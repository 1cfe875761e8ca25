//! Two builds at once on one dockerd: `memfit run --limit X -- docker build` must adopt only
//! its own BuildKit RUN steps (dockerd's embedded BuildKit ignores `--cgroup-parent`,
//! moby/moby#45796, and puts every build's steps under the same `<parent>/buildkit/`), and
//! leave another client's alone — its limit must not kill them, its report must not list them.
//!
//! Deterministic: each step waits for a file in its own root filesystem, which the test writes
//! through `/proc/<pid>/root` once both steps are running — no sleeps (common/waiting_steps.rs).
//!
//! Needs a Docker Engine with the cgroupfs or systemd driver and root (as tests/docker.rs;
//! `MEMFIT_DOCKER_TESTS=required` makes a missing engine a failure).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use common::docker::{gate, prepare_engine, IMAGE};
use common::waiting_steps::*;
use common::*;
use serde_json::Value;

fn ready(test: &str) -> bool {
    gate(
        &prepare_engine(),
        "Docker concurrent builds",
        "MEMFIT_DOCKER_TESTS",
    ) && cgroups_available(test)
}

/// One test of this file at a time (other clients' builds may still run beside them).
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock().unwrap_or_else(|p| p.into_inner())
}

fn remove_images(output: &str) {
    for id in output
        .split_whitespace()
        .filter(|w| w.starts_with("sha256:"))
    {
        let _ = Command::new("docker").args(["rmi", "-f", id]).output();
    }
}

const BUILD: [&str; 6] = [
    "/usr/bin/docker",
    "build",
    "--no-cache",
    "--network",
    "none",
    "-q",
];

#[test]
fn another_build_on_the_same_dockerd_is_left_alone() {
    let _one = one_at_a_time();
    if !ready("concurrent docker builds") {
        return;
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mine = format!("mine{}x{nanos}", std::process::id());
    let theirs = format!("theirs{}x{nanos}", std::process::id());
    // This run's step holds 30 MiB under a 100 MiB limit; the other build's touches 200 MiB.
    let my_dir = context(&format!("FROM {IMAGE}\n{}", step(&mine, 30, 0)));
    let their_dir = context(&format!("FROM {IMAGE}\n{}", step(&theirs, 0, 200)));
    let report_dir = tempfile::tempdir().unwrap();
    let json = report_dir.path().join("run.json");

    let mut memfit_build = memfit()
        .env("DOCKER_BUILDKIT", "1")
        .args(["run", "--limit", "100M", "--json"])
        .arg(&json)
        .arg("--")
        .args(BUILD)
        .arg(my_dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let my_step = wait_for_step(&mine, &mut [&mut memfit_build]);
    // memfit is watching: now the other client's build starts its step.
    let mut their_build = Command::new(BUILD[0])
        .env("DOCKER_BUILDKIT", "1")
        .args(&BUILD[1..])
        .arg(their_dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let their_step = wait_for_step(&theirs, &mut [&mut memfit_build, &mut their_build]);
    // Still where dockerd put it (memfit would have moved it below its run's cgroup).
    let their_id = buildkit_id(their_step);
    release(their_step, &theirs);
    let theirs_out = their_build.wait_with_output().unwrap();
    release(my_step, &mine);
    let memfit_out = memfit_build.wait_with_output().unwrap();
    let theirs_stdout = String::from_utf8_lossy(&theirs_out.stdout).to_string();
    let memfit_stdout = String::from_utf8_lossy(&memfit_out.stdout).to_string();
    remove_images(&theirs_stdout);
    remove_images(&memfit_stdout);
    let memfit_stderr = String::from_utf8_lossy(&memfit_out.stderr).to_string();

    assert!(
        theirs_out.status.success(),
        "the other build's 200 MiB step was killed under memfit's 100 MiB limit: {}\nmemfit: {memfit_stderr}",
        String::from_utf8_lossy(&theirs_out.stderr)
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(memfit_out.status.code(), Some(0), "{memfit_stderr}");
    assert_eq!(report["oom_killed"], false, "{memfit_stderr}");
    // Its own step is measured, and only it.
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert_eq!(steps[0]["line"], 2, "{steps:?}");
    assert!(
        steps[0]["peak_bytes"].as_u64().unwrap() >= 30 * 1024 * 1024,
        "{steps:?}"
    );
    let containers = report["containers"].to_string();
    assert!(!containers.contains(&theirs), "{containers}");
    assert!(containers.contains(&mine), "{containers}");
    assert!(
        report["peak"]["charged_bytes"].as_u64().unwrap() < 100 * 1024 * 1024,
        "{memfit_stderr}"
    );
    // The report says another build's step was seen and left alone (other clients' builds
    // on this dockerd may be listed with it).
    let caveats = report["caveats"].to_string();
    assert!(
        caveats.contains("of another build on the same dockerd")
            && caveats.contains(&format!("buildkit/{their_id}")),
        "{their_id}: {caveats}"
    );
    // Its command (its owner's, perhaps with a secret in it) is not repeated here.
    assert!(!caveats.contains(&theirs), "{caveats}");
    assert!(Path::new(&json).exists());
}

#[test]
fn the_same_run_text_in_another_build_is_said_to_be_ambiguous() {
    let _one = one_at_a_time();
    if !ready("concurrent docker builds") {
        return;
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let shared = format!("shared{}x{nanos}", std::process::id());
    // The same RUN text after a different instruction (so that BuildKit runs both).
    let my_dir = context(&format!("FROM {IMAGE}\n{}", step(&shared, 0, 0)));
    let their_dir = context(&format!(
        "FROM {IMAGE}\nENV OTHER=1\n{}",
        step(&shared, 0, 0)
    ));
    let report_dir = tempfile::tempdir().unwrap();
    let json = report_dir.path().join("run.json");
    let mut memfit_build = memfit()
        .env("DOCKER_BUILDKIT", "1")
        .args(["run", "--limit", "256M", "--json"])
        .arg(&json)
        .arg("--")
        .args(BUILD)
        .arg(my_dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let my_step = wait_for_step(&shared, &mut [&mut memfit_build]);
    let mut their_build = Command::new(BUILD[0])
        .env("DOCKER_BUILDKIT", "1")
        .args(&BUILD[1..])
        .arg(their_dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let their_step = wait_for_another_step(
        &shared,
        Some(my_step),
        &mut [&mut memfit_build, &mut their_build],
    );
    release(their_step, &shared);
    let theirs_out = their_build.wait_with_output().unwrap();
    release(my_step, &shared);
    let memfit_out = memfit_build.wait_with_output().unwrap();
    remove_images(&String::from_utf8_lossy(&theirs_out.stdout));
    remove_images(&String::from_utf8_lossy(&memfit_out.stdout));
    let memfit_stderr = String::from_utf8_lossy(&memfit_out.stderr).to_string();
    assert!(theirs_out.status.success());
    assert_eq!(memfit_out.status.code(), Some(0), "{memfit_stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let caveats = report["caveats"].to_string();
    assert!(caveats.contains("ambiguous: `RUN node -e"), "{caveats}");
    assert!(memfit_stderr.contains("ambiguous"), "{memfit_stderr}");
}
