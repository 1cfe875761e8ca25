//! `memfit audit` and `memfit fix`: run the audit (memfit-audit) and render it.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context as _, Result};
use memfit_audit::audit::{self, Options, Report};
use memfit_audit::finding::{Finding, Severity};
use memfit_audit::measured::{MeasuredProcess, MeasuredRun};
use memfit_audit::{fix, report};
use memfit_core::{ByteSize, Target, TargetRequest};
use memfit_measure::{RunReport, RUN_SCHEMA};

use crate::args::{AuditArgs, AuditFormat, FailOn, FixArgs, MeasuredArgs, ProjectLimitArgs};
use crate::markdown;
use crate::output;
use crate::report_format::{self, style, Destination, Location};
use crate::EXIT_FINDINGS;

fn options(limits: &ProjectLimitArgs) -> Result<Options> {
    // Checked here so that a mistyped flag is a usage error; the audit resolves the flags
    // again with the project's memfit.toml.
    Target::resolve(&TargetRequest {
        limit: limits.limit,
        platform: limits.platform.as_deref(),
        cpus: None,
        config: None,
    })?;
    Ok(Options {
        limit: limits.limit,
        platform: limits.platform.clone(),
        ..Options::default()
    })
}

/// The `--from` run report, reduced to what the audit reads. The file is untrusted: read at
/// most 64 MiB of a regular file, and a file that is not a run report stops the audit.
fn measured(path: &Path) -> Result<MeasuredRun> {
    let give = "give the file `memfit run --json FILE` wrote";
    let text = crate::plan_cmd::read_bounded(path)?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON: {give}", path.display()))?;
    let not_a_report = || {
        format!(
            "{} is not a memfit run report ({RUN_SCHEMA}): {give}",
            path.display()
        )
    };
    if value.get("schema").and_then(|s| s.as_str()) != Some(RUN_SCHEMA) {
        bail!(not_a_report());
    }
    let report: RunReport = serde_json::from_value(value).with_context(not_a_report)?;
    let file = if path.as_os_str() == "-" {
        "standard input".to_string()
    } else {
        path.display().to_string()
    };
    Ok(MeasuredRun {
        file,
        command: report.command,
        processes: report
            .processes
            .into_iter()
            .map(|p| MeasuredProcess {
                pid: p.pid,
                ppid: p.ppid,
                command: p.command,
                peak_rss_bytes: p.peak_rss_bytes,
                started_ms: p.started_ms,
            })
            .collect(),
    })
}

fn load(dir: &Path, limits: &ProjectLimitArgs, from: &MeasuredArgs) -> Result<Report> {
    let mut options = options(limits)?;
    options.measured = from.from.as_deref().map(measured).transpose()?;
    if !dir.exists() {
        bail!(
            "{} does not exist: give the project's directory, e.g. memfit audit .",
            dir.display()
        );
    }
    audit::run(dir, &options).with_context(|| format!("cannot audit {}", dir.display()))
}

pub fn audit(args: AuditArgs) -> Result<u8> {
    let destination = Destination::Path(args.output.clone().unwrap_or_else(|| "-".into()));
    if let Destination::Path(path) = &destination {
        output::check_writable(path)?;
    }
    let report = load(&args.dir, &args.limits, &args.measured)?;
    let bytes = match args.format {
        AuditFormat::Human => output::human_text(&destination, &human(&report), &paint_human),
        AuditFormat::Json => {
            (serde_json::to_string_pretty(&report::to_json(&report))? + "\n").into_bytes()
        }
        AuditFormat::Sarif => {
            (serde_json::to_string_pretty(&report::to_sarif(&report))? + "\n").into_bytes()
        }
        AuditFormat::Github => github(&report).into_bytes(),
        AuditFormat::Markdown => markdown::audit(&report).into_bytes(),
    };
    output::write_report(&destination, &bytes)?;
    let threshold = match args.fail_on {
        FailOn::Error => Some(Severity::Error),
        FailOn::Warning => Some(Severity::Warning),
        FailOn::Info => Some(Severity::Info),
        FailOn::None => None,
    };
    let failing = threshold.is_some_and(|t| report.findings.iter().any(|f| f.severity >= t));
    Ok(if failing { EXIT_FINDINGS } else { 0 })
}

pub fn fix(args: FixArgs) -> Result<u8> {
    let report = load(&args.dir, &args.limits, &args.measured)?;
    let plan = fix::plan(&report);
    let changes = &plan.changes;
    let fixable = report.findings.iter().filter(|f| f.fixable()).count();
    // The diff is shown first; a reader that went away or a full disk does not stop the
    // fixes (its error is returned once they are written).
    let printed = changes
        .iter()
        .try_for_each(|change| output::print(&change.diff()));
    for why in &plan.refused {
        output::eprint(&format!("memfit fix: {why}\n"));
    }
    if !args.dry_run {
        // All files or none: on an error nothing was changed.
        fix::apply(&args.dir, changes).map_err(|e| match e {
            memfit_sys::safe_write::WriteError::Io { .. } => anyhow::anyhow!(
                "{e}; no file was changed: make it writable (lsattr shows an immutable one) and run memfit fix again"
            ),
            _ => anyhow::anyhow!("{e}; no file was changed"),
        })?;
    }
    let manual = report.findings.len() - fixable;
    let verb = if args.dry_run {
        "would change"
    } else {
        "changed"
    };
    if !args.quiet {
        output::eprint(&format!(
        "memfit fix: {verb} {} file(s) for {fixable} finding(s); {manual} finding(s) need a change by hand (memfit audit shows them)",
        changes.len()
    ));
    }
    printed?;
    Ok(0)
}

/// GitHub workflow annotations: one per finding, `error`, `warning` or `notice` by severity.
fn github(report: &Report) -> String {
    let mut out = String::new();
    for finding in &report.findings {
        let (line, column, end_line, end_column) = report::position(report, finding);
        let file = report.project.file(finding.file).source.display();
        let level = match finding.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        let message = match &finding.fix {
            Some(fix) => format!("{} Fix: {}", finding.message, fix.description),
            None => finding.message.clone(),
        };
        let at = Location {
            file: &file,
            line,
            column,
            end_line,
            end_column,
        };
        out += &report_format::github_annotation(level, &at, finding.rule, &message);
    }
    out
}

/// Colour of the human form: the severity of each finding's first line, the result line.
fn paint_human(line: &str) -> Option<(std::ops::Range<usize>, anstyle::Style)> {
    if let Some(rest) = line.strip_prefix("  result    ") {
        let style = if rest.starts_with("0 error(s), 0 warning(s)") {
            style::GOOD
        } else if rest.starts_with("0 error(s)") {
            style::WARN
        } else {
            style::BAD
        };
        return Some((2..line.len(), style));
    }
    if line.starts_with(' ') {
        return None;
    }
    [
        (": error[", style::BAD),
        (": warning[", style::WARN),
        (": info[", style::NOTE),
    ]
    .into_iter()
    .find_map(|(token, style)| {
        let at = line.find(token)? + 2;
        let end = at + line[at..].find(']')? + 1;
        Some((at..end, style))
    })
}

fn frame(out: &mut String, report: &Report, finding: &Finding) {
    let source = &report.project.file(finding.file).source;
    let (line, column, end_line, end_column) = report::position(report, finding);
    let _ = writeln!(
        out,
        "{}:{line}:{column}: {}[{}] {}",
        source.display(),
        finding.severity.as_str(),
        finding.rule,
        finding.message
    );
    if !source.text.is_empty() {
        let width = end_line.max(line).to_string().len();
        let _ = writeln!(out, "{:width$} |", "");
        // At most three lines of the span.
        for l in line..=end_line.min(line + 2) {
            let span = source.line_span(l);
            let text = &source.text[span.start..span.end];
            let chars = text.chars().count();
            let (from, to) = match (l == line, l == end_line) {
                (true, true) => (column, end_column.max(column + 1)),
                (true, false) => (column, chars + 1),
                (false, true) => (1, end_column),
                (false, false) => (1, chars + 1),
            };
            // A bounded excerpt around the mark: a minified line is not printed whole.
            let (text, from, to) = report::excerpt(text, from, to);
            let _ = writeln!(out, "{l:>width$} | {}", text.replace('\t', "    "));
            if to > from {
                let _ = writeln!(
                    out,
                    "{:width$} | {}{}",
                    "",
                    " ".repeat(from - 1),
                    "^".repeat(to - from)
                );
            }
        }
        if end_line > line + 2 {
            let _ = writeln!(out, "{:width$} | …", "");
        }
    }
    if let Some(fix) = &finding.fix {
        let label = if fix.edits.is_empty() {
            "help"
        } else {
            "fix (memfit fix)"
        };
        let _ = writeln!(out, "  = {label}: {}", fix.description);
    }
    let _ = writeln!(out);
}

fn human(report: &Report) -> String {
    let mut out = String::new();
    for finding in &report.findings {
        frame(&mut out, report, finding);
    }
    let r = &report.runtime;
    let _ = writeln!(out, "memfit audit: {}", report.project.root.display());
    let limit = match &report.limit {
        Some(l) => format!("{} ({})", ByteSize(l.bytes), l.description),
        None => "unknown".to_string(),
    };
    let _ = writeln!(out, "  limit     {limit}");
    if let Some(v) = &r.node_version {
        let _ = writeln!(
            out,
            "  node      {v} ({})",
            r.node_version_source.as_deref().unwrap_or_default()
        );
    }
    if !r.start.is_empty() {
        let chain: Vec<String> = r
            .start
            .iter()
            .map(|step| format!("{}  [{}]", step.command, step.place))
            .collect();
        let _ = writeln!(out, "  start     {}", chain.join("\n         → "));
    }
    match r.heap.split_first() {
        Some((winner, rest)) => {
            let _ = writeln!(out, "  heap      {}  [{}] wins", winner.flags, winner.place);
            for overridden in rest {
                let _ = writeln!(
                    out,
                    "            {}  [{}] overridden",
                    overridden.flags, overridden.place
                );
            }
        }
        None if r.is_node => {
            let _ = writeln!(
                out,
                "  heap      no cap set anywhere (Node's default applies)"
            );
        }
        None => {}
    }
    if let Some(workers) = &r.workers {
        let _ = writeln!(out, "  workers   {} ({})", workers.count, workers.place);
    }
    if let Some(run) = &report.from_run {
        let _ = writeln!(out, "  measured  {} (`{}`)", run.file, run.command);
        for s in &run.servers {
            let app = s
                .app
                .as_deref()
                .map(|a| format!(" {a}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "            {}{app}: {} worker(s) at {} peak RSS each, master {}",
                s.server.as_str(),
                s.worker_peaks.len(),
                s.worker_range(),
                ByteSize(s.master_peak_bytes)
            );
        }
        if run.servers_omitted > 0 {
            let _ = writeln!(out, "            … and {} more", run.servers_omitted);
        }
    }
    for note in &report.notes {
        let _ = writeln!(out, "  note      {note}");
    }
    let (errors, warnings, infos) = report::counts(report);
    let fixable = report.findings.iter().filter(|f| f.fixable()).count();
    let _ = writeln!(
        out,
        "  result    {errors} error(s), {warnings} warning(s), {infos} info · {fixable} fixable with `memfit fix` · {} suppressed · {} files read",
        report.suppressed,
        report.project.files.len()
    );
    out
}
