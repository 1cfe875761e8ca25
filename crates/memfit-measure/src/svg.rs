//! The SVG timeline of a run: [`crate::chart::Chart`] written out as SVG, with no font files
//! (text is laid out by the viewer) and every text from the report escaped. The HTML report
//! embeds the same drawing.

use std::fmt::Write as _;

use crate::chart::{Chart, LabelRole, Point, Stroke, Swatch, LABEL_FONT, RED};
use crate::RunReport;

/// The timeline of `report` as a standalone SVG document.
pub fn render(report: &RunReport) -> String {
    draw(&Chart::of(report))
}

/// `chart` as an `<svg>` element (also what the HTML report embeds).
pub fn draw(chart: &Chart) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let (w, h) = (chart.width, chart.height);
    let plot = chart.plot;
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"DejaVu Sans, Verdana, sans-serif\" id=\"timeline\" data-plot-x=\"{}\" data-plot-width=\"{}\" data-t-max-ms=\"{}\" role=\"img\" aria-label=\"memory over time\">",
        plot.x, plot.width, chart.x_axis.max
    );
    let _ = writeln!(out, "<rect width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/>");
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"22\" font-size=\"16\" font-weight=\"bold\" class=\"chart-title\">{}</text>",
        plot.x,
        escape(&chart.title)
    );
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"42\" font-size=\"12.5\" fill=\"#333\" class=\"chart-subtitle\">{}</text>",
        plot.x,
        escape(&chart.subtitle)
    );
    // Clip what is drawn in the plot to it.
    let _ = writeln!(
        out,
        "<defs><clipPath id=\"plot-clip\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/></clipPath></defs>",
        plot.x, plot.y, plot.width, plot.height
    );
    let _ = writeln!(
        out,
        "<g id=\"plot-area\" data-x=\"{}\" data-y=\"{}\" data-width=\"{}\" data-height=\"{}\">",
        plot.x, plot.y, plot.width, plot.height
    );
    // Grid and ticks.
    for tick in &chart.y_ticks {
        let _ = writeln!(
            out,
            "<line x1=\"{}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e6e6e6\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"11\" class=\"tick tick-y\">{}</text>",
            plot.x,
            plot.right(),
            plot.x - 6.0,
            tick.at + 4.0,
            escape(&tick.label),
            y = tick.at
        );
    }
    for tick in &chart.x_ticks {
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{}\" y2=\"{}\" stroke=\"#999\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\" class=\"tick tick-x\">{}</text>",
            plot.bottom(),
            plot.bottom() + 4.0,
            plot.bottom() + 17.0,
            escape(&tick.label),
            x = tick.at
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"12\" class=\"axis-title axis-title-x\">{}</text>",
        plot.x + plot.width / 2.0,
        plot.bottom() + 36.0,
        escape(&chart.x_title)
    );
    let (tx, ty) = (18.0, plot.y + plot.height / 2.0);
    let _ = writeln!(
        out,
        "<text x=\"{tx}\" y=\"{ty}\" transform=\"rotate(-90 {tx} {ty})\" text-anchor=\"middle\" font-size=\"12\" class=\"axis-title axis-title-y\">{}</text>",
        escape(&chart.y_title)
    );

    let _ = writeln!(out, "<g clip-path=\"url(#plot-clip)\">");
    for band in &chart.bands {
        let color = if band.oom_killed { RED } else { "#17becf" };
        let _ = writeln!(
            out,
            "<rect class=\"band\" x=\"{:.1}\" y=\"{}\" width=\"{:.1}\" height=\"{}\" fill=\"{color}\" fill-opacity=\"0.1\"><title>{}</title></rect>",
            band.x0,
            plot.y,
            band.x1 - band.x0,
            plot.height,
            escape(&band.title)
        );
    }
    if let Some(room) = chart.headroom {
        let _ = writeln!(
            out,
            "<rect class=\"headroom\" x=\"{}\" y=\"{:.1}\" width=\"{}\" height=\"{:.1}\" fill=\"#2ca02c\" fill-opacity=\"0.12\"/>",
            room.x, room.y, room.width, room.height
        );
    }
    for area in &chart.areas {
        let (class, pid) = match area.layer {
            crate::chart::Layer::Process(pid) => ("process-area", pid.to_string()),
            crate::chart::Layer::Other => ("process-area process-other", String::new()),
        };
        let _ = writeln!(
            out,
            "<path class=\"{class}\" data-pid=\"{pid}\" d=\"{}\" fill=\"{}\" fill-opacity=\"0.6\" stroke=\"none\"/>",
            polygon(&area.polygon),
            area.color
        );
    }
    for bar in &chart.bars {
        let _ = writeln!(
            out,
            "<line class=\"exit-record\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#777\" stroke-width=\"3\"><title>{}</title></line>",
            bar.x0,
            bar.x1,
            escape(&bar.title),
            y = bar.y
        );
    }
    for line in &chart.lines {
        let d: String = line
            .runs
            .iter()
            .map(|run| polyline(run))
            .collect::<Vec<_>>()
            .join(" ");
        if d.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "<path class=\"series {}\" d=\"{d}\" fill=\"none\" {}/>",
            line.series.class(),
            stroke_attrs(line.series.stroke())
        );
    }
    if let Some(y) = chart.limit_y {
        let _ = writeln!(
            out,
            "<line class=\"limit\" x1=\"{}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"{RED}\" stroke-width=\"2\" stroke-dasharray=\"8 6\"/>",
            plot.x,
            plot.right()
        );
    }
    let _ = writeln!(out, "</g>");
    for oom in &chart.ooms {
        let Point { x, y } = oom.at;
        let _ = writeln!(
            out,
            "<g class=\"oom-marker\"><title>{}</title><line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{}\" y2=\"{}\" stroke=\"#8b0000\" stroke-width=\"1.5\" stroke-dasharray=\"3 3\"/><path d=\"M{:.1} {:.1} L{:.1} {:.1} M{:.1} {:.1} L{:.1} {:.1}\" stroke=\"#8b0000\" stroke-width=\"3\"/></g>",
            escape(&oom.title),
            plot.y,
            plot.bottom(),
            x - 6.0, y - 6.0, x + 6.0, y + 6.0, x - 6.0, y + 6.0, x + 6.0, y - 6.0
        );
    }
    if let Some(p) = chart.peak {
        let _ = writeln!(
            out,
            "<circle id=\"peak-marker\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"{RED}\" stroke=\"#fff\" stroke-width=\"1.5\"/>",
            p.x, p.y
        );
    }
    for label in &chart.labels {
        let r = label.rect;
        // A white halo keeps the text readable over lines and areas.
        let weight = if label.role == LabelRole::Band {
            "normal"
        } else {
            "bold"
        };
        let _ = writeln!(
            out,
            "<text class=\"{}\" x=\"{:.1}\" y=\"{:.1}\" font-size=\"{LABEL_FONT}\" font-weight=\"{weight}\" fill=\"{}\" stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\" data-box=\"{:.1} {:.1} {:.1} {:.1}\">{}</text>",
            label.role.class(),
            r.x,
            r.y + LABEL_FONT,
            label.role.color(),
            r.x,
            r.y,
            r.width,
            r.height,
            escape(&label.text)
        );
    }
    let _ = writeln!(
        out,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>",
        plot.x, plot.y, plot.width, plot.height
    );
    let _ = writeln!(out, "</g>");

    let _ = writeln!(out, "<g id=\"legend\">");
    for entry in &chart.legend {
        let Point { x, y } = entry.at;
        let mid = y + 9.0;
        let swatch = match &entry.swatch {
            Swatch::Line(stroke) => format!(
                "<line x1=\"{x}\" x2=\"{}\" y1=\"{mid}\" y2=\"{mid}\" {}/>",
                x + 22.0,
                stroke_attrs(*stroke)
            ),
            Swatch::Fill(color, opacity) => format!(
                "<rect x=\"{x}\" y=\"{}\" width=\"22\" height=\"11\" fill=\"{color}\" fill-opacity=\"{opacity}\" stroke=\"#999\" stroke-width=\"0.5\"/>",
                y + 3.5
            ),
            Swatch::Peak => format!(
                "<circle cx=\"{}\" cy=\"{mid}\" r=\"5\" fill=\"{RED}\"/>",
                x + 11.0
            ),
            Swatch::Oom => format!(
                "<path d=\"M{} {} L{} {} M{} {} L{} {}\" stroke=\"#8b0000\" stroke-width=\"3\"/>",
                x + 5.0, mid - 6.0, x + 17.0, mid + 6.0, x + 5.0, mid + 6.0, x + 17.0, mid - 6.0
            ),
            Swatch::Bar => format!(
                "<line x1=\"{x}\" x2=\"{}\" y1=\"{mid}\" y2=\"{mid}\" stroke=\"#777\" stroke-width=\"3\"/>",
                x + 22.0
            ),
        };
        let _ = writeln!(
            out,
            "<g class=\"legend-entry\"><title>{}</title>{swatch}<text x=\"{}\" y=\"{}\" font-size=\"12\">{}</text></g>",
            escape(&entry.title),
            x + 28.0,
            y + 13.0,
            escape(&entry.text)
        );
    }
    let _ = writeln!(out, "</g>");
    for (y, note) in &chart.notes {
        let _ = writeln!(
            out,
            "<text class=\"note\" x=\"{}\" y=\"{y}\" font-size=\"11\" fill=\"#444\">{}</text>",
            plot.x - 60.0,
            escape(note)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn stroke_attrs(stroke: Stroke) -> String {
    let dash = stroke
        .dash
        .map(|d| format!(" stroke-dasharray=\"{d}\""))
        .unwrap_or_default();
    format!(
        "stroke=\"{}\" stroke-width=\"{}\"{dash} stroke-linejoin=\"round\"",
        stroke.color, stroke.width
    )
}

fn polyline(points: &[Point]) -> String {
    points
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}{:.1} {:.1}", if i == 0 { "M" } else { "L" }, p.x, p.y))
        .collect::<Vec<_>>()
        .join(" ")
}

fn polygon(points: &[Point]) -> String {
    if points.is_empty() {
        return String::new();
    }
    polyline(points) + " Z"
}

/// Text and attribute values from the report (commands are hostile): nothing in them can
/// open or close an element or an attribute.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}
