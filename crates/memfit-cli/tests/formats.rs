//! One output convention for every command that reports, through the real binary: `--format`,
//! `-o/--output FILE` (`-` is standard output), several `--format FORMAT=FILE` for run and
//! bisect, the old flags as aliases, GitHub annotations that a hostile repository cannot turn
//! into a second workflow command, markdown that renders input as text, colour only where it
//! belongs (NO_COLOR, CLICOLOR, CLICOLOR_FORCE), and `--quiet`.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

fn status(output: &Output) -> i32 {
    output
        .status
        .code()
        .unwrap_or_else(|| panic!("memfit was killed by a signal: {:?}", output.status))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn memfit_in(dir: &Path, args: &[&str]) -> Output {
    memfit().current_dir(dir).args(args).output().unwrap()
}

fn corpus(name: &str) -> String {
    format!(
        "{}/../memfit-explain/tests/corpus/{name}.log",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// A directory name and a heap flag no repository should be able to use against us: a
/// newline followed by a workflow command, GitHub's own escape, property separators, and
/// markdown/HTML.
const HOSTILE_DIR: &str = "svc\n::error::pwned%0A,x:y|`<b>";

/// How many findings `memfit audit --format json` reports for `dir` (the rules grow).
fn finding_count(dir: &Path) -> usize {
    let output = memfit()
        .args(["audit", "--limit", "512M", "--format", "json"])
        .arg(dir)
        .output()
        .unwrap();
    let count = json(&output.stdout)["findings"].as_array().unwrap().len();
    assert!(count >= 5, "{count}");
    count
}

/// A project whose hostile directory holds a Dockerfile with an error (a heap cap above the
/// limit, whose message quotes the file's path) and warnings.
fn hostile_project() -> tempfile::TempDir {
    project(&[
        (
            &format!("{HOSTILE_DIR}/Dockerfile") as &str,
            "FROM node:20\nCOPY . .\nRUN npm install\nENV NODE_OPTIONS=\"--max-old-space-size=4096\"\nCMD [\"node\", \"server.js\"]\n",
        ),
        (&format!("{HOSTILE_DIR}/package-lock.json") as &str, "{}\n"),
    ])
}

#[test]
fn run_json_dash_writes_the_report_to_stdout_after_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let output = memfit_in(
        dir.path(),
        &[
            "run",
            "--quiet",
            "--json",
            "-",
            "--",
            "sh",
            "-c",
            "echo from-the-command",
        ],
    );
    assert_eq!(status(&output), 0, "{}", text(&output.stderr));
    let out = text(&output.stdout);
    let report = out
        .strip_prefix("from-the-command\n")
        .unwrap_or_else(|| panic!("the command's output comes first: {out}"));
    assert_eq!(json(report.as_bytes())["schema"], "memfit.run/1");
    assert!(!dir.path().join("-").exists(), "a file named - was written");
}

#[test]
fn run_writes_several_reports_at_once_and_keeps_its_summary_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let output = memfit_in(
        dir.path(),
        &[
            "run",
            "--format",
            "json=run.json",
            "--format",
            "html=report.html",
            "--format",
            "svg=run.svg",
            "--format",
            "markdown=-",
            "--",
            "true",
        ],
    );
    let err = text(&output.stderr);
    assert_eq!(status(&output), 0, "{err}");
    assert!(
        err.contains("verdict"),
        "the human summary stays on stderr: {err}"
    );
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    assert_eq!(json(read("run.json").as_bytes())["schema"], "memfit.run/1");
    assert!(read("report.html").contains("<html"));
    assert!(read("run.svg").contains("<svg"));
    let md = text(&output.stdout);
    assert!(md.starts_with("### memfit run"), "{md}");
    for row in [
        "| Limit |",
        "| Peak |",
        "| OOM |",
        "| Exit |",
        "| Verdict |",
    ] {
        assert!(md.contains(row), "{row} missing: {md}");
    }
}

#[test]
fn run_bare_format_goes_to_output_file_or_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let output = memfit_in(
        dir.path(),
        &["run", "-q", "--format", "json", "-o", "-", "--", "true"],
    );
    assert_eq!(status(&output), 0, "{}", text(&output.stderr));
    assert_eq!(json(&output.stdout)["schema"], "memfit.run/1");
    assert!(
        text(&output.stderr).is_empty(),
        "--quiet: {}",
        text(&output.stderr)
    );

    let output = memfit_in(
        dir.path(),
        &["run", "--format", "markdown", "-o", "run.md", "--", "true"],
    );
    assert_eq!(status(&output), 0, "{}", text(&output.stderr));
    assert!(output.stdout.is_empty());
    let md = std::fs::read_to_string(dir.path().join("run.md")).unwrap();
    assert!(md.contains("| Verdict |"), "{md}");
    assert!(
        text(&output.stderr).contains("verdict"),
        "the summary stays on stderr: {}",
        text(&output.stderr)
    );

    // -o alone: the human summary, to the file and not to stderr.
    let output = memfit_in(dir.path(), &["run", "-o", "summary.txt", "--", "true"]);
    assert_eq!(status(&output), 0, "{}", text(&output.stderr));
    let summary = std::fs::read_to_string(dir.path().join("summary.txt")).unwrap();
    assert!(summary.contains("verdict"), "{summary}");
    assert!(!text(&output.stderr).contains("verdict"));
}

#[test]
fn run_refuses_formats_it_does_not_have_before_running_anything() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--format", "sarif"],
        vec!["--format", "github=-"],
        vec!["--format", "xml=out.xml"],
        vec!["--format", "json="],
        vec!["--format", "json", "--format", "markdown"],
        vec!["--format", "json=-", "--format", "markdown=-"],
        vec!["--json", "same.json", "--format", "json=same.json"],
    ] {
        let mut all = vec!["run"];
        all.extend(&args);
        all.extend(["--", "touch", "ran"]);
        let output = memfit_in(dir.path(), &all);
        let err = text(&output.stderr);
        assert_eq!(status(&output), 2, "{args:?}: {err}");
        // One line says what to do (clap adds its pointer to --help after a blank line).
        let said: Vec<&str> = err
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
            .collect();
        assert_eq!(said.len(), 1, "{args:?}: one line: {err}");
        assert!(!err.contains("panicked"), "{err}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{args:?} left {left:?}");
    }
}

#[test]
fn run_aliases_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let output = memfit_in(
        dir.path(),
        &[
            "run", "--json", "a.json", "--svg", "a.svg", "--html", "a.html", "--", "true",
        ],
    );
    assert_eq!(status(&output), 0, "{}", text(&output.stderr));
    for name in ["a.json", "a.svg", "a.html"] {
        assert!(dir.path().join(name).is_file(), "{name}");
    }
    assert!(text(&output.stderr).contains("verdict"));
}

#[test]
fn run_markdown_escapes_the_command_and_process_names() {
    let output = memfit()
        .args(["run", "-q", "--format", "markdown", "--"])
        .args(["bash", "-c", "exec -a 'x|y`<b>z</b>' sleep 0.3"])
        .output()
        .unwrap();
    let md = text(&output.stdout);
    assert_eq!(status(&output), 0, "{}", text(&output.stderr));
    let tables = md.split("\n```\n").nth(1).expect("a fenced command line");
    assert!(!tables.contains('<'), "HTML from the command renders: {md}");
    assert!(
        tables.contains("| x\\|y\\`&lt;b&gt;z&lt;/b&gt; 0.3 |"),
        "{md}"
    );
    // The command line is a fenced block, longer than any backtick run in it.
    assert!(
        md.contains("```sh\nbash -c exec -a 'x|y`<b>z</b>' sleep 0.3\n```"),
        "{md}"
    );
    for line in md.lines().filter(|l| l.starts_with('|')) {
        let cells = line.replace("\\|", "").matches('|').count();
        assert!(cells == 3 || cells == 4, "a pipe split a cell: {line}");
    }
}

#[test]
fn bisect_takes_the_same_convention() {
    let dir = tempfile::tempdir().unwrap();
    let output = memfit_in(
        dir.path(),
        &[
            "bisect",
            "--format",
            "json=-",
            "--format",
            "markdown=b.md",
            "--",
            "true",
        ],
    );
    let err = text(&output.stderr);
    assert_eq!(status(&output), 0, "{err}");
    assert_eq!(json(&output.stdout)["schema"], "memfit.bisect/1");
    let md = std::fs::read_to_string(dir.path().join("b.md")).unwrap();
    assert!(
        md.contains("| Band |") && md.contains("| Recommended |"),
        "{md}"
    );
    assert!(err.contains("band"), "{err}");

    // --quiet: no progress and no summary; the alias still writes.
    let output = memfit_in(
        dir.path(),
        &["bisect", "-q", "--json", "b.json", "--", "true"],
    );
    assert_eq!(status(&output), 0, "{}", text(&output.stderr));
    assert!(text(&output.stderr).is_empty(), "{}", text(&output.stderr));
    let report = std::fs::read_to_string(dir.path().join("b.json")).unwrap();
    assert_eq!(json(report.as_bytes())["schema"], "memfit.bisect/1");

    let output = memfit_in(dir.path(), &["bisect", "--format", "sarif", "--", "true"]);
    assert_eq!(status(&output), 2);
}

#[test]
fn explain_takes_format_and_output() {
    let dir = tempfile::tempdir().unwrap();
    let log = corpus("node-heap-cra-github-actions");
    let output = memfit_in(
        dir.path(),
        &["explain", "--format", "json", "-o", "-", &log],
    );
    assert_eq!(status(&output), 0);
    assert_eq!(json(&output.stdout)["schema"], "memfit.explain/1");

    let output = memfit_in(dir.path(), &["explain", "--json", "-o", "e.json", &log]);
    assert_eq!(status(&output), 0, "{}", text(&output.stderr));
    assert!(output.stdout.is_empty());
    let e = std::fs::read_to_string(dir.path().join("e.json")).unwrap();
    assert_eq!(json(e.as_bytes())["schema"], "memfit.explain/1");

    let output = memfit_in(dir.path(), &["explain", "--format", "markdown", &log]);
    let md = text(&output.stdout);
    assert!(md.contains("| Verdict | **Out of memory**"), "{md}");
    assert!(md.contains("| Cause |") && md.contains("Remedy:"), "{md}");

    let output = memfit_in(dir.path(), &["explain", "-o", "e.txt", &log]);
    assert_eq!(status(&output), 0);
    let human = std::fs::read_to_string(dir.path().join("e.txt")).unwrap();
    assert!(
        human.contains("OUT OF MEMORY") && !human.contains('\x1b'),
        "{human}"
    );

    let output = memfit_in(
        dir.path(),
        &["explain", "--json", "--format", "markdown", &log],
    );
    assert_eq!(status(&output), 2);
    let output = memfit_in(dir.path(), &["explain", "--format", "github", &log]);
    assert_eq!(status(&output), 2);
}

#[test]
fn explain_markdown_escapes_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("build.log");
    std::fs::write(
        &log,
        "[ 1.0] Memory cgroup out of memory: Killed process 4242 (node<img src=x>|a`b) total-vm:1000kB, anon-rss:500000kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:100kB oom_score_adj:0\n",
    )
    .unwrap();
    let output = memfit()
        .args(["explain", "--format", "markdown"])
        .arg(&log)
        .output()
        .unwrap();
    let md = text(&output.stdout);
    assert!(
        md.contains("| Process | node&lt;img src=x&gt;\\|a\\`b |"),
        "{md}"
    );
    assert!(!md.contains("<img"), "{md}");
}

#[test]
fn audit_takes_format_and_output_with_its_exit_status() {
    let dir = hostile_project();
    let d = dir.path().to_str().unwrap();
    let out = tempfile::tempdir().unwrap();
    let sarif = out.path().join("a.sarif");
    let output = memfit()
        .args(["audit", "--limit", "512M", "--format", "sarif", "-o"])
        .arg(&sarif)
        .arg(d)
        .output()
        .unwrap();
    assert_eq!(status(&output), 1, "an error finding still exits 1");
    assert!(output.stdout.is_empty());
    let value = json(&std::fs::read(&sarif).unwrap());
    assert_eq!(value["version"], "2.1.0");

    let output = memfit()
        .args(["audit", "--limit", "512M", "--format", "json", "-o", "-", d])
        .output()
        .unwrap();
    assert_eq!(status(&output), 1);
    assert!(json(&output.stdout)["findings"][0]["rule"].is_string());

    let output = memfit()
        .args(["audit", "--limit", "512M", "-o"])
        .arg(out.path().join("missing-dir/a.txt"))
        .arg(d)
        .output()
        .unwrap();
    assert_eq!(status(&output), 2);
    assert_eq!(
        text(&output.stderr).lines().count(),
        1,
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn audit_github_annotations_cannot_inject_a_second_command() {
    let dir = hostile_project();
    let output = memfit()
        .args(["audit", "--limit", "512M", "--format", "github"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(status(&output), 1, "{}", text(&output.stderr));
    let out = text(&output.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len(),
        finding_count(dir.path()),
        "one line per finding: {out}"
    );
    for line in &lines {
        let command = line.split("::").nth(1).unwrap_or_default();
        assert!(
            line.starts_with("::warning file=") || line.starts_with("::error file="),
            "{line}"
        );
        assert!(!line.contains("\r"), "{line}");
        // The properties end at the second `::`; the message after it holds no `::` that a
        // runner could read as a command start of its own line (there is no other line).
        assert!(command.contains("title="), "{line}");
        assert!(
            command.contains("file=svc%0A%3A%3Aerror%3A%3Apwned%250A%2Cx%3Ay|`<b>/Dockerfile"),
            "file property escaped: {line}"
        );
    }
    let error = lines
        .iter()
        .find(|l| l.starts_with("::error "))
        .expect("the heap error");
    assert!(error.contains(",line=4,col=5,"), "{error}");
    assert!(error.contains("title=heap-over-limit::"), "{error}");
    // The message quotes the path: its newline and its `%0A` are escaped too.
    assert!(error.contains("(svc%0A::error::pwned%250A,x:y"), "{error}");
}

#[test]
fn audit_markdown_escapes_paths_and_messages() {
    let dir = hostile_project();
    let output = memfit()
        .args(["audit", "--limit", "512M", "--format", "markdown"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(status(&output), 1);
    let md = text(&output.stdout);
    assert!(
        md.contains("| Severity | Rule | Location | Message |"),
        "{md}"
    );
    assert!(!md.contains("<b>"), "{md}");
    assert!(
        md.contains("svc ::error::pwned%0A,x:y\\|\\`&lt;b&gt;/Dockerfile:4:5"),
        "{md}"
    );
    let rows: Vec<&str> = md
        .lines()
        .filter(|l| l.starts_with("| error") || l.starts_with("| warning"))
        .collect();
    assert_eq!(rows.len(), finding_count(dir.path()), "{md}");
    for row in rows {
        assert_eq!(
            row.replace("\\|", "").matches('|').count(),
            5,
            "a pipe split a cell: {row}"
        );
    }
}

#[test]
fn plan_takes_format_and_output() {
    let dir = tempfile::tempdir().unwrap();
    let output = memfit_in(
        dir.path(),
        &[
            "plan",
            "--limit",
            "512M",
            "--node-version",
            "20",
            "--format",
            "markdown",
        ],
    );
    assert_eq!(status(&output), 0, "{}", text(&output.stderr));
    let md = text(&output.stdout);
    assert!(
        md.contains("| Setting | Value |") && md.contains("`NODE_OPTIONS`"),
        "{md}"
    );

    let output = memfit_in(
        dir.path(),
        &[
            "plan",
            "--limit",
            "512M",
            "--node-version",
            "20",
            "--format",
            "json",
            "-o",
            "p.json",
        ],
    );
    assert_eq!(status(&output), 0, "{}", text(&output.stderr));
    assert!(output.stdout.is_empty());
    let p = std::fs::read_to_string(dir.path().join("p.json")).unwrap();
    assert_eq!(json(p.as_bytes())["schema"], "memfit.plan/1");

    let output = memfit_in(
        dir.path(),
        &[
            "plan",
            "--limit",
            "512M",
            "--node-version",
            "20",
            "--format",
            "human",
            "-o",
            "-",
        ],
    );
    assert_eq!(status(&output), 0);
    assert!(text(&output.stdout).contains("memfit plan: Node 20"));

    let output = memfit_in(
        dir.path(),
        &[
            "plan",
            "--limit",
            "512M",
            "--format",
            "dockerfile",
            "-o",
            "env.txt",
        ],
    );
    assert_eq!(status(&output), 0);
    assert!(std::fs::read_to_string(dir.path().join("env.txt"))
        .unwrap()
        .starts_with("ENV "));
}

#[test]
fn plan_prometheus_writes_markdown_and_honours_quiet() {
    // An unreachable Prometheus is an error, said even with --quiet; nothing is written.
    let dir = tempfile::tempdir().unwrap();
    let output = memfit_in(
        dir.path(),
        &[
            "plan",
            "-q",
            "--prometheus",
            "http://127.0.0.1:9",
            "--format",
            "markdown",
            "-o",
            "f.md",
        ],
    );
    assert_eq!(status(&output), 2);
    assert!(
        text(&output.stderr).contains("error"),
        "{}",
        text(&output.stderr)
    );
    assert!(!dir.path().join("f.md").exists());
}

#[test]
fn fix_quiet_prints_no_summary() {
    let dir = hostile_project();
    let output = memfit()
        .args(["fix", "--dry-run", "-q", "--limit", "512M"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(status(&output), 0, "{}", text(&output.stderr));
    assert!(
        !text(&output.stdout).is_empty(),
        "the diff is still printed"
    );
    assert!(
        !text(&output.stderr).contains("memfit fix:"),
        "{}",
        text(&output.stderr)
    );
}

/// Runs memfit under a pseudo-terminal (util-linux `script`), returning what it printed.
fn on_a_terminal(args: &str, env: &[(&str, &str)]) -> String {
    let output = Command::new("script")
        .args([
            "-qec",
            &format!("{} {args}", env!("CARGO_BIN_EXE_memfit")),
            "/dev/null",
        ])
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR")
        .env_remove("CLICOLOR_FORCE")
        .env("TERM", "xterm-256color")
        .envs(env.iter().copied())
        .output()
        .expect("script (util-linux) runs");
    text(&output.stdout)
}

#[test]
fn colour_on_a_terminal_honours_no_color_and_clicolor() {
    let args = "explain --exit-code 137";
    let coloured = on_a_terminal(args, &[]);
    assert!(coloured.contains("UNCERTAIN"), "{coloured}");
    assert!(
        coloured.contains("\x1b["),
        "a terminal gets colour: {coloured:?}"
    );
    for env in [("NO_COLOR", "1"), ("CLICOLOR", "0")] {
        let plain = on_a_terminal(args, &[env]);
        assert!(plain.contains("verdict    UNCERTAIN"), "{plain}");
        assert!(!plain.contains('\x1b'), "{env:?}: {plain:?}");
    }
    // Not a terminal: no colour, unless CLICOLOR_FORCE.
    let piped = memfit()
        .args(["explain", "--exit-code", "137"])
        .env_remove("CLICOLOR_FORCE")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(!text(&piped.stdout).contains('\x1b'));
    let forced = memfit()
        .args(["explain", "--exit-code", "137"])
        .env("CLICOLOR_FORCE", "1")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(
        text(&forced.stdout).contains("\x1b["),
        "{:?}",
        text(&forced.stdout)
    );
    // JSON never gets colour.
    let json_out = memfit()
        .args(["explain", "--json", "--exit-code", "137"])
        .env("CLICOLOR_FORCE", "1")
        .output()
        .unwrap();
    assert!(!text(&json_out.stdout).contains('\x1b'));
}

#[test]
fn colour_never_lets_input_escape_sequences_through() {
    let dir = hostile_project();
    let dockerfile = dir.path().join(HOSTILE_DIR).join("Dockerfile");
    std::fs::write(&dockerfile, "FROM node:20\nRUN npm install \x1b]0;pwned\x07\x1b[2J\nENV NODE_OPTIONS=\"--max-old-space-size=4096\"\n").unwrap();
    let output = memfit()
        .args(["audit", "--limit", "512M"])
        .arg(dir.path())
        .env("CLICOLOR_FORCE", "1")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let out = text(&output.stdout);
    assert!(
        out.contains("\x1b[1m\x1b[31merror[heap-over-limit]") || out.contains("\x1b[1;31merror"),
        "{out:?}"
    );
    assert!(
        !out.contains("\x1b]0;") && !out.contains("\x1b[2J"),
        "{out:?}"
    );
}
