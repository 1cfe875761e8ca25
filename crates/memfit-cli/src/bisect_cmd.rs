//! `memfit bisect`: progress on stderr (a bar on a terminal, lines otherwise), the band and
//! the recommendation at the end, and the JSON result.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use memfit_core::ByteSize;
use memfit_measure::{
    BisectError, BisectObserver, BisectOptions, BisectReport, Precision, RunOptions, SignalWatcher,
    Stdio, TryRecord, SWAP_THAT_COUNTS,
};

use crate::args::BisectArgs;
use crate::fidelity;
use crate::markdown;
use crate::output;
use crate::report_format::{self, style, Destination, Format};
use crate::run_cmd;
use crate::{EXIT_FINDINGS, EXIT_USAGE};

pub fn execute(args: BisectArgs) -> Result<u8> {
    let precision: Precision = args
        .precision
        .parse()
        .map_err(|e: String| anyhow::anyhow!(e))?;
    let aliases: Vec<(Format, std::path::PathBuf)> = args
        .json
        .iter()
        .map(|p| (Format::Json, p.clone()))
        .collect();
    let reports = report_format::destinations(
        "bisect",
        &args.format,
        args.output.as_deref(),
        &aliases,
        &[Format::Human, Format::Json, Format::Markdown],
        Format::Human,
        Destination::Stderr,
    )
    .map_err(anyhow::Error::msg)?;
    output::check_reports(&reports)?;
    let fidelity = fidelity::resolve(&args.fidelity, None)?;
    let options = BisectOptions {
        run: RunOptions {
            command: args.command.clone(),
            limit: None,
            swap: args.swap.bytes(),
            cpu_quota: fidelity.cpu_quota,
            cpuset: fidelity.cpuset,
            pid: fidelity.pid,
            init_program: fidelity.init_program,
            environment: fidelity.environment,
            interval: None,
            measure_only: false,
            host_view: false,
            stdio: if args.show_output {
                Stdio::Inherit
            } else {
                Stdio::Null
            },
            platform: None,
            caveats: fidelity.caveats,
            // bisect asks pass or fail of each limit: nothing is injected into the command.
            runtime_view: false,
            dockerfiles: crate::build_steps::reader(),
            python_tracemalloc: false,
        },
        lo: args.lo.map(|s| s.bytes()),
        hi: args.hi.map(|s| s.bytes()),
        precision,
        repeat: args.repeat,
        setup: args.setup.clone(),
    };
    output::say_swept(&memfit_measure::sweep_stale_cgroups());
    let signals = SignalWatcher::install()?;
    let mut progress = Progress::new(
        !args.show_output && std::io::stderr().is_terminal(),
        args.quiet,
    );
    let result = memfit_measure::bisect(&options, &signals, &mut progress);
    progress.finish();
    let report = match result {
        Ok(report) => report,
        Err(error) => {
            output::eprint(&format!("memfit: {error}\n"));
            return Ok(match &error {
                BisectError::FailsUnconstrained(_)
                | BisectError::FailsAtUpperBound(_)
                | BisectError::UnreliableAtUpperBound(_) => EXIT_FINDINGS,
                BisectError::Run(run_error) => run_cmd::start_failure_status(run_error),
                _ => EXIT_USAGE,
            });
        }
    };
    // As for `run`: the summary is printed whatever happens to the report file, and an
    // interruption keeps its status.
    let mut report_errors = Vec::new();
    for (format, destination) in &reports {
        if args.quiet && *destination == Destination::Stderr {
            continue;
        }
        let bytes = match format {
            Format::Json => serde_json::to_vec_pretty(&report)?,
            Format::Markdown => markdown::bisect(&report).into_bytes(),
            _ => {
                let rules = [
                    ("  recommended  ", style::GOOD),
                    ("  INTERRUPTED", style::WARN),
                ];
                let painter = output::paint_after(&rules);
                output::human_text(destination, &summary(&report), &painter)
            }
        };
        report_errors.extend(
            output::write_report(destination, &bytes)
                .err()
                // A standard output its reader closed ends quietly, as any output does.
                .filter(|e| !output::is_closed_stdout(e)),
        );
    }
    for error in &report_errors {
        output::eprint(&format!("memfit: error: {error:#}\n"));
    }
    let report_error = report_errors.first();
    Ok(if report.interrupted {
        130
    } else if report_error.is_some() {
        EXIT_USAGE
    } else {
        0
    })
}

fn summary(report: &BisectReport) -> String {
    let mut out = format!("\nmemfit bisect: {}\n", report.command.join(" "));
    out += &format!(
        "  mode         {}, {} CPU(s) visible, precision {}\n",
        report.mode.as_str(),
        report.cpus,
        ByteSize(report.precision_bytes)
    );
    out += &format!(
        "  unconstrained charged peak {}\n",
        ByteSize(report.unconstrained_peak_bytes)
    );
    if report.interrupted_during_setup {
        out += "  INTERRUPTED during --setup (the try's command was not started): the band below is what was learnt before the stop\n";
    } else if report.interrupted {
        out += "  INTERRUPTED: the band below is what was learnt before the stop; a try cut short is not counted\n";
    }
    if report.band.is_empty() {
        out += "  band         nothing learnt yet\n";
    } else {
        out += &format!("  band         {}\n", report.band);
    }
    if let Some(recommended) = report.recommended_bytes {
        out += &format!(
            "  recommended  {} (the smallest passing limit + 20% headroom)\n",
            ByteSize(recommended)
        );
        if !report.fitting_plans.is_empty() {
            out += &format!("  plans        {}\n", report.fitting_plans.join(", "));
        }
    }
    let total_ms: u64 = report.tries.iter().map(|t| t.duration_ms).sum();
    out += &format!(
        "  tries        {} ({:.1} s of runs)\n",
        report.tries.len(),
        total_ms as f64 / 1000.0
    );
    for caveat in &report.caveats {
        out += &format!("  note         {caveat}\n");
    }
    out
}

fn describe_try(record: &TryRecord) -> String {
    let limit = record
        .limit_bytes
        .map_or("no limit".to_string(), |l| ByteSize(l).to_string());
    let outcome = if record.interrupted {
        "interrupted, not counted".to_string()
    } else if record.passed && record.swap_used_bytes >= SWAP_THAT_COUNTS {
        format!(
            "pass only with {} of swap",
            ByteSize(record.swap_used_bytes)
        )
    } else if record.passed {
        "pass".to_string()
    } else if record.oom_killed == Some(true) {
        "FAIL (OOM-killed)".to_string()
    } else {
        format!("FAIL (exit {})", record.exit_status)
    };
    format!(
        "{limit:>10} → {outcome}, peak {}, {:.1} s",
        ByteSize(record.peak_charged_bytes),
        record.duration_ms as f64 / 1000.0
    )
}

/// A progress bar with ETA on a terminal; plain lines otherwise (CI logs).
struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    index: usize,
    total: usize,
}

impl Progress {
    fn new(terminal: bool, quiet: bool) -> Progress {
        let bar = (terminal && !quiet).then(|| {
            let bar = ProgressBar::new(1);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} try {pos}/{len} [{bar:30}] {msg} (ETA {eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            bar,
            quiet,
            index: 0,
            total: 0,
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// One line about the current try.
    fn say(&self, what: String) {
        let line = format!("try {}/~{}: {what}", self.index, self.total);
        match &self.bar {
            Some(bar) => {
                bar.println(memfit_core::text::escape_control(&line));
                bar.set_position(self.index as u64);
            }
            None if self.quiet => {}
            None => output::eprint(&format!("memfit: {line}\n")),
        }
    }
}

impl BisectObserver for Progress {
    fn try_started(&mut self, index: usize, estimated_total: usize, limit: Option<u64>) {
        self.index = index;
        self.total = estimated_total;
        if let Some(bar) = &self.bar {
            bar.set_length(estimated_total as u64);
            bar.set_position(index as u64 - 1);
            bar.set_message(limit.map_or("unconstrained run".to_string(), |l| {
                format!("limit {}", ByteSize(l))
            }));
        }
    }

    fn try_finished(&mut self, record: &TryRecord) {
        self.say(describe_try(record));
    }

    fn stopped_during_setup(&mut self) {
        self.say("interrupted during --setup; the command was not started".to_string());
    }
}
