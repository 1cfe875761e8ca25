//! The comparison as GitHub-flavoured markdown, for a pull request's comment and a job's
//! `$GITHUB_STEP_SUMMARY`. Everything from the reports is escaped: a command line is
//! hostile, and must not become a link, an image, HTML, a heading or a table cell of its own.

use std::fmt::Write as _;

use memfit_core::ByteSize;

use super::{shorten, signed_size, Comparison, Kind, Side, Verdict};

/// Rows of the process tables at most.
const MAX_ROWS: usize = 10;
/// Characters of a command line shown at most.
const MAX_COMMAND: usize = 120;

pub fn render(comparison: &Comparison) -> String {
    let mut out = String::new();
    let title = match comparison.verdict {
        Verdict::Pass => "✅ within the allowance",
        Verdict::Fail => "❌ memory regression",
        Verdict::NoGate => "two runs side by side",
    };
    let kind = match comparison.kind {
        Kind::Run => "run",
        Kind::Bisect => "bisect",
    };
    let _ = writeln!(out, "### memfit compare ({kind}): {title}\n");
    // The verdict is memfit's own words and numbers: nothing in it comes from the reports.
    let _ = writeln!(out, "**{}**\n", comparison.verdict_line());
    let _ = writeln!(out, "| | BASE | NEW | change |\n|---|---:|---:|---:|");
    let (base, new) = (&comparison.base, &comparison.new);
    let _ = writeln!(
        out,
        "| command | {} | {} | {} |",
        escape(&shorten(&base.command, MAX_COMMAND)),
        escape(&shorten(&new.command, MAX_COMMAND)),
        if base.command == new.command {
            "same"
        } else {
            "differs"
        }
    );
    for row in rows(base, new) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            row.name,
            escape(&row.base),
            escape(&row.new),
            escape(&row.change)
        );
    }
    let processes = &comparison.processes;
    let movers: Vec<_> = processes
        .changed
        .iter()
        .filter(|d| d.change_bytes != 0)
        .take(MAX_ROWS)
        .collect();
    if !movers.is_empty() {
        let _ = writeln!(
            out,
            "\n**Processes, biggest movers** (matched by command line)\n\n| change | BASE | NEW | command |\n|---:|---:|---:|---|"
        );
        for delta in movers {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                escape(&signed_size(delta.change_bytes)),
                ByteSize(delta.base_peak_bytes),
                ByteSize(delta.new_peak_bytes),
                escape(&counted(&delta.command, delta.new_count))
            );
        }
    }
    for (heading, list) in [
        ("New processes (only in NEW)", &processes.new),
        ("Gone processes (only in BASE)", &processes.gone),
    ] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n**{heading}**\n\n| peak | command |\n|---:|---|");
        for process in list.iter().take(MAX_ROWS) {
            let _ = writeln!(
                out,
                "| {} | {} |",
                ByteSize(process.peak_bytes),
                escape(&counted(&process.command, process.count))
            );
        }
        if list.len() > MAX_ROWS {
            let _ = writeln!(out, "\n…and {} more", list.len() - MAX_ROWS);
        }
    }
    if !comparison.notes.is_empty() {
        out.push('\n');
        for note in &comparison.notes {
            let _ = writeln!(out, "- {}", escape(note));
        }
    }
    let _ = writeln!(
        out,
        "\n<sub>memfit {} · `memfit compare`</sub>",
        escape(comparison.memfit_version)
    );
    out
}

fn counted(command: &str, count: usize) -> String {
    let command = shorten(command, MAX_COMMAND);
    if count > 1 {
        format!("{count}× {command}")
    } else {
        command
    }
}

/// One line of the side-by-side table.
pub struct Row {
    pub name: &'static str,
    pub base: String,
    pub new: String,
    pub change: String,
}

/// The side-by-side rows every renderer shows, in order.
pub fn rows(base: &Side, new: &Side) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut sizes = |name, b: Option<u64>, n: Option<u64>| {
        if b.is_none() && n.is_none() {
            return;
        }
        let show = |v: Option<u64>| v.map_or("—".to_string(), |v| ByteSize(v).to_string());
        let change = match (b, n) {
            (Some(b), Some(n)) if b == n => "same".to_string(),
            (Some(b), Some(n)) => {
                let delta = n as i64 - b as i64;
                if b > 0 {
                    super::signed_change(delta, Some(100.0 * delta as f64 / b as f64))
                } else {
                    signed_size(delta)
                }
            }
            _ => String::new(),
        };
        rows.push(Row {
            name,
            base: show(b),
            new: show(n),
            change,
        });
    };
    sizes(
        "charged peak",
        base.charged_peak_bytes,
        new.charged_peak_bytes,
    );
    sizes(
        "working peak",
        base.working_peak_bytes,
        new.working_peak_bytes,
    );
    sizes(
        "smallest passing limit",
        base.min_passing_bytes,
        new.min_passing_bytes,
    );
    sizes(
        "recommended limit",
        base.recommended_bytes,
        new.recommended_bytes,
    );
    sizes(
        "unconstrained peak",
        base.unconstrained_peak_bytes,
        new.unconstrained_peak_bytes,
    );
    sizes("limit", base.limit_bytes, new.limit_bytes);
    let seconds = |ms: u64| format!("{:.1} s", ms as f64 / 1000.0);
    let delta_ms = new.duration_ms as i64 - base.duration_ms as i64;
    rows.push(Row {
        name: "duration",
        base: seconds(base.duration_ms),
        new: seconds(new.duration_ms),
        change: format!(
            "{}{:.1} s",
            if delta_ms < 0 { "−" } else { "+" },
            delta_ms.unsigned_abs() as f64 / 1000.0
        ),
    });
    rows.push(Row {
        name: if base.tries.is_some() {
            "OOM-killed tries"
        } else {
            "OOM kills"
        },
        base: base.oom_kills.to_string(),
        new: new.oom_kills.to_string(),
        change: String::new(),
    });
    if let (Some(b), Some(n)) = (&base.band, &new.band) {
        rows.push(Row {
            name: "band",
            base: b.clone(),
            new: n.clone(),
            change: String::new(),
        });
    }
    if let (Some(b), Some(n)) = (base.exit_status, new.exit_status) {
        rows.push(Row {
            name: "exit status",
            base: b.to_string(),
            new: n.to_string(),
            change: String::new(),
        });
    }
    rows
}

/// Text from a report as literal markdown: control characters and line breaks become
/// spaces, `<`, `>` and `&` entities, and every other ASCII punctuation character is
/// backslash-escaped (CommonMark 0.31, "Backslash escapes": any ASCII punctuation may be;
/// GFM tables: `\|` keeps a pipe inside its cell) — so no link, image, emphasis, HTML or
/// cell boundary survives.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            c if c.is_control()
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c) =>
            {
                out.push(' ')
            }
            c if c.is_ascii_punctuation() => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markdown_syntax_in_report_text_is_literal() {
        assert_eq!(
            escape("a|b ![x](y) <i>\n# h"),
            r"a\|b \!\[x\]\(y\) &lt;i&gt; \# h"
        );
    }
}
