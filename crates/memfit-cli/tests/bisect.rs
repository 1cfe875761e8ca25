//! `memfit bisect` against real processes and real cgroups.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn bisect_finds_a_known_requirement_within_its_precision() {
    if !cgroups_available("bisect_finds_a_known_requirement_within_its_precision") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bisect.json");
    let setup_log = dir.path().join("setup.log");
    let output = memfit()
        .args(["bisect", "--precision", "4M", "--repeat", "2", "--json"])
        .arg(&json)
        .arg("--setup")
        .arg(format!("echo try >> {}", setup_log.display()))
        .args(["--", workload(), "alloc", "150M", "50"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["schema"], "memfit.bisect/1");
    let min = report["min_passing_bytes"].as_u64().unwrap();
    let max_fail = report["max_failing_bytes"].as_u64().unwrap();
    // 150 MiB touched plus the process itself (a few MiB) is the true requirement.
    assert!(
        (150 * MIB..150 * MIB + 4 * MIB + 8 * MIB).contains(&min),
        "min passing {min}: {stderr}"
    );
    assert!(max_fail < min && min - max_fail <= 4 * MIB);
    assert!(report["recommended_bytes"].as_u64().unwrap() > min);
    let tries = report["tries"].as_array().unwrap();
    for field in [
        "limit_bytes",
        "passed",
        "oom_killed",
        "peak_charged_bytes",
        "duration_ms",
    ] {
        assert!(tries[0].get(field).is_some(), "{field}");
    }
    assert!(
        tries[0]["limit_bytes"].is_null(),
        "first try is unconstrained"
    );
    // Failing tries below the requirement were OOM kills.
    assert!(tries
        .iter()
        .filter(|t| t["passed"] == false)
        .all(|t| t["oom_killed"] == true));
    // --setup ran before every try.
    let setups = std::fs::read_to_string(&setup_log).unwrap().lines().count();
    assert_eq!(setups, tries.len());
    assert!(stderr.contains("passes at"), "{stderr}");
}

#[test]
fn bisect_refuses_a_command_that_fails_without_a_limit() {
    if !cgroups_available("bisect_refuses_a_command_that_fails_without_a_limit") {
        return;
    }
    let output = memfit()
        .args(["bisect", "--", workload(), "exit", "3"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("fails even without a limit"));
}

#[test]
fn bisect_rejects_a_bad_precision_with_exit_2() {
    let output = memfit()
        .args(["bisect", "--precision", "lots", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("e.g. 16M or 2%")
            || String::from_utf8_lossy(&output.stderr).contains("2%")
    );
}

#[test]
fn bisect_of_a_command_that_is_not_found_exits_127() {
    let output = memfit()
        .args(["bisect", "--", "no-such-command-memfit"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(127), "{stderr}");
    assert!(stderr.contains("command not found"), "{stderr}");
}

/// Waits for a file a try or the setup writes once it runs (never a blind sleep).
fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigint(child: &Child) {
    // SAFETY: signalling the memfit this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
}

fn lines_in(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

#[test]
fn a_try_interrupted_by_sigint_is_kept_out_of_the_band_and_the_bisect_stops_with_130() {
    if !cgroups_available(
        "a_try_interrupted_by_sigint_is_kept_out_of_the_band_and_the_bisect_stops_with_130",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bisect.json");
    let tries = dir.path().join("tries");
    let marker = dir.path().join("third-try-runs");
    // The third try (the first step of the search, at 35 MiB, after the upper bound of 64 MiB
    // passed) holds until it is interrupted; the others touch 30 MiB and pass.
    let command = format!(
        "if [ \"$(wc -l < {tries})\" -eq 3 ]; then echo > {marker}; exec {workload} sleep 600000; fi; exec {workload} alloc 30M 10",
        tries = tries.display(),
        marker = marker.display(),
        workload = workload()
    );
    let child = memfit()
        .args(["bisect", "--precision", "4M", "--hi", "64M", "--json"])
        .arg(&json)
        .arg("--setup")
        .arg(format!("echo >> {}", tries.display()))
        .args(["--", "sh", "-c", &command])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_file(&marker);
    sigint(&child);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["interrupted"], true);
    let tries = report["tries"].as_array().unwrap();
    assert_eq!(tries.len(), 3, "{report}");
    assert_eq!(tries[2]["interrupted"], true, "{report}");
    assert!(tries[..2]
        .iter()
        .all(|t| t["interrupted"] == false && t["passed"] == true));
    // What was learnt: the upper bound passed; nothing failed.
    assert!(report["max_failing_bytes"].is_null(), "{report}");
    assert_eq!(report["min_passing_bytes"], tries[1]["limit_bytes"]);
    let upper_bound = memfit_core::ByteSize(tries[1]["limit_bytes"].as_u64().unwrap());
    assert_eq!(
        report["band"],
        format!("passes at {upper_bound} (1/1)"),
        "{report}"
    );
    assert!(stderr.contains("INTERRUPTED"), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("try 3/") && l.contains("interrupted")),
        "{stderr}"
    );
}

#[test]
fn sigint_during_setup_stops_the_bisect_before_the_command_starts() {
    if !cgroups_available("sigint_during_setup_stops_the_bisect_before_the_command_starts") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let setups = dir.path().join("setups");
    let runs = dir.path().join("runs");
    let marker = dir.path().join("second-setup-runs");
    let finished = dir.path().join("second-setup-finished");
    // The second setup takes a while; the test interrupts it.
    let setup = format!(
        "echo >> {setups}; if [ \"$(wc -l < {setups})\" -eq 2 ]; then echo > {marker}; sleep 5; echo > {finished}; fi",
        setups = setups.display(),
        marker = marker.display(),
        finished = finished.display()
    );
    let command = format!(
        "echo >> {runs}; exec {workload} alloc 20M 10",
        runs = runs.display(),
        workload = workload()
    );
    let child = memfit()
        .args(["bisect", "--setup", &setup, "--", "sh", "-c", &command])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_file(&marker);
    sigint(&child);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert_eq!(
        lines_in(&runs),
        1,
        "the command started after SIGINT: {stderr}"
    );
    assert!(!finished.exists(), "the setup was not stopped");
    assert!(stderr.contains("during --setup"), "{stderr}");
    assert!(stderr.contains("INTERRUPTED"), "{stderr}");
}
