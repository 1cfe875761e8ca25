//! `memfit bisect` against real processes and real cgroups.

mod common;

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
