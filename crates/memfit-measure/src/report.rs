//! The report of one `memfit run`: what every renderer (terminal, JSON, SVG, HTML) reads.
//! The JSON form is versioned (`schema: "memfit.run/1"`); fields are only ever added.

use memfit_core::ByteSize;
use memfit_sys::process::ExitStatus;

use crate::spawn::PidMode;
use serde::{Deserialize, Serialize};

/// Swap below this is noise (a few pages the kernel swapped out while reclaiming).
pub const SWAP_THAT_COUNTS: u64 = 1024 * 1024;

/// The schema of a run report's JSON form.
pub const RUN_SCHEMA: &str = "memfit.run/1";

/// How the run was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    #[serde(rename = "cgroup-v2")]
    CgroupV2,
    #[serde(rename = "cgroup-v1")]
    CgroupV1,
    #[serde(rename = "measure-only")]
    MeasureOnly,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::CgroupV2 => "cgroup-v2",
            Mode::CgroupV1 => "cgroup-v1",
            Mode::MeasureOnly => "measure-only",
        }
    }
}

/// A run, as every renderer reads it and as `memfit plan --from` reads it back from JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// [`RUN_SCHEMA`].
    pub schema: String,
    pub memfit_version: String,
    pub command: Vec<String>,
    pub mode: Mode,
    /// Why no cgroup was used, in measure-only mode.
    pub mode_reason: Option<String>,
    pub cgroup_path: Option<String>,
    /// Whether the command saw its cgroup as the root of /sys/fs/cgroup, as in a container
    /// (a private cgroup namespace and mount); false with --host-view or where refused.
    pub container_view: bool,
    pub limit_bytes: Option<u64>,
    /// Whether the limit was enforced by the kernel (false in measure-only mode).
    pub limit_enforced: bool,
    /// A lower limit an enclosing cgroup sets (a CI job's, a container's, a systemd slice's),
    /// which holds for the command too; `null` when none is lower than `limit_bytes`.
    #[serde(default)]
    pub effective_limit_bytes: Option<u64>,
    /// The cgroup that sets `effective_limit_bytes`.
    #[serde(default)]
    pub effective_limit_cgroup: Option<String>,
    pub swap_bytes: u64,
    pub platform: Option<String>,
    /// CPUs the command could see (after `--cpuset`), and the host's.
    pub cpus: usize,
    pub host_cpus: usize,
    /// CPU time the command got, in CPUs (a CFS quota, as `docker run --cpus`).
    #[serde(default)]
    pub cpu_quota: Option<f64>,
    /// With a CPU quota: what the kernel's bandwidth control did (`cpu.stat`).
    #[serde(default)]
    pub cpu_throttling: Option<CpuThrottlingInfo>,
    /// Whether the command was PID 1 of its own PID namespace (`pid1`), behind an init
    /// (`init`), or a plain child (`child`).
    #[serde(default)]
    pub pid: PidMode,
    /// The host's runtime variables (`NAME=value`) that reached the command: a container
    /// starts with its image's environment instead.
    #[serde(default)]
    pub inherited_env: Vec<String>,
    pub exit: ExitInfo,
    /// From the cgroup's oom_kill counter; `null` in measure-only mode.
    pub oom_killed: Option<bool>,
    pub oom: OomInfo,
    pub peak: Peak,
    pub processes: Vec<ProcessRecord>,
    /// Processes at the sample with the highest charged memory, largest first.
    pub at_peak: Vec<ProcessAtPeak>,
    pub at_peak_t_ms: u64,
    pub samples: Vec<Sample>,
    pub duration_ms: u64,
    /// Processes still running when the command exited; memfit killed them, as a container
    /// runtime does when PID 1 exits.
    pub left_behind: Vec<ProcessAtPeak>,
    /// memfit received SIGINT/SIGTERM/SIGHUP/SIGQUIT during the run.
    pub interrupted: bool,
    /// Containers Docker started for the command (the run's child cgroups), in start order.
    #[serde(default)]
    pub containers: Vec<ContainerRecord>,
    /// The build steps those containers ran, located in the Dockerfile (filled in by the
    /// caller, which reads the Dockerfile).
    #[serde(default)]
    pub steps: Vec<BuildStep>,
    pub sampling: SamplingCost,
    pub caveats: Vec<String>,
    /// What the runtime view saw (docs/runtime-view.md); absent when it was off
    /// (`--no-runtime-view`, a docker command).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_view: Option<RuntimeViewInfo>,
}

/// The runtime view of a run: which runtimes were asked to report, and how many did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeViewInfo {
    /// The Node preload was injected (NODE_OPTIONS=--require).
    pub node: bool,
    /// The JVMs' own counters (hsperfdata, as jstat reads them) were read: nothing injected.
    #[serde(default)]
    pub jvm: bool,
    /// The Python `sitecustomize` was injected (PYTHONPATH), `--python-tracemalloc`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub python: bool,
    /// Processes that reported.
    pub processes_reporting: usize,
    /// Report lines that were not reports (malformed, too long): the command wrote them.
    #[serde(default)]
    pub rejected_lines: u64,
}

/// What V8 said about one Node process over the run (all its threads added up), from the
/// runtime view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct V8Record {
    /// `heap_size_limit` of its main thread: old space (--max-old-space-size) + young.
    pub heap_limit_bytes: u64,
    pub heap_used_peak_bytes: u64,
    pub heap_total_peak_bytes: u64,
    /// `process.memoryUsage().external`: C++ objects bound to JavaScript, Buffers included.
    pub external_peak_bytes: u64,
    /// `arrayBuffers`: ArrayBuffers and Buffers (part of `external`).
    pub array_buffers_peak_bytes: u64,
    /// The GC pauses (`PerformanceObserver` 'gc' entries) it reported, in all.
    pub gc_pause_total_ms: u64,
    /// Threads (the main one and worker_threads) that reported.
    #[serde(default)]
    pub threads: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit code when the command exited normally.
    pub code: Option<i32>,
    /// Signal number when it was killed.
    pub signal: Option<i32>,
    /// The shell's view: the code, or 128 + signal. memfit exits with it.
    pub status: i32,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OomInfo {
    /// Processes the kernel OOM-killed in the group during the run (`oom_kill` delta).
    pub kill_count: u64,
    /// Times the limit was reached (v2 `max` events, v1 `failcnt` delta).
    pub limit_hits: u64,
    pub victims: Vec<OomVictim>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OomVictim {
    pub pid: i32,
    pub command: String,
    pub rss_bytes: u64,
    pub evidence: VictimEvidence,
    /// When memfit saw it gone (ms since the start): its exit, or the sample in which the
    /// `oom_kill` counter rose; `null` in reports written before memfit recorded it.
    #[serde(default)]
    pub seen_ms: Option<u64>,
}

/// How a victim of the OOM killer was identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VictimEvidence {
    /// Exact: the kernel's own "Killed process" record in /dev/kmsg.
    KernelLog,
    /// The largest process that disappeared in the tick the oom_kill counter rose.
    Vanished,
}

/// Where the headline peak comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeakSource {
    /// The cgroup's own high-water mark (`memory.peak`, `memory.max_usage_in_bytes`): a
    /// spike between two samples is never missed.
    KernelWatermark,
    /// The highest sample: without a watermark (measure-only, Linux < 5.19 on v2).
    Sampled,
}

impl WorkingSource {
    /// How the summaries name it.
    pub fn describe(self) -> &'static str {
        match self {
            WorkingSource::Sampled => "sampled",
            WorkingSource::ProcessPeak => "largest process's own peak",
        }
    }
}

impl PeakSource {
    /// The name used in the JSON report.
    pub fn as_str(self) -> &'static str {
        match self {
            PeakSource::KernelWatermark => "kernel-watermark",
            PeakSource::Sampled => "sampled",
        }
    }
}

/// Where the working peak comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkingSource {
    /// The highest sample of charged − inactive page cache.
    #[default]
    Sampled,
    /// No sample came near it: the largest process's own high-water mark (VmHWM, or
    /// `hiwater_rss` from its exit record), a lower bound.
    ProcessPeak,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Peak {
    /// The headline: memory charged to the limit (page cache and kernel memory included).
    pub charged_bytes: u64,
    /// anon + shmem + kernel memory, i.e. charged − inactive page cache: the highest sample,
    /// or the largest process's own peak RSS where that is higher (`working_source`).
    pub working_bytes: u64,
    #[serde(default)]
    pub working_source: WorkingSource,
    pub source: PeakSource,
    /// The highest charged value the sampler itself saw, to compare with the watermark.
    pub sampled_charged_bytes: u64,
    /// Page cache charged at the sampled peak.
    pub page_cache_bytes: u64,
    /// Kernel memory (slab, stacks, page tables, sockets) charged at the sampled peak: v2
    /// `memory.stat` `kernel`, v1 `memory.kmem.usage_in_bytes`.
    #[serde(default)]
    pub kernel_bytes: u64,
    /// The most swap the run used (v2 `memory.swap.peak` or `memory.swap.current` sampled;
    /// v1 `memory.memsw.*` − `memory.*`): memory that did not fit under the limit. 0 without
    /// `--swap` or without the kernel's swap accounting.
    #[serde(default)]
    pub swap_used_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub pid: i32,
    pub ppid: i32,
    pub command: String,
    /// The process's own peak RSS (VmHWM as last read).
    pub peak_rss_bytes: u64,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
    pub exit: Option<ExitInfo>,
    /// V8's own counters, where the process is Node and the runtime view was on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v8: Option<V8Record>,
    /// The JVM's own counters (its hsperfdata, as `jstat` reads them), where the process is
    /// a HotSpot JVM and the runtime view was on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jvm: Option<JvmRecord>,
    /// What `tracemalloc` said, where the process is Python and `--python-tracemalloc` was
    /// given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<PythonRecord>,
}

/// What `tracemalloc` said about one Python process over the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PythonRecord {
    /// `tracemalloc.get_traced_memory()`'s peak: the most memory in blocks Python's
    /// allocators handed out at once (since tracing started, or since the fork for a forked
    /// child), as last reported.
    pub traced_peak_bytes: u64,
    /// Its current value in the last report (at exit when `exit_reported`).
    pub traced_current_bytes: u64,
    /// `tracemalloc.get_tracemalloc_memory()` at its largest: tracemalloc's own tables, in the
    /// process's RSS only because of the flag.
    pub tracemalloc_overhead_peak_bytes: u64,
    /// Whether the process reported at its exit (its peak is then exact); not when it was
    /// killed, or left without exit handlers (`os._exit` is covered).
    pub exit_reported: bool,
}

/// What a HotSpot JVM's performance counters said over the run (sampled).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JvmRecord {
    /// The heap's maximum (-Xmx, or MaxRAMPercentage of the limit it saw).
    pub heap_max_bytes: u64,
    pub heap_used_peak_bytes: u64,
    /// The old generation's used bytes at their highest: what survived collections.
    pub old_gen_used_peak_bytes: u64,
    /// Collections, and the time spent in them (jstat's GCT), as last read.
    pub gc_count: u64,
    pub gc_pause_total_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessAtPeak {
    pub pid: i32,
    pub rss_bytes: u64,
    pub command: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub t_ms: u64,
    pub charged_bytes: u64,
    pub working_bytes: u64,
    /// The largest processes at this moment, largest first.
    pub top: Vec<ProcessRss>,
    /// What the runtimes inside the processes reported at this moment (the runtime view of
    /// `memfit run`), summed over the processes that have one; absent without a runtime view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeSample>,
}

/// The runtime view at one sample: V8's own counters summed over the Node processes that
/// reported (`v8.getHeapStatistics()`, `process.memoryUsage()`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeSample {
    pub heap_used_bytes: u64,
    pub heap_total_bytes: u64,
    pub external_bytes: u64,
    pub array_buffers_bytes: u64,
}

/// One process's resident memory in a sample. Written as `[pid, rss]` in JSON (the form
/// `memfit.run/1` has had from the start; the HTML report reads it so).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(i32, u64)", into = "(i32, u64)")]
pub struct ProcessRss {
    pub pid: i32,
    pub rss_bytes: u64,
}

impl From<(i32, u64)> for ProcessRss {
    fn from((pid, rss_bytes): (i32, u64)) -> ProcessRss {
        ProcessRss { pid, rss_bytes }
    }
}

impl From<ProcessRss> for (i32, u64) {
    fn from(p: ProcessRss) -> (i32, u64) {
        (p.pid, p.rss_bytes)
    }
}

/// A container Docker started for the command, measured in its own cgroup below the run's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// Its cgroup's name: the container id, or `buildkit-<id>` for an adopted BuildKit step.
    pub id: String,
    /// Its compose service, else its container name (`docker inspect`, read after the run:
    /// absent for a container removed by then, `--rm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub kind: ContainerKind,
    /// What it ran, as first seen after the runtime's own init (`/bin/sh -c npm ci`).
    pub command: Vec<String>,
    /// Its cgroup's watermark, as last read (v2 `memory.peak`, v1 `max_usage_in_bytes`).
    pub peak_bytes: u64,
    /// OOM kills its cgroup counted.
    pub oom_kills: u64,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
}

/// Why Docker started a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContainerKind {
    /// `docker run`/`create`.
    Container,
    /// A build's RUN step.
    BuildStep,
}

/// A RUN step of a build, located in its Dockerfile.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildStep {
    /// The instruction as written, e.g. `RUN npm ci`.
    pub instruction: String,
    pub file: String,
    pub line: usize,
    /// The stage's name (`FROM … AS build`) or index.
    pub stage: String,
    /// Its position among the Dockerfile's instructions, and their count ("step 4/9").
    pub index: usize,
    pub of: usize,
    pub peak_bytes: u64,
    pub oom_killed: bool,
    /// Its exit status where known (137 after an OOM kill).
    pub exit: Option<i32>,
    pub started_ms: u64,
    pub duration_ms: u64,
}

/// A span of the timeline a container or build step ran in, for the charts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Band {
    pub start_ms: u64,
    pub end_ms: u64,
    /// `step 4/9`, or a container's short id.
    pub label: String,
}

/// What measuring cost memfit itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SamplingCost {
    pub samples_taken: u64,
    pub mean_interval_ms: f64,
    pub own_cpu_ms: u64,
    pub own_max_rss_bytes: u64,
    /// Whether the kernel's exit records (taskstats) completed the process list.
    pub exit_records: bool,
    /// Samples taken at the fastest period because memory was near the limit (80%) or rising
    /// fast (10% of the limit in one tick), whatever a sample cost.
    #[serde(default)]
    pub near_limit_samples: u64,
    /// Samples the kernel woke memfit for: usage crossed 90% of the limit (v1 memory
    /// threshold) or `memory.events` changed (v2), whatever the period.
    #[serde(default)]
    pub alarm_wakeups: u64,
}

impl RunReport {
    /// The one-line verdict, e.g. "fits in 512 MiB with 38% headroom" — and, with the
    /// runtime view, which part of Node's memory grew to a limit.
    pub fn verdict(&self) -> String {
        match self.runtime_finding() {
            Some(finding) => format!("{}; {finding}", self.kernel_verdict()),
            None => self.kernel_verdict(),
        }
    }

    /// The verdict from the kernel's counters alone.
    fn kernel_verdict(&self) -> String {
        let peak = ByteSize(self.peak.charged_bytes);
        let holder = self
            .oom
            .victims
            .first()
            .map(|v| (v.command.clone(), v.rss_bytes))
            .or_else(|| {
                self.at_peak
                    .first()
                    .map(|p| (p.command.clone(), p.rss_bytes))
            });
        let holder_text = holder
            .map(|(cmd, rss)| {
                format!(
                    " while `{}` held {}",
                    shorten(&short_command(&cmd), 60),
                    ByteSize(rss)
                )
            })
            .unwrap_or_default();
        let limit = self.limit_that_held();
        let enforced = self.limit_enforced || self.effective_limit_bytes.is_some();
        match (limit, enforced, self.oom_killed) {
            (Some(limit), true, Some(true)) => format!(
                "needs more than {}{}: OOM-killed at {}{}",
                ByteSize(limit),
                if self.swap_bytes > 0 {
                    format!(" and {} of swap", ByteSize(self.swap_bytes))
                } else {
                    String::new()
                },
                peak,
                holder_text
            ),
            (Some(limit), true, _) if self.exit.status != 0 => format!(
                "no OOM kill under {} (peak {}), but the command failed: {}",
                ByteSize(limit),
                peak,
                self.exit.description
            ),
            (Some(limit), true, _) if self.peak.swap_used_bytes >= SWAP_THAT_COUNTS => {
                let swap = self.peak.swap_used_bytes;
                // Without swap those pages stay in memory, unless the kernel reclaims as much
                // page cache instead.
                let without = if self.peak.page_cache_bytes < swap {
                    "without swap it is OOM-killed"
                } else {
                    "without swap it fits only if the kernel reclaims page cache instead"
                };
                format!(
                    "fits in {} only with {} of swap (peak {} in memory); {without}",
                    ByteSize(limit),
                    ByteSize(swap),
                    peak
                )
            }
            (Some(limit), true, _) => {
                let headroom = 100.0 * (limit as f64 - peak.0 as f64) / limit as f64;
                format!(
                    "fits in {} with {:.0}% headroom (peak {})",
                    ByteSize(limit),
                    headroom.max(0.0),
                    peak
                )
            }
            (Some(limit), false, _) => format!(
                "limit {} NOT enforced (measure-only): sampled peak {}{}",
                ByteSize(limit),
                peak,
                if peak.0 > limit {
                    ", above the limit"
                } else {
                    ""
                }
            ),
            (None, _, Some(true)) => {
                format!("OOM-killed without a memfit limit at {peak}{holder_text}")
            }
            (None, _, _) => format!("peak {peak}{holder_text}; no limit set"),
        }
    }

    /// How much swap the run used, of how much it was allowed, and what that means.
    pub fn swap_summary(&self) -> String {
        let used = self.peak.swap_used_bytes;
        let allowed = ByteSize(self.swap_bytes);
        if used >= SWAP_THAT_COUNTS {
            format!(
                "{} used at most (of {allowed} allowed): memory that did not fit under the limit",
                ByteSize(used)
            )
        } else {
            format!("none used (of {allowed} allowed)")
        }
    }

    /// The limit that held: the run's own, or an enclosing cgroup's where that is lower.
    pub fn limit_that_held(&self) -> Option<u64> {
        match (self.limit_bytes, self.effective_limit_bytes) {
            (Some(own), Some(effective)) => Some(own.min(effective)),
            (own, effective) => own.or(effective),
        }
    }

    /// When each build step (else each container) ran, for the charts.
    pub fn bands(&self) -> Vec<Band> {
        if !self.steps.is_empty() {
            return self
                .steps
                .iter()
                .map(|s| Band {
                    start_ms: s.started_ms,
                    end_ms: s.started_ms + s.duration_ms,
                    label: format!("step {}/{}", s.index, s.of),
                })
                .collect();
        }
        self.containers
            .iter()
            .map(|c| Band {
                start_ms: c.started_ms,
                end_ms: c.ended_ms.unwrap_or(self.duration_ms),
                label: c.id.chars().take(12).collect(),
            })
            .collect()
    }

    /// Why charged and working peaks differ, in one sentence, when they do — from what was
    /// measured only: the page cache and kernel memory `memory.stat` showed at the sampled
    /// peak (the JSON's `page_cache_bytes`, `kernel_bytes`), or a peak no sample caught.
    pub fn gap_explanation(&self) -> Option<String> {
        let charged = self.peak.charged_bytes;
        let working = self.peak.working_bytes;
        let gap = charged.saturating_sub(working);
        if self.mode == Mode::MeasureOnly || gap < charged / 10 {
            return None;
        }
        let from_process = self.peak.working_source == WorkingSource::ProcessPeak;
        let working_is = if from_process {
            "the working peak is the largest process's own high-water mark (VmHWM / exit record), a lower bound"
        } else {
            "the working peak is what the samples saw"
        };
        let sampled = self.peak.sampled_charged_bytes;
        if self.peak.source == PeakSource::KernelWatermark && sampled + charged / 10 < charged {
            return Some(format!(
                "no sample caught the peak (the highest sampled charge was {} of the kernel's {} watermark): {working_is}; what the other {} was (page cache, kernel memory or more of the command's own) is not known",
                ByteSize(sampled),
                ByteSize(charged),
                ByteSize(gap)
            ));
        }
        let (cache, kernel) = (self.peak.page_cache_bytes, self.peak.kernel_bytes);
        let measured = cache.saturating_add(kernel);
        if measured >= gap / 10 * 8 {
            return Some(format!(
                "{} of the charged peak is not working memory: {} page cache (files read or written, which the kernel reclaims before it OOM-kills) and {} kernel memory at the sampled peak",
                ByteSize(gap),
                ByteSize(cache),
                ByteSize(kernel)
            ));
        }
        Some(format!(
            "{} of the charged peak is not working memory; at the sampled peak {} was page cache and {} kernel memory, the other {} was charged between samples ({working_is})",
            ByteSize(gap),
            ByteSize(cache),
            ByteSize(kernel),
            ByteSize(gap.saturating_sub(measured))
        ))
    }
}

impl ExitInfo {
    /// How a process ended, with the shell's status and what it usually means.
    pub fn of(status: ExitStatus) -> ExitInfo {
        let (code, signal) = (status.code(), status.signal());
        ExitInfo {
            code,
            signal,
            status: status.shell_status(),
            description: describe_exit(code, signal),
        }
    }
}

/// The exit status in words: what the number means and what usually causes it.
pub fn describe_exit(code: Option<i32>, signal: Option<i32>) -> String {
    match (code, signal) {
        (_, Some(9)) => "killed by SIGKILL (status 137 = 128 + 9); the kernel's OOM killer sends SIGKILL, but so does `kill -9` — the oom_kill counter decides".to_string(),
        (_, Some(6)) => "aborted by SIGABRT (status 134 = 128 + 6), as a V8 heap abort (\"JavaScript heap out of memory\") or a failed assertion ends".to_string(),
        (_, Some(15)) => "terminated by SIGTERM (status 143 = 128 + 15): something asked it to stop".to_string(),
        (_, Some(2)) => "interrupted by SIGINT (status 130 = 128 + 2)".to_string(),
        (_, Some(11)) => "crashed with SIGSEGV (status 139 = 128 + 11): a segmentation fault, not a memory limit".to_string(),
        (_, Some(sig)) => format!("killed by signal {sig} (status {})", 128 + sig),
        (Some(0), None) => "exited successfully (status 0)".to_string(),
        (Some(137), None) => "exited with status 137: a wrapper (a shell, npm, a build tool) reporting that a process it ran was SIGKILLed".to_string(),
        (Some(134), None) => "exited with status 134: a wrapper reporting a SIGABRT, as in a V8 heap abort".to_string(),
        (Some(code), None) => format!("exited with status {code}"),
        (None, None) => "did not start".to_string(),
    }
}

/// A command line with its program's directory dropped: `/usr/bin/node x.js` → `node x.js`.
pub fn short_command(command: &str) -> String {
    let (program, rest) = command.split_once(' ').unwrap_or((command, ""));
    let name = program.rsplit('/').next().unwrap_or(program);
    if rest.is_empty() {
        name.to_string()
    } else {
        format!("{name} {rest}")
    }
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// The kernel's CFS bandwidth counters over a run with a CPU quota: the 100 ms periods in
/// which the command ran, those in which it used up its quota and waited, and how long it
/// waited in all (https://docs.kernel.org/scheduler/sched-bwc.html).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuThrottlingInfo {
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_ms: u64,
}
