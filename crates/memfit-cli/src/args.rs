//! Command-line definitions. Every option has a help text with an example.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use memfit_core::ByteSize;
use memfit_measure::compare::Allowance;

use crate::report_format::{parse_spec, FormatSpec};

#[derive(Parser, Debug)]
#[command(
    name = "memfit",
    version,
    about = "End exit code 137: measure, explain and fix out-of-memory failures",
    long_about = "memfit emulates a container's memory limit on this machine, measures what a build or service really needs, and says why it was killed.\n\nExit codes: the wrapped command's status passes through (128 + signal when it was killed); 1 = findings or budget exceeded; 2 = usage or I/O error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Commands,
}

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Run a command under an emulated container memory limit and report its peak, who
    /// caused it and whether it was OOM-killed.
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// Find the smallest memory limit at which a command still succeeds.
    #[command(after_help = BISECT_EXAMPLES)]
    Bisect(BisectArgs),
    /// Say why a build or service died, from its log: memory or not, which process, what
    /// limit, and what to change.
    #[command(after_help = EXPLAIN_EXAMPLES)]
    Explain(ExplainArgs),
    /// Size a runtime for a container: the heap, what lives beside it, the workers, and the
    /// exact NODE_OPTIONS / JAVA_TOOL_OPTIONS / GOMEMLIMIT / WEB_CONCURRENCY to set.
    #[command(after_help = PLAN_EXAMPLES)]
    Plan(PlanArgs),
    /// Review a project before it deploys: Dockerfiles, package manifests, tsconfig, Cargo
    /// and platform configs, checked against its memory limit.
    #[command(after_help = AUDIT_EXAMPLES)]
    Audit(AuditArgs),
    /// Apply the audit's safe fixes as minimal edits, and print them as a diff.
    #[command(after_help = FIX_EXAMPLES)]
    Fix(FixArgs),
    /// Compare two run reports (or two bisect reports) side by side; with --max-increase,
    /// the CI gate on a memory regression.
    #[command(after_help = COMPARE_EXAMPLES)]
    Compare(CompareArgs),
    /// Run a service as PID 1 under its memory limit: forward signals, reap zombies, and
    /// restart it gracefully before the kernel's OOM killer acts (`memfit guard --help`).
    #[command(disable_help_flag = true)]
    Guard(GuardArgs),
    /// Print a shell completion script (installed by scripts/dist.sh's tarball).
    #[command(hide = true)]
    Completions(CompletionsArgs),
    /// Print memfit's man page, or write one page per command into a directory.
    #[command(hide = true)]
    Man(ManArgs),
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell, e.g. `memfit completions bash > /etc/bash_completion.d/memfit`.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write memfit.1 and memfit-COMMAND.1 into this directory (created if missing) instead
    /// of printing memfit.1, e.g. --dir /usr/local/share/man/man1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct GuardArgs {
    /// Options and the command, e.g. --warn 80% --critical 92% -- node server.js (see
    /// memfit guard --help).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<OsString>,
}

const AUDIT_EXAMPLES: &str = "Examples:
  memfit audit
  memfit audit examples/render-api
  memfit audit --platform fly:shared-cpu-1x --fail-on warning
  memfit audit --format sarif -o memfit.sarif
  memfit audit --format github              # annotations in a GitHub Actions job
  memfit audit --format markdown >> \"$GITHUB_STEP_SUMMARY\"
  memfit audit --format json | jq '.findings[] | .rule'
  memfit run --json run.json -- gunicorn -w 4 app:app   # Ctrl-C when it has served
  memfit audit --from run.json              # workers sized from that run

Exit status: 0 when no finding reaches --fail-on (default: error); 1 when one does; 2 for
usage and I/O errors (a --from file that is not a run report), and for a memfit.toml memfit
cannot honour (an unknown rule id, a bad limit). A project file that does not parse is a
finding, not an error.";

const COMPARE_EXAMPLES: &str = "Examples:
  memfit compare main.json pr.json
  memfit compare main.json pr.json --max-increase 10%
  memfit compare main.json pr.json --max-increase 50M --format markdown >> \"$GITHUB_STEP_SUMMARY\"
  memfit compare main.json pr.json --format json -o compare.json --html compare.html
  memfit compare bisect-main.json bisect-pr.json --max-increase 5%

Exit status: 0 when NEW is within the allowance (or no --max-increase was given); 1 when NEW's
peak (for bisect reports, the smallest limit that passed) exceeds BASE's by more than the
allowance; 2 for usage and I/O errors, and for files that are not two reports of one kind.";

/// Output forms of `memfit compare`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareFormat {
    /// Side by side, for a terminal.
    Human,
    /// JSON (schema memfit.compare/1).
    Json,
    /// GitHub-flavoured markdown, for a pull request comment or $GITHUB_STEP_SUMMARY.
    Markdown,
    /// A self-contained HTML page with both timelines on one chart.
    Html,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// The report to compare against, e.g. the main branch's `memfit run --json` file.
    #[arg(value_name = "BASE.json")]
    pub base: PathBuf,

    /// The report to judge, e.g. the pull request's.
    #[arg(value_name = "NEW.json")]
    pub new: PathBuf,

    /// CI gate: exit 1 when NEW's peak exceeds BASE's by more than this, a percentage of
    /// BASE's (10%) or a size with a unit (50M).
    #[arg(long, value_name = "PCT|SIZE")]
    pub max_increase: Option<Allowance>,

    /// Output form.
    #[arg(long, value_enum, default_value = "human")]
    pub format: CompareFormat,

    /// Write the output to FILE instead of standard output (`-`).
    #[arg(long, short, value_name = "FILE", default_value = "-")]
    pub output: PathBuf,

    /// Also write the HTML view (both timelines on one chart) to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Print nothing on standard output or error (a report asked into a FILE is still
    /// written; errors are still printed): the exit status is the verdict, as `cmp -s`.
    #[arg(long, short)]
    pub quiet: bool,
}

const FIX_EXAMPLES: &str = "Examples:
  memfit fix --dry-run
  memfit fix examples/render-api

Exit status: 0 when the fixes were applied (or would be, with --dry-run); 2 for usage and I/O
errors, and for a memfit.toml memfit cannot honour.";

/// Output forms of `memfit audit`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditFormat {
    /// Findings with code frames, the why and the fix.
    Human,
    /// JSON (schema memfit.audit/1).
    Json,
    /// SARIF 2.1.0, for code-scanning services.
    Sarif,
    /// GitHub Actions annotations (`::warning file=…,line=…::…`), one per finding.
    Github,
    /// A markdown table of the findings, for PR comments and $GITHUB_STEP_SUMMARY.
    Markdown,
}

/// The lowest severity that makes `memfit audit` exit 1.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailOn {
    Error,
    Warning,
    Info,
    None,
}

#[derive(Args, Debug, Clone)]
pub struct ProjectLimitArgs {
    /// The container's memory limit, when the project's configuration does not say it,
    /// e.g. --limit 512M.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, conflicts_with = "platform")]
    pub limit: Option<ByteSize>,

    /// Take the limit from a plan, e.g. render:starter (`memfit run --platform list`).
    #[arg(long, value_name = "NAME")]
    pub platform: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct MeasuredArgs {
    /// A `memfit run` report of the service (`memfit run --json run.json -- gunicorn …`):
    /// python-workers-over-limit sizes the workers from the peaks it measured instead of a
    /// default. The audit itself never runs the project.
    #[arg(long, value_name = "REPORT.json")]
    pub from: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// The project directory (default: the current one).
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,

    #[command(flatten)]
    pub limits: ProjectLimitArgs,

    #[command(flatten)]
    pub measured: MeasuredArgs,

    /// Output form.
    #[arg(long, value_enum, default_value = "human")]
    pub format: AuditFormat,

    /// Write the output to FILE instead of standard output (`-`), atomically, e.g.
    /// -o memfit.sarif.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Exit 1 when a finding of this severity or above is reported.
    #[arg(long, value_enum, default_value = "error")]
    pub fail_on: FailOn,

    /// Print nothing on standard error (the output is still written; errors still printed).
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct FixArgs {
    /// The project directory (default: the current one).
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,

    #[command(flatten)]
    pub limits: ProjectLimitArgs,

    #[command(flatten)]
    pub measured: MeasuredArgs,

    /// Print the diff without writing anything.
    #[arg(long)]
    pub dry_run: bool,

    /// No summary on standard error (the diff is still printed; errors still printed).
    #[arg(long, short)]
    pub quiet: bool,
}

const PLAN_EXAMPLES: &str = "Examples:
  memfit plan --platform render:starter
  memfit plan --limit 256M --node-version 18 --format dockerfile
  memfit plan --platform heroku:standard-1x --workers 2 --format env
  memfit plan --limit 1G --runtime jvm
  memfit run --json run.json -- node server.js && memfit plan --from run.json
  memfit plan --prometheus http://127.0.0.1:9090 --namespace shop --runtime api=node --format patch
  memfit plan --platform render:starter --format markdown -o plan.md

Exit status: 0 when the budget fits (always 0 with --prometheus once Prometheus answered); 1 when it cannot (too many workers, a measured peak above
the limit); 2 for usage and I/O errors.";

/// The runtimes `memfit plan` sizes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeArg {
    Node,
    Jvm,
    Go,
    Python,
}

/// Output forms of `memfit plan`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanFormat {
    /// The budget as a table, then the settings (also: human).
    #[value(alias = "human")]
    Table,
    /// KEY=VALUE lines for a platform's environment settings or a shell's `export`.
    Env,
    /// ENV instructions for a Dockerfile.
    Dockerfile,
    /// JSON (schema memfit.plan/1; memfit.fleet/1 with --prometheus).
    Json,
    /// YAML (--prometheus only).
    Yaml,
    /// kubectl strategic-merge patch commands, printed, never run (--prometheus only).
    Patch,
    /// Markdown tables (the budget and the settings; the workloads with --prometheus), for PR
    /// comments and $GITHUB_STEP_SUMMARY.
    Markdown,
}

/// `--runtime node` or, with --prometheus, `--runtime CONTAINER=node` (also
/// `WORKLOAD/CONTAINER=` or `NAMESPACE/WORKLOAD/CONTAINER=`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeSpec {
    pub container: Option<String>,
    pub runtime: RuntimeArg,
}

fn parse_runtime(text: &str) -> Result<RuntimeSpec, String> {
    use clap::ValueEnum;
    let (container, name) = match text.rsplit_once('=') {
        Some((c, r)) if !c.is_empty() => (Some(c.to_string()), r),
        Some(_) => return Err("give CONTAINER=RUNTIME, e.g. api=node".to_string()),
        None => (None, text),
    };
    let runtime = RuntimeArg::from_str(name, true)
        .map_err(|_| format!("{name}: use node, jvm, go or python"))?;
    Ok(RuntimeSpec { container, runtime })
}

/// cgroup versions for `--cgroup`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupArg {
    V1,
    V2,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// The container's memory limit, e.g. --limit 512M.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, conflicts_with = "platform")]
    pub limit: Option<ByteSize>,

    /// Take the limit (and CPUs) from a plan, e.g. render:starter; `memfit run --platform
    /// list` prints them all.
    #[arg(long, value_name = "NAME")]
    pub platform: Option<String>,

    /// The runtime to size: node, jvm, go or python (default node). With --prometheus, per
    /// container: --runtime api=node --runtime billing/worker=jvm (repeatable).
    #[arg(long, value_name = "RUNTIME", value_parser = parse_runtime)]
    pub runtime: Vec<RuntimeSpec>,

    /// The Node.js version the image runs, e.g. 20, 22.21 or v18.20.8 (default: the `node` on
    /// PATH, else 24).
    #[arg(long, value_name = "V")]
    pub node_version: Option<String>,

    /// The cgroup version of the hosts: v2 on current Kubernetes, Render, Railway and Fly;
    /// older Node lines ignore v2 limits.
    #[arg(long, value_enum, default_value = "v2")]
    pub cgroup: CgroupArg,

    /// Processes of the runtime sharing the limit: cluster/PM2 workers, gunicorn workers,
    /// e.g. --workers 2 (default 1; for Python, as many as fit).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub workers: Option<u32>,

    /// The measured peak of one worker process, e.g. --worker-size 180M (Python); a unit is
    /// required.
    #[arg(long, value_name = "SIZE", value_parser = parse_size_with_unit)]
    pub worker_size: Option<ByteSize>,

    /// Size from a `memfit run --json` report: the measured peak + 15% (after an OOM kill,
    /// × 1.2 first, as Kubernetes' VPA does), and the smallest plan of each provider.
    #[arg(long, value_name = "RUN_JSON")]
    pub from: Option<PathBuf>,

    /// Size every workload of a cluster from Prometheus (guard watermarks, cAdvisor,
    /// kube-state-metrics), e.g. --prometheus http://127.0.0.1:9090; docs/fleet.md.
    #[arg(long, value_name = "URL", conflicts_with_all = ["limit", "platform", "from", "workers", "worker_size"])]
    pub prometheus: Option<String>,

    /// With --prometheus: PromQL label matchers every query gets, e.g. --selector 'team="shop"'.
    #[arg(long, value_name = "LABELS", requires = "prometheus")]
    pub selector: Option<String>,

    /// With --prometheus: one namespace.
    #[arg(long, value_name = "NS", requires = "prometheus")]
    pub namespace: Option<String>,

    /// With --prometheus: how far back to look (a Prometheus duration; default 14d).
    #[arg(long, value_name = "DURATION", requires = "prometheus")]
    pub range: Option<String>,

    /// With an https:// --prometheus: the CA certificate(s) to trust (PEM) instead of
    /// Mozilla's roots, e.g. a cluster's private CA.
    #[arg(long, value_name = "FILE", requires = "prometheus")]
    pub prometheus_ca: Option<PathBuf>,

    /// With --prometheus: send the token in FILE as `Authorization: Bearer` (e.g. a Kubernetes
    /// service-account token). Also MEMFIT_PROMETHEUS_TOKEN, or MEMFIT_PROMETHEUS_USER and
    /// MEMFIT_PROMETHEUS_PASSWORD for basic auth; over http only to 127.0.0.1.
    #[arg(long, value_name = "FILE", requires = "prometheus")]
    pub prometheus_token_file: Option<PathBuf>,

    /// Output form.
    #[arg(long, value_enum, default_value = "table")]
    pub format: PlanFormat,

    /// Write the output to FILE instead of standard output (`-`), atomically, e.g.
    /// -o plan.json.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Print nothing on standard error: no progress, no hints (the output is still written;
    /// errors still printed).
    #[arg(long, short)]
    pub quiet: bool,
}

const EXPLAIN_EXAMPLES: &str = "Examples:
  memfit explain build.log
  docker build . 2>&1 | memfit explain -
  kubectl describe pod web-7d9 | memfit explain -
  memfit explain --exit-code 137
  memfit explain --format json deploy.log -o explanation.json
  memfit explain --format markdown build.log >> \"$GITHUB_STEP_SUMMARY\"

Exit status: 0 when an explanation was produced (whatever the verdict); 2 for usage and I/O
errors.";

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// The log to read: a file, or `-` for standard input (any size; read as a stream).
    #[arg(value_name = "LOG")]
    pub log: Option<PathBuf>,

    /// The exit status the failure ended with, e.g. --exit-code 137; alone (no log) it
    /// explains the status and what to check next.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub exit_code: Option<i32>,

    /// Output form.
    #[arg(long, value_enum, default_value = "human")]
    pub format: ExplainFormat,

    /// Write the output to FILE instead of standard output (`-`), atomically, e.g.
    /// -o explanation.json.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Alias of --format json (schema memfit.explain/1).
    #[arg(long)]
    pub json: bool,

    /// Print nothing on standard error (the output is still written; errors still printed).
    #[arg(long, short)]
    pub quiet: bool,
}

/// Output forms of `memfit explain`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExplainFormat {
    /// The verdict, the evidence and what to do.
    Human,
    /// JSON (schema memfit.explain/1).
    Json,
    /// The cause and the remedies in markdown, for PR comments and $GITHUB_STEP_SUMMARY.
    Markdown,
}

const RUN_EXAMPLES: &str = "Examples:
  memfit run --limit 512M -- npm run build
  memfit run --platform render:starter --html report.html -- npm ci
  memfit run --platform list
  memfit run --limit 1G --cpus 2 --budget 800M --json run.json -- cargo build --release
  memfit run --limit 512M --format json=run.json --format html=run.html --format markdown=- -- npm test
  memfit run --limit 1G --baseline main.json --max-increase 10% -- npm run build

Exit status: the command's own (128 + signal when killed); 1 when --budget or
--max-increase is exceeded by a command that succeeded; 2 for memfit's usage and I/O errors.";

const BISECT_EXAMPLES: &str = "Examples:
  memfit bisect -- node build.js
  memfit bisect --setup 'rm -rf dist' --precision 16M --repeat 3 -- npm run build
  memfit bisect --lo 256M --hi 2G --cpus 1 --json bisect.json -- npx tsc -p .
  memfit bisect --format json=bisect.json --format markdown=- -- npm run build";

/// Parses a size for clap, as Docker's `--memory` and `--memory-swap` read one: a bare number
/// is bytes (`1073741824`).
pub fn parse_size(text: &str) -> Result<ByteSize, String> {
    ByteSize::parse(text).map_err(|e| e.to_string())
}

/// Parses a size for memfit's own flags, which have no bare-bytes tradition: `180` is
/// refused (it would be 180 bytes); `180M`, or `180B` for bytes.
pub fn parse_size_with_unit(text: &str) -> Result<ByteSize, String> {
    ByteSize::parse_with_unit(text).map_err(|e| e.to_string())
}

/// `--lo`: a limit Docker would accept, since every try runs under one.
fn parse_lo(text: &str) -> Result<ByteSize, String> {
    if parse_size(text)? < memfit_core::target::MIN_LIMIT {
        return Err(format!(
            "--lo {text} is below 6M, Docker's minimum limit (and the default); e.g. --lo 64M"
        ));
    }
    parse_size_with_unit(text)
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text)
        .map_err(|e| format!("invalid duration `{text}`: {e}; use e.g. 50ms, 1s"))?;
    if duration < Duration::from_millis(1) || duration > Duration::from_secs(60) {
        return Err(format!(
            "invalid duration `{text}`: use a period from 1ms to 60s, e.g. 50ms"
        ));
    }
    Ok(duration)
}

fn parse_cpus(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.01 => Ok(n),
        _ => Err(format!(
            "invalid CPU count `{text}`: use a number of CPUs from 0.01 up, e.g. --cpus 1 or --cpus 0.5"
        )),
    }
}

/// A list of CPU numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

/// `0`, `0-2`, `0,2-3`, as `docker run --cpuset-cpus` takes them.
fn parse_cpuset(text: &str) -> Result<CpuList, String> {
    let err = || {
        format!("invalid CPU list `{text}`: use CPU numbers and ranges, e.g. --cpuset 0 or --cpuset 0-1,3")
    };
    let mut cpus = Vec::new();
    for part in text.split(',') {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<usize>(), b.trim().parse::<usize>()),
            None => (part.trim().parse::<usize>(), part.trim().parse::<usize>()),
        };
        let (first, last) = (first.map_err(|_| err())?, last.map_err(|_| err())?);
        if first > last || last >= 1024 {
            return Err(err());
        }
        cpus.extend(first..=last);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(CpuList(cpus))
}

/// How the command is started, as a container would start it.
#[derive(Args, Debug, Clone, Default)]
pub struct FidelityArgs {
    /// CPU time as `docker run --cpus` and the platforms give it: a quota of N CPUs (0.5 is
    /// half a CPU); the command still sees every CPU, as in the container. Default: the
    /// plan's vCPUs with --platform, else no quota.
    #[arg(long, value_name = "N", value_parser = parse_cpus)]
    pub cpus: Option<f64>,

    /// The CPUs the command may run on, and so sees (`docker run --cpuset-cpus`), e.g.
    /// --cpuset 0 or --cpuset 0-1.
    #[arg(long, value_name = "LIST", value_parser = parse_cpuset)]
    pub cpuset: Option<CpuList>,

    /// Run the command as PID 1 of its own PID namespace, with /proc remounted, as
    /// `docker run` and Kubernetes do: a V8 heap abort then exits 139, and a PID 1 without a
    /// SIGTERM handler ignores SIGTERM.
    #[arg(long)]
    pub pid1: bool,

    /// Put a minimal init in front of the command as PID 1, as `docker run --init` does
    /// (implies --pid1).
    #[arg(long)]
    pub init: bool,

    /// Start from an empty environment (only PATH and HOME are kept), as a container starts
    /// from its image's; add variables with --env and --env-file.
    #[arg(long)]
    pub env_clear: bool,

    /// Set a variable for the command, e.g. --env NODE_ENV=production; `--env NAME` passes
    /// this machine's value (as `docker run -e NAME`).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,

    /// Read variables from a file of NAME=VALUE lines (`#` comments), as `docker run
    /// --env-file`.
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// Hard memory limit, as a container's: 512M, 1.5G, 256MiB, 1073741824 (binary units,
    /// as Docker's --memory).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, conflicts_with = "platform")]
    pub limit: Option<ByteSize>,

    /// Take the limit, the CPU time and how the command is started from a PaaS or CI plan, e.g. render:starter,
    /// heroku:standard-1x, fly:shared-cpu-1x, github:ubuntu-latest. `--platform list` prints
    /// them all with their sources.
    #[arg(long, value_name = "NAME")]
    pub platform: Option<String>,

    /// Swap the command may use beyond the limit (default 0: no swap, like most PaaS).
    /// E.g. --swap 512M to mimic Heroku, which swaps past the quota.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "0")]
    pub swap: ByteSize,

    #[command(flatten)]
    pub fidelity: FidelityArgs,

    /// Do not create a cgroup even where possible: no limit is enforced and the peak is
    /// sampled. E.g. to compare with tools that only sample.
    #[arg(long)]
    pub measure_only: bool,

    /// Let the command see the host's cgroup tree. By default it sees its own cgroup at the
    /// root of /sys/fs/cgroup, as in a container, so runtimes that read the limit there
    /// (Node ≤ 20.2, the JVM) size themselves as they would in the container.
    #[arg(long)]
    pub host_view: bool,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub limits: LimitArgs,

    /// Sampling period of the timeline, e.g. 50ms (default: adaptive, from 30ms up to 1s as
    /// the process count grows, keeping memfit under 1% of a CPU). The peak comes from the
    /// kernel's watermark whatever the period.
    #[arg(long, value_name = "DURATION", value_parser = parse_interval)]
    pub interval: Option<Duration>,

    /// Do not inject the runtime view: by default every Node process of the command loads a
    /// preload (NODE_OPTIONS=--require) that reports the V8 heap, Buffers and GC pauses to
    /// memfit (docs/runtime-view.md).
    #[arg(long)]
    pub no_runtime_view: bool,

    /// Run every Python process of the command under tracemalloc and report its traced
    /// memory: a `sitecustomize` put first on PYTHONPATH (children and multiprocessing
    /// workers inherit it; the command's own sitecustomize still runs). The verdict then says
    /// whether the memory was Python's own objects or outside its allocator. tracemalloc
    /// slows Python and its tables take memory, so it is off unless asked; not with
    /// --no-runtime-view (docs/runtime-view.md).
    #[arg(long)]
    pub python_tracemalloc: bool,

    /// A report, written when the command has ended: FORMAT=FILE (`-` is standard output),
    /// repeatable, or one bare FORMAT for -o (default: standard output). Formats: human (the
    /// summary, on standard error by default), json (schema memfit.run/1), markdown, svg
    /// (the timeline), html (interactive). E.g. --format json=run.json --format markdown=-.
    #[arg(long, value_name = "FORMAT[=FILE]", value_parser = parse_spec)]
    pub format: Vec<FormatSpec>,

    /// Where a bare --format goes (`-` is standard output); alone, the human summary.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Alias of --format json=FILE: the versioned JSON report (schema memfit.run/1), e.g.
    /// --json run.json (`-` is standard output).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Alias of --format svg=FILE: an SVG timeline (charged and working memory, the limit,
    /// the peak, the top processes), e.g. --svg run.svg.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,

    /// Alias of --format html=FILE: a self-contained interactive HTML report, e.g.
    /// --html run.html.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// CI gate: exit 1 when the charged peak exceeds SIZE (the command's own failure status
    /// wins). E.g. --budget 450M; a unit is required.
    #[arg(long, value_name = "SIZE", value_parser = parse_size_with_unit)]
    pub budget: Option<ByteSize>,

    /// Compare the run with a report of an earlier one (`memfit run --json FILE`), printed
    /// after the summary, e.g. --baseline main.json.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,

    /// CI gate with --baseline: exit 1 when the charged peak exceeds the baseline's by more
    /// than this (the command's own failure status wins), e.g. 10% or 50M.
    #[arg(long, value_name = "PCT|SIZE", requires = "baseline")]
    pub max_increase: Option<Allowance>,

    /// Print no summary on standard error (reports are still written; errors still printed).
    #[arg(long, short)]
    pub quiet: bool,

    /// The command to run, after `--`, e.g. -- npm run build.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<OsString>,
}

#[derive(Args, Debug)]
pub struct BisectArgs {
    /// Lowest limit to consider, assumed failing: 6M (Docker's minimum, the default) or more;
    /// a unit is required.
    #[arg(long, value_name = "SIZE", value_parser = parse_lo)]
    pub lo: Option<ByteSize>,

    /// Highest limit to consider (default: the unconstrained run's charged peak); a unit is
    /// required.
    #[arg(long, value_name = "SIZE", value_parser = parse_size_with_unit)]
    pub hi: Option<ByteSize>,

    /// Stop when the band between failing and passing is this narrow: a size (16M) or a
    /// percentage of the upper bound (2%). Default 2%.
    #[arg(long, value_name = "SIZE|PCT", default_value = "2%")]
    pub precision: String,

    /// How many times each boundary limit is tried: garbage-collected runtimes are not
    /// deterministic. E.g. --repeat 3.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub repeat: u32,

    /// Shell command run before every try, unmeasured, so tries start alike, e.g.
    /// --setup 'rm -rf node_modules dist'.
    #[arg(long, value_name = "CMD")]
    pub setup: Option<String>,

    #[command(flatten)]
    pub fidelity: FidelityArgs,

    /// Swap allowed beyond each limit (default 0).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "0")]
    pub swap: ByteSize,

    /// A report, written at the end: FORMAT=FILE (`-` is standard output), repeatable, or one
    /// bare FORMAT for -o (default: standard output). Formats: human (the summary, on standard
    /// error by default), json (schema memfit.bisect/1), markdown. E.g. --format
    /// json=bisect.json --format markdown=-.
    #[arg(long, value_name = "FORMAT[=FILE]", value_parser = parse_spec)]
    pub format: Vec<FormatSpec>,

    /// Where a bare --format goes (`-` is standard output); alone, the human summary.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Alias of --format json=FILE (schema memfit.bisect/1), e.g. --json bisect.json.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// No progress and no summary on standard error (reports are still written; errors still
    /// printed).
    #[arg(long, short)]
    pub quiet: bool,

    /// Show each try's output instead of discarding it.
    #[arg(long)]
    pub show_output: bool,

    /// The command to run, after `--`.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD",
        required = true
    )]
    pub command: Vec<OsString>,
}
