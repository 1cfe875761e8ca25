//! The HTML report of a run: one self-contained file (no network fetch) with the summary,
//! an interactive timeline (hover a time to see the processes then) and the process table.
//! The summary and table are rendered here, so they read without JavaScript; the chart is
//! drawn by the page's own script from the embedded JSON report.

use std::fmt::Write as _;

use memfit_core::ByteSize;

use crate::RunReport;

pub fn render(report: &RunReport) -> String {
    let json = serde_json::to_string(report)
        .unwrap_or_else(|_| "{}".to_string())
        // Keep the data from closing its <script> element.
        .replace("</", "<\\/");
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
        .replace("{{json}}", &json)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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
#chart { width: 100%; height: 380px; border: 1px solid #ddd; background: #fff; }
#tip { position: absolute; top: 8px; right: 8px; background: rgba(255,255,255,.95); border: 1px solid #bbb; padding: 6px 8px; font-size: 12px; max-width: 55%; pointer-events: none; }
#tip:empty { display: none; }
.legend span { display: inline-block; margin-right: 16px; }
.swatch { display: inline-block; width: 18px; height: 3px; vertical-align: middle; margin-right: 4px; }
</style>
</head>
<body>
<h1>memfit run: {{title}}</h1>
<p class="verdict" id="verdict">{{verdict}}</p>
<table id="summary">{{summary}}</table>
<h2>Timeline</h2>
<p class="legend"><span><i class="swatch" style="background:#1f5fbf"></i>charged (counts against the limit)</span><span><i class="swatch" style="background:#222"></i>working (without inactive page cache)</span><span><i class="swatch" style="background:#d62728"></i>limit</span><span><i class="swatch" style="background:#888"></i>a process no sample saw, at its peak</span> — hover to see the processes at a moment</p>
<div id="chart-box"><svg id="chart" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="memory over time"></svg><div id="tip"></div></div>
<h2>Processes</h2>
<table id="processes"><tr><th>pid</th><th>ppid</th><th>peak RSS</th><th>start (s)</th><th>end (s)</th><th>status</th><th>command</th></tr>
{{processes}}</table>
<h2>Notes</h2>
<ul id="caveats">{{caveats}}</ul>
<script id="report" type="application/json">{{json}}</script>
<script>
(function () {
  "use strict";
  var report = JSON.parse(document.getElementById("report").textContent);
  var svg = document.getElementById("chart");
  var tip = document.getElementById("tip");
  var NS = "http://www.w3.org/2000/svg";
  var MIB = 1024 * 1024;
  var W = 1000, H = 380, L = 64, R = 16, T = 14, B = 34;
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  var samples = report.samples || [];
  var commands = {};
  (report.processes || []).forEach(function (p) { commands[p.pid] = p.command; });
  var endMs = Math.max(report.duration_ms || 1, samples.length ? samples[samples.length - 1].t_ms : 1, 1);
  var maxBytes = Math.max(report.peak.charged_bytes, report.limit_bytes || 0, 1);
  samples.forEach(function (s) { maxBytes = Math.max(maxBytes, s.charged_bytes); });
  maxBytes *= 1.08;
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
  for (var i = 0; i <= 4; i++) {
    var v = maxBytes * i / 4;
    el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#eee" });
    el("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11 }, fmt(v));
    var t = endMs * i / 4;
    el("text", { x: x(t), y: H - 12, "text-anchor": "middle", "font-size": 11 }, (t / 1000).toFixed(1) + " s");
  }
  function path(key, color, width) {
    if (!samples.length) return;
    var d = samples.map(function (s, i) { return (i ? "L" : "M") + x(s.t_ms).toFixed(1) + " " + y(s[key]).toFixed(1); }).join(" ");
    el("path", { d: d, fill: "none", stroke: color, "stroke-width": width, "class": "series-" + key });
  }
  var bands = (report.steps || []).length
    ? report.steps.map(function (s) { return { start: s.started_ms, end: s.started_ms + s.duration_ms, label: "step " + s.index + "/" + s.of }; })
    : (report.containers || []).map(function (c) { return { start: c.started_ms, end: c.ended_ms === null ? endMs : c.ended_ms, label: c.id.slice(0, 12) }; });
  bands.forEach(function (b) {
    el("rect", { x: x(b.start), y: T, width: Math.max(1, x(b.end) - x(b.start)), height: H - T - B, fill: "#17becf", "fill-opacity": 0.12, "class": "band" });
    el("text", { x: x(b.start) + 3, y: T + 12, "font-size": 11, fill: "#555" }, b.label);
  });
  path("working_bytes", "#222", 1.2);
  path("charged_bytes", "#1f5fbf", 2);
  // Processes no sample saw (known from their exit records): a bar at their peak over their life.
  var sampled = {};
  samples.forEach(function (s) { s.top.forEach(function (e) { sampled[e[0]] = true; }); });
  (report.processes || []).filter(function (p) { return !sampled[p.pid]; }).slice(0, 500).forEach(function (p) {
    var end = p.ended_ms === null ? endMs : p.ended_ms;
    var bar = el("line", { x1: x(p.started_ms), x2: Math.max(x(end), x(p.started_ms) + 2), y1: y(p.peak_rss_bytes), y2: y(p.peak_rss_bytes), stroke: "#888", "stroke-width": 3, "class": "exit-record" });
    var title = document.createElementNS(NS, "title");
    title.textContent = p.pid + "  " + p.command + " — peak " + fmt(p.peak_rss_bytes) + " (exit record)";
    bar.appendChild(title);
  });
  if (report.limit_bytes) {
    el("line", { x1: L, x2: W - R, y1: y(report.limit_bytes), y2: y(report.limit_bytes), stroke: "#d62728", "stroke-dasharray": "8 6", "stroke-width": 2 });
    el("text", { x: W - R - 4, y: y(report.limit_bytes) - 5, "text-anchor": "end", fill: "#d62728", "font-size": 12 }, "limit " + fmt(report.limit_bytes));
  }
  el("circle", { cx: x(report.at_peak_t_ms), cy: y(report.peak.charged_bytes), r: 5, fill: "#d62728", id: "peak-marker" });
  var late = x(report.at_peak_t_ms) > L + 0.7 * (W - L - R);
  el("text", { x: x(report.at_peak_t_ms) + (late ? -8 : 8), y: y(report.peak.charged_bytes) - 6, "text-anchor": late ? "end" : "start", fill: "#d62728", "font-size": 12 }, "peak " + fmt(report.peak.charged_bytes));
  var cursor = el("line", { x1: 0, x2: 0, y1: T, y2: H - B, stroke: "#888", visibility: "hidden" });

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
    var head = document.createElement("div");
    head.innerHTML = "<b></b>";
    head.firstChild.textContent = (s.t_ms / 1000).toFixed(2) + " s — charged " + fmt(s.charged_bytes) + ", working " + fmt(s.working_bytes);
    tip.appendChild(head);
    s.top.forEach(function (entry) {
      var line = document.createElement("div");
      line.className = "tip-process";
      line.textContent = fmt(entry[1]) + "  " + entry[0] + "  " + (commands[entry[0]] || "");
      tip.appendChild(line);
    });
  }
  svg.addEventListener("mousemove", function (event) {
    var box = svg.getBoundingClientRect();
    var px = (event.clientX - box.left) * W / box.width;
    showAt((px - L) / (W - L - R) * endMs);
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
