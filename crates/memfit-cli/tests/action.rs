//! The GitHub Action (action.yml, action/*.sh) run here as a runner runs it: its scripts with a
//! temporary RUNNER_TEMP, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY, the inputs as the composite
//! steps pass them (environment variables), and the memfit built here.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::workload;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A runner's files for one job.
struct Runner {
    dir: tempfile::TempDir,
}

impl Runner {
    fn new() -> Runner {
        let runner = Runner {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir(runner.temp()).unwrap();
        runner
    }
    fn temp(&self) -> PathBuf {
        self.dir.path().join("runner-temp")
    }
    fn output_file(&self) -> PathBuf {
        self.dir.path().join("github-output")
    }
    fn summary_file(&self) -> PathBuf {
        self.dir.path().join("step-summary")
    }
    /// `bash action/SCRIPT` with these inputs, in the job's working directory.
    fn step(&self, script: &str, env: &[(&str, &str)]) -> Output {
        let work = self.dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        Command::new("bash")
            .arg(repo().join("action").join(script))
            .current_dir(&work)
            .env("RUNNER_TEMP", self.temp())
            .env("GITHUB_OUTPUT", self.output_file())
            .env("GITHUB_STEP_SUMMARY", self.summary_file())
            .env("MEMFIT_BIN", env!("CARGO_BIN_EXE_memfit"))
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }
    /// The step outputs written so far (the last value of each name).
    fn outputs(&self) -> HashMap<String, String> {
        std::fs::read_to_string(self.output_file())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
    fn summary(&self) -> String {
        std::fs::read_to_string(self.summary_file()).unwrap_or_default()
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn markdown_to_html(markdown: &str) -> String {
    let parser = pulldown_cmark::Parser::new_ext(markdown, pulldown_cmark::Options::ENABLE_TABLES);
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, parser);
    html
}

#[test]
fn the_action_measures_the_command_and_tells_github() {
    let runner = Runner::new();
    let command = format!("{} alloc 30M 300 '<img src=x>|[a](b)'", workload());
    let output = runner.step(
        "run.sh",
        &[
            ("INPUT_COMMAND", &command),
            ("INPUT_LIMIT", "512M"),
            ("INPUT_AUDIT", "true"),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let outputs = runner.outputs();
    let peak: u64 = outputs["peak-bytes"].parse().unwrap();
    assert!(peak >= 30 * common::MIB, "{outputs:?}");
    assert!(["false", "unknown"].contains(&outputs["oom-killed"].as_str()));
    assert_eq!(outputs["exit-status"], "0");
    assert_eq!(outputs["regression"], "false");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&outputs["report"]).unwrap()).unwrap();
    assert_eq!(report["peak"]["charged_bytes"].as_u64(), Some(peak));
    assert!(Path::new(&outputs["html"]).is_file());
    // The artifact is the directory holding them.
    assert!(Path::new(&outputs["report"]).starts_with(&outputs["dir"]));
    let sarif: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&outputs["sarif"]).unwrap()).unwrap();
    assert_eq!(sarif["version"], "2.1.0");

    let summary = runner.summary();
    assert!(summary.contains("charged peak"), "{summary}");
    assert!(summary.contains("512 MiB"), "{summary}");
    let html = markdown_to_html(&summary);
    assert!(!html.contains("<img"), "{html}");
    assert!(!html.contains("<a "), "{html}");
}

#[test]
fn the_action_fails_on_a_regression_past_the_baseline() {
    let runner = Runner::new();
    let first = runner.step(
        "run.sh",
        &[
            ("INPUT_COMMAND", &format!("{} alloc 30M 300", workload())),
            ("INPUT_LIMIT", "512M"),
        ],
    );
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let baseline = runner.dir.path().join("baseline.json");
    std::fs::copy(&runner.outputs()["report"], &baseline).unwrap();

    let second = runner.step(
        "run.sh",
        &[
            ("INPUT_COMMAND", &format!("{} alloc 90M 300", workload())),
            ("INPUT_LIMIT", "512M"),
            ("INPUT_BASELINE", baseline.to_str().unwrap()),
            ("INPUT_MAX_INCREASE", "10%"),
        ],
    );
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    let outputs = runner.outputs();
    assert_eq!(outputs["regression"], "true");
    assert!(Path::new(&outputs["html-compare"]).is_file());
    let summary = runner.summary();
    assert!(summary.contains("memory regression"), "{summary}");
    assert!(
        summary.contains("more than --max-increase 10%"),
        "{summary}"
    );

    // Within the allowance it passes.
    let third = runner.step(
        "run.sh",
        &[
            ("INPUT_COMMAND", &format!("{} alloc 30M 300", workload())),
            ("INPUT_LIMIT", "512M"),
            ("INPUT_BASELINE", baseline.to_str().unwrap()),
            ("INPUT_MAX_INCREASE", "50M"),
        ],
    );
    assert_eq!(third.status.code(), Some(0), "{}", stderr(&third));
    assert_eq!(runner.outputs()["regression"], "false");

    // The first run of a branch has no baseline yet: a warning, not a failure.
    let missing = runner.step(
        "run.sh",
        &[
            ("INPUT_COMMAND", &format!("{} exit 0", workload())),
            ("INPUT_BASELINE", "/nonexistent/baseline.json"),
            ("INPUT_MAX_INCREASE", "10%"),
        ],
    );
    assert_eq!(missing.status.code(), Some(0), "{}", stderr(&missing));
    assert!(stderr(&missing).contains("::warning"));

    // The command's own failure is the step's.
    let failing = runner.step(
        "run.sh",
        &[("INPUT_COMMAND", &format!("{} exit 5", workload()))],
    );
    assert_eq!(failing.status.code(), Some(5), "{}", stderr(&failing));
    assert_eq!(runner.outputs()["exit-status"], "5");
}

/// A release tarball as scripts/dist.sh lays one out, holding a stand-in `memfit` that answers
/// `--version`, and its .sha256 beside it.
fn release(dir: &Path, version: &str) -> (PathBuf, String) {
    let name = format!("memfit-{version}-x86_64-unknown-linux-gnu");
    let staging = dir.join("staging").join(&name);
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(
        staging.join("memfit"),
        format!("#!/bin/sh\necho memfit {version}\n"),
    )
    .unwrap();
    let releases = dir.join("releases");
    std::fs::create_dir_all(&releases).unwrap();
    let tarball = releases.join(format!("{name}.tar.gz"));
    let tar = Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(dir.join("staging"))
        .arg(&name)
        .status()
        .unwrap();
    assert!(tar.success());
    let sum = Command::new("sha256sum").arg(&tarball).output().unwrap();
    let digest = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    std::fs::write(
        releases.join(format!("{name}.tar.gz.sha256")),
        format!("{digest}  {name}.tar.gz\n"),
    )
    .unwrap();
    (releases, digest)
}

#[test]
fn the_action_installs_a_release_only_when_its_checksum_matches() {
    if std::env::consts::ARCH != "x86_64" {
        eprintln!("skipping: the action installs x86_64 releases only");
        return;
    }
    let runner = Runner::new();
    let (releases, digest) = release(runner.dir.path(), "0.3.1");
    let file_url = format!("file://{}", releases.display());
    for url in [file_url.as_str(), releases.to_str().unwrap()] {
        let output = runner.step(
            "install.sh",
            &[("INPUT_VERSION", "v0.3.1"), ("INPUT_DOWNLOAD_URL", url)],
        );
        assert_eq!(output.status.code(), Some(0), "{url}: {}", stderr(&output));
        let installed = runner.outputs()["path"].clone();
        let version = Command::new(&installed).arg("--version").output().unwrap();
        assert_eq!(String::from_utf8_lossy(&version.stdout), "memfit 0.3.1\n");
    }
    // A pinned checksum is honoured, in either case.
    let pinned = runner.step(
        "install.sh",
        &[
            ("INPUT_VERSION", "0.3.1"),
            ("INPUT_DOWNLOAD_URL", &file_url),
            ("INPUT_SHA256", &digest.to_uppercase()),
        ],
    );
    assert_eq!(pinned.status.code(), Some(0), "{}", stderr(&pinned));

    // A tarball that is not the one published is refused, and nothing is installed.
    std::fs::write(runner.output_file(), "").unwrap();
    let wrong = "0".repeat(64);
    let mismatch = runner.step(
        "install.sh",
        &[
            ("INPUT_VERSION", "0.3.1"),
            ("INPUT_DOWNLOAD_URL", &file_url),
            ("INPUT_SHA256", &wrong),
        ],
    );
    assert_eq!(mismatch.status.code(), Some(1));
    assert!(
        stderr(&mismatch).contains("checksum mismatch"),
        "{}",
        stderr(&mismatch)
    );
    assert!(!runner.outputs().contains_key("path"));
    assert!(!runner.temp().join("memfit-install-0.3.1").exists());

    let sums = releases.join("memfit-0.3.1-x86_64-unknown-linux-gnu.tar.gz.sha256");
    std::fs::write(&sums, format!("{wrong}  memfit.tar.gz\n")).unwrap();
    let tampered = runner.step(
        "install.sh",
        &[
            ("INPUT_VERSION", "0.3.1"),
            ("INPUT_DOWNLOAD_URL", &file_url),
        ],
    );
    assert_eq!(tampered.status.code(), Some(1));
    assert!(stderr(&tampered).contains("checksum mismatch"));
    assert!(!runner.outputs().contains_key("path"));

    // Without download-url nor the action's repository there is nowhere to download from.
    let nowhere = runner.step("install.sh", &[("INPUT_VERSION", "0.3.1")]);
    assert_eq!(nowhere.status.code(), Some(1));
    assert!(
        stderr(&nowhere).contains("give download-url"),
        "{}",
        stderr(&nowhere)
    );

    // Inputs are data: a version that is not one is refused before any URL is made of it.
    let hostile = runner.step(
        "install.sh",
        &[("INPUT_VERSION", "0.3.1/../../x;touch pwned")],
    );
    assert_eq!(hostile.status.code(), Some(1));
    assert!(stderr(&hostile).contains("not a release version"));
    assert!(!runner.dir.path().join("work/pwned").exists());
}

#[test]
fn the_action_uses_a_given_memfit_binary() {
    let runner = Runner::new();
    let given = runner.step(
        "install.sh",
        &[("INPUT_MEMFIT_PATH", env!("CARGO_BIN_EXE_memfit"))],
    );
    assert_eq!(given.status.code(), Some(0), "{}", stderr(&given));
    assert_eq!(runner.outputs()["path"], env!("CARGO_BIN_EXE_memfit"));
    let missing = runner.step(
        "install.sh",
        &[("INPUT_MEMFIT_PATH", "/nonexistent/memfit")],
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("not an executable file"));
}

#[test]
fn action_yml_passes_inputs_through_the_environment_only() {
    let yml = std::fs::read_to_string(repo().join("action.yml")).unwrap();
    // An expression may stand only as a whole value of env:, with:, outputs' value: or if:,
    // never inside a run: script, where GitHub would paste it into the shell code.
    let mut in_run = false;
    for line in yml.lines() {
        let trimmed = line.trim_start().trim_start_matches("- ");
        if trimmed.starts_with("run:") {
            in_run = true;
        } else if in_run && !line.starts_with("        ") {
            in_run = false;
        }
        if !line.contains("${{") || line.trim_start().starts_with('#') {
            continue;
        }
        assert!(!in_run, "an expression inside a run: script: {line}");
        let (key, value) = trimmed.split_once(": ").expect(line);
        assert_ne!(key, "run", "{line}");
        assert!(
            value.starts_with("${{") && value.ends_with("}}") && value.matches("${{").count() == 1,
            "an expression that is not a whole value: {line}"
        );
    }
    for script in ["install.sh", "run.sh"] {
        let text = std::fs::read_to_string(repo().join("action").join(script)).unwrap();
        assert!(text.contains("set -eu"), "{script}");
        assert!(!text.contains("eval "), "{script}");
        assert!(yml.contains(&format!("action/{script}")));
    }
}
