//! The comparison as one self-contained HTML page (no network fetch): the verdict, the two
//! reports side by side, and — for run reports — both timelines on one chart, BASE in grey
//! and NEW in blue. Only numbers are embedded for the chart's script; every text from the
//! reports is escaped into the page.

use std::fmt::Write as _;

use memfit_core::ByteSize;

use super::markdown::rows;
use super::{shorten, signed_size, Comparison, Report};
use crate::chart::scale;
use crate::RunReport;

/// Rows of the process tables at most.
const MAX_ROWS: usize = 25;

pub fn render(comparison: &Comparison, base: &Report, new: &Report) -> String {
    let mut table = String::new();
    let _ = writeln!(
        table,
        "<tr><th></th><th>BASE</th><th>NEW</th><th>change</th></tr>"
    );
    let _ = writeln!(
        table,
        "<tr><th>command</th><td class=cmd>{}</td><td class=cmd>{}</td><td></td></tr>",
        escape(&comparison.base.command),
        escape(&comparison.new.command)
    );
    for row in rows(&comparison.base, &comparison.new) {
        let _ = writeln!(
            table,
            "<tr><th>{}</th><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td></tr>",
            escape(row.name),
            escape(&row.base),
            escape(&row.new),
            escape(&row.change)
        );
    }
    let mut processes = String::new();
    let movers = comparison.processes.changed.iter();
    for delta in movers.filter(|d| d.change_bytes != 0).take(MAX_ROWS) {
        let _ = writeln!(
            processes,
            "<tr><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=cmd>{}</td></tr>",
            escape(&signed_size(delta.change_bytes)),
            ByteSize(delta.base_peak_bytes),
            ByteSize(delta.new_peak_bytes),
            escape(&shorten(&delta.command, 300))
        );
    }
    for (label, list) in [
        ("new", &comparison.processes.new),
        ("gone", &comparison.processes.gone),
    ] {
        for process in list.iter().take(MAX_ROWS) {
            let (b, n) = if label == "new" {
                ("—".to_string(), ByteSize(process.peak_bytes).to_string())
            } else {
                (ByteSize(process.peak_bytes).to_string(), "—".to_string())
            };
            let _ = writeln!(
                processes,
                "<tr class={label}><td class=num>{label}</td><td class=num>{b}</td><td class=num>{n}</td><td class=cmd>{}</td></tr>",
                escape(&shorten(&process.command, 300))
            );
        }
    }
    let notes: String = comparison
        .notes
        .iter()
        .map(|n| format!("<li>{}</li>", escape(n)))
        .collect();
    let timelines = match (base, new) {
        (Report::Run(b), Report::Run(n)) => format!(
            "{{\"base\":{},\"new\":{},\"axes\":{}}}",
            timeline_json(b),
            timeline_json(n),
            axes_json(b, n)
        ),
        _ => "null".to_string(),
    };
    TEMPLATE
        .replace("{{verdict}}", &escape(&comparison.verdict_line()))
        .replace("{{verdict_class}}", &format!("{:?}", comparison.verdict))
        .replace("{{table}}", &table)
        .replace("{{processes}}", &processes)
        .replace("{{notes}}", &notes)
        .replace("{{timelines}}", &timelines)
}

/// A run's timeline as numbers only: `{"limit":…, "end":…, "samples":[[t, charged, working]…]}`.
fn timeline_json(report: &RunReport) -> String {
    let mut out = format!(
        "{{\"limit\":{},\"end\":{},\"peak\":{},\"samples\":[",
        report
            .limit_that_held()
            .map_or("null".to_string(), |l| l.to_string()),
        report.duration_ms,
        report.peak.charged_bytes
    );
    for (i, s) in report.samples.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "[{},{},{}]", s.t_ms, s.charged_bytes, s.working_bytes);
    }
    out.push_str("]}");
    out
}

/// The round axes of the run charts (chart::scale), for both runs on one chart:
/// `{"memory":{"max":…,"ticks":[[bytes,"label"]…],"unit":"MiB"},"time":{…}}`.
fn axes_json(base: &RunReport, new: &RunReport) -> String {
    let (mut top, mut end) = (1u64, 1u64);
    for run in [base, new] {
        top = top
            .max(run.peak.charged_bytes)
            .max(run.limit_that_held().unwrap_or(0));
        end = end.max(run.duration_ms);
        for s in &run.samples {
            top = top.max(s.charged_bytes);
            end = end.max(s.t_ms);
        }
    }
    let limit = base.limit_that_held().or(new.limit_that_held());
    let axis = |a: scale::Axis| {
        let ticks: Vec<String> = a
            .ticks
            .iter()
            .map(|&t| format!("[{t},\"{}\"]", a.label(t)))
            .collect();
        format!(
            "{{\"max\":{},\"ticks\":[{}],\"unit\":\"{}\"}}",
            a.max,
            ticks.join(","),
            a.unit
        )
    };
    format!(
        "{{\"memory\":{},\"time\":{}}}",
        axis(scale::memory_axis(top, limit)),
        axis(scale::time_axis(end))
    )
}

/// Text for the page (as the charts escape it); `{` too, so that nothing from a report reads
/// as a `{{slot}}` of the template filled after it.
fn escape(text: &str) -> String {
    crate::svg::escape(text).replace('{', "&#123;")
}

const TEMPLATE: &str = r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>memfit compare</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1100px; color: #222; padding: 0 16px; }
h1 { font-size: 18px; }
.verdict { font-size: 17px; font-weight: 600; padding: 10px 14px; background: #f3f6fb; border-left: 4px solid #1f5fbf; }
.verdict.Fail { background: #fdf0f0; border-color: #d62728; }
table { border-collapse: collapse; margin: 12px 0; }
th, td { text-align: left; padding: 3px 10px; border-bottom: 1px solid #e4e4e4; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.cmd { font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all; }
#chart { width: 100%; height: 380px; border: 1px solid #ddd; background: #fff; }
.legend span { display: inline-block; margin-right: 16px; }
.swatch { display: inline-block; width: 18px; height: 3px; vertical-align: middle; margin-right: 4px; }
</style>
</head>
<body>
<h1>memfit compare</h1>
<p class="verdict {{verdict_class}}" id="verdict">{{verdict}}</p>
<table id="sides">{{table}}</table>
<div id="timeline">
<h2>Timelines</h2>
<p class="legend"><span><i class="swatch" style="background:#999"></i>BASE charged</span><span><i class="swatch" style="background:#1f5fbf"></i>NEW charged</span><span>dashed: working (without inactive page cache)</span><span><i class="swatch" style="background:#d62728"></i>limit</span></p>
<svg id="chart" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="memory over time, BASE and NEW"></svg>
</div>
<h2>Processes</h2>
<table id="processes"><tr><th>change</th><th>BASE peak</th><th>NEW peak</th><th>command</th></tr>
{{processes}}</table>
<ul id="notes">{{notes}}</ul>
<script id="timelines" type="application/json">{{timelines}}</script>
<script>
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("timelines").textContent);
  var svg = document.getElementById("chart");
  if (!data) { document.getElementById("timeline").style.display = "none"; svg.setAttribute("data-ready", "true"); return; }
  var NS = "http://www.w3.org/2000/svg";
  var MIB = 1024 * 1024;
  var W = 1000, H = 380, L = 64, R = 16, T = 14, B = 34;
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  var runs = [["base", data.base, "#999"], ["new", data.new, "#1f5fbf"]];
  // Round ticks, as on the run charts (computed by memfit: chart::scale).
  var endMs = data.axes.time.max, maxBytes = data.axes.memory.max;
  function x(ms) { return L + (W - L - R) * ms / endMs; }
  function y(bytes) { return H - B - (H - T - B) * bytes / maxBytes; }
  function el(name, attrs, text) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    svg.appendChild(e);
    return e;
  }
  function fmt(bytes) {
    if (bytes >= 1024 * MIB) return (bytes / 1024 / MIB).toFixed(2) + " GiB";
    return (bytes / MIB).toFixed(1) + " MiB";
  }
  data.axes.memory.ticks.forEach(function (tick) {
    el("line", { x1: L, x2: W - R, y1: y(tick[0]), y2: y(tick[0]), stroke: "#eee" });
    el("text", { x: L - 6, y: y(tick[0]) + 4, "text-anchor": "end", "font-size": 11, "class": "tick-memory" }, tick[1] + " " + data.axes.memory.unit);
  });
  data.axes.time.ticks.forEach(function (tick) {
    el("text", { x: x(tick[0]), y: H - 12, "text-anchor": "middle", "font-size": 11, "class": "tick-time" }, tick[1] + " " + data.axes.time.unit);
  });
  runs.forEach(function (r) {
    var name = r[0], run = r[1], color = r[2];
    // One limit line when both ran under the same limit.
    var shared = data.base.limit === data.new.limit;
    if (run.limit && !(shared && name === "new")) {
      el("line", { x1: L, x2: W - R, y1: y(run.limit), y2: y(run.limit), stroke: "#d62728", "stroke-dasharray": "8 6", "stroke-width": 1.5, "class": "limit-" + name });
      el("text", { x: W - R - 4, y: y(run.limit) - 5, "text-anchor": "end", fill: "#d62728", "font-size": 12 }, (shared ? "" : name.toUpperCase() + " ") + "limit " + fmt(run.limit));
    }
    if (!run.samples.length) return;
    [[2, "working", "4 3", 1.2], [1, "charged", null, 2]].forEach(function (series) {
      var d = run.samples.map(function (s, i) { return (i ? "L" : "M") + x(s[0]).toFixed(1) + " " + y(s[series[0]]).toFixed(1); }).join(" ");
      var attrs = { d: d, fill: "none", stroke: color, "stroke-width": series[3], "class": "series-" + name + "-" + series[1] };
      if (series[2]) attrs["stroke-dasharray"] = series[2];
      el("path", attrs);
    });
    el("text", { x: W - R - 4, y: y(run.peak) - 5, "text-anchor": "end", fill: color, "font-size": 12, "class": "peak-" + name }, name.toUpperCase() + " peak " + fmt(run.peak));
  });
  svg.setAttribute("data-ready", "true");
})();
</script>
</body>
</html>
"##;
