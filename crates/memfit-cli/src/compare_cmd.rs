//! `memfit compare`: two reports side by side, the CI gate, and `run --baseline`'s half of it.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use memfit_core::ByteSize;
use memfit_measure::compare::{
    self, markdown, shorten, signed_size, Allowance, Comparison, LoadError, Report, Verdict,
};
use memfit_measure::RunReport;
use memfit_sys::safe_write;

use crate::args::{CompareArgs, CompareFormat};
use crate::output;
use crate::EXIT_FINDINGS;

/// The most a report file is read. memfit's choice, as `plan --from`'s: 64 MiB, far above any
/// report (a few hundred bytes per process of a run); a FIFO or /dev/zero never ends.
const MAX_REPORT_BYTES: u64 = 64 * 1024 * 1024;
/// Processes listed per table in the terminal.
const MAX_ROWS: usize = 8;

pub fn execute(args: CompareArgs) -> Result<u8> {
    for path in std::iter::once(&args.output).chain(&args.html) {
        output::check_writable(path)?;
    }
    let base = load(&args.base, "BASE")?;
    let new = load(&args.new, "NEW")?;
    let comparison = compare::compare(&base, &new, args.max_increase)?;
    let text = match args.format {
        CompareFormat::Human => human(&comparison),
        CompareFormat::Json => serde_json::to_string_pretty(&comparison)? + "\n",
        CompareFormat::Markdown => markdown::render(&comparison),
        CompareFormat::Html => compare::html::render(&comparison, &base, &new),
    };
    if safe_write::is_stdout(&args.output) {
        if args.quiet {
            // The verdict is the exit status.
        } else if args.format == CompareFormat::Human {
            output::print(&text)?;
        } else {
            output::print_raw(text.as_bytes())?;
        }
    } else {
        output::write_atomically(&args.output, text.as_bytes())?;
    }
    if let Some(path) = &args.html {
        let page = compare::html::render(&comparison, &base, &new);
        output::write_atomically(path, page.as_bytes())?;
    }
    Ok(if comparison.verdict == Verdict::Fail {
        EXIT_FINDINGS
    } else {
        0
    })
}

/// Reads a run or bisect report; `which` (BASE, NEW, --baseline) names it in errors.
pub fn load(path: &Path, which: &str) -> Result<Report> {
    let give = "give the file `memfit run --json FILE` or `memfit bisect --json FILE` wrote";
    let shown = path.display();
    let file = File::open(path).with_context(|| format!("cannot read {which} {shown}: {give}"))?;
    let metadata = file
        .metadata()
        .with_context(|| format!("cannot read {which} {shown}: {give}"))?;
    if !metadata.is_file() {
        bail!("{which} {shown} is not a regular file: {give}");
    }
    let mut bytes = Vec::new();
    file.take(MAX_REPORT_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {which} {shown}: {give}"))?;
    if bytes.len() as u64 > MAX_REPORT_BYTES {
        bail!("{which} {shown} is larger than 64 MiB, more than any memfit report: {give}");
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("{which} {shown} is not UTF-8 JSON: {give}"))?;
    compare::parse_report(&text).map_err(|error| match error {
        LoadError::Newer { .. } => anyhow::anyhow!("{which} {shown}: {error}"),
        _ => anyhow::anyhow!("{which} {shown} cannot be compared: {error}; {give}"),
    })
}

/// `run --baseline FILE`: a run report, read before the command runs.
pub fn load_baseline(path: &Path) -> Result<RunReport> {
    match load(path, "--baseline")? {
        Report::Run(report) => Ok(*report),
        Report::Bisect(_) => bail!(
            "--baseline {} is a bisect report: give the file an earlier `memfit run --json FILE` wrote",
            path.display()
        ),
    }
}

/// `run --baseline`: the run just made against the baseline.
pub fn against_baseline(
    baseline: RunReport,
    report: &RunReport,
    max_increase: Option<Allowance>,
) -> Result<Comparison> {
    let base = Report::Run(Box::new(baseline));
    let new = Report::Run(Box::new(report.clone()));
    Ok(compare::compare(&base, &new, max_increase)?)
}

/// The comparison for a terminal.
pub fn human(comparison: &Comparison) -> String {
    let mut out = String::new();
    let (base, new) = (&comparison.base, &comparison.new);
    let _ = writeln!(
        out,
        "\nmemfit compare: BASE `{}`",
        shorten(&base.command, 90)
    );
    if new.command != base.command {
        let _ = writeln!(out, "                NEW  `{}`", shorten(&new.command, 90));
    } else {
        let _ = writeln!(out, "                NEW  the same command");
    }
    let _ = writeln!(out, "  {:<24} {:>12} {:>12}  change", "", "BASE", "NEW");
    for row in markdown::rows(base, new) {
        let line = format!(
            "  {:<24} {:>12} {:>12}  {}",
            row.name,
            shorten(&row.base, 40),
            shorten(&row.new, 40),
            row.change
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let processes = &comparison.processes;
    let movers: Vec<_> = processes
        .changed
        .iter()
        .filter(|d| d.change_bytes != 0)
        .take(MAX_ROWS)
        .collect();
    if !movers.is_empty() {
        let _ = writeln!(out, "  biggest movers (processes matched by command line):");
        for delta in movers {
            let _ = writeln!(
                out,
                "    {:>11}  {:>10} → {:<10}  {}",
                signed_size(delta.change_bytes),
                ByteSize(delta.base_peak_bytes).to_string(),
                ByteSize(delta.new_peak_bytes).to_string(),
                shorten(&delta.command, 70)
            );
        }
    }
    for (label, list) in [("new", &processes.new), ("gone", &processes.gone)] {
        for process in list.iter().take(MAX_ROWS) {
            let _ = writeln!(
                out,
                "    {label:>11}  {:>10}  {}{}",
                ByteSize(process.peak_bytes).to_string(),
                if process.count > 1 {
                    format!("{}× ", process.count)
                } else {
                    String::new()
                },
                shorten(&process.command, 70)
            );
        }
        if list.len() > MAX_ROWS {
            let _ = writeln!(out, "    {label:>11}  …and {} more", list.len() - MAX_ROWS);
        }
    }
    for note in &comparison.notes {
        let _ = writeln!(out, "  note      {note}");
    }
    let label = match comparison.verdict {
        Verdict::NoGate => "change",
        _ => "gate",
    };
    let _ = writeln!(out, "  {label:<9} {}", comparison.verdict_line());
    out
}
