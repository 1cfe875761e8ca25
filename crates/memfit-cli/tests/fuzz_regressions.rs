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
    assert_usage_error(&["guard", "--max-restarts", "5/9999999999999999999h", "--", "true"]);
}
