//! The SVG and HTML reports, checked as a person would see them: the HTML in headless
//! Chromium.

mod common;

use common::*;

#[test]
fn svg_timeline_shows_the_series_the_limit_and_the_peak() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("run.svg");
    let output = memfit()
        .args(["run", "-q", "--limit", "256M", "--svg"])
        .arg(&svg)
        .args(["--", workload(), "children", "2", "40M", "300"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
    for expected in [
        "charged",
        "working",
        "limit 256 MiB",
        "peak ",
        "memfit-workload alloc 40M",
    ] {
        assert!(text.contains(expected), "{expected} missing from the SVG");
    }
    // No temporary file is left beside the report.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn html_report_is_self_contained_and_interactive_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("run.html");
    let json = dir.path().join("run.json");
    let output = memfit()
        .args([
            "run",
            "-q",
            "--limit",
            "256M",
            "--interval",
            "20ms",
            "--html",
        ])
        .arg(&html)
        .arg("--json")
        .arg(&json)
        .args(["--", workload(), "children", "2", "40M", "600"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let text = std::fs::read_to_string(&html).unwrap();
    // Nothing is fetched: no external scripts, styles, images or fonts.
    for attr in ["src=\"http", "href=\"http", "@import", "url(http"] {
        assert!(!text.contains(attr), "external resource: {attr}");
    }
    assert!(text.contains("fits in 256 MiB"));

    let Some(browser) = chromium() else {
        eprintln!("skipping the browser half of html_report_is_self_contained_and_interactive_in_chromium: no chromium here (CI installs Debian's chromium)");
        return;
    };
    // The moment shown is the sample at the peak, where the processes are: a fixed time
    // (0.4 s) may fall before the children started where sampling or starting is slow.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let at_peak_s = report["at_peak_t_ms"].as_u64().unwrap() as f64 / 1000.0;
    let profile = dir.path().join("profile");
    let dom = chromium_dom(
        browser,
        &profile,
        &format!("file://{}#t={at_peak_s}", html.display()),
    );
    assert!(
        dom.contains("data-ready=\"true\""),
        "the chart script did not run: {dom}"
    );
    assert!(
        dom.contains("series-charged_bytes"),
        "no charged series drawn"
    );
    assert!(dom.contains("peak-marker"));
    // The processes at the peak are shown, as a hover at that time shows them.
    let shown = dom.matches("class=\"tip-process\"").count();
    assert!(shown >= 2, "processes at {at_peak_s} s not shown: {dom}");
    assert!(dom.contains("alloc 40M 600"));
}

#[test]
fn an_oom_kill_is_marked_on_both_charts_at_the_moment_memfit_saw_it() {
    if !cgroups_available("an_oom_kill_is_marked_on_both_charts_at_the_moment_memfit_saw_it") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (svg, html, json) = (
        dir.path().join("run.svg"),
        dir.path().join("run.html"),
        dir.path().join("run.json"),
    );
    let output = memfit()
        .args(["run", "-q", "--limit", "150M", "--svg"])
        .arg(&svg)
        .arg("--html")
        .arg(&html)
        .arg("--json")
        .arg(&json)
        .args(["--", workload(), "children", "1", "400M", "1000"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let victim = &report["oom"]["victims"][0];
    let seen = victim["seen_ms"].as_u64().expect("no time for the victim");
    let process = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == victim["pid"])
        .unwrap();
    assert!(
        seen >= process["started_ms"].as_u64().unwrap()
            && seen <= report["duration_ms"].as_u64().unwrap(),
        "{victim} {process}"
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.contains("class=\"oom-marker\""),
        "no OOM marker in the SVG"
    );
    assert!(
        text.contains("OOM kill: memfit-workload alloc 400M"),
        "the victim is not named"
    );
    let Some(browser) = chromium() else {
        eprintln!("SKIPPING the HTML half of an_oom_kill_is_marked_…: no chromium here");
        return;
    };
    let dom = chromium_dom(
        browser,
        &dir.path().join("profile"),
        &format!("file://{}", html.display()),
    );
    assert!(
        dom.contains("data-ready=\"true\""),
        "the hover script did not run"
    );
    assert!(
        dom.contains("class=\"oom-marker\""),
        "no OOM marker in the HTML"
    );
}
