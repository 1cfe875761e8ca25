//! The chart of a run, computed once for both renderers ([`crate::svg`], [`crate::html`]):
//! every shape, label and legend entry, in pixels. The renderers only write it out, so the
//! SVG file and the HTML page show the same things.
//!
//! What it shows: charged and working memory, the limit and the headroom under it, the
//! peak, each OOM kill with its victim, the processes' RSS stacked (the largest few and
//! "other"), processes known only from exit records, build steps as bands and, with a
//! runtime view, V8's heap and external memory.

mod labels;
pub(crate) mod scale;
mod stack;

pub use labels::{place, text_width, Anchor, Rect, Wanted};
pub use scale::{memory_axis, time_axis, Axis};
pub use stack::{stack, Layer, Stack};

use memfit_core::ByteSize;

use crate::{short_command, RunReport};

/// Processes stacked by name; the others are summed as "other".
pub const STACKED_PROCESSES: usize = 5;
/// Processes known only from exit records drawn at most (the largest first).
const MAX_UNSEEN_BARS: usize = 500;

const WIDTH: f64 = 1000.0;
const PLOT: Rect = Rect {
    x: 76.0,
    y: 58.0,
    width: 600.0,
    height: 320.0,
};
const LEGEND_X: f64 = 694.0;
const LEGEND_ROW: f64 = 18.0;
/// Characters of a legend entry that fit in its column at 12 px.
const LEGEND_CHARS: usize = 32;
const NOTE_CHARS: usize = 150;
pub const LABEL_FONT: f64 = 12.0;

/// Okabe–Ito colours (distinguishable with colour blindness), blue left for "charged".
const PROCESS_COLORS: [&str; STACKED_PROCESSES] =
    ["#e69f00", "#56b4e9", "#009e73", "#cc79a7", "#f0e442"];
const OTHER_COLOR: &str = "#b8b8b8";
pub const RED: &str = "#d62728";

/// A line series drawn over the areas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    Charged,
    Working,
    HeapUsed,
    External,
}

impl Series {
    /// Its stroke: colour, width and dash pattern. Working is dashed and drawn over the
    /// wider charged line, so that both show where they coincide.
    pub fn stroke(self) -> Stroke {
        match self {
            Series::Charged => Stroke::new("#1f5fbf", 3.0, None),
            Series::Working => Stroke::new("#111111", 1.5, Some("6 4")),
            Series::HeapUsed => Stroke::new("#7b3294", 1.5, Some("2 3")),
            Series::External => Stroke::new("#8c510a", 1.5, Some("8 3 2 3")),
        }
    }

    /// The class its path has (`series-charged_bytes` names the JSON field).
    pub fn class(self) -> &'static str {
        match self {
            Series::Charged => "series-charged_bytes",
            Series::Working => "series-working_bytes",
            Series::HeapUsed => "series-heap_used_bytes",
            Series::External => "series-external_bytes",
        }
    }

    fn legend(self) -> &'static str {
        match self {
            Series::Charged => "charged (counts to the limit)",
            Series::Working => "working (no inactive cache)",
            Series::HeapUsed => "V8 heap used (runtime view)",
            Series::External => "V8 external (Buffers, native)",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stroke {
    pub color: &'static str,
    pub width: f64,
    pub dash: Option<&'static str>,
}

impl Stroke {
    const fn new(color: &'static str, width: f64, dash: Option<&'static str>) -> Stroke {
        Stroke { color, width, dash }
    }
}

/// A point in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    pub at: f64,
    pub label: String,
}

/// A stacked area: the polygon of its upper edge forwards and lower edge backwards.
#[derive(Debug, Clone, PartialEq)]
pub struct Area {
    pub layer: Layer,
    pub color: &'static str,
    pub polygon: Vec<Point>,
}

/// A line series, in runs of consecutive samples that have it.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub series: Series,
    pub runs: Vec<Vec<Point>>,
}

/// A process no sample saw, as a bar at its peak RSS over its life.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub x0: f64,
    pub x1: f64,
    pub y: f64,
    pub title: String,
}

/// A build step (or container) as a band across the plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub x0: f64,
    pub x1: f64,
    pub oom_killed: bool,
    pub title: String,
}

/// An OOM kill: a vertical line at the moment memfit saw it and a cross on the charged line.
#[derive(Debug, Clone, PartialEq)]
pub struct OomMark {
    pub at: Point,
    pub title: String,
}

/// What a label belongs to (its class in the renderers: `label label-peak`…).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelRole {
    Oom,
    Peak,
    Limit,
    Headroom,
    Band,
}

impl LabelRole {
    pub fn class(self) -> &'static str {
        match self {
            LabelRole::Oom => "label label-oom",
            LabelRole::Peak => "label label-peak",
            LabelRole::Limit => "label label-limit",
            LabelRole::Headroom => "label label-headroom",
            LabelRole::Band => "label label-band",
        }
    }

    pub fn color(self) -> &'static str {
        match self {
            LabelRole::Oom | LabelRole::Peak | LabelRole::Limit => RED,
            LabelRole::Headroom => "#2f7d32",
            LabelRole::Band => "#3c3c3c",
        }
    }
}

/// A placed label: its text fits in `rect` (its baseline is one font size below the top).
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub role: LabelRole,
    pub text: String,
    pub rect: Rect,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Swatch {
    Line(Stroke),
    Fill(&'static str, f64),
    Peak,
    Oom,
    Bar,
}

/// A legend entry, right of the plot: its text (shortened) and, as a tooltip, in full.
#[derive(Debug, Clone, PartialEq)]
pub struct LegendEntry {
    pub swatch: Swatch,
    pub text: String,
    pub title: String,
    pub at: Point,
}

/// Everything the renderers draw, in pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub width: f64,
    pub height: f64,
    pub title: String,
    pub subtitle: String,
    pub plot: Rect,
    pub x_axis: Axis,
    pub y_axis: Axis,
    pub x_ticks: Vec<Tick>,
    pub y_ticks: Vec<Tick>,
    pub x_title: String,
    pub y_title: String,
    pub bands: Vec<Band>,
    /// Between the peak and the limit, when the peak stayed under it.
    pub headroom: Option<Rect>,
    pub limit_y: Option<f64>,
    pub areas: Vec<Area>,
    pub bars: Vec<Bar>,
    pub lines: Vec<Line>,
    pub peak: Option<Point>,
    pub ooms: Vec<OomMark>,
    pub labels: Vec<Label>,
    pub legend: Vec<LegendEntry>,
    pub notes: Vec<(f64, String)>,
}

impl Chart {
    /// Pixels from the left edge of the plot per millisecond.
    pub fn x(&self, t_ms: u64) -> f64 {
        self.plot.x + self.plot.width * t_ms as f64 / self.x_axis.max.max(1) as f64
    }

    pub fn y(&self, bytes: u64) -> f64 {
        let share = (bytes as f64 / self.y_axis.max.max(1) as f64).min(1.0);
        self.plot.bottom() - self.plot.height * share
    }

    /// The chart of `report`.
    pub fn of(report: &RunReport) -> Chart {
        let end_ms = report
            .duration_ms
            .max(report.samples.last().map_or(0, |s| s.t_ms))
            .max(
                report
                    .processes
                    .iter()
                    .filter_map(|p| p.ended_ms)
                    .max()
                    .unwrap_or(0),
            )
            // Everything drawn on the time axis falls inside it.
            .max(report.at_peak_t_ms)
            .max(report.bands().iter().map(|b| b.end_ms).max().unwrap_or(0))
            .max(
                report
                    .oom
                    .victims
                    .iter()
                    .filter_map(|v| v.seen_ms)
                    .max()
                    .unwrap_or(0),
            )
            .max(1);
        let stack = stack(&report.samples, STACKED_PROCESSES);
        let limit = report.limit_that_held();
        let runtime_max = report
            .samples
            .iter()
            .filter_map(|s| s.runtime)
            .map(|r| r.heap_used_bytes.max(r.external_bytes))
            .max()
            .unwrap_or(0);
        let highest = [
            report.peak.charged_bytes,
            limit.unwrap_or(0),
            report
                .samples
                .iter()
                .map(|s| s.charged_bytes)
                .max()
                .unwrap_or(0),
            stack.max_total,
            runtime_max,
            unseen(report)
                .iter()
                .map(|p| p.peak_rss_bytes)
                .max()
                .unwrap_or(0),
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        // Room above the highest line for its label.
        let y_axis = memory_axis(highest.saturating_add(highest / 14), limit);
        let x_axis = time_axis(end_ms);
        let mut chart = Chart {
            width: WIDTH,
            height: 0.0,
            title: format!(
                "memfit run: {}",
                shorten(&short_command(&report.command.join(" ")), 90)
            ),
            subtitle: shorten(&report.verdict(), 140),
            plot: PLOT,
            x_ticks: Vec::new(),
            y_ticks: Vec::new(),
            x_title: format!("time ({})", x_axis.unit),
            y_title: format!("memory ({})", y_axis.unit),
            x_axis,
            y_axis,
            bands: Vec::new(),
            headroom: None,
            limit_y: None,
            areas: Vec::new(),
            bars: Vec::new(),
            lines: Vec::new(),
            peak: None,
            ooms: Vec::new(),
            labels: Vec::new(),
            legend: Vec::new(),
            notes: Vec::new(),
        };
        chart.x_ticks = chart
            .x_axis
            .ticks
            .iter()
            .map(|&t| Tick {
                at: chart.x(t),
                label: chart.x_axis.label(t),
            })
            .collect();
        chart.y_ticks = chart
            .y_axis
            .ticks
            .iter()
            .map(|&b| Tick {
                at: chart.y(b),
                label: chart.y_axis.label(b),
            })
            .collect();
        let mut legend = Vec::new();
        let mut wanted = Vec::new();
        let mut avoid = Vec::new();

        // Build steps (else containers), red where the step was OOM-killed.
        let steps_oom: Vec<bool> = report.steps.iter().map(|s| s.oom_killed).collect();
        for (i, band) in report.bands().into_iter().enumerate() {
            let (x0, x1) = (
                chart.x(band.start_ms),
                chart.x(band.end_ms.max(band.start_ms)),
            );
            let step = report.steps.get(i);
            let title = match step {
                Some(s) => format!("{}: {} ({}:{})", band.label, s.instruction, s.file, s.line),
                None => format!("container {}", band.label),
            };
            let text = match step {
                Some(s) => fit(&format!("{}: {}", band.label, s.instruction), x1 - x0),
                None => band.label.clone(),
            };
            wanted.push((LabelRole::Band, text, x0 + 3.0, PLOT.y + 2.0, Anchor::Start));
            chart.bands.push(Band {
                x0,
                x1: x1.max(x0 + 1.0),
                oom_killed: steps_oom.get(i).copied().unwrap_or(false),
                title,
            });
        }
        if !chart.bands.is_empty() {
            let what = if report.steps.is_empty() {
                "containers"
            } else {
                "build steps (RUN)"
            };
            legend.push((Swatch::Fill("#17becf", 0.14), what.to_string(), None));
        }

        // The stacked processes.
        let commands = |pid: i32| {
            report
                .processes
                .iter()
                .find(|p| p.pid == pid)
                .map_or(String::new(), |p| without_directories(&p.command))
        };
        for (i, (layer, edges)) in stack.layers.iter().zip(&stack.edges).enumerate() {
            let color = match layer {
                Layer::Process(_) => PROCESS_COLORS[i % PROCESS_COLORS.len()],
                Layer::Other => OTHER_COLOR,
            };
            let upper = report.samples.iter().zip(edges).map(|(s, e)| Point {
                x: chart.x(s.t_ms),
                y: chart.y(e.1),
            });
            let lower = report.samples.iter().zip(edges).rev().map(|(s, e)| Point {
                x: chart.x(s.t_ms),
                y: chart.y(e.0),
            });
            chart.areas.push(Area {
                layer: *layer,
                color,
                polygon: upper.chain(lower).collect(),
            });
            let name = match layer {
                Layer::Process(pid) => format!("pid {pid} {}", commands(*pid)),
                Layer::Other => "other processes (RSS)".to_string(),
            };
            let full = match layer {
                Layer::Process(pid) => report
                    .processes
                    .iter()
                    .find(|p| p.pid == *pid)
                    .map(|p| format!("pid {pid}: {}", p.command)),
                Layer::Other => None,
            };
            legend.push((Swatch::Fill(color, 0.6), name, full));
        }

        // Processes no sample saw, at their peak over their life.
        let unseen = unseen(report);
        for p in unseen.iter().take(MAX_UNSEEN_BARS) {
            let x0 = chart.x(p.started_ms);
            let x1 = chart.x(p.ended_ms.unwrap_or(end_ms)).max(x0 + 2.0);
            chart.bars.push(Bar {
                x0,
                x1,
                y: chart.y(p.peak_rss_bytes),
                title: format!(
                    "pid {} {} — peak {} (exit record)",
                    p.pid,
                    p.command,
                    ByteSize(p.peak_rss_bytes)
                ),
            });
        }
        if !unseen.is_empty() {
            legend.push((
                Swatch::Bar,
                format!("{} short-lived (exit records)", unseen.len()),
                Some(format!(
                    "{} short-lived processes (exit records): no sample saw them; each is drawn at its peak RSS over its life",
                    unseen.len()
                )),
            ));
        }

        // Lines: charged under working, then the runtime layers.
        let mut series = vec![Series::Charged, Series::Working];
        if report.samples.iter().any(|s| s.runtime.is_some()) {
            series.extend([Series::HeapUsed, Series::External]);
        }
        for s in series {
            chart.lines.push(Line {
                series: s,
                runs: runs(&chart, report, s),
            });
            legend.push((Swatch::Line(s.stroke()), s.legend().to_string(), None));
        }

        if let Some(limit) = limit {
            let y = chart.y(limit);
            chart.limit_y = Some(y);
            let text = format!("limit {}", ByteSize(limit));
            legend.push((
                Swatch::Line(Stroke::new(RED, 2.0, Some("8 6"))),
                text.clone(),
                None,
            ));
            wanted.push((
                LabelRole::Limit,
                text,
                PLOT.right() - 4.0,
                y - 17.0,
                Anchor::End,
            ));
            let peak = report.peak.charged_bytes;
            if peak < limit && !report.samples.is_empty() {
                let top = y;
                let bottom = chart.y(peak);
                chart.headroom = Some(Rect {
                    x: PLOT.x,
                    y: top,
                    width: PLOT.width,
                    height: bottom - top,
                });
                let share = 100.0 * (limit - peak) as f64 / limit as f64;
                let text = format!("headroom {} ({share:.0}%)", ByteSize(limit - peak));
                legend.push((
                    Swatch::Fill("#2ca02c", 0.12),
                    "headroom under the limit".into(),
                    None,
                ));
                wanted.push((
                    LabelRole::Headroom,
                    text,
                    PLOT.x + 6.0,
                    top + 2.0,
                    Anchor::Start,
                ));
            }
        }

        let peak = Point {
            x: chart.x(report.at_peak_t_ms),
            y: chart.y(report.peak.charged_bytes),
        };
        if !report.samples.is_empty() || report.peak.charged_bytes > 0 {
            chart.peak = Some(peak);
            avoid.push(around(peak, 6.0));
            legend.push((Swatch::Peak, "peak charged".into(), None));
            let late = peak.x > PLOT.x + 0.7 * PLOT.width;
            let (x, anchor) = if late {
                (peak.x - 9.0, Anchor::End)
            } else {
                (peak.x + 9.0, Anchor::Start)
            };
            let text = format!("peak {}", ByteSize(report.peak.charged_bytes));
            wanted.insert(0, (LabelRole::Peak, text, x, peak.y - 20.0, anchor));
        }

        // OOM kills, at the moment memfit saw each victim gone.
        for victim in &report.oom.victims {
            let t_ms = victim
                .seen_ms
                .or_else(|| {
                    report
                        .processes
                        .iter()
                        .find(|p| p.pid == victim.pid)?
                        .ended_ms
                })
                .unwrap_or(end_ms);
            // On the charged line where the victim was last seen alive.
            let charged = report
                .samples
                .iter()
                .rev()
                .find(|s| s.t_ms < t_ms)
                .or(report.samples.first())
                .map_or(report.peak.charged_bytes, |s| s.charged_bytes);
            let at = Point {
                x: chart.x(t_ms),
                y: chart.y(charged),
            };
            avoid.push(around(at, 7.0));
            let what = shorten(&short_command(&victim.command), 40);
            let text = format!("OOM kill: {what} ({})", ByteSize(victim.rss_bytes));
            let title = format!(
                "OOM kill at {:.2} s: pid {} {} held {}",
                t_ms as f64 / 1000.0,
                victim.pid,
                victim.command,
                ByteSize(victim.rss_bytes)
            );
            wanted.insert(
                0,
                (LabelRole::Oom, text, at.x - 9.0, PLOT.y + 20.0, Anchor::End),
            );
            chart.ooms.push(OomMark { at, title });
        }
        if report.oom.victims.is_empty() && report.oom_killed == Some(true) {
            chart.notes_push("OOM-killed, but the victim could not be named: no marker drawn.");
        }
        if !chart.ooms.is_empty() {
            legend.push((Swatch::Oom, "OOM kill (victim named)".into(), None));
        }

        let wanted_labels: Vec<Wanted> = wanted
            .iter()
            .map(|(_, text, x, y, anchor)| Wanted {
                text: text.clone(),
                x: *x,
                y: *y,
                anchor: *anchor,
                font_size: LABEL_FONT,
            })
            .collect();
        let boxes = place(&wanted_labels, PLOT, &avoid);
        chart.labels = wanted
            .into_iter()
            .zip(boxes)
            .map(|((role, text, ..), rect)| Label { role, text, rect })
            .collect();

        chart.legend = legend
            .into_iter()
            .enumerate()
            .map(|(i, (swatch, text, full))| LegendEntry {
                swatch,
                title: full.unwrap_or_else(|| text.clone()),
                text: shorten(&text, LEGEND_CHARS),
                at: Point {
                    x: LEGEND_X,
                    y: PLOT.y + i as f64 * LEGEND_ROW,
                },
            })
            .collect();

        if stack.exceeds_charged {
            chart.notes_push("The process areas add up each process's RSS: a page shared by several processes (copy-on-write after fork, shared libraries, mapped files) counts once per process but once in the charge, so the areas can rise above the charged line.");
        }
        if !stack.layers.is_empty() {
            let named = stack.layers.iter().filter(|l| **l != Layer::Other).count();
            let other = stack.layers.contains(&Layer::Other);
            let areas = match (named, other) {
                (1, false) => "Area: the process's RSS.".to_string(),
                (n, false) => format!("Areas: RSS of the {n} processes, stacked."),
                (1, true) => "Areas: RSS of the process largest at its peak and of the other sampled processes (\"other\"), stacked.".to_string(),
                (n, true) => format!("Areas: RSS of the {n} processes largest at their peak, stacked, and of the other sampled processes (\"other\")."),
            };
            chart.notes_push(&format!(
                "{areas} Hover in the HTML report to see the processes at a moment."
            ));
        }
        if report.samples.iter().any(|s| s.runtime.is_some()) {
            chart.notes_push("V8 heap used and external: summed over the Node processes that reported to memfit's runtime view; external includes ArrayBuffers (Buffers).");
        }
        if report.samples.is_empty() {
            chart.notes_push("No samples: the command ended before the first one.");
        }
        let notes_bottom = chart
            .notes
            .last()
            .map_or(PLOT.bottom() + 48.0, |n| n.0 + 6.0);
        let legend_bottom = chart.legend.last().map_or(0.0, |e| e.at.y + LEGEND_ROW);
        chart.height = notes_bottom.max(legend_bottom).ceil() + 8.0;
        chart
    }

    /// Adds a note under the axes, wrapped to the width.
    fn notes_push(&mut self, text: &str) {
        for line in wrap(text, NOTE_CHARS) {
            let y = self
                .notes
                .last()
                .map_or(PLOT.bottom() + 66.0, |n| n.0 + 15.0);
            self.notes.push((y, line));
        }
    }
}

/// A command line with the directories of its paths dropped, for the legend's narrow column:
/// `node /app/node_modules/.bin/next build` → `node next build` (the tooltip has it all).
fn without_directories(command: &str) -> String {
    command
        .split(' ')
        .map(|word| match word.rsplit_once('/') {
            Some((_, name)) if !name.is_empty() => name,
            _ => word,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Processes no sample's top list holds, largest first.
fn unseen(report: &RunReport) -> Vec<&crate::ProcessRecord> {
    let sampled: std::collections::HashSet<i32> = report
        .samples
        .iter()
        .flat_map(|s| s.top.iter().map(|p| p.pid))
        .collect();
    let mut unseen: Vec<_> = report
        .processes
        .iter()
        .filter(|p| !sampled.contains(&p.pid) && p.peak_rss_bytes > 0)
        .collect();
    unseen.sort_by_key(|p| (std::cmp::Reverse(p.peak_rss_bytes), p.pid));
    unseen
}

/// A series' points, broken where samples lack it (no runtime view then).
fn runs(chart: &Chart, report: &RunReport, series: Series) -> Vec<Vec<Point>> {
    let mut runs: Vec<Vec<Point>> = Vec::new();
    let mut current = Vec::new();
    for sample in &report.samples {
        let value = match series {
            Series::Charged => Some(sample.charged_bytes),
            Series::Working => Some(sample.working_bytes),
            Series::HeapUsed => sample.runtime.map(|r| r.heap_used_bytes),
            Series::External => sample.runtime.map(|r| r.external_bytes),
        };
        match value {
            Some(v) => current.push(Point {
                x: chart.x(sample.t_ms),
                y: chart.y(v),
            }),
            None if !current.is_empty() => runs.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

fn around(p: Point, r: f64) -> Rect {
    Rect {
        x: p.x - r,
        y: p.y - r,
        width: 2.0 * r,
        height: 2.0 * r,
    }
}

/// `text` shortened to what fits in `width` pixels at the label size.
fn fit(text: &str, width: f64) -> String {
    let chars = (width / (LABEL_FONT * 0.66)).floor().max(8.0) as usize;
    shorten(text, chars)
}

pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// Words of `text` in lines of at most `width` characters (a longer word is cut).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let word = shorten(word, width);
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests;
