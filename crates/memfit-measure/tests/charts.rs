//! The charts of a fixed report (tests/fixtures/oom-build-report.json: a `docker build` whose
//! `next build` step was OOM-killed at 512 MiB, with several processes, two build steps, a
//! runtime view and a hostile command line), checked as a person sees them: in headless
//! Chromium, from the laid-out DOM and against a reference screenshot.
//!
//! Refresh the reference after an intended change of the drawing with
//! `MEMFIT_UPDATE_SCREENSHOTS=1 cargo test -p memfit-measure --test charts`, then look at
//! tests/fixtures/oom-build-chart.png before committing it.

use std::path::{Path, PathBuf};
use std::process::Command;

use memfit_measure::RunReport;
use serde_json::Value;

const FIXTURE: &str = include_str!("fixtures/oom-build-report.json");
const REFERENCE_PNG: &str = "tests/fixtures/oom-build-chart.png";
/// Pixels that may differ from the reference (anti-aliasing, a font hinting change) before
/// the screenshot counts as changed: 0.5% of the image.
const MAX_CHANGED_SHARE: f64 = 0.005;
/// How far apart two colour channels may be and still count as the same pixel.
const CHANNEL_TOLERANCE: u8 = 40;

fn report() -> RunReport {
    serde_json::from_str(FIXTURE).unwrap()
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

fn headless(browser: &str, profile: &Path) -> Command {
    let mut command = Command::new(browser);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--virtual-time-budget=2000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()));
    command
}

fn dump_dom(browser: &str, profile: &Path, page: &Path) -> String {
    let output = headless(browser, profile)
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Measures the drawing in the browser: real text boxes (getBBox), not memfit's estimates.
const MEASURE: &str = r#"<script>
(function () {
  var svg = document.getElementById("timeline");
  function box(e) { var b = e.getBBox(); return [b.x, b.y, b.width, b.height]; }
  function all(sel) { return Array.prototype.slice.call(svg.querySelectorAll(sel)); }
  var plot = document.getElementById("plot-area");
  var out = {
    plot: ["x", "y", "width", "height"].map(function (k) { return parseFloat(plot.getAttribute("data-" + k)); }),
    labels: all(".label").map(function (e) { return { text: e.textContent, box: box(e) }; }),
    legend: box(document.getElementById("legend")),
    y_ticks: all(".tick-y").map(function (e) { return e.textContent; }),
    x_ticks: all(".tick-x").map(function (e) { return e.textContent; }),
    axis_titles: all(".axis-title").map(function (e) { return e.textContent; }),
    oom_markers: all(".oom-marker").length,
    oom_titles: all(".oom-marker title").map(function (e) { return e.textContent; }),
    process_areas: all(".process-area").length,
    series: all(".series").map(function (e) { return e.getAttribute("class"); }),
    svgs: document.querySelectorAll("svg").length,
    onload: document.querySelectorAll("[onload]").length,
    ready: svg.getAttribute("data-ready"),
    tip: Array.prototype.slice.call(document.querySelectorAll(".tip-process")).map(function (e) { return e.textContent; })
  };
  var pre = document.createElement("pre");
  pre.id = "layout";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"#;

fn layout(dom: &str) -> Value {
    let start = dom.find("<pre id=\"layout\">").expect("no layout dumped") + 17;
    let end = start + dom[start..].find("</pre>").unwrap();
    let json = dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    serde_json::from_str(&json).unwrap()
}

fn rect(v: &Value) -> [f64; 4] {
    let a = v.as_array().unwrap();
    [0, 1, 2, 3].map(|i| a[i].as_f64().unwrap())
}

fn overlap(a: [f64; 4], b: [f64; 4]) -> bool {
    a[0] < b[0] + b[2] && b[0] < a[0] + a[2] && a[1] < b[1] + b[3] && b[1] < a[1] + a[3]
}

/// Tick labels are 0, s, 2s… with s one of 1-2-5 × 10^k or a power of two.
fn assert_round(ticks: &[Value]) {
    let values: Vec<f64> = ticks
        .iter()
        .map(|t| t.as_str().unwrap().parse().unwrap())
        .collect();
    assert!(values.len() >= 4, "{values:?}");
    let step = values[1] - values[0];
    for (i, v) in values.iter().enumerate() {
        assert!((v - step * i as f64).abs() < 1e-9, "{values:?}");
    }
    let mantissa = step / 10f64.powf(step.log10().floor());
    let decimal = [1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-9);
    let binary = step.fract() == 0.0 && (step as u64).is_power_of_two();
    assert!(decimal || binary, "step {step} is not round: {values:?}");
}

fn check_layout(layout: &Value, what: &str) {
    let plot = rect(&layout["plot"]);
    assert!(
        layout["oom_markers"].as_u64().unwrap() >= 1,
        "{what}: no OOM marker"
    );
    let titles = layout["oom_titles"].to_string();
    assert!(
        titles.contains("pid 4312"),
        "{what}: the victim is not named: {titles}"
    );
    assert!(
        layout["process_areas"].as_u64().unwrap() >= 6,
        "{what}: the stacked processes (5 and other) are not drawn"
    );
    assert_round(layout["y_ticks"].as_array().unwrap());
    assert_round(layout["x_ticks"].as_array().unwrap());
    let titles = layout["axis_titles"].to_string();
    assert!(
        titles.contains("time (s)") && titles.contains("memory (MiB)"),
        "{titles}"
    );
    let labels = layout["labels"].as_array().unwrap();
    let texts: Vec<&str> = labels.iter().map(|l| l["text"].as_str().unwrap()).collect();
    for expected in ["limit 512 MiB", "peak 512 MiB", "OOM kill: node /app/"] {
        assert!(
            texts.iter().any(|t| t.starts_with(expected)),
            "{what}: {expected} missing: {texts:?}"
        );
    }
    for (i, a) in labels.iter().enumerate() {
        let ra = rect(&a["box"]);
        assert!(ra[2] > 0.0, "{what}: {a} has no box");
        assert!(
            ra[0] >= plot[0] - 0.5
                && ra[1] >= plot[1] - 0.5
                && ra[0] + ra[2] <= plot[0] + plot[2] + 0.5
                && ra[1] + ra[3] <= plot[1] + plot[3] + 0.5,
            "{what}: {a} leaves the plot {plot:?}"
        );
        for b in &labels[i + 1..] {
            assert!(!overlap(ra, rect(&b["box"])), "{what}: {a} overlaps {b}");
        }
    }
    let legend = rect(&layout["legend"]);
    assert!(
        !overlap(legend, plot),
        "{what}: the legend {legend:?} covers the plot {plot:?}"
    );
    for series in [
        "series-charged_bytes",
        "series-working_bytes",
        "series-heap_used_bytes",
        "series-external_bytes",
    ] {
        assert!(
            layout["series"].to_string().contains(series),
            "{what}: {series} not drawn"
        );
    }
    // The hostile command line is text, not markup.
    assert_eq!(
        layout["svgs"], 1,
        "{what}: an <svg> from a command line became an element"
    );
    assert_eq!(
        layout["onload"], 0,
        "{what}: an onload attribute reached the DOM"
    );
}

#[test]
fn the_html_chart_draws_the_oom_kill_stacked_processes_and_labels_that_do_not_collide() {
    let Some(browser) = chromium() else {
        eprintln!("SKIPPING the_html_chart_…: no chromium here (CI installs Debian's chromium)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let html = memfit_measure::html::render(&report());
    assert!(
        !html.contains("<svg onload"),
        "the hostile command is in the page as markup"
    );
    let page = dir.path().join("run.html");
    std::fs::write(&page, html.replace("</body>", &format!("{MEASURE}</body>"))).unwrap();
    // Opened at the moment of the kill: the hover shows who held the memory then.
    let dom = dump_dom(
        browser,
        &dir.path().join("profile"),
        &page.with_extension("html#t=41"),
    );
    let layout = layout(&dom);
    assert_eq!(layout["ready"], "true", "the hover script did not run");
    check_layout(&layout, "HTML");
    let tip = layout["tip"].to_string();
    assert!(tip.contains("next build") && tip.contains("4312"), "{tip}");
}

#[test]
fn the_svg_chart_in_chromium_draws_the_same_and_matches_its_reference_screenshot() {
    let Some(browser) = chromium() else {
        eprintln!("SKIPPING the_svg_chart_…: no chromium here (CI installs Debian's chromium)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let svg = memfit_measure::svg::render(&report());
    // The same measurements, on the SVG file's drawing inlined in a page.
    let page = dir.path().join("svg.html");
    std::fs::write(
        &page,
        format!("<!DOCTYPE html><html><body style=\"margin:0\">{svg}{MEASURE}</body></html>"),
    )
    .unwrap();
    let layout = layout(&dump_dom(browser, &dir.path().join("profile"), &page));
    check_layout(&layout, "SVG");

    // The SVG file itself, as Chromium paints it.
    let file = dir.path().join("run.svg");
    std::fs::write(&file, &svg).unwrap();
    let height = attribute(&svg, "height");
    let width = attribute(&svg, "width");
    let shot = dir.path().join("shot.png");
    let output = headless(browser, &dir.path().join("profile"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("file://{}", file.display()))
        .output()
        .unwrap();
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join(REFERENCE_PNG);
    if std::env::var_os("MEMFIT_UPDATE_SCREENSHOTS").is_some() {
        std::fs::copy(&shot, &reference).unwrap();
        eprintln!("rewrote {}", reference.display());
        return;
    }
    let (got, expected) = (decode(&shot), decode(&reference));
    assert_eq!(
        (got.0, got.1),
        (expected.0, expected.1),
        "the screenshot's size changed; look at {} and refresh the reference (MEMFIT_UPDATE_SCREENSHOTS=1)",
        keep(&shot).display()
    );
    let changed = got
        .2
        .chunks(4)
        .zip(expected.2.chunks(4))
        .filter(|(a, b)| {
            a.iter()
                .zip(*b)
                .any(|(x, y)| x.abs_diff(*y) > CHANNEL_TOLERANCE)
        })
        .count();
    let share = changed as f64 / (got.0 * got.1) as f64;
    eprintln!(
        "{changed} pixels ({:.3}%) differ from the reference",
        share * 100.0
    );
    assert!(
        share <= MAX_CHANGED_SHARE,
        "{:.2}% of the pixels differ from {REFERENCE_PNG}: look at {} and refresh the reference if the change is intended (MEMFIT_UPDATE_SCREENSHOTS=1)",
        share * 100.0,
        keep(&shot).display()
    );
}

fn attribute(svg: &str, name: &str) -> u32 {
    let start = svg.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
    let end = start + svg[start..].find('"').unwrap();
    svg[start..end].parse::<f64>().unwrap().ceil() as u32
}

/// Width, height and RGBA pixels of a PNG.
fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::ALPHA);
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    pixels.truncate(info.buffer_size());
    (info.width, info.height, pixels)
}

/// A screenshot copied out of the test's temporary directory, to look at after a failure.
fn keep(shot: &Path) -> PathBuf {
    let kept = std::env::temp_dir().join("memfit-chart-screenshot.png");
    let _ = std::fs::copy(shot, &kept);
    kept
}
