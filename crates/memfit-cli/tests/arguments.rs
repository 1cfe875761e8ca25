//! Arguments and settings memfit must refuse, through the real binary: exit 2, one line that
//! says what to type instead, never a panic, nothing left behind.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;

fn status(output: &Output) -> i32 {
    output
        .status
        .code()
        .unwrap_or_else(|| panic!("memfit was killed by a signal: {:?}", output.status))
}

/// Runs memfit and checks it refused: status 2, no panic, and a line on stderr holding every
/// one of `hints`.
fn refused(command: &mut Command, hints: &[&str]) -> String {
    let output = command.stdin(Stdio::null()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        status(&output),
        2,
        "{command:?} was accepted:\nstdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(!stderr.contains("panicked"), "{command:?}: {stderr}");
    assert!(
        stderr
            .lines()
            .any(|line| hints.iter().all(|hint| line.contains(hint))),
        "{command:?}: no line says {hints:?}:\n{stderr}"
    );
    stderr
}

fn memfit_args(args: &[&str]) -> Command {
    let mut command = memfit();
    command.args(args);
    command
}

#[test]
fn bisect_refuses_a_lower_bound_below_dockers_minimum() {
    for lo in ["0", "0B", "1M"] {
        refused(
            &mut memfit_args(&["bisect", "--lo", lo, "--", "true"]),
            &["--lo", "6M"],
        );
    }
}

#[test]
fn run_refuses_swap_without_a_limit() {
    refused(
        &mut memfit_args(&["run", "--swap", "512M", "--", "true"]),
        &["--swap", "--limit"],
    );
}

#[test]
fn sizes_without_a_unit_are_refused_where_docker_has_no_bare_bytes() {
    refused(
        &mut memfit_args(&[
            "plan",
            "--runtime",
            "python",
            "--limit",
            "512M",
            "--worker-size",
            "180",
        ]),
        &["180", "180M"],
    );
    refused(
        &mut memfit_args(&["run", "--limit", "512M", "--budget", "400", "--", "true"]),
        &["400", "400M"],
    );
    refused(
        &mut memfit_args(&["bisect", "--hi", "2048", "--", "true"]),
        &["2048", "2048M"],
    );
    // An explicit B is bytes.
    let output = memfit()
        .args([
            "plan",
            "--runtime",
            "python",
            "--limit",
            "512M",
            "--worker-size",
            "188743680B",
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(out.contains("WEB_CONCURRENCY=2"), "{out}");
}

#[test]
fn limits_of_4_eib_or_more_are_refused() {
    refused(
        &mut memfit_args(&["plan", "--limit", "4096P"]),
        &["4096P", "EiB"],
    );
    refused(
        &mut memfit_args(&["run", "--limit", "18446744073709551615", "--", "true"]),
        &["18446744073709551615"],
    );
    refused(
        &mut memfit_args(&["run", "--limit", "1G", "--swap", "16000P", "--", "true"]),
        &["16000P"],
    );
}

#[test]
fn plan_computes_huge_limits_below_4_eib_without_overflowing() {
    for runtime in ["node", "jvm", "go", "python"] {
        let output = memfit()
            .args([
                "plan",
                "--limit",
                "4095P",
                "--node-version",
                "22",
                "--runtime",
                runtime,
            ])
            .args(["--worker-size", "200M"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            matches!(status(&output), 0 | 1),
            "plan --runtime {runtime}: {stderr}"
        );
    }
}

#[test]
fn a_limit_and_swap_that_overflow_together_are_refused() {
    refused(
        &mut memfit_args(&["run", "--limit", "4095P", "--swap", "4095P", "--", "true"]),
        &["--swap"],
    );
}

#[test]
fn plan_from_refuses_devices_and_bounds_what_it_reads() {
    refused(
        &mut memfit_args(&["plan", "--from", "/dev/zero"]),
        &["/dev/zero", "regular file"],
    );
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("run.json");
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(65 * MIB).unwrap();
    refused(
        &mut memfit_args(&["plan", "--from", big.to_str().unwrap()]),
        &["64 MiB"],
    );
    // Standard input is read up to the same bound.
    let mut child = memfit()
        .args(["plan", "--from", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let block = vec![b' '; MIB as usize];
        for _ in 0..80 {
            if stdin.write_all(&block).is_err() {
                return false;
            }
        }
        true
    });
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status(&output), 2, "{stderr}");
    assert!(stderr.contains("64 MiB"), "{stderr}");
    assert!(
        !writer.join().unwrap(),
        "memfit stopped reading at the bound"
    );
}

fn project(memfit_toml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM node:20\nRUN npm install\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("memfit.toml"), memfit_toml).unwrap();
    dir
}

fn audit_and_fix(dir: &Path, hints: &[&str]) {
    for command in ["audit", "fix"] {
        refused(
            memfit().arg(command).arg(dir),
            &[&["memfit.toml"][..], hints].concat(),
        );
    }
}

#[test]
fn an_unknown_rule_id_in_memfit_toml_is_refused_with_the_closest_id() {
    let dir = project("ignore = [\"npm-install-with-lockfil\"]\n");
    audit_and_fix(
        dir.path(),
        &[
            "1:",
            "npm-install-with-lockfil",
            "did you mean `npm-install-with-lockfile`",
        ],
    );
    let dir = project("[severity]\nheap-over-limt = \"info\"\n");
    audit_and_fix(dir.path(), &["2:", "heap-over-limt", "`heap-over-limit`"]);
    let dir = project("ignore = [\"zzzzzzzz\"]\n");
    let stderr = refused(memfit().arg("audit").arg(dir.path()), &["zzzzzzzz"]);
    assert!(stderr.contains("docs/rules.md"), "{stderr}");
}

#[test]
fn a_limit_in_memfit_toml_must_be_a_real_limit() {
    for limit in ["0", "5M", "4096P", "lots"] {
        let dir = project(&format!("limit = \"{limit}\"\n"));
        audit_and_fix(dir.path(), &["limit", limit]);
    }
    let dir = project("limit = \"512M\"\n");
    let output = memfit()
        .args(["audit", "--format", "json"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        status(&output),
        0,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
