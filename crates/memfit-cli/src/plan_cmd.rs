//! `memfit plan`: resolve the limit, the runtime and an optional measured run, compute the
//! budget (memfit-core) and render it as a table, env lines, Dockerfile ENV or JSON.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use memfit_core::node::NodeVersion;
use memfit_core::plan::{self, Budget, PlanInput, Runtime, Setting};
use memfit_core::target::MIN_LIMIT;
use memfit_core::CgroupVersion;
use memfit_core::{platform, ByteSize, Target, TargetError, TargetRequest, MIB};
use memfit_measure::{RunReport, RUN_SCHEMA};
use serde_json::json;

use crate::args::{CgroupArg, PlanArgs, PlanFormat, RuntimeArg};
use crate::output;
use crate::report_format::{markdown_table, markdown_text as md, style, Destination};
use crate::EXIT_FINDINGS;

/// The Node line assumed when neither `--node-version` nor a `node` on PATH says: the Active
/// LTS line at the time of writing (Node 24, LTS since October 2025).
pub(crate) const DEFAULT_NODE: NodeVersion = NodeVersion::new(24, u32::MAX, u32::MAX);

/// What a `memfit run --json` report says about the run, as far as planning needs.
struct Measured {
    command: String,
    /// The working-set peak (charged − inactive page cache), as Kubernetes' VPA sizes from;
    /// the charged watermark when the working set was not sampled.
    peak: ByteSize,
    charged: ByteSize,
    oom_limit: Option<ByteSize>,
    largest_process: Option<LargestProcess>,
    /// What the runtime view measured in the largest Node process; `None` without one.
    node: Option<MeasuredNode>,
    /// Whether the run had a runtime view at all.
    runtime_view: bool,
}

/// The runtime view's numbers for `plan`.
struct MeasuredNode {
    command: String,
    measured: plan::NodeMeasured,
    heap_limit: ByteSize,
}

/// The process with the highest peak RSS of the run.
struct LargestProcess {
    command: String,
    peak: ByteSize,
}

pub fn execute(args: PlanArgs) -> Result<u8> {
    let destination = Destination::Path(args.output.clone().unwrap_or_else(|| "-".into()));
    if let Destination::Path(path) = &destination {
        output::check_writable(path)?;
    }
    if args.prometheus.is_some() {
        return crate::fleet_cmd::execute(&args, &destination);
    }
    if let Some(spec) = args.runtime.iter().find(|s| s.container.is_some()) {
        bail!(
            "--runtime {}=…: a runtime per container is for --prometheus; give --runtime node|jvm|go|python",
            spec.container.as_deref().unwrap_or("")
        );
    }
    if args.selector.is_some() || args.namespace.is_some() || args.range.is_some() {
        bail!("--selector, --namespace and --range read Prometheus: give --prometheus URL too");
    }
    if matches!(args.format, PlanFormat::Yaml | PlanFormat::Patch) {
        bail!("--format yaml and patch are for --prometheus; use table, env, dockerfile or json");
    }
    let runtime = match args.runtime.last().map_or(RuntimeArg::Node, |s| s.runtime) {
        RuntimeArg::Node => Runtime::Node,
        RuntimeArg::Jvm => Runtime::Jvm,
        RuntimeArg::Go => Runtime::Go,
        RuntimeArg::Python => Runtime::Python,
    };
    let cgroup = match args.cgroup {
        CgroupArg::V1 => CgroupVersion::V1,
        CgroupArg::V2 => CgroupVersion::V2,
    };
    let measured = args.from.as_deref().map(read_run).transpose()?;

    let target = Target::resolve(&TargetRequest {
        limit: args.limit,
        platform: args.platform.as_deref(),
        cpus: None,
        config: None,
    })?;
    let cpus = target.as_ref().and_then(|t| t.platform?.cpus);
    let (node_version, node_version_source) = match &args.node_version {
        Some(text) => (text.parse::<NodeVersion>()?, "--node-version".to_string()),
        None if runtime == Runtime::Node => match node_on_path() {
            Some(v) => (
                v,
                "the node on PATH; pass --node-version for the image's".to_string(),
            ),
            None => (
                DEFAULT_NODE,
                "assumed: the current LTS line (pass --node-version)".to_string(),
            ),
        },
        None => (DEFAULT_NODE, String::new()),
    };

    // With the runtime view, Node's limit is built from the measured heap and off-heap
    // peaks too: an RSS alone cannot tell Buffers from the heap.
    let node_measured = measured
        .as_ref()
        .and_then(|m| m.node.as_ref())
        .filter(|_| runtime == Runtime::Node)
        .map(|n| n.measured);
    let recommended = measured.as_ref().map(|m| {
        let from_peak = plan::recommended_limit(m.peak, m.oom_limit);
        match node_measured {
            Some(n) => from_peak.max(n.limit(node_version)),
            None => from_peak,
        }
    });
    let (limit, limit_source) = match (&target, recommended) {
        (Some(target), _) => (target.memory, target.source_text()),
        // memfit's choice: the recommendation rounded up to 64 MiB, a size one can type.
        (None, Some(rec)) => (rec.round_up(64 * MIB), match node_measured {
            Some(_) => "the measured run (+15%, and its V8 heap and off-heap peaks)".to_string(),
            None => "the measured run (+15%)".to_string(),
        }),
        (None, None) => bail!(
            "no limit to plan for: give --limit SIZE (e.g. 512M), --platform NAME (e.g. render:starter) or --from run.json"
        ),
    };
    if limit < MIN_LIMIT {
        bail!(TargetError::TooSmall(limit));
    }

    let worker_size = args.worker_size.or_else(|| {
        measured
            .as_ref()
            .and_then(|m| m.largest_process.as_ref().map(|p| p.peak))
            .filter(|_| runtime == Runtime::Python)
    });
    let input = PlanInput {
        limit,
        runtime,
        node_version,
        cgroup,
        workers: args.workers,
        cpus,
        worker_size,
    };
    let mut budget = plan::plan_measured(&input, node_measured);
    if let Some(m) = measured.as_ref().filter(|_| runtime == Runtime::Node) {
        match &m.node {
            Some(n) => budget.notes.push(format!(
                "From the run's runtime view: `{}` peaked at {} of V8 heap (its cap was {}) and {} off-heap (external, Buffers included).",
                n.command, n.measured.heap_used, n.heap_limit, n.measured.off_heap
            )),
            None => budget.notes.push(format!(
                "The run had no runtime view{}: the split between the V8 heap and Buffers is not measured, so the plan assumes the common practice ({}% of the share for the heap, at least {} off-heap). Run it again with memfit run (without --no-runtime-view) to size both from what the process did.",
                if m.runtime_view { " report from a Node process" } else { "" },
                plan::HEAP_SHARE_PERCENT,
                plan::MIN_OFF_HEAP
            )),
        }
    }
    let mut plans = Vec::new();
    if let (Some(m), Some(rec)) = (&measured, recommended) {
        plans = platform::smallest_fitting(rec);
        if rec > limit {
            let why = match node_measured {
                Some(_) => "its V8 heap and off-heap peaks with 25% each, native memory and the system reserve, or its peak + 15%".to_string(),
                None => format!(
                    "peak {} + 15%{}",
                    m.peak,
                    if m.oom_limit.is_some() {
                        ", bumped × 1.2 after its OOM kill"
                    } else {
                        ""
                    }
                ),
            };
            budget.problems.push(format!(
                "The measured run needs {rec} ({why}), more than the {limit} limit."
            ));
        }
        if runtime == Runtime::Node {
            if let (Some(largest), Some(heap)) = (&m.largest_process, budget.promised_heap_bytes) {
                if largest.peak.bytes()
                    > heap + memfit_core::node::NATIVE_OVERHEAD.bytes() + 64 * MIB
                {
                    budget.notes.push(format!(
                        "The largest process of the run, `{}`, peaked at {}: more than this heap cap plus native memory; expect more garbage collection, or a heap error if its live data does not fit.",
                        largest.command, largest.peak
                    ));
                }
            }
        }
    }

    let out = match args.format {
        PlanFormat::Table => render_table(
            &budget,
            &input,
            &limit_source,
            &node_version_source,
            measured.as_ref(),
            recommended,
            &plans,
        ),
        PlanFormat::Markdown => render_markdown(
            &budget,
            &input,
            &limit_source,
            measured.as_ref(),
            recommended,
        ),
        PlanFormat::Env => render_settings(&budget, ""),
        PlanFormat::Dockerfile => render_settings(&budget, "ENV "),
        PlanFormat::Yaml | PlanFormat::Patch => {
            bail!("--format yaml and patch are for --prometheus")
        }
        PlanFormat::Json => {
            let mut value = json!({
                "schema": "memfit.plan/1",
                "memfit_version": env!("CARGO_PKG_VERSION"),
                "runtime": runtime.name(),
                "limit": { "bytes": limit.bytes(), "source": limit_source },
                "cgroup": cgroup,
                "workers": budget.workers,
                "lines": budget.lines,
                "settings": budget.settings,
                "promised_heap_bytes": budget.promised_heap_bytes,
                "default_heap_bytes": budget.default_heap_bytes,
                "notes": budget.notes,
                "problems": budget.problems,
                "fits": budget.fits(),
            });
            if runtime == Runtime::Node {
                value["node_version"] = json!(node_version_text(node_version));
                value["node_version_source"] = json!(node_version_source);
            }
            if let (Some(m), Some(rec)) = (&measured, recommended) {
                value["from_run"] = json!({
                    "command": m.command,
                    "peak_bytes": m.peak.bytes(),
                    "charged_peak_bytes": m.charged.bytes(),
                    "oom_killed_at_bytes": m.oom_limit.map(|l| l.bytes()),
                    "recommended_bytes": rec.bytes(),
                    "runtime_view": m.node.as_ref().map(|n| json!({
                        "command": n.command,
                        "heap_used_peak_bytes": n.measured.heap_used.bytes(),
                        "off_heap_peak_bytes": n.measured.off_heap.bytes(),
                        "heap_limit_bytes": n.heap_limit.bytes(),
                    })),
                    "plans": plans.iter().map(|p| json!({"name": p.name, "memory_bytes": p.memory.bytes(), "source": p.source})).collect::<Vec<_>>(),
                });
            }
            serde_json::to_string_pretty(&value)? + "\n"
        }
    };
    let bytes = match args.format {
        PlanFormat::Json | PlanFormat::Markdown => out.into_bytes(),
        _ => {
            let rules = [("problem: ", style::BAD), ("note: ", style::NOTE)];
            let painter = output::paint_after(&rules);
            output::human_text(&destination, &out, &painter)
        }
    };
    output::write_report(&destination, &bytes)?;
    Ok(if budget.fits() { 0 } else { EXIT_FINDINGS })
}

fn node_version_text(v: NodeVersion) -> String {
    if v == DEFAULT_NODE {
        "24".to_string()
    } else {
        v.to_string()
    }
}

/// `node --version` of the node on PATH, if there is one.
fn node_on_path() -> Option<NodeVersion> {
    let output = Command::new("node").arg("--version").output().ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

/// The most `--from` reads. memfit's choice: 64 MiB, far above any run report (a few hundred
/// bytes per process of the run).
const MAX_REPORT_BYTES: u64 = 64 * MIB;

/// Reads a report from a regular file or `-` (standard input), at most [`MAX_REPORT_BYTES`]:
/// `--from /dev/zero` or a FIFO never ends.
pub(crate) fn read_bounded(path: &Path) -> Result<String> {
    let give = "give the file `memfit run --json FILE` wrote";
    let reader: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file =
            File::open(path).with_context(|| format!("cannot read {}: {give}", path.display()))?;
        let metadata = file
            .metadata()
            .with_context(|| format!("cannot read {}: {give}", path.display()))?;
        if !metadata.is_file() {
            bail!(
                "{} is not a regular file: {give} (or - for standard input)",
                path.display()
            );
        }
        Box::new(file)
    };
    let mut bytes = Vec::new();
    reader
        .take(MAX_REPORT_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}: {give}", path.display()))?;
    if bytes.len() as u64 > MAX_REPORT_BYTES {
        bail!(
            "{} is larger than 64 MiB, more than any run report: {give}",
            path.display()
        );
    }
    String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("{} is not UTF-8 JSON: {give}", path.display()))
}

fn read_run(path: &Path) -> Result<Measured> {
    let not_a_report = || {
        format!(
            "{} is not a memfit run report ({RUN_SCHEMA}): give the file `memfit run --json FILE` wrote",
            path.display()
        )
    };
    let text = read_bounded(path)?;
    let value: serde_json::Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not JSON: give the file `memfit run --json FILE` wrote",
            path.display()
        )
    })?;
    if value.get("schema").and_then(|s| s.as_str()) != Some(RUN_SCHEMA) {
        bail!(not_a_report());
    }
    let report: RunReport = serde_json::from_value(value).with_context(not_a_report)?;
    let charged = report.peak.charged_bytes;
    let working = report.peak.working_bytes;
    // Swap the run used held memory that did not fit under its limit: without swap (most
    // platforms) the command needs it in memory too.
    let swap = report.peak.swap_used_bytes;
    let peak = if working > 0 { working } else { charged } + swap;
    if peak == 0 {
        bail!(
            "{} records no peak: was the run measured? Run it again with memfit run --json",
            path.display()
        );
    }
    // The limit that killed it: an enclosing cgroup's where that was lower than the run's.
    let oom_limit = (report.oom_killed == Some(true))
        .then(|| report.limit_that_held())
        .flatten()
        .map(ByteSize);
    let largest_process = report
        .processes
        .iter()
        .max_by_key(|p| p.peak_rss_bytes)
        .map(|p| LargestProcess {
            command: p.command.clone(),
            peak: ByteSize(p.peak_rss_bytes),
        });
    // The largest Node process by what it held, heap and off-heap.
    let node = report
        .node_processes()
        .first()
        .map(|(process, v8)| MeasuredNode {
            command: process.command.clone(),
            measured: plan::NodeMeasured {
                heap_used: ByteSize(v8.heap_used_peak_bytes),
                off_heap: ByteSize(v8.external_peak_bytes.max(v8.array_buffers_peak_bytes)),
            },
            heap_limit: ByteSize(v8.heap_limit_bytes),
        });
    Ok(Measured {
        runtime_view: report.runtime_view.is_some(),
        node,
        command: report.command.join(" "),
        peak: ByteSize(peak),
        charged: ByteSize(charged),
        oom_limit,
        largest_process,
    })
}

/// Quotes a value for a shell, a platform's env editor and a Dockerfile ENV alike: double
/// quotes when it holds a space.
fn quoted(value: &str) -> String {
    if value.contains(' ') {
        format!("\"{value}\"")
    } else {
        value.to_string()
    }
}

fn render_settings(budget: &Budget, prefix: &str) -> String {
    let mut out = String::new();
    for Setting { name, value } in &budget.settings {
        let _ = writeln!(out, "{prefix}{name}={}", quoted(value));
    }
    out
}

/// The plan in markdown: the budget, the settings, the problems.
fn render_markdown(
    budget: &Budget,
    input: &PlanInput,
    limit_source: &str,
    measured: Option<&Measured>,
    recommended: Option<ByteSize>,
) -> String {
    let mut out = format!(
        "### memfit plan: {} in {}\n\nLimit from {}.",
        input.runtime.name(),
        input.limit,
        md(limit_source)
    );
    if let (Some(m), Some(rec)) = (measured, recommended) {
        let _ = write!(
            out,
            " Measured: {} peaked at {}; needs {rec}.",
            md(&m.command),
            m.peak
        );
    }
    out += "\n\n";
    if !budget.lines.is_empty() {
        let workers = budget.workers.unwrap_or(1);
        let rows: Vec<Vec<String>> = budget
            .lines
            .iter()
            .map(|l| {
                let each = if l.per_worker && workers > 1 {
                    format!(" × {workers}")
                } else {
                    String::new()
                };
                vec![
                    md(l.item),
                    format!("{}{each}", ByteSize(l.bytes)),
                    md(&l.basis),
                ]
            })
            .collect();
        out += &markdown_table(&["Item", "Size", "Basis"], &rows);
        out += "\n";
    }
    if !budget.settings.is_empty() {
        let rows: Vec<Vec<String>> = budget
            .settings
            .iter()
            .map(|s| vec![format!("`{}`", s.name), md(&s.value)])
            .collect();
        out += &markdown_table(&["Setting", "Value"], &rows);
        out += "\n";
    }
    for note in &budget.notes {
        let _ = writeln!(out, "> {}\n", md(note));
    }
    for problem in &budget.problems {
        let _ = writeln!(out, "**Problem**: {}\n", md(problem));
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn render_table(
    budget: &Budget,
    input: &PlanInput,
    limit_source: &str,
    node_version_source: &str,
    measured: Option<&Measured>,
    recommended: Option<ByteSize>,
    plans: &[&platform::Platform],
) -> String {
    let mut out = String::new();
    let runtime = match input.runtime {
        Runtime::Node => format!(
            "Node {} [{node_version_source}]",
            node_version_text(input.node_version)
        ),
        Runtime::Jvm => "the JVM".to_string(),
        Runtime::Go => "Go".to_string(),
        Runtime::Python => "Python (gunicorn/uvicorn workers)".to_string(),
    };
    let cgroup = match input.cgroup {
        CgroupVersion::V1 => "cgroup v1",
        CgroupVersion::V2 => "cgroup v2",
    };
    let _ = writeln!(
        out,
        "memfit plan: {runtime} in {} (from {limit_source}, {cgroup})",
        input.limit
    );
    if let (Some(m), Some(rec)) = (measured, recommended) {
        let _ = writeln!(
            out,
            "  measured: `{}` peaked at {} (working set; {} charged){}; needs {rec}",
            m.command,
            m.peak,
            m.charged,
            m.oom_limit
                .map(|l| format!(", OOM-killed at {l}"))
                .unwrap_or_default()
        );
        if !plans.is_empty() {
            let names: Vec<String> = plans
                .iter()
                .map(|p| format!("{} ({})", p.name, p.memory))
                .collect();
            let _ = writeln!(out, "  smallest plans that fit: {}", names.join(", "));
        }
    }
    if !budget.lines.is_empty() {
        let workers = budget.workers.unwrap_or(1);
        let _ = writeln!(out);
        let width = budget
            .lines
            .iter()
            .map(|l| l.item.len())
            .max()
            .unwrap_or(0)
            .max(5);
        let mut total = 0u64;
        for line in &budget.lines {
            let count = if line.per_worker {
                u64::from(workers)
            } else {
                1
            };
            total += line.bytes * count;
            let each = if line.per_worker && workers > 1 {
                format!(" × {workers}")
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  {:<width$}  {:>9}{:<5}  {}",
                line.item,
                ByteSize(line.bytes).to_string(),
                each,
                line.basis
            );
        }
        let _ = writeln!(
            out,
            "  {:<width$}  {:>9}       of {}",
            "total",
            ByteSize(total).to_string(),
            input.limit
        );
    }
    if !budget.settings.is_empty() {
        let _ = writeln!(out, "\nSet (in the image or the platform's environment):");
        for line in render_settings(budget, "  ").lines() {
            let _ = writeln!(out, "{line}");
        }
    }
    if let Some(heap) = budget.promised_heap_bytes {
        let what = match input.runtime {
            Runtime::Node => "v8.getHeapStatistics().heap_size_limit",
            Runtime::Jvm => "MaxHeapSize (-XX:+PrintFlagsFinal)",
            Runtime::Go => "the GC's soft limit (debug.SetMemoryLimit(-1))",
            Runtime::Python => "",
        };
        let default = budget
            .default_heap_bytes
            .map(|d| format!("; without the setting: {}", ByteSize(d)))
            .unwrap_or_default();
        let _ = writeln!(out, "\nExpect {what} = {}{default}.", ByteSize(heap));
    }
    for note in &budget.notes {
        let _ = writeln!(out, "note: {note}");
    }
    for problem in &budget.problems {
        let _ = writeln!(out, "problem: {problem}");
    }
    out
}
