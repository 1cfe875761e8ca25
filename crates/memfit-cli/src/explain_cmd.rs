//! `memfit explain`: read a log (file or stdin), render the explanation as text or JSON.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, IsTerminal};

use anyhow::{bail, Context, Result};
use memfit_core::ByteSize;
use memfit_explain::{Explanation, HeapCeiling, SubReason, Verdict};

use crate::args::{ExplainArgs, ExplainFormat};
use crate::markdown;
use crate::output;
use crate::report_format::{style, Destination};

pub fn execute(args: ExplainArgs) -> Result<u8> {
    let format = match (args.json, args.format) {
        (false, format) => format,
        (true, ExplainFormat::Human | ExplainFormat::Json) => ExplainFormat::Json,
        (true, _) => bail!("--json is --format json: give one of them"),
    };
    let destination = Destination::Path(args.output.clone().unwrap_or_else(|| "-".into()));
    if let Destination::Path(path) = &destination {
        output::check_writable(path)?;
    }
    let (explanation, name) = match (&args.log, args.exit_code) {
        (Some(path), code) if path.as_os_str() == "-" => {
            (memfit_explain::explain(io::stdin().lock(), code)?, "standard input".to_string())
        }
        (Some(path), code) => {
            let file = File::open(path).with_context(|| {
                format!("cannot read {}; give a readable log file, or - for standard input", path.display())
            })?;
            if file.metadata().is_ok_and(|m| m.is_dir()) {
                bail!("{} is a directory; give a log file, or - for standard input", path.display());
            }
            let explanation = memfit_explain::explain(file, code)
                .with_context(|| format!("cannot read {}", path.display()))?;
            (explanation, path.display().to_string())
        }
        (None, Some(code)) => (memfit_explain::explain_exit_code(code), format!("exit status {code}")),
        (None, None) if !io::stdin().is_terminal() => {
            (memfit_explain::explain(io::stdin().lock(), None)?, "standard input".to_string())
        }
        (None, None) => bail!(
            "nothing to explain; give a log file (memfit explain build.log), - for standard input, or --exit-code N"
        ),
    };
    let bytes = match format {
        ExplainFormat::Json => {
            format!("{}\n", serde_json::to_string_pretty(&explanation)?).into_bytes()
        }
        ExplainFormat::Markdown => markdown::explain(&explanation, &name).into_bytes(),
        ExplainFormat::Human => {
            let rules = [
                ("  verdict    OUT OF MEMORY", style::BAD),
                ("  verdict    NOT MEMORY", style::NOTE),
                ("  verdict    UNCERTAIN", style::WARN),
            ];
            let painter = output::paint_after(&rules);
            output::human_text(&destination, &render(&explanation, &name), &painter)
        }
    };
    output::write_report(&destination, &bytes)?;
    Ok(0)
}

/// The explanation for a terminal.
pub fn render(e: &Explanation, name: &str) -> String {
    let mut out = String::new();
    let lines = match e.lines_read {
        0 => String::new(),
        1 => " (1 line)".to_string(),
        n => format!(" ({n} lines)"),
    };
    let _ = writeln!(out, "memfit explain: {name}{lines}");
    let verdict = match e.verdict {
        Verdict::Oom => format!("OUT OF MEMORY — {}", e.kind),
        Verdict::NotOom => format!(
            "NOT MEMORY — {}",
            e.sub_reason.map_or("not-oom", SubReason::as_str)
        ),
        Verdict::Uncertain => format!("UNCERTAIN — possibly {}", e.kind),
    };
    let _ = writeln!(
        out,
        "  verdict    {verdict} (confidence {:.2})",
        e.confidence
    );
    let _ = writeln!(out, "  meaning    {}", e.meaning);
    let mut facts = Vec::new();
    if let Some(p) = &e.process {
        facts.push(format!("process {p}"));
    }
    if let Some(pid) = e.pid {
        facts.push(format!("pid {pid}"));
    }
    if let Some(limit) = e.limit_bytes {
        facts.push(format!("limit {}", ByteSize(limit)));
    }
    if let Some(rss) = e.anon_rss_bytes {
        facts.push(format!("anon-rss {} at the kill", ByteSize(rss)));
    }
    if let Some(code) = e.exit_code {
        facts.push(format!("exit status {code}"));
    }
    if let Some(v) = &e.runtime_version {
        facts.push(v.clone());
    }
    if let Some(v) = &e.node_version {
        facts.push(format!("node {v}"));
    }
    if !facts.is_empty() {
        let _ = writeln!(out, "  facts      {}", facts.join(" · "));
    }
    if let Some(heap) = e.heap_at_death_mb {
        let _ = writeln!(
            out,
            "  heap       V8 died at {heap:.0} MB ({})",
            e.heap_ceiling.unwrap_or(HeapCeiling::V8Default)
        );
    }
    if let Some(step) = &e.step {
        let _ = writeln!(out, "  step       {step}");
    }
    if let Some(running) = e.running.as_ref().filter(|r| e.step.as_ref() != Some(*r)) {
        let _ = writeln!(out, "  running    {running} (when it died)");
    }
    if !e.evidence.is_empty() {
        let _ = writeln!(out, "  evidence");
        for ev in &e.evidence {
            let line = if ev.line == 0 {
                "given".to_string()
            } else {
                ev.line.to_string()
            };
            let _ = writeln!(out, "    {line:>6}  {}", ev.text.trim());
        }
    }
    if !e.decide_with.is_empty() {
        let _ = writeln!(out, "  to decide");
        for d in &e.decide_with {
            let _ = writeln!(out, "    - {d}");
        }
    }
    if !e.remedies.is_empty() {
        let _ = writeln!(out, "  what to do");
        for (i, r) in e.remedies.iter().enumerate() {
            let _ = writeln!(out, "    {}. {}", i + 1, r.title);
            for c in &r.commands {
                let _ = writeln!(out, "       $ {c}");
            }
            if !r.note.is_empty() {
                let _ = writeln!(out, "       {}", r.note);
            }
        }
    }
    out
}
