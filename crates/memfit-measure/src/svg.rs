//! The SVG timeline of a run: charged and working memory, the limit, the peak, and the
//! largest processes over time. Drawn with plotters' SVG backend only (no font files: SVG
//! text is laid out by the viewer).

use memfit_core::ByteSize;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::RunReport;

const MIB: f64 = 1024.0 * 1024.0;
const PROCESS_COLORS: [RGBColor; 4] = [
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
];

/// Processes known only from exit records drawn at most (the largest first).
const MAX_UNSEEN_BARS: usize = 500;

/// Renders the timeline; an error inside plotters yields a minimal SVG saying so.
pub fn render(report: &RunReport) -> String {
    let mut svg = String::new();
    if let Err(error) = draw(report, &mut svg) {
        return format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"600\" height=\"40\"><text x=\"10\" y=\"25\">memfit could not draw the timeline: {}</text></svg>\n",
            escape(&error)
        );
    }
    svg
}

fn draw(report: &RunReport, out: &mut String) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let root = SVGBackend::with_string(out, (1000, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;

    let end_s = (report.duration_ms.max(1) as f64 / 1000.0).max(
        report
            .samples
            .last()
            .map_or(0.0, |s| s.t_ms as f64 / 1000.0),
    );
    let top_mib = [
        report.peak.charged_bytes,
        report.limit_bytes.unwrap_or(0),
        report
            .samples
            .iter()
            .flat_map(|s| s.top.iter().map(|p| p.rss_bytes))
            .max()
            .unwrap_or(0),
    ]
    .into_iter()
    .max()
    .unwrap_or(1) as f64
        / MIB
        * 1.1
        + 1.0;

    let title = format!(
        "memfit run: {} — peak {}{}",
        shorten(&crate::short_command(&report.command.join(" ")), 60),
        ByteSize(report.peak.charged_bytes),
        report
            .limit_bytes
            .map(|l| format!(" of {}", ByteSize(l)))
            .unwrap_or_default()
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..end_s, 0f64..top_mib)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("memory (MiB)")
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|e| err(&e))?;

    // Build steps (or containers) as shaded bands under the lines, labelled at the top.
    for band in report.bands() {
        let (start, end) = (band.start_ms as f64 / 1000.0, band.end_ms as f64 / 1000.0);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(start, 0.0), (end.max(start + end_s / 500.0), top_mib)],
                CYAN.mix(0.12).filled(),
            )))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(std::iter::once(Text::new(
                band.label,
                (start, top_mib * 0.98),
                ("sans-serif", 11).into_font().color(&BLACK.mix(0.6)),
            )))
            .map_err(|e| err(&e))?;
    }

    let series = |value: fn(&crate::Sample) -> u64| -> Vec<(f64, f64)> {
        report
            .samples
            .iter()
            .map(|s| (s.t_ms as f64 / 1000.0, value(s) as f64 / MIB))
            .collect()
    };
    let charged_style = ShapeStyle::from(&BLUE).stroke_width(2);
    chart
        .draw_series(LineSeries::new(series(|s| s.charged_bytes), charged_style))
        .map_err(|e| err(&e))?
        .label("charged (counts against the limit)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], charged_style));
    let working_style = ShapeStyle::from(&BLACK).stroke_width(1);
    chart
        .draw_series(LineSeries::new(series(|s| s.working_bytes), working_style))
        .map_err(|e| err(&e))?
        .label("working (without inactive page cache)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], working_style));

    // The largest processes by their own peak, each drawn where it was among the top ones; a
    // process no sample saw (known from its exit record) as a bar at its peak over its life.
    let points_of = |pid: i32| -> Vec<(f64, f64)> {
        report
            .samples
            .iter()
            .filter_map(|s| {
                s.top
                    .iter()
                    .find(|p| p.pid == pid)
                    .map(|p| (s.t_ms as f64 / 1000.0, p.rss_bytes as f64 / MIB))
            })
            .collect()
    };
    let life = |p: &crate::ProcessRecord| -> Vec<(f64, f64)> {
        let start = p.started_ms as f64 / 1000.0;
        let end = p.ended_ms.map_or(end_s, |e| e as f64 / 1000.0);
        let peak = p.peak_rss_bytes as f64 / MIB;
        vec![(start, peak), (end.max(start + end_s / 300.0), peak)]
    };
    let mut largest: Vec<_> = report.processes.iter().collect();
    largest.sort_by_key(|p| std::cmp::Reverse(p.peak_rss_bytes));
    let labelled = largest.len().min(PROCESS_COLORS.len());
    for (process, color) in largest.iter().take(labelled).zip(PROCESS_COLORS) {
        let points = points_of(process.pid);
        let (points, how) = if points.is_empty() {
            (life(process), "peak RSS, exit record")
        } else {
            (points, "RSS")
        };
        let style = ShapeStyle::from(&color).stroke_width(if how == "RSS" { 1 } else { 3 });
        chart
            .draw_series(LineSeries::new(points, style))
            .map_err(|e| err(&e))?
            .label(format!(
                "pid {} {} ({how})",
                process.pid,
                shorten(&crate::short_command(&process.command), 56)
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    // The other processes no sample saw: one bar each, so that short-lived ones do not vanish.
    let unseen: Vec<_> = largest
        .iter()
        .skip(labelled)
        .filter(|p| points_of(p.pid).is_empty())
        .take(MAX_UNSEEN_BARS)
        .collect();
    if !unseen.is_empty() {
        let grey = ShapeStyle::from(&BLACK.mix(0.35)).stroke_width(3);
        chart
            .draw_series(unseen.iter().map(|p| PathElement::new(life(p), grey)))
            .map_err(|e| err(&e))?
            .label(format!(
                "{} short-lived processes (exit records) at their peak RSS",
                unseen.len()
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
    }

    if let Some(limit) = report.limit_bytes {
        let limit_mib = limit as f64 / MIB;
        let red = ShapeStyle::from(&RED).stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, limit_mib), (end_s, limit_mib)],
                8,
                6,
                red,
            ))
            .map_err(|e| err(&e))?
            .label(format!("limit {}", ByteSize(limit)))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], red));
    }

    let peak_point = (
        report.at_peak_t_ms as f64 / 1000.0,
        report.peak.charged_bytes as f64 / MIB,
    );
    chart
        .draw_series(std::iter::once(Circle::new(peak_point, 5, RED.filled())))
        .map_err(|e| err(&e))?;
    // Right of the marker, or left of it when the peak is late (the label would leave the
    // plot at the right edge).
    let anchor = if peak_point.0 > end_s * 0.7 {
        HPos::Right
    } else {
        HPos::Left
    };
    chart
        .draw_series(std::iter::once(Text::new(
            format!("peak {}", ByteSize(report.peak.charged_bytes)),
            (peak_point.0, peak_point.1 * 1.02),
            ("sans-serif", 14)
                .into_font()
                .color(&RED)
                .pos(Pos::new(anchor, VPos::Bottom)),
        )))
        .map_err(|e| err(&e))?;

    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max - 1).collect::<String>())
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
