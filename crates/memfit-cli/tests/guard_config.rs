//! The guard's configuration where services run: every option also from a `MEMFIT_GUARD_*`
//! variable (flags win; a bad value names the variable), `--version`, the generated `--help`,
//! and `--log-format json` for log collectors (one JSON object a line, whatever the child's
//! command line holds). The guard in a real container is in guard_image.rs.

mod common;
mod guard_support;

use std::time::Duration;

use common::*;
use guard_support::*;

/// `memfit guard ARGS -- true` with `env`; (exit code, stdout, stderr).
fn guard_once(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = memfit();
    cmd.arg("guard").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .env_remove("MEMFIT_GUARD_ACTION_TOKEN")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn options_come_from_the_environment_and_flags_win() {
    // From the environment alone: the limit, the thresholds, no HTTP.
    let (code, _, stderr) = guard_once(
        &["--", "true"],
        &[
            ("MEMFIT_GUARD_LIMIT", "100M"),
            ("MEMFIT_GUARD_WARN", "50%"),
            ("MEMFIT_GUARD_CRITICAL", "90M"),
            ("MEMFIT_GUARD_NO_LISTEN", "true"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("warn at 50 MiB, critical at 90 MiB"),
        "{stderr}"
    );
    assert!(!stderr.contains("serving /health/memory"), "{stderr}");
    // A flag wins over its variable, even over an invalid one; 0/false turn a switch off.
    let (code, _, stderr) = guard_once(
        &["--warn", "40%", "--listen", "127.0.0.1:0", "--", "true"],
        &[
            ("MEMFIT_GUARD_LIMIT", "100M"),
            ("MEMFIT_GUARD_WARN", "120%"),
            ("MEMFIT_GUARD_NO_LISTEN", "1"),
            ("MEMFIT_GUARD_SIGNAL_GROUP", "0"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("warn at 40 MiB"), "{stderr}");
    assert!(stderr.contains("serving /health/memory"), "{stderr}");
}

#[test]
fn a_bad_value_from_the_environment_names_the_variable() {
    for (var, value, needle) in [
        ("MEMFIT_GUARD_WARN", "120%", "MEMFIT_GUARD_WARN=120%: "),
        ("MEMFIT_GUARD_GRACE", "soon", "MEMFIT_GUARD_GRACE=soon: "),
        (
            "MEMFIT_GUARD_NO_LISTEN",
            "maybe",
            "MEMFIT_GUARD_NO_LISTEN=maybe: ",
        ),
        (
            "MEMFIT_GUARD_LOG_FORMAT",
            "xml",
            "MEMFIT_GUARD_LOG_FORMAT=xml: ",
        ),
        ("MEMFIT_GUARD_LIMIT", "lots", "MEMFIT_GUARD_LIMIT=lots: "),
    ] {
        // Without the flag, which would win over its variable.
        let args: &[&str] = if var == "MEMFIT_GUARD_NO_LISTEN" {
            &["--", "true"]
        } else {
            &["--no-listen", "--", "true"]
        };
        let (code, _, stderr) = guard_once(args, &[(var, value)]);
        assert_eq!(code, 2, "{var}={value}: {stderr}");
        assert!(stderr.contains(needle), "{var}={value}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    // A threshold beyond the limit is named by where it came from.
    let (code, _, stderr) = guard_once(
        &["--no-listen", "--", "true"],
        &[
            ("MEMFIT_GUARD_LIMIT", "1G"),
            ("MEMFIT_GUARD_CRITICAL", "2G"),
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(
            "MEMFIT_GUARD_CRITICAL 2 GiB is above the 1 GiB limit (from MEMFIT_GUARD_LIMIT)"
        ),
        "{stderr}"
    );
}

#[test]
fn version_and_generated_help() {
    let (code, stdout, _) = guard_once(&["--version"], &[]);
    assert_eq!(code, 0);
    assert_eq!(
        stdout.trim_end(),
        format!("memfit-guard {}", env!("CARGO_PKG_VERSION"))
    );
    let (code, help, _) = guard_once(&["--help"], &[]);
    assert_eq!(code, 0);
    assert!(
        help.contains("Usage: memfit guard [OPTIONS] -- <CMD>..."),
        "{help}"
    );
    // Every option with its value name, its description and its variable, as clap shows them.
    for needle in [
        "--limit <SIZE>",
        "--on-critical <ACTION>",
        "--log-format <FORMAT>",
        "[env: MEMFIT_GUARD_LIMIT=]",
        "[env: MEMFIT_GUARD_NO_LISTEN=]",
        "[env: MEMFIT_GUARD_ACTION_TOKEN=]",
        "-V, --version",
        "-h, --help",
    ] {
        assert!(help.contains(needle), "{needle}:\n{help}");
    }
    assert!(help.lines().all(|l| l.chars().count() <= 100), "{help}");
}

/// A command line made to forge log lines: a newline, a JSON object, an escape sequence.
const FORGED: &str =
    "x\n{\"event\":\"forged\",\"msg\":\"x\"}\u{1b}[31m\r\tmemfit guard: critical: forged";

#[test]
fn json_logs_are_one_object_a_line_whatever_the_child_is_called() {
    let g = Guarded::start(
        None,
        &[
            "--no-listen",
            "--log-format",
            "json",
            "--limit",
            "400M",
            "--warn",
            "40M",
            "--critical",
            "390M",
            "--sustain",
            "200ms",
            "--startup-grace",
            "0s",
        ],
        // argv[0] is the forged text; the workload holds 80 MiB for 2.5 s.
        &[
            "bash",
            "-c",
            "exec -a \"$1\" \"$0\" alloc 80M 2500",
            workload(),
            FORGED,
        ],
        &[],
    );
    let (code, log, _) = g.finish(Duration::from_secs(30));
    assert_eq!(code, 0, "{log:?}");
    let events: Vec<serde_json::Value> = log
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?} in {log:?}")))
        .collect();
    for e in &events {
        for key in ["ts", "level", "event", "msg"] {
            assert!(e[key].is_string(), "{key}: {e}");
        }
        assert_ne!(e["event"], "forged", "{log:?}");
        assert!(e["ts"].as_str().unwrap().ends_with('Z'), "{e}");
    }
    let start = events.iter().find(|e| e["event"] == "start").unwrap();
    assert_eq!(start["limit_bytes"], 400 * MIB, "{start}");
    let warn = events
        .iter()
        .find(|e| e["event"] == "warn")
        .unwrap_or_else(|| panic!("{log:?}"));
    assert_eq!(warn["level"], "warn");
    assert!(warn["usage_bytes"].as_u64().unwrap() >= 40 * MIB, "{warn}");
    // The forged name is there, escaped inside the one line.
    assert!(warn["msg"].as_str().unwrap().contains(FORGED), "{warn}");
    let exit = events.iter().find(|e| e["event"] == "child_exit").unwrap();
    assert_eq!(exit["exit_code"], 0, "{exit}");
}

#[test]
fn text_logs_escape_control_characters_from_the_child() {
    let g = Guarded::start(
        None,
        &[
            "--no-listen",
            "--limit",
            "400M",
            "--warn",
            "40M",
            "--critical",
            "390M",
            "--sustain",
            "200ms",
            "--startup-grace",
            "0s",
        ],
        &[
            "bash",
            "-c",
            "exec -a \"$1\" \"$0\" alloc 80M 2500",
            workload(),
            FORGED,
        ],
        &[("MEMFIT_GUARD_LOG_FORMAT", "text")],
    );
    let (code, log, _) = g.finish(Duration::from_secs(30));
    assert_eq!(code, 0, "{log:?}");
    let warn = log
        .iter()
        .find(|l| l.starts_with("memfit guard: warn:"))
        .unwrap_or_else(|| panic!("{log:?}"));
    assert!(warn.contains("x\\n{\"event\""), "{warn}");
    assert!(!warn.contains('\u{1b}') && !warn.contains('\r'), "{warn:?}");
    assert!(
        log.iter().all(|l| l.starts_with("memfit guard: ")),
        "{log:?}"
    );
}
