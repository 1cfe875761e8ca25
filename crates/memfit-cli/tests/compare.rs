//! `memfit compare` and `memfit run --baseline`: real reports made by `memfit run` on the
//! workload at two sizes, compared by the real binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{chromium, chromium_dom, memfit, workload};
use serde_json::Value;

/// A run report written by `memfit run --json` for CMD.
fn report(dir: &Path, name: &str, command: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let output = memfit()
        .args(["run", "--quiet", "--limit", "512M", "--json"])
        .arg(&path)
        .arg("--")
        .args(command)
        .output()
        .unwrap();
    assert!(
        path.is_file(),
        "no report: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    path
}

/// Reports of the workload holding 30 MiB (BASE) and 90 MiB (NEW).
fn two_sizes(dir: &Path) -> (PathBuf, PathBuf) {
    (
        report(dir, "base.json", &[workload(), "alloc", "30M", "300"]),
        report(dir, "new.json", &[workload(), "alloc", "90M", "300"]),
    )
}

fn compare(args: &[&str]) -> Output {
    memfit().arg("compare").args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn peak(path: &Path) -> u64 {
    let report: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    report["peak"]["charged_bytes"].as_u64().unwrap()
}

#[test]
fn the_gate_fails_when_new_exceeds_base_by_more_than_a_percentage() {
    let dir = tempfile::tempdir().unwrap();
    let (base, new) = two_sizes(dir.path());
    let (b, n) = (base.to_str().unwrap(), new.to_str().unwrap());

    let over = compare(&[b, n, "--max-increase", "10%"]);
    assert_eq!(over.status.code(), Some(1), "{}", text(&over.stderr));
    let shown = text(&over.stdout);
    assert!(shown.contains("FAILED"), "{shown}");
    assert!(shown.contains("charged peak"), "{shown}");

    let within = compare(&[b, n, "--max-increase", "1000%"]);
    assert_eq!(within.status.code(), Some(0), "{}", text(&within.stderr));
    assert!(text(&within.stdout).contains("passed"));

    // Memory that went down passes any allowance, 0% included.
    let smaller = compare(&[n, b, "--max-increase", "0%"]);
    assert_eq!(smaller.status.code(), Some(0), "{}", text(&smaller.stdout));

    // Without an allowance, compare only shows.
    assert_eq!(compare(&[b, n]).status.code(), Some(0));

    // Quiet: the exit status alone says it; a report asked into a file is still written.
    let out = dir.path().join("compare.md");
    let quiet = compare(&[
        b,
        n,
        "-q",
        "--max-increase",
        "10%",
        "--format",
        "markdown",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(quiet.status.code(), Some(1));
    assert!(
        quiet.stdout.is_empty() && quiet.stderr.is_empty(),
        "{}",
        text(&quiet.stderr)
    );
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .contains("charged peak"));
    let silent = compare(&[b, n, "--quiet", "--max-increase", "10%"]);
    assert_eq!(silent.status.code(), Some(1));
    assert!(silent.stdout.is_empty() && silent.stderr.is_empty());
}

#[test]
fn the_gate_reads_a_size_allowance_and_says_so_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let (base, new) = two_sizes(dir.path());
    let (b, n) = (base.to_str().unwrap(), new.to_str().unwrap());

    let over = compare(&[b, n, "--max-increase", "20M", "--format", "json"]);
    assert_eq!(over.status.code(), Some(1), "{}", text(&over.stderr));
    let json: Value = serde_json::from_slice(&over.stdout).unwrap();
    assert_eq!(json["schema"], "memfit.compare/1");
    assert_eq!(json["kind"], "run");
    assert_eq!(json["verdict"], "fail");
    assert_eq!(json["base_bytes"].as_u64(), Some(peak(&base)));
    assert_eq!(json["new_bytes"].as_u64(), Some(peak(&new)));
    assert_eq!(
        json["max_increase"]["bytes"].as_u64(),
        Some(20 * 1024 * 1024)
    );
    assert_eq!(
        json["allowed_bytes"].as_u64(),
        Some(peak(&base) + 20 * 1024 * 1024)
    );
    // The workloads' command lines differ: one process is gone, one is new.
    assert!(json["processes"]["new"][0]["command"]
        .as_str()
        .unwrap()
        .contains("alloc 90M"));
    assert!(json["processes"]["gone"][0]["command"]
        .as_str()
        .unwrap()
        .contains("alloc 30M"));

    let within = compare(&[
        b,
        n,
        "--max-increase",
        "200M",
        "-o",
        "-",
        "--format",
        "json",
    ]);
    assert_eq!(within.status.code(), Some(0));
    let json: Value = serde_json::from_slice(&within.stdout).unwrap();
    assert_eq!(json["verdict"], "pass");

    // -o FILE writes the output there, and nothing to standard output.
    let out = dir.path().join("compare.json");
    let to_file = compare(&[b, n, "--format", "json", "-o", out.to_str().unwrap()]);
    assert_eq!(to_file.status.code(), Some(0));
    assert!(to_file.stdout.is_empty());
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(json["verdict"], "no-gate");
}

#[test]
fn processes_are_matched_by_command_line_across_runs() {
    // The same command line (`sort` of one file) over a larger input: one process, matched,
    // with its peak grown.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let line = "memfit compares two runs of the same command line\n";
    std::fs::write(&data, line.repeat(100_000)).unwrap();
    let base = report(
        dir.path(),
        "base.json",
        &["sort", "-o", "/dev/null", data_arg],
    );
    std::fs::write(&data, line.repeat(500_000)).unwrap();
    let new = report(
        dir.path(),
        "new.json",
        &["sort", "-o", "/dev/null", data_arg],
    );

    let output = compare(&[
        base.to_str().unwrap(),
        new.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    let moved = &json["processes"]["changed"][0];
    assert!(
        moved["command"].as_str().unwrap().starts_with("sort -o"),
        "{json}"
    );
    assert!(moved["change_bytes"].as_i64().unwrap() > 0, "{json}");
    assert_eq!(json["processes"]["new"].as_array().unwrap().len(), 0);
    assert_eq!(json["processes"]["gone"].as_array().unwrap().len(), 0);

    let human = compare(&[base.to_str().unwrap(), new.to_str().unwrap()]);
    let shown = text(&human.stdout);
    assert!(shown.contains("biggest movers"), "{shown}");
    assert!(shown.contains("the same command"), "{shown}");
}

/// What GitHub does with a step summary, near enough: CommonMark with GFM tables, to HTML.
fn markdown_to_html(markdown: &str) -> String {
    let parser = pulldown_cmark::Parser::new_ext(markdown, pulldown_cmark::Options::ENABLE_TABLES);
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, parser);
    html
}

#[test]
fn markdown_keeps_a_hostile_command_line_literal() {
    let dir = tempfile::tempdir().unwrap();
    // The workload ignores arguments after its own: they only ride along in its command line.
    let hostile = "| <img src=x onerror=alert(1)> | [click](https://evil.example) ![p](https://evil.example/p.png) `x` *y* \\| <script>alert(2)</script>\n# heading";
    let base = report(
        dir.path(),
        "base.json",
        &[workload(), "alloc", "30M", "300", hostile],
    );
    let new = report(
        dir.path(),
        "new.json",
        &[workload(), "alloc", "60M", "300", hostile],
    );
    let output = compare(&[
        base.to_str().unwrap(),
        new.to_str().unwrap(),
        "--format",
        "markdown",
        "--max-increase",
        "10%",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let markdown = text(&output.stdout);
    assert!(markdown.contains("memory regression"), "{markdown}");
    let html = markdown_to_html(&markdown);
    for tag in [
        "<img",
        "<a ",
        "<script",
        "<em>",
        "<strong>y",
        "<code>x",
        "<h1",
    ] {
        assert!(!html.contains(tag), "{tag} made it through: {html}");
    }
    // The command stays in its cell: every row of the side-by-side table has four cells.
    let table = html.split("</table>").next().unwrap();
    for row in table.split("<tr>").skip(1) {
        let cells = row.matches("<td").count() + row.matches("<th").count();
        assert_eq!(cells, 4, "a row with {cells} cells: {row}");
    }
    // And it reads as it was written.
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{html}"
    );
}

#[test]
fn bad_files_exit_2_with_one_line_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let good = report(
        dir.path(),
        "good.json",
        &[workload(), "alloc", "10M", "100"],
    );
    let good_text = std::fs::read_to_string(&good).unwrap();
    let write = |name: &str, contents: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    };
    let cases = [
        (
            write("truncated.json", &good_text[..good_text.len() / 2]),
            "cut short",
        ),
        (write("garbage.json", "not json at all"), "not JSON"),
        (write("noschema.json", "{\"peak\": 1}"), "no `schema`"),
        (
            write(
                "future.json",
                &good_text.replace("\"memfit.run/1\"", "\"memfit.run/7\""),
            ),
            "newer memfit",
        ),
        (
            write(
                "audit.json",
                "{\"schema\": \"memfit.audit/1\", \"findings\": []}",
            ),
            "not a run",
        ),
        (
            write(
                "wrongtype.json",
                &good_text.replacen(
                    "\"charged_bytes\":",
                    &format!("\"charged_bytes\": \"{}\", \"_\":", "x".repeat(100_000)),
                    1,
                ),
            ),
            "does not hold one",
        ),
        (dir.path().join("missing.json"), "cannot read"),
        (dir.path().to_path_buf(), "not a regular file"),
    ];
    let out = dir.path().join("out.md");
    for (bad, says) in &cases {
        for args in [
            [good.as_path(), bad.as_path()],
            [bad.as_path(), good.as_path()],
        ] {
            let output = memfit()
                .arg("compare")
                .args(args)
                .args(["--format", "markdown", "-o"])
                .arg(&out)
                .output()
                .unwrap();
            let stderr = text(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{}: {stderr}", bad.display());
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
            assert!(stderr.len() < 1000, "an unbounded line: {stderr}");
            assert!(stderr.contains(says), "{}: {stderr}", bad.display());
            assert!(!stderr.contains("panicked"), "{stderr}");
            assert!(!out.exists(), "output written for {}", bad.display());
        }
    }
    let bad_allowance = compare(&[
        good.to_str().unwrap(),
        good.to_str().unwrap(),
        "--max-increase",
        "50",
    ]);
    assert_eq!(bad_allowance.status.code(), Some(2));
    assert!(text(&bad_allowance.stderr).contains("10%"));
}

#[test]
fn a_run_report_and_a_bisect_report_are_not_compared() {
    if !common::cgroups_available("a_run_report_and_a_bisect_report_are_not_compared") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = report(dir.path(), "run.json", &[workload(), "alloc", "20M", "0"]);
    let bisect = dir.path().join("bisect.json");
    let output = memfit()
        .args(["bisect", "--precision", "8M", "--repeat", "1", "--json"])
        .arg(&bisect)
        .args(["--", workload(), "alloc", "20M", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let (r, b) = (run.to_str().unwrap(), bisect.to_str().unwrap());

    for args in [[r, b], [b, r]] {
        let mixed = compare(&args);
        let stderr = text(&mixed.stderr);
        assert_eq!(mixed.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("two run reports or two bisect reports"));
    }
    // Two bisect reports gate on the smallest limit that passed.
    let same = compare(&[b, b, "--max-increase", "0%", "--format", "json"]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same.stderr));
    let json: Value = serde_json::from_slice(&same.stdout).unwrap();
    assert_eq!(json["kind"], "bisect");
    assert_eq!(json["gate_metric"], "min-passing-limit");
    assert_eq!(json["verdict"], "pass");
    // `run --baseline` takes a run report only.
    let baseline = memfit()
        .args(["run", "--baseline", b, "--", workload(), "exit", "0"])
        .output()
        .unwrap();
    assert_eq!(baseline.status.code(), Some(2));
    assert!(text(&baseline.stderr).contains("is a bisect report"));
}

#[test]
fn run_with_a_baseline_gates_after_its_summary() {
    let dir = tempfile::tempdir().unwrap();
    let base = report(
        dir.path(),
        "base.json",
        &[workload(), "alloc", "30M", "300"],
    );
    let b = base.to_str().unwrap();
    let run = |allowance: &str, command: &[&str]| {
        memfit()
            .args(["run", "--limit", "512M", "--baseline", b])
            .args(["--max-increase", allowance, "--"])
            .args(command)
            .output()
            .unwrap()
    };
    let over = run("10%", &[workload(), "alloc", "90M", "300"]);
    let stderr = text(&over.stderr);
    assert_eq!(over.status.code(), Some(1), "{stderr}");
    let verdict = stderr.find("verdict").expect("no summary");
    let gate = stderr.find("FAILED").expect("no comparison");
    assert!(
        verdict < gate,
        "the comparison comes after the summary: {stderr}"
    );

    let within = run("200M", &[workload(), "alloc", "90M", "300"]);
    assert_eq!(within.status.code(), Some(0), "{}", text(&within.stderr));
    assert!(text(&within.stderr).contains("passed"));

    // The command's own failure wins over the gate.
    let failed = run("0%", &[workload(), "exit", "3"]);
    assert_eq!(failed.status.code(), Some(3));

    // A baseline that cannot be read stops memfit before the command runs.
    let marker = dir.path().join("ran");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"schema\": \"memfit.run/1\"").unwrap();
    let refused = memfit()
        .args(["run", "--baseline"])
        .arg(&bad)
        .args(["--", "touch"])
        .arg(&marker)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert_eq!(
        text(&refused.stderr).lines().count(),
        1,
        "{}",
        text(&refused.stderr)
    );
    assert!(!marker.exists(), "the command ran");

    // --max-increase without --baseline is a usage error.
    let alone = memfit()
        .args([
            "run",
            "--max-increase",
            "10%",
            "--",
            workload(),
            "exit",
            "0",
        ])
        .output()
        .unwrap();
    assert_eq!(alone.status.code(), Some(2));
}

#[test]
fn html_view_draws_both_timelines_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = "<img src=x onerror=document.title='pwned'> {{timelines}}";
    let base = report(
        dir.path(),
        "base.json",
        &[workload(), "spike", "30M", "300", "100", hostile],
    );
    let new = report(
        dir.path(),
        "new.json",
        &[workload(), "spike", "60M", "300", "100", hostile],
    );
    let html = dir.path().join("compare.html");
    let output = compare(&[
        base.to_str().unwrap(),
        new.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let page = std::fs::read_to_string(&html).unwrap();
    for attr in ["src=\"http", "href=\"http", "@import", "url(http"] {
        assert!(!page.contains(attr), "external resource: {attr}");
    }
    assert!(
        !page.contains(hostile),
        "the command line reached the page unescaped"
    );
    assert!(
        page.contains("&#123;&#123;timelines}}"),
        "a template slot in a command line"
    );
    // --format html writes the same page to the output.
    let same = compare(&[
        base.to_str().unwrap(),
        new.to_str().unwrap(),
        "--format",
        "html",
    ]);
    assert_eq!(text(&same.stdout), page);

    let Some(browser) = chromium() else {
        eprintln!("skipping the browser half of html_view_draws_both_timelines_in_chromium: no chromium here (CI installs Debian's chromium)");
        return;
    };
    let dom = chromium_dom(
        browser,
        &dir.path().join("profile"),
        &format!("file://{}", html.display()),
    );
    assert!(
        dom.contains("data-ready=\"true\""),
        "the chart script did not run: {dom}"
    );
    for series in [
        "series-base-charged",
        "series-new-charged",
        "series-base-working",
        "series-new-working",
        "peak-new",
        "limit-base",
    ] {
        assert!(dom.contains(series), "{series} not drawn: {dom}");
    }
    // Round ticks, as on the run charts: equal steps of whole numbers of the unit.
    let ticks: Vec<f64> = dom
        .split("class=\"tick-memory\">")
        .skip(1)
        .map(|rest| rest.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(ticks.len() >= 3, "memory ticks: {ticks:?}");
    let step = ticks[1] - ticks[0];
    assert!(
        step.fract() == 0.0 && ticks.windows(2).all(|w| w[1] - w[0] == step),
        "memory ticks not round: {ticks:?}"
    );
    assert!(dom.contains("class=\"tick-time\""), "no time ticks");
    assert!(!dom.contains("<img"), "the command line became an element");
    assert!(
        dom.contains("<title>memfit compare</title>"),
        "the command line ran as script"
    );
    assert!(
        dom.contains("&lt;img src=x"),
        "the command line is not shown"
    );
}

#[test]
fn reports_and_outputs_are_written_over_the_last_ones() {
    // A CI job writes the same files on every run: the second write replaces the first.
    let dir = tempfile::tempdir().unwrap();
    let first = report(dir.path(), "run.json", &[workload(), "alloc", "10M", "100"]);
    let first_text = std::fs::read_to_string(&first).unwrap();
    let again = memfit()
        .args(["run", "--quiet", "--json"])
        .arg(&first)
        .args(["--", workload(), "alloc", "20M", "100"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_ne!(std::fs::read_to_string(&first).unwrap(), first_text);

    let (b, n) = two_sizes(dir.path());
    let out = dir.path().join("compare.md");
    let html = dir.path().join("compare.html");
    for allowance in ["10%", "1000%"] {
        let output = memfit()
            .arg("compare")
            .args([&b, &n])
            .args(["--format", "markdown", "--max-increase", allowance, "-o"])
            .arg(&out)
            .arg("--html")
            .arg(&html)
            .output()
            .unwrap();
        assert!(
            matches!(output.status.code(), Some(0 | 1)),
            "{}",
            text(&output.stderr)
        );
    }
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .contains("within the allowance"));
}

/// `memfit bisect --json` for the workload holding SIZE.
fn bisect_report(dir: &Path, name: &str, size: &str) -> PathBuf {
    let path = dir.join(name);
    let output = memfit()
        .args(["bisect", "--precision", "4M", "--repeat", "1", "--json"])
        .arg(&path)
        .args(["--", workload(), "alloc", size, "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    path
}

#[test]
fn two_bisect_reports_gate_on_the_smallest_passing_limit() {
    if !common::cgroups_available("two_bisect_reports_gate_on_the_smallest_passing_limit") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let base = bisect_report(dir.path(), "base.json", "20M");
    let new = bisect_report(dir.path(), "new.json", "60M");
    let (b, n) = (base.to_str().unwrap(), new.to_str().unwrap());
    let over = compare(&[b, n, "--max-increase", "10%", "--format", "json"]);
    assert_eq!(over.status.code(), Some(1), "{}", text(&over.stderr));
    let json: Value = serde_json::from_slice(&over.stdout).unwrap();
    let min = |path: &Path| {
        let report: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        report["min_passing_bytes"].as_u64().unwrap()
    };
    assert_eq!(json["base_bytes"].as_u64(), Some(min(&base)));
    assert_eq!(json["new_bytes"].as_u64(), Some(min(&new)));
    assert_eq!(json["verdict"], "fail");
    let human = text(&compare(&[b, n]).stdout);
    assert!(human.contains("smallest passing limit"), "{human}");
    assert!(human.contains("band"), "{human}");
    // Smaller is never a regression.
    assert_eq!(
        compare(&[n, b, "--max-increase", "0%"]).status.code(),
        Some(0)
    );
}
