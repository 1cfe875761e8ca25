//! What `memfit run` exits with when something other than the command goes wrong: the
//! command's own status always wins over a report that cannot be written, and a command that
//! cannot be started exits 127 or 126, as `env` and `timeout` do.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

fn memfit_run(args: &[&str], command: &[&str]) -> std::process::Output {
    memfit()
        .arg("run")
        .args(args)
        .arg("--")
        .args(command)
        .output()
        .unwrap()
}

/// A shell command that removes the (empty) report directory, then runs `then`.
fn remove_dir_then(dir: &Path, then: &str) -> String {
    format!("rmdir {} && {then}", dir.display())
}

#[test]
fn an_oom_kill_keeps_its_137_when_the_report_cannot_be_written() {
    if !cgroups_available("an_oom_kill_keeps_its_137_when_the_report_cannot_be_written") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    std::fs::create_dir(&reports).unwrap();
    let json = reports.join("run.json");
    let script = remove_dir_then(&reports, &format!("exec {} alloc 200M 100", workload()));
    let output = memfit_run(
        &["--limit", "64M", "--json", json.to_str().unwrap()],
        &["sh", "-c", &script],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(137), "{stderr}");
    // The summary is printed, and the report's failure is said once, after it.
    assert!(stderr.contains("OOM-KILLED"), "{stderr}");
    assert!(stderr.contains("  verdict "), "{stderr}");
    let error = stderr
        .lines()
        .filter(|l| l.contains("cannot write"))
        .collect::<Vec<_>>();
    assert_eq!(error.len(), 1, "{stderr}");
    assert!(error[0].contains(json.to_str().unwrap()), "{stderr}");
    assert!(
        stderr.rfind("cannot write") > stderr.rfind("  verdict "),
        "{stderr}"
    );
}

#[test]
fn a_failing_command_keeps_its_status_when_the_report_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    std::fs::create_dir(&reports).unwrap();
    let json = reports.join("run.json");
    let output = memfit_run(
        &["--json", json.to_str().unwrap()],
        &["sh", "-c", &remove_dir_then(&reports, "exit 3")],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("exited with status 3"), "{stderr}");
    assert!(stderr.contains("cannot write"), "{stderr}");
}

#[test]
fn a_report_refused_after_a_successful_command_exits_2_and_the_others_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let json = dir.path().join("run.json");
    let svg = dir.path().join("run.svg");
    // The command plants a link where the JSON report goes: the safe writer refuses it.
    let script = format!("ln -s {} {}", victim.display(), json.display());
    let output = memfit_run(
        &[
            "--json",
            json.to_str().unwrap(),
            "--svg",
            svg.to_str().unwrap(),
        ],
        &["sh", "-c", &script],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("exited successfully"), "{stderr}");
    assert!(stderr.contains("symbolic link"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let svg_text = std::fs::read_to_string(&svg).expect("the SVG report is still written");
    assert!(svg_text.starts_with("<svg"));
}

#[test]
fn a_command_that_is_not_found_exits_127_as_env_does() {
    let output = memfit_run(&["--limit", "256M"], &["no-such-command-memfit"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(127), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("command not found"), "{stderr}");
    let output = memfit_run(&[], &["/no/such/dir/memfit-cmd"]);
    assert_eq!(output.status.code(), Some(127));
}

#[test]
fn a_command_that_cannot_be_executed_exits_126_as_env_does() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("build.sh");
    std::fs::write(&script, "#!/bin/sh\necho built\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    for program in [script.as_path(), dir.path()] {
        let output = memfit_run(&[], &[program.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(126), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("cannot execute"), "{stderr}");
    }
}
