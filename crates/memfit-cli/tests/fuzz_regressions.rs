//! Inputs the fuzz targets (`fuzz/`, README "Fuzzing") found crashing memfit, each run
//! through the real binary so that `cargo test` catches them without the fuzzer.

mod common;

use common::memfit;

/// Bad input: exit 2, one line on stderr, never a panic (exit 101).
fn assert_usage_error(args: &[&str]) {
    let output = memfit().args(args).output().expect("memfit starts");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
}

/// Fuzz target cli_args: a duration of more seconds than a Duration holds (u64::MAX) made
/// `Duration::from_secs_f64` panic in the guard's option parser.
#[test]
fn a_duration_too_long_for_a_duration_is_a_usage_error() {
    for flag in ["--grace", "--sustain", "--cooldown", "--startup-grace"] {
        assert_usage_error(&["guard", flag, "99999999999999999999s", "--", "true"]);
    }
    assert_usage_error(&[
        "guard",
        "--max-restarts",
        "5/9999999999999999999h",
        "--",
        "true",
    ]);
}

/// Fuzz target dockerfile: a flag followed by Unicode white space of more than one byte
/// (U+0085 NEXT LINE, `c2 85`) made the parser step into the middle of the character and
/// panic slicing the instruction's text. The same after ONBUILD's instruction.
#[test]
fn a_flag_followed_by_multibyte_white_space_is_parsed() {
    for dockerfile in [
        &b"FROM node:20\nRUN --link\xc2\x85npm ci\n"[..],
        b"FROM node:20\nONBUILD RUN\xc2\x85npm ci\n",
    ] {
        audit_json(dockerfile);
    }
}

fn audit_json(dockerfile: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    let output = memfit()
        .args(["audit", "--format", "json"])
        .arg(dir.path())
        .output()
        .expect("memfit starts");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // 0 or 1 (findings), as for any Dockerfile: not 101.
    assert!(matches!(output.status.code(), Some(0 | 1)), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("a JSON report");
    assert!(report["findings"].is_array(), "{report}");
}
