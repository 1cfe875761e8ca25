//! What memfit prints, through the real binary: a closed pipe or a full disk on standard
//! output or standard error is never a panic (ripgrep exits quietly on a closed pipe; a full
//! disk is one line and exit 2, or the command's own status for `run`), and control characters
//! from untrusted files, logs and command lines are escaped, never sent to the terminal.

mod common;

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;

fn corpus(name: &str) -> String {
    format!(
        "{}/../memfit-explain/tests/corpus/{name}.log",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A pipe whose reading end is already closed: every write to it fails with EPIPE.
fn closed_pipe() -> Stdio {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 just returned these two descriptors, owned by nothing else.
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(reader);
    Stdio::from(writer)
}

fn dev_full() -> Stdio {
    Stdio::from(File::options().write(true).open("/dev/full").unwrap())
}

/// A project whose Dockerfile has a finding, for audit and fix.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM node:20\nCOPY . .\nRUN npm install\nCMD [\"node\", \"server.js\"]\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("package-lock.json"), "{}\n").unwrap();
    std::fs::write(
        dir.path().join("package.json"),
        "{\"name\": \"a\", \"version\": \"1.0.0\"}\n",
    )
    .unwrap();
    dir
}

/// Every command whose output goes to standard output.
fn stdout_commands(dir: &Path) -> Vec<Vec<String>> {
    let d = dir.display().to_string();
    [
        vec!["explain", &corpus("node-heap-cra-github-actions")],
        vec!["explain", "--json", &corpus("node-heap-cra-github-actions")],
        vec!["explain", "--exit-code", "137"],
        vec!["plan", "--limit", "512M", "--node-version", "20"],
        vec!["plan", "--limit", "512M", "--format", "json"],
        vec!["audit", &d],
        vec!["audit", "--format", "sarif", &d],
        vec!["fix", "--dry-run", &d],
        vec!["run", "--platform", "list"],
        vec!["--help"],
        vec!["--version"],
    ]
    .into_iter()
    .map(|args| args.into_iter().map(String::from).collect())
    .collect()
}

fn status(output: &Output) -> i32 {
    output
        .status
        .code()
        .unwrap_or_else(|| panic!("memfit was killed by a signal: {:?}", output.status))
}

#[test]
fn a_closed_pipe_on_stdout_ends_every_command_quietly_with_status_0() {
    let dir = project();
    for args in stdout_commands(dir.path()) {
        let output = memfit()
            .args(&args)
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(status(&output), 0, "memfit {args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "memfit {args:?} complained about the closed pipe: {stderr}"
        );
    }
}

#[test]
fn a_report_written_to_a_closed_stdout_ends_quietly() {
    let output = memfit()
        .args(["bisect", "--json", "-", "--", "true"])
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status(&output), 0, "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
}

#[test]
fn a_full_disk_on_stdout_is_one_line_and_exit_2() {
    let dir = project();
    for args in stdout_commands(dir.path()) {
        let output = memfit()
            .args(&args)
            .stdout(dev_full())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(status(&output), 2, "memfit {args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "memfit {args:?}: {stderr}");
        let line = stderr
            .lines()
            .find(|l| l.contains("standard output"))
            .unwrap_or_else(|| panic!("memfit {args:?} did not say what failed: {stderr}"));
        assert!(line.contains("No space left on device"), "{line}");
    }
}

#[test]
fn the_commands_status_wins_when_the_run_summary_cannot_be_printed() {
    for stderr in [closed_pipe(), dev_full()] {
        let output = memfit()
            .args(["run", "--", "sh", "-c", "exit 3"])
            .stdout(Stdio::null())
            .stderr(stderr)
            .output()
            .unwrap();
        assert_eq!(status(&output), 3, "{output:?}");
    }
}

#[test]
fn a_full_disk_on_stderr_never_panics_a_command_that_fails_early() {
    let output = memfit()
        .args(["explain", "/nonexistent/build.log"])
        .stderr(dev_full())
        .output()
        .unwrap();
    assert_eq!(status(&output), 2);
}

const HOSTILE: &str = "\x1b]0;pwned\x07\x1b[2J\x1b[31m";

fn assert_no_control(text: &str, context: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|c| {
            (c.is_control() && *c != '\n' && *c != '\t') || ('\u{202a}'..='\u{202e}').contains(c)
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{context}: raw control characters {bad:?} in\n{text}"
    );
}

#[test]
fn explain_escapes_control_characters_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("build.log");
    std::fs::write(
        &log,
        format!("Step 3/4 : RUN npm install{HOSTILE}\nKilled {HOSTILE}\n\x1b[2Jspawn ENOMEM\x1b]0;x\x07 \x07\x08\u{202e}done\n"),
    )
    .unwrap();
    let output = memfit().arg("explain").arg(&log).output().unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(status(&output), 0, "{out}");
    assert_no_control(&out, "explain");
    // Escape sequences are removed before matching; what is left of the line is escaped.
    assert!(
        out.contains("spawn ENOMEM \\x07\\x08\\u{202e}done"),
        "{out}"
    );
    assert!(out.contains("OUT OF MEMORY"), "{out}");
}

#[test]
fn audit_code_frames_and_messages_escape_control_characters() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM node:20\nRUN npm install {HOSTILE}\u{202e}\nENV NODE_OPTIONS=\"--max-old-space-size=512\x1b[2J\"\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("package-lock.json"), "{}\n").unwrap();
    let output = memfit()
        .args(["audit", "--limit", "512M"])
        .arg(dir.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(out.contains("npm install"), "{out}");
    assert_no_control(&out, "audit");
    assert!(out.contains("\\x1b"), "ESC is shown escaped: {out}");
}

#[test]
fn the_run_summary_escapes_the_command_line_and_process_names() {
    let output = memfit()
        .args(["run", "--", "sh", "-c", &format!("true '{HOSTILE}'")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status(&output), 0, "{err}");
    assert!(err.contains("memfit: sh -c"), "{err}");
    assert_no_control(&err, "run summary");
}

#[test]
fn plan_from_a_report_escapes_its_command() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let status = memfit()
        .args(["run", "--json"])
        .arg(&json)
        .args(["--quiet", "--", "sh", "-c", "true"])
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&json).unwrap();
    let hostile = serde_json::to_string(&format!("sh {HOSTILE}")).unwrap();
    let text = text.replacen("\"sh\"", &hostile, 1);
    let mut file = File::create(&json).unwrap();
    file.write_all(text.as_bytes()).unwrap();
    let output = memfit()
        .args(["plan", "--from"])
        .arg(&json)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert_no_control(&out, "plan --from");
    assert_no_control(
        &String::from_utf8_lossy(&output.stderr),
        "plan --from stderr",
    );
}

#[test]
fn json_output_keeps_the_text_exact() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("build.log");
    std::fs::write(&log, "spawn ENOMEM \x07\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_memfit"))
        .args(["explain", "--json"])
        .arg(&log)
        .output()
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["evidence"][0]["text"], "spawn ENOMEM \x07");
}
