//! `memfit run`: resolve the options, run, render the summary and the report files.

use std::fmt::Write as _;

use anyhow::{bail, Result};
use memfit_core::{ByteSize, Target, TargetRequest};
use memfit_measure::{
    html, svg, ContainerKind, PeakSource, PidMode, RunError, RunOptions, RunReport, SignalWatcher,
    SpawnError, Stdio,
};

use crate::args::{LimitArgs, RunArgs};
use crate::build_steps;
use crate::compare_cmd;
use crate::fidelity;
use crate::markdown;
use crate::output;
use crate::report_format::{self, style, Destination, Format};
use crate::{EXIT_FINDINGS, EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, EXIT_USAGE};

/// The target that `--limit`/`--platform`/`--cpus` resolve to; `None` without a limit.
pub fn resolve_target(args: &LimitArgs) -> Result<Option<Target>> {
    let target = Target::resolve(&TargetRequest {
        limit: args.limit,
        platform: args.platform.as_deref(),
        cpus: args.fidelity.cpus,
        config: None,
    })?;
    Ok(target)
}

pub fn print_platforms() -> Result<()> {
    let mut out = format!(
        "{:<30} {:>10} {:>6}  source / note\n",
        "platform", "memory", "vCPU"
    );
    for plan in memfit_core::PLATFORMS {
        let cpus = plan.cpus.map_or("-".to_string(), |c| format!("{c}"));
        let _ = writeln!(
            out,
            "{:<30} {:>10} {:>6}  {}",
            plan.name,
            plan.memory.to_string(),
            cpus,
            plan.source
        );
        if !plan.note.is_empty() {
            let _ = writeln!(out, "{:<49}  note: {}", "", plan.note);
        }
    }
    Ok(output::print(&out)?)
}

/// Swap is allowed beyond a limit, as `docker run --memory-swap` allows it: without a limit
/// there is nothing to add it to, and limit + swap must stay a size the kernel can hold.
fn check_swap(target: Option<&Target>, swap: ByteSize) -> Result<()> {
    if swap.bytes() == 0 {
        return Ok(());
    }
    let Some(target) = target else {
        bail!("--swap {swap} needs a limit to add to: give --limit SIZE or --platform NAME too, e.g. --limit 512M --swap {swap}");
    };
    let total = target.memory.bytes().checked_add(swap.bytes());
    if total.is_none_or(|t| t >= memfit_core::MAX_SIZE.bytes()) {
        bail!(
            "--swap {swap} on top of the {} limit makes 4 EiB or more, beyond what the kernel can hold; use a smaller --swap",
            target.memory
        );
    }
    Ok(())
}

pub fn execute(args: RunArgs) -> Result<u8> {
    if args.limits.platform.as_deref() == Some("list") {
        print_platforms()?;
        return Ok(0);
    }
    if args.command.is_empty() {
        bail!("no command given; put it after `--`, e.g. memfit run --limit 512M -- npm run build");
    }
    if args.python_tracemalloc && args.no_runtime_view {
        bail!("--python-tracemalloc reports through the runtime view, which --no-runtime-view turns off; drop one of the two");
    }
    let target = resolve_target(&args.limits)?;
    check_swap(target.as_ref(), args.limits.swap)?;
    let fidelity = fidelity::resolve(&args.limits.fidelity, target.as_ref())?;
    let reports = reports(&args)?;
    output::check_reports(&reports)?;
    // Read before the command runs: a ten-minute build should not end in "cannot read".
    let baseline = args
        .baseline
        .as_deref()
        .map(compare_cmd::load_baseline)
        .transpose()?;
    if !args.limits.measure_only {
        output::say_swept(&memfit_measure::sweep_stale_cgroups());
    }
    let signals = SignalWatcher::install()?;
    let options = RunOptions {
        command: args.command.clone(),
        limit: target.as_ref().map(|t| t.memory.bytes()),
        swap: args.limits.swap.bytes(),
        cpu_quota: fidelity.cpu_quota,
        cpuset: fidelity.cpuset,
        pid: fidelity.pid,
        init_program: fidelity.init_program,
        environment: fidelity.environment,
        interval: args.interval,
        measure_only: args.limits.measure_only,
        host_view: args.limits.host_view,
        stdio: Stdio::Inherit,
        platform: target
            .as_ref()
            .and_then(Target::platform_name)
            .map(str::to_string),
        caveats: target
            .map(|t| t.caveats)
            .unwrap_or_default()
            .into_iter()
            .chain(fidelity.caveats)
            .collect(),
        runtime_view: !args.no_runtime_view,
        dockerfiles: build_steps::reader(),
        python_tracemalloc: args.python_tracemalloc,
    };
    let mut report = match memfit_measure::run(&options, &signals) {
        Ok(report) => report,
        Err(error) => {
            output::eprint(&format!("memfit: error: {error}\n"));
            return Ok(start_failure_status(&error));
        }
    };

    build_steps::locate(&mut report, &args.command);
    // Every report is attempted; a failure is said after the summary, and never hides the
    // command's status (an OOM kill must still read 137).
    let mut report_errors = Vec::new();
    let over_budget = args
        .budget
        .filter(|budget| report.peak.charged_bytes > budget.bytes());
    let comparison = baseline
        .map(|base| compare_cmd::against_baseline(base, &report, args.max_increase))
        .transpose()?;
    let regressed = comparison
        .as_ref()
        .is_some_and(|c| c.verdict == memfit_measure::compare::Verdict::Fail);
    for (format, destination) in &reports {
        if args.quiet && *destination == Destination::Stderr {
            continue;
        }
        let bytes = match format {
            Format::Json => serde_json::to_vec_pretty(&report)?,
            Format::Svg => svg::render(&report).into_bytes(),
            Format::Html => html::render(&report).into_bytes(),
            Format::Markdown => {
                markdown::run(&report, args.budget.map(|b| (b, over_budget.is_some()))).into_bytes()
            }
            _ => {
                let mut text = summary(&report);
                if let Some(budget) = over_budget {
                    let _ = writeln!(
                        text,
                        "  budget    EXCEEDED: peak {} > budget {}",
                        ByteSize(report.peak.charged_bytes),
                        budget
                    );
                } else if let Some(budget) = args.budget {
                    let _ = writeln!(
                        text,
                        "  budget    ok: peak {} ≤ budget {}",
                        ByteSize(report.peak.charged_bytes),
                        budget
                    );
                }
                if let Some(comparison) = &comparison {
                    text.push_str(&compare_cmd::human(comparison));
                }
                let verdict = if report.oom_killed == Some(true) || report.exit.status != 0 {
                    style::BAD
                } else {
                    style::GOOD
                };
                let rules = [
                    ("  verdict   ", verdict),
                    ("  OOM       OOM-KILLED", style::BAD),
                    ("  budget    EXCEEDED", style::BAD),
                    ("  budget    ok", style::GOOD),
                    ("  !! MEASURE-ONLY", style::WARN),
                ];
                let text = output::human_text(destination, &text, &output::paint_after(&rules));
                text
            }
        };
        report_errors.extend(output::write_report(destination, &bytes).err());
    }
    // A report sent to a standard output its reader closed ends quietly, as any output does.
    report_errors.retain(|e| !output::is_closed_stdout(e));
    for error in &report_errors {
        output::eprint(&format!("memfit: error: {error:#}\n"));
    }
    let status = report.exit.status;
    Ok(if status != 0 {
        status.clamp(1, 255) as u8
    } else if !report_errors.is_empty() {
        EXIT_USAGE
    } else if over_budget.is_some() || regressed {
        EXIT_FINDINGS
    } else {
        0
    })
}

/// The reports `--format`, `-o` and the aliases ask for; the human summary on stderr unless
/// it is sent elsewhere.
fn reports(args: &RunArgs) -> Result<Vec<(Format, Destination)>> {
    let aliases: Vec<(Format, std::path::PathBuf)> = [
        (Format::Json, &args.json),
        (Format::Svg, &args.svg),
        (Format::Html, &args.html),
    ]
    .into_iter()
    .filter_map(|(f, p)| p.clone().map(|p| (f, p)))
    .collect();
    report_format::destinations(
        "run",
        &args.format,
        args.output.as_deref(),
        &aliases,
        &[
            Format::Human,
            Format::Json,
            Format::Markdown,
            Format::Svg,
            Format::Html,
        ],
        Format::Human,
        Destination::Stderr,
    )
    .map_err(anyhow::Error::msg)
}

/// A command that could not be started exits as `env`, `timeout` and the shell say: 127 when
/// it is not found, 126 when it is found but cannot be executed (POSIX env, EXIT STATUS:
/// https://pubs.opengroup.org/onlinepubs/009696899/utilities/env.html; bash:
/// https://www.gnu.org/software/bash/manual/html_node/Exit-Status.html). 2 is memfit's own
/// errors, and a command's own 2 must not be mistaken for them.
pub fn start_failure_status(error: &RunError) -> u8 {
    match error {
        RunError::Spawn(SpawnError::CommandNotFound(_)) => EXIT_NOT_FOUND,
        RunError::Spawn(SpawnError::NotExecutable(_)) => EXIT_NOT_EXECUTABLE,
        _ => EXIT_USAGE,
    }
}

/// The terminal summary printed to stderr when the command ends.
pub fn summary(report: &RunReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\nmemfit: {}", report.command.join(" "));
    let limit = match (report.limit_bytes, report.limit_enforced) {
        (Some(l), true) => format!("limit {}", ByteSize(l)),
        (Some(l), false) => format!("limit {} NOT ENFORCED", ByteSize(l)),
        (None, _) => "no limit".to_string(),
    };
    let platform = report
        .platform
        .as_ref()
        .map(|p| format!(" ({p})"))
        .unwrap_or_default();
    let cpus = match report.cpu_quota {
        Some(quota) => format!(
            "{quota} CPU(s) of time, {} of {} CPUs seen",
            report.cpus, report.host_cpus
        ),
        None => format!("{} of {} CPUs", report.cpus, report.host_cpus),
    };
    let pid = match report.pid {
        PidMode::Child => "",
        PidMode::Pid1 => ", PID 1",
        PidMode::Init => ", PID 1 is an init",
    };
    let _ = writeln!(
        out,
        "  mode      {}, {limit}{platform}, swap {}, {cpus}{pid}",
        report.mode.as_str(),
        ByteSize(report.swap_bytes),
    );
    if let (Some(effective), Some(cgroup)) =
        (report.effective_limit_bytes, &report.effective_limit_cgroup)
    {
        let _ = writeln!(
            out,
            "  limit     {} holds: the enclosing cgroup {cgroup} sets it, lower than the run's own",
            ByteSize(effective)
        );
    }
    if let Some(t) = report.cpu_throttling.filter(|t| t.throttled_periods > 0) {
        let _ = writeln!(
            out,
            "  cpu       throttled in {} of {} periods ({:.1} s waiting for CPU time): the quota slowed it, as it would on the plan",
            t.throttled_periods,
            t.periods,
            t.throttled_ms as f64 / 1000.0
        );
    }
    if let Some(reason) = &report.mode_reason {
        let _ = writeln!(out, "  !! MEASURE-ONLY: {reason}");
    }
    let source = match report.peak.source {
        PeakSource::KernelWatermark => "kernel watermark",
        PeakSource::Sampled => "sampled",
    };
    let _ = writeln!(
        out,
        "  peak      charged {} ({source}) · working {} ({})",
        ByteSize(report.peak.charged_bytes),
        ByteSize(report.peak.working_bytes),
        report.peak.working_source.describe(),
    );
    if let Some(gap) = report.gap_explanation() {
        let _ = writeln!(out, "            {gap}");
    }
    if report.swap_bytes > 0 || report.peak.swap_used_bytes > 0 {
        let _ = writeln!(out, "  swap      {}", report.swap_summary());
    }
    let oom = match report.oom_killed {
        None => "no verdict possible without a cgroup".to_string(),
        Some(false) => format!(
            "none (oom_kill +0{})",
            if report.oom.limit_hits > 0 {
                format!(
                    ", limit reached {} times and reclaimed",
                    report.oom.limit_hits
                )
            } else {
                String::new()
            }
        ),
        Some(true) => {
            let victims: Vec<String> = report
                .oom
                .victims
                .iter()
                .map(|v| format!("{} `{}` ({})", v.pid, v.command, ByteSize(v.rss_bytes)))
                .collect();
            format!(
                "OOM-KILLED: oom_kill +{}{}",
                report.oom.kill_count,
                if victims.is_empty() {
                    String::new()
                } else {
                    format!(", killed {}", victims.join(", "))
                }
            )
        }
    };
    let _ = writeln!(out, "  OOM       {oom}");
    let _ = writeln!(out, "  exit      {}", report.exit.description);
    let _ = writeln!(
        out,
        "  duration  {:.1} s · {} samples · {} processes",
        report.duration_ms as f64 / 1000.0,
        report.sampling.samples_taken,
        report.processes.len()
    );
    if !report.at_peak.is_empty() {
        let _ = writeln!(
            out,
            "  at peak (t = {:.1} s):",
            report.at_peak_t_ms as f64 / 1000.0
        );
        for p in report.at_peak.iter().take(5) {
            let _ = writeln!(
                out,
                "    {:>10}  {:>7}  {}",
                ByteSize(p.rss_bytes).to_string(),
                p.pid,
                truncate(&p.command, 70)
            );
        }
    }
    if !report.left_behind.is_empty() {
        let _ = writeln!(
            out,
            "  left      {} process(es) still running when the command exited were killed: {}",
            report.left_behind.len(),
            report
                .left_behind
                .iter()
                .map(|p| format!("{} `{}`", p.pid, truncate(&p.command, 40)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    render_steps(&mut out, report);
    crate::runtime_summary::render(&mut out, report);
    for variable in &report.inherited_env {
        let _ = writeln!(
            out,
            "  env       {} reaches the command from this machine's environment; a container starts with its image's: set it with --env, or drop it with --env-clear",
            truncate(variable, 80)
        );
    }
    for caveat in &report.caveats {
        let _ = writeln!(out, "  note      {caveat}");
    }
    let _ = writeln!(out, "  verdict   {}", report.verdict());
    out
}

/// The build steps: the one killed, else the one that peaked; or the containers of a
/// `docker run`.
fn render_steps(out: &mut String, report: &RunReport) {
    let step_text = |s: &memfit_measure::BuildStep| {
        format!(
            "step {}/{} `{}` ({}:{})",
            s.index,
            s.of,
            truncate(&s.instruction, 60),
            s.file,
            s.line
        )
    };
    if let Some(killed) = report.steps.iter().find(|s| s.oom_killed) {
        let limit = report
            .limit_bytes
            .map(|l| format!(" at {}", ByteSize(l)))
            .unwrap_or_default();
        let _ = writeln!(out, "  step      {} OOM-killed{limit}", step_text(killed));
    } else if let Some(top) = report.steps.iter().max_by_key(|s| s.peak_bytes) {
        let _ = writeln!(
            out,
            "  step      {} peaked at {} ({} RUN step(s) measured)",
            step_text(top),
            ByteSize(top.peak_bytes),
            report.steps.len()
        );
    } else {
        for container in report.containers.iter().take(5) {
            // A RUN step not located in a Dockerfile (a compose build's): said as a step.
            let label = match container.kind {
                ContainerKind::BuildStep => "step     ",
                ContainerKind::Container => "container",
            };
            let _ = writeln!(
                out,
                "  {label} {} `{}` peak {}{}",
                container
                    .name
                    .clone()
                    .unwrap_or_else(|| container.id.chars().take(12).collect()),
                truncate(&container.command.join(" "), 50),
                ByteSize(container.peak_bytes),
                if container.oom_kills > 0 {
                    ", OOM-killed"
                } else {
                    ""
                }
            );
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max - 1).collect::<String>())
    }
}
