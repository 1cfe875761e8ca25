//! The HTML report of a run: one self-contained file (no network fetch) with the summary,
//! the timeline and the process table. Everything is rendered here, so it reads without
//! JavaScript: the timeline is the SVG report's drawing ([`crate::svg::draw`] of the same
//! [`crate::chart::Chart`]); the page's small script only adds the hover (the processes at
//! a moment, from the embedded JSON report).

use std::fmt::Write as _;

use memfit_core::ByteSize;

use crate::svg::escape;
use crate::RunReport;

pub fn render(report: &RunReport) -> String {
    let json = serde_json::to_string(report)
        .unwrap_or_else(|_| "{}".to_string())
        // Keep the data from closing its <script> element or opening a comment in it: a
        // `<` only occurs inside JSON strings, where \u003c means the same.
        .replace('<', "\\u003c");
    let mut summary = String::new();
    let mut row = |key: &str, value: String| {
        let _ = writeln!(
            summary,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(key),
            escape(&value)
        );
    };
    row(
        "mode",
        format!(
            "{}{}",
            report.mode.as_str(),
            report
                .mode_reason
                .as_ref()
                .map(|r| format!(" — {r}"))
                .unwrap_or_default()
        ),
    );
    row(
        "limit",
        match (report.limit_bytes, report.limit_enforced) {
            (Some(l), true) => ByteSize(l).to_string(),
            (Some(l), false) => format!("{} (not enforced)", ByteSize(l)),
            (None, _) => "none".into(),
        } + &report
            .platform
            .as_ref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default(),
    );
    row(
        "CPUs visible",
        format!("{} of {}", report.cpus, report.host_cpus),
    );
    row(
        "peak charged",
        format!(
            "{} ({})",
            ByteSize(report.peak.charged_bytes),
            report.peak.source.as_str()
        ),
    );
    row(
        "peak working",
        format!(
            "{} ({})",
            ByteSize(report.peak.working_bytes),
            report.peak.working_source.describe()
        ),
    );
    if let Some(gap) = report.gap_explanation() {
        row("charged − working", gap);
    }
    if report.swap_bytes > 0 || report.peak.swap_used_bytes > 0 {
        row("swap", report.swap_summary());
    }
    row(
        "OOM",
        match report.oom_killed {
            None => "no verdict possible without a cgroup".into(),
            Some(false) => "no OOM kill".into(),
            Some(true) => format!(
                "OOM-killed ({}×): {}",
                report.oom.kill_count,
                report
                    .oom
                    .victims
                    .iter()
                    .map(|v| format!("{} {} ({})", v.pid, v.command, ByteSize(v.rss_bytes)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    );
    row("exit", report.exit.description.clone());
    row(
        "duration",
        format!(
            "{:.1} s, {} samples",
            report.duration_ms as f64 / 1000.0,
            report.sampling.samples_taken
        ),
    );

    let mut processes = String::new();
    for p in &report.processes {
        let _ = writeln!(
            processes,
            "<tr><td>{}</td><td>{}</td><td class=num>{}</td><td class=num>{:.2}</td><td class=num>{}</td><td>{}</td><td class=cmd>{}</td></tr>",
            p.pid,
            p.ppid,
            ByteSize(p.peak_rss_bytes),
            p.started_ms as f64 / 1000.0,
            p.ended_ms.map_or("—".to_string(), |e| format!("{:.2}", e as f64 / 1000.0)),
            escape(&p.exit.as_ref().map_or(String::new(), |e| e.status.to_string())),
            escape(&p.command)
        );
    }
    let caveats: String = report
        .caveats
        .iter()
        .map(|c| format!("<li>{}</li>", escape(c)))
        .collect();

    TEMPLATE
        .replace("{{title}}", &escape(&report.command.join(" ")))
        .replace("{{verdict}}", &escape(&report.verdict()))
        .replace("{{summary}}", &summary)
        .replace("{{processes}}", &processes)
        .replace("{{caveats}}", &caveats)
        .replace(
            "{{chart}}",
            &crate::svg::draw(&crate::chart::Chart::of(report)),
        )
        .replace("{{json}}", &json)
}

const TEMPLATE: &str = r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>memfit run: {{title}}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1100px; color: #222; padding: 0 16px; }
h1 { font-size: 18px; word-break: break-all; }
.verdict { font-size: 17px; font-weight: 600; padding: 10px 14px; background: #f3f6fb; border-left: 4px solid #1f5fbf; }
table { border-collapse: collapse; margin: 12px 0; }
th, td { text-align: left; padding: 3px 10px; border-bottom: 1px solid #e4e4e4; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.cmd { font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all; }
#chart-box { position: relative; }
#timeline { width: 100%; height: auto; border: 1px solid #ddd; background: #fff; }
#tip { position: absolute; top: 56px; right: 4px; background: rgba(255,255,255,.95); border: 1px solid #bbb; padding: 6px 8px; font-size: 12px; max-width: 30%; pointer-events: none; }
#tip:empty { display: none; }
</style>
</head>
<body>
<h1>memfit run: {{title}}</h1>
<p class="verdict" id="verdict">{{verdict}}</p>
<table id="summary">{{summary}}</table>
<h2>Timeline</h2>
<p class="hint">Hover the timeline to see the processes at a moment; a link ending in <code>#t=1.5</code> opens at 1.5 s.</p>
<div id="chart-box">{{chart}}<div id="tip"></div></div>
<h2>Processes</h2>
<table id="processes"><tr><th>pid</th><th>ppid</th><th>peak RSS</th><th>start (s)</th><th>end (s)</th><th>status</th><th>command</th></tr>
{{processes}}</table>
<h2>Notes</h2>
<ul id="caveats">{{caveats}}</ul>
<script id="report" type="application/json">{{json}}</script>
<script>
(function () {
  "use strict";
  // The drawing is static (rendered by memfit); this only adds the hover: the sample
  // nearest the pointer, with the processes that held memory then.
  var report = JSON.parse(document.getElementById("report").textContent);
  var svg = document.getElementById("timeline");
  var tip = document.getElementById("tip");
  var NS = "http://www.w3.org/2000/svg";
  var MIB = 1024 * 1024;
  var plotX = parseFloat(svg.getAttribute("data-plot-x"));
  var plotW = parseFloat(svg.getAttribute("data-plot-width"));
  var tMax = parseFloat(svg.getAttribute("data-t-max-ms")) || 1;
  var plot = document.getElementById("plot-area");
  var top = parseFloat(plot.getAttribute("data-y")), height = parseFloat(plot.getAttribute("data-height"));
  var samples = report.samples || [];
  var commands = {};
  (report.processes || []).forEach(function (p) { commands[p.pid] = p.command; });
  function fmt(bytes) {
    if (bytes >= 1024 * MIB) return (bytes / 1024 / MIB).toFixed(2) + " GiB";
    return (bytes / MIB).toFixed(1) + " MiB";
  }
  function x(ms) { return plotX + plotW * ms / tMax; }
  var cursor = document.createElementNS(NS, "line");
  cursor.setAttribute("class", "hover-cursor");
  cursor.setAttribute("y1", top); cursor.setAttribute("y2", top + height);
  cursor.setAttribute("stroke", "#555"); cursor.setAttribute("visibility", "hidden");
  svg.appendChild(cursor);
  function nearest(ms) {
    var best = null;
    samples.forEach(function (s) { if (!best || Math.abs(s.t_ms - ms) < Math.abs(best.t_ms - ms)) best = s; });
    return best;
  }
  function showAt(ms) {
    var s = nearest(ms);
    if (!s) return;
    cursor.setAttribute("x1", x(s.t_ms)); cursor.setAttribute("x2", x(s.t_ms));
    cursor.setAttribute("visibility", "visible");
    tip.textContent = "";
    var head = document.createElement("b");
    var text = (s.t_ms / 1000).toFixed(2) + " s — charged " + fmt(s.charged_bytes) + ", working " + fmt(s.working_bytes);
    if (s.runtime) text += ", V8 heap " + fmt(s.runtime.heap_used_bytes) + ", external " + fmt(s.runtime.external_bytes);
    head.textContent = text;
    tip.appendChild(head);
    s.top.forEach(function (entry) {
      var line = document.createElement("div");
      line.className = "tip-process";
      line.textContent = fmt(entry[1]) + "  " + entry[0] + "  " + (commands[entry[0]] || "");
      tip.appendChild(line);
    });
  }
  svg.addEventListener("mousemove", function (event) {
    var point = svg.createSVGPoint();
    point.x = event.clientX; point.y = event.clientY;
    var at = point.matrixTransform(svg.getScreenCTM().inverse());
    if (at.x < plotX || at.x > plotX + plotW) return;
    showAt((at.x - plotX) / plotW * tMax);
  });
  svg.addEventListener("mouseleave", function () { tip.textContent = ""; cursor.setAttribute("visibility", "hidden"); });
  // A link to report.html#t=1.5 opens with the processes at 1.5 s shown.
  var match = /t=([0-9.]+)/.exec(location.hash);
  if (match) showAt(parseFloat(match[1]) * 1000);
  svg.setAttribute("data-ready", "true");
})();
</script>
</body>
</html>
"##;
