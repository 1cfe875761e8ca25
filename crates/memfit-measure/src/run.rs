//! `run`: start a command in a fresh cgroup, sample it until it exits, read the kernel's
//! verdict and clean up. See the crate documentation for the shape of the whole.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cgroup::{self, Hierarchy, OomCounters, RunCgroup, Version};
use crate::clone3::{self, Clone3Error};
use crate::container_view::{self, ViewOutcome, ViewSetup};
use crate::kmsg::KernelLog;
use crate::procfs;
use crate::report::*;
use crate::signals::SignalWatcher;
use crate::taskstats::{ExitListener, ExitRecord};

/// What the command's stdin/stdout/stderr are connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdio {
    /// memfit's own, untouched (`memfit run`).
    Inherit,
    /// /dev/null (bisect tries, unless asked to show output).
    Null,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub command: Vec<OsString>,
    pub limit: Option<u64>,
    pub swap: u64,
    /// Restrict the CPUs the command can see to this many.
    pub cpus: Option<usize>,
    /// Fixed sampling period; `None` adapts it to the sampling cost.
    pub interval: Option<Duration>,
    /// Do not use a cgroup even where one is available.
    pub measure_only: bool,
    /// Let the command see the host's cgroup tree instead of its own cgroup as the root, as
    /// in a container (see `container_view`).
    pub host_view: bool,
    pub stdio: Stdio,
    /// `provider:plan` when the limit came from `--platform`.
    pub platform: Option<String>,
    /// Extra caveats the caller knows of (e.g. fractional platform CPUs).
    pub caveats: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no command given; put it after `--`, e.g. memfit run --limit 512M -- npm run build")]
    EmptyCommand,
    #[error("command not found: `{0}`; check its spelling and PATH")]
    CommandNotFound(String),
    #[error("cannot execute `{0}`: permission denied; is it an executable file?")]
    NotExecutable(String),
    #[error("cannot start `{command}`: {source}")]
    Spawn { command: String, source: io::Error },
    #[error("--cpus {wanted}: only {available} CPU(s) are available to memfit here; use a number from 1 to {available}")]
    TooManyCpus { wanted: usize, available: usize },
    #[error("cannot create the run's cgroup under {parent}: {source}")]
    Cgroup { parent: String, source: io::Error },
}

/// Default sampling bounds: at most every 30 ms when sampling is cheap, at least every
/// second; in between, 150 × the cost of one sample. A tick costs more than the sample it
/// times (wake-up, reaping), so 150 rather than 100 keeps memfit under 1% of a core
/// (bench/README.md: 1, 10 and 100 processes).
const MIN_INTERVAL: Duration = Duration::from_millis(30);
const MAX_INTERVAL: Duration = Duration::from_millis(1000);
const COST_FACTOR: u32 = 150;
/// The timeline keeps at most this many samples; older ones are merged pairwise.
const MAX_SAMPLES: usize = 4000;
const TOP_PER_SAMPLE: usize = 8;
/// Exit records of unknown parentage kept while waiting for their parent's record.
const MAX_PENDING_EXITS: usize = 10_000;

static RUN_SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// Runs the command to completion and reports on it.
pub fn run(options: &RunOptions, signals: &SignalWatcher) -> Result<RunReport, RunError> {
    let program = options.command.first().ok_or(RunError::EmptyCommand)?;
    let command_text: Vec<String> = options
        .command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();

    let allowed_cpus = allowed_cpus();
    let host_cpus = allowed_cpus.len().max(1);
    let cpu_set = match options.cpus {
        Some(wanted) if wanted == 0 || wanted > host_cpus => {
            return Err(RunError::TooManyCpus {
                wanted,
                available: host_cpus,
            })
        }
        Some(wanted) => Some(cpu_set_of(&allowed_cpus[..wanted])),
        None => None,
    };

    let mut caveats = options.caveats.clone();
    let mut hierarchy_found = None;
    let (cgroup, mode_reason) = if options.measure_only {
        (None, Some("--measure-only was given".to_string()))
    } else {
        match Hierarchy::detect() {
            Ok(hierarchy) => {
                let name = format!(
                    "memfit-{}-{}",
                    std::process::id(),
                    RUN_SEQUENCE.fetch_add(1, Ordering::Relaxed)
                );
                let cg = RunCgroup::create(&hierarchy, &name, options.limit, options.swap)
                    .map_err(|source| RunError::Cgroup {
                        parent: hierarchy.parent.display().to_string(),
                        source,
                    })?;
                hierarchy_found = Some(hierarchy);
                (Some(cg), None)
            }
            Err(reason) => (None, Some(reason)),
        }
    };
    let mode = match cgroup.as_ref().map(|c| c.version()) {
        Some(Version::V2) => Mode::CgroupV2,
        Some(Version::V1) => Mode::CgroupV1,
        None => Mode::MeasureOnly,
    };
    if let Some(reason) = &mode_reason {
        caveats.push(format!(
            "measure-only: {reason}. No limit is enforced, the peak is sampled (Σ RSS counts shared pages once per process) and no OOM verdict is possible"
        ));
    }
    if options.cpus.is_none() && host_cpus > 1 {
        caveats.push(format!(
            "the command sees all {host_cpus} CPUs of this machine; tools that start a worker per CPU (terser, jest, rustc) use more memory here than on a 1–2 vCPU plan: emulate the target with --cpus"
        ));
    }
    if host_swap_bytes() > 0 && mode == Mode::CgroupV1 && !swap_limitable(cgroup.as_ref()) {
        caveats.push("this host has swap and the kernel has no swap accounting (memory.memsw.*): the command may swap instead of being OOM-killed".to_string());
    }

    let baseline = cgroup
        .as_ref()
        .map(|c| c.oom_counters())
        .unwrap_or_default();
    let mut kernel_log = cgroup.as_ref().and_then(|_| KernelLog::open());
    let mut exit_listener = ExitListener::open().ok();
    if exit_listener.is_none() {
        caveats.push("no exit records (taskstats needs root): a process that lives and dies between two samples is missing from the process list, though its memory still counts in the charged peak".to_string());
    }

    // As subreaper, memfit adopts daemonized grandchildren, so they stay in the measured
    // tree (measure-only) and are reaped when killed.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };

    // The command sees its cgroup as the root of the cgroup filesystem, as in a container.
    let view = match (&hierarchy_found, options.host_view) {
        (Some(hierarchy), false) => match container_view::prepare(hierarchy) {
            Ok((setup, report)) => Some((Arc::new(setup), report)),
            Err(error) => {
                caveats.push(format!("the command sees the host's cgroup tree ({error}): runtimes that read the limit at the root of /sys/fs/cgroup (Node ≤ 20.2) size themselves from the host's RAM"));
                None
            }
        },
        _ => None,
    };
    let view_setup = view.as_ref().map(|(setup, _)| Arc::clone(setup));

    let own_usage_before = own_rusage();
    let boot_ms_at_start = procfs::boot_time_ms();
    let started = Instant::now();
    let spawn_plain = || {
        spawn_with_pre_exec(
            options,
            cgroup.as_ref().map(|c| c.procs_fd()),
            cpu_set,
            view_setup.clone(),
        )
    };
    let main_pid = match cgroup.as_ref().filter(|c| c.version() == Version::V2) {
        // cgroup v2: create the child inside the cgroup (PRODUCT.md decision 4).
        Some(cg) => match clone3::spawn_into_cgroup(
            program,
            &options.command[1..],
            cg.path(),
            options.stdio,
            cpu_set.as_ref(),
            view_setup.as_deref(),
        ) {
            Ok(pid) => pid,
            Err(Clone3Error::Exec(source)) => return Err(spawn_error(program, source)),
            Err(Clone3Error::Unsupported(reason)) => {
                caveats.push(format!("clone3(CLONE_INTO_CGROUP) was refused ({reason}): the command entered its cgroup by a cgroup.procs write before exec instead"));
                spawn_plain()?
            }
        },
        None => spawn_plain()?,
    };
    let container_view = match &view {
        Some((_, report)) => match report.outcome() {
            ViewOutcome::Entered => true,
            ViewOutcome::Failed(step) => {
                caveats.push(format!("the command sees the host's cgroup tree ({step} failed): runtimes that read the limit at the root of /sys/fs/cgroup (Node ≤ 20.2) size themselves from the host's RAM"));
                false
            }
        },
        None => false,
    };

    let mut sampler = Sampler::new(
        boot_ms_at_start,
        procfs::clock_ticks_per_second(),
        std::process::id() as i32,
    );
    let mut main_exit: Option<(Option<i32>, Option<i32>)> = None;
    let mut main_exit_ms = 0;
    let mut interrupted = false;
    let mut termination_signals = 0;
    let mut last_oom = baseline;
    let mut interval = options.interval.unwrap_or(MIN_INTERVAL);
    let mut intervals_total = Duration::ZERO;

    loop {
        let tick_cpu_started = thread_cpu_time();
        let now_ms = started.elapsed().as_millis() as u64;
        for (pid, code, signal) in reap_children() {
            sampler.mark_exited(pid, now_ms, code, signal);
            if pid == main_pid {
                main_exit = Some((code, signal));
                main_exit_ms = now_ms;
            }
        }
        if let Some(listener) = exit_listener.as_mut() {
            for record in listener.drain() {
                sampler.record_exit(record, now_ms);
            }
        }
        let pids = match &cgroup {
            Some(cg) => cg.pids(),
            None => procfs::descendants(std::process::id() as i32),
        };
        let memory = cgroup.as_ref().map(|cg| {
            let usage = cg.usage();
            (usage, cg.stat())
        });
        let vanished = sampler.sample(&pids, now_ms, memory);
        sampler.resolve_pending_exits();
        if let Some(cg) = &cgroup {
            let counters = cg.oom_counters();
            if counters.oom_kill > last_oom.oom_kill {
                sampler.suspect_oom_victims(&vanished);
            }
            last_oom = counters;
        }
        if main_exit.is_some() {
            break;
        }
        if options.interval.is_none() {
            // CPU time, not wall time: a busy machine must not slow the sampling down.
            let cost = thread_cpu_time().saturating_sub(tick_cpu_started);
            interval = (cost * COST_FACTOR).clamp(MIN_INTERVAL, MAX_INTERVAL);
        }
        intervals_total += interval;
        for received in signals.wait(interval) {
            if !received.is_termination() {
                continue;
            }
            interrupted = true;
            termination_signals += 1;
            if termination_signals >= 3 {
                // Asked three times: stop everything now.
                kill_everything(cgroup.as_ref(), main_pid);
            } else if received.sent_by_process {
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe { libc::kill(main_pid, received.signal) };
            }
        }
    }
    let duration_ms = main_exit_ms;

    // The command is gone; whatever it left running is killed, as a container runtime does
    // when PID 1 exits. Record it first.
    let leftover: Vec<i32> = match &cgroup {
        Some(cg) => cg.pids(),
        None => procfs::descendants(std::process::id() as i32),
    };
    let left_behind = sampler.describe(&leftover);
    if !leftover.is_empty() {
        kill_everything(cgroup.as_ref(), main_pid);
        for pid in &leftover {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        wait_for_exit(&leftover, &mut sampler, duration_ms);
    }

    if let Some(listener) = exit_listener.as_mut() {
        for record in listener.drain() {
            sampler.record_exit(record, duration_ms);
        }
    }
    let exit_records = exit_listener.is_some();
    drop(exit_listener);
    let final_counters = cgroup.as_ref().map(|c| c.oom_counters());
    let watermark = cgroup.as_ref().and_then(|c| c.peak());
    let kernel_kills = kernel_log
        .as_mut()
        .map(|k| k.oom_kills())
        .unwrap_or_default();
    let cgroup_path = cgroup.as_ref().map(|c| c.path().display().to_string());
    if let Some(cg) = cgroup {
        let mut reap = || {
            for (pid, code, signal) in reap_children() {
                sampler.mark_exited(pid, duration_ms, code, signal);
            }
        };
        if let Err(e) = cg.remove(&mut reap) {
            caveats.push(format!("could not remove the run's cgroup: {e}"));
        }
    }

    let oom = final_counters.map(|after| OomCounters {
        oom_kill: after.oom_kill.saturating_sub(baseline.oom_kill),
        limit_hits: after.limit_hits.saturating_sub(baseline.limit_hits),
    });
    let cgroup_name = cgroup_path
        .as_deref()
        .and_then(|p| p.rsplit('/').next())
        .map(|name| format!("/{name}"));
    let victims = sampler.victims(
        &kernel_kills,
        cgroup_name.as_deref(),
        oom.map_or(0, |o| o.oom_kill),
    );
    let (code, signal) = main_exit.unwrap_or((None, None));
    let status = match (code, signal) {
        (_, Some(sig)) => 128 + sig,
        (Some(code), None) => code,
        (None, None) => 1,
    };
    if mode == Mode::CgroupV2 && watermark.is_none() {
        caveats.push("this kernel has no memory.peak (Linux < 5.19): the peak is the sampled maximum and may miss short spikes".to_string());
    }
    let own_usage = own_rusage().since(&own_usage_before);
    let samples_taken = sampler.samples_taken;
    let sampled_peak = sampler.max_charged;
    let (charged_peak, source) = match watermark {
        Some(w) => (w.max(sampled_peak), "kernel-watermark"),
        None => (sampled_peak, "sampled"),
    };
    Ok(RunReport {
        schema: "memfit.run/1",
        memfit_version: env!("CARGO_PKG_VERSION"),
        command: command_text,
        mode,
        mode_reason,
        cgroup_path,
        container_view,
        limit_bytes: options.limit,
        limit_enforced: mode != Mode::MeasureOnly && options.limit.is_some(),
        swap_bytes: options.swap,
        platform: options.platform.clone(),
        cpus: options.cpus.unwrap_or(host_cpus),
        host_cpus,
        exit: ExitInfo {
            code,
            signal,
            status,
            description: describe_exit(code, signal),
        },
        oom_killed: oom.map(|o| o.oom_kill > 0),
        oom: OomInfo {
            kill_count: oom.map_or(0, |o| o.oom_kill),
            limit_hits: oom.map_or(0, |o| o.limit_hits),
            victims,
        },
        peak: Peak {
            charged_bytes: charged_peak,
            working_bytes: sampler.max_working,
            source,
            sampled_charged_bytes: sampled_peak,
            page_cache_bytes: sampler.page_cache_at_peak,
        },
        at_peak: sampler.at_peak_described(),
        at_peak_t_ms: sampler.at_peak_t_ms,
        processes: sampler.records(),
        samples: std::mem::take(&mut sampler.samples),
        duration_ms,
        left_behind,
        interrupted,
        sampling: SamplingCost {
            samples_taken,
            mean_interval_ms: if samples_taken > 1 {
                intervals_total.as_secs_f64() * 1000.0 / (samples_taken - 1) as f64
            } else {
                0.0
            },
            own_cpu_ms: own_usage.cpu_ms,
            own_max_rss_bytes: own_usage.max_rss_bytes,
            exit_records,
        },
        caveats,
    })
}

/// Spawns with std's fork+exec; the child enters the cgroup (if any) by writing "0" to its
/// `cgroup.procs` before exec. Used on cgroup v1, in measure-only mode, and where clone3 is
/// refused.
fn spawn_with_pre_exec(
    options: &RunOptions,
    procs_fd: Option<i32>,
    cpu_set: Option<libc::cpu_set_t>,
    view: Option<Arc<ViewSetup>>,
) -> Result<i32, RunError> {
    let program = &options.command[0];
    let mut command = Command::new(program);
    command.args(&options.command[1..]);
    if options.stdio == Stdio::Null {
        command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
    }
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
    // system calls on data prepared before the fork.
    unsafe {
        command.pre_exec(move || {
            if let Some(fd) = procs_fd {
                // Writing "0" moves the writing process: the command enters its cgroup before
                // exec, so nothing it allocates escapes the limit.
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some(view) = &view {
                view.enter();
            }
            if let Some(set) = &cpu_set {
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            // Do not outlive memfit if it is SIGKILLed.
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            Ok(())
        });
    }
    let child = command
        .spawn()
        .map_err(|source| spawn_error(program, source))?;
    // The child is reaped with waitpid(-1) by the run loop, with every adopted orphan; std's
    // handle is not used again.
    Ok(child.id() as i32)
}

fn spawn_error(program: &std::ffi::OsStr, source: io::Error) -> RunError {
    let name = program.to_string_lossy().into_owned();
    match source.kind() {
        io::ErrorKind::NotFound => RunError::CommandNotFound(name),
        io::ErrorKind::PermissionDenied => RunError::NotExecutable(name),
        _ => RunError::Spawn {
            command: name,
            source,
        },
    }
}

/// One process seen during the run.
#[derive(Debug, Clone)]
struct Tracked {
    pid: i32,
    ppid: i32,
    starttime: u64,
    name: String,
    command: String,
    peak_rss: u64,
    last_rss: u64,
    started_ms: u64,
    ended_ms: Option<u64>,
    exit: Option<(Option<i32>, Option<i32>)>,
    /// Forked but maybe not yet exec'd: its command line is still its parent's. Exec of the
    /// same binary keeps the name, so the command line is re-read until it differs.
    maybe_before_exec: bool,
}

struct Sampler {
    /// memfit itself: its children (the command, adopted orphans) belong to the run.
    own_pid: i32,
    /// Exit records whose parent is not known (yet): a short-lived parent's record may come
    /// after its children's.
    pending_exits: Vec<(ExitRecord, u64)>,
    boot_ms_at_start: u64,
    ticks_per_second: u64,
    live: HashMap<i32, Tracked>,
    ended: Vec<Tracked>,
    samples: Vec<Sample>,
    samples_taken: u64,
    max_charged: u64,
    max_working: u64,
    page_cache_at_peak: u64,
    at_peak: Vec<(i32, u64)>,
    at_peak_t_ms: u64,
    /// Processes that vanished in a tick when the oom_kill counter rose.
    suspected_victims: Vec<Tracked>,
}

impl Sampler {
    fn new(boot_ms_at_start: u64, ticks_per_second: u64, own_pid: i32) -> Sampler {
        Sampler {
            own_pid,
            pending_exits: Vec::new(),
            boot_ms_at_start,
            ticks_per_second,
            live: HashMap::new(),
            ended: Vec::new(),
            samples: Vec::new(),
            samples_taken: 0,
            max_charged: 0,
            max_working: 0,
            page_cache_at_peak: 0,
            at_peak: Vec::new(),
            at_peak_t_ms: 0,
            suspected_victims: Vec::new(),
        }
    }

    /// Reads every listed process and the group's memory; returns the processes that were
    /// live at the previous sample and are gone now.
    fn sample(
        &mut self,
        pids: &[i32],
        now_ms: u64,
        group: Option<(u64, cgroup::MemoryStat)>,
    ) -> Vec<Tracked> {
        let mut seen = Vec::with_capacity(pids.len());
        let mut rss_sum = 0;
        let mut anon_sum = 0;
        for &pid in pids {
            let Some(status) = procfs::read_status(pid) else {
                continue;
            };
            let starttime = match self.live.get(&pid) {
                Some(t) => t.starttime,
                None => procfs::read_starttime(pid).unwrap_or(0),
            };
            let reused = self.live.get(&pid).is_some_and(|t| {
                t.name != status.name && procfs::read_starttime(pid) != Some(t.starttime)
            });
            if reused {
                if let Some(mut old) = self.live.remove(&pid) {
                    old.ended_ms.get_or_insert(now_ms);
                    self.ended.push(old);
                }
            }
            if !self.live.contains_key(&pid) {
                let started_ms = (starttime * 1000 / self.ticks_per_second.max(1))
                    .saturating_sub(self.boot_ms_at_start)
                    .min(now_ms);
                let cmdline = procfs::read_cmdline(pid);
                // An empty command line: the process is in the middle of exec (or a kernel
                // thread); it is read again on the next samples.
                let unknown = cmdline.is_none();
                let command = cmdline.unwrap_or_else(|| format!("[{}]", status.name));
                let maybe_before_exec = unknown
                    || self
                        .live
                        .get(&status.ppid)
                        .is_some_and(|parent| parent.command == command);
                self.live.insert(
                    pid,
                    Tracked {
                        pid,
                        ppid: status.ppid,
                        starttime,
                        name: status.name.clone(),
                        command,
                        peak_rss: 0,
                        last_rss: 0,
                        started_ms,
                        ended_ms: None,
                        exit: None,
                        maybe_before_exec,
                    },
                );
            }
            let Some(entry) = self.live.get_mut(&pid) else {
                continue;
            };
            if entry.name != status.name || entry.maybe_before_exec {
                // The process exec'd (sh -c → node): name it after what it runs now.
                entry.name = status.name.clone();
                if let Some(cmd) = procfs::read_cmdline(pid) {
                    if cmd != entry.command {
                        entry.command = cmd;
                        entry.maybe_before_exec = false;
                    }
                }
            }
            if status.hwm == 0 && status.rss == 0 {
                // A zombie: its memory is gone and its peak was recorded before.
                continue;
            }
            entry.peak_rss = entry.peak_rss.max(status.hwm).max(status.rss);
            entry.last_rss = status.rss;
            entry.ppid = status.ppid;
            rss_sum += status.rss;
            anon_sum += status.rss_anon + status.rss_shmem;
            seen.push((pid, status.rss));
        }
        let mut vanished = Vec::new();
        let gone: Vec<i32> = self
            .live
            .keys()
            .copied()
            .filter(|pid| !pids.contains(pid))
            .collect();
        for pid in gone {
            if let Some(mut t) = self.live.remove(&pid) {
                t.ended_ms.get_or_insert(now_ms);
                vanished.push(t.clone());
                self.ended.push(t);
            }
        }

        let (charged, working, page_cache) = match group {
            Some((usage, stat)) => (usage, stat.working(usage), stat.file),
            None => (rss_sum, anon_sum, 0),
        };
        seen.sort_by_key(|p| std::cmp::Reverse(p.1));
        if charged >= self.max_charged {
            self.max_charged = charged;
            self.page_cache_at_peak = page_cache;
            self.at_peak = seen.iter().take(10).copied().collect();
            self.at_peak_t_ms = now_ms;
        }
        self.max_working = self.max_working.max(working);
        self.samples_taken += 1;
        self.samples.push(Sample {
            t_ms: now_ms,
            charged_bytes: charged,
            working_bytes: working,
            top: seen.into_iter().take(TOP_PER_SAMPLE).collect(),
        });
        if self.samples.len() > MAX_SAMPLES {
            self.samples = downsample(std::mem::take(&mut self.samples));
        }
        vanished
    }

    fn mark_exited(&mut self, pid: i32, now_ms: u64, code: Option<i32>, signal: Option<i32>) {
        if let Some(t) = self.live.get_mut(&pid) {
            t.ended_ms = Some(now_ms);
            t.exit = Some((code, signal));
        } else if let Some(t) = self.ended.iter_mut().rev().find(|t| t.pid == pid) {
            t.exit.get_or_insert((code, signal));
        }
    }

    /// Takes the kernel's exit record of a process: its final peak for a known process, or a
    /// whole entry for one that lived and died between two samples.
    fn record_exit(&mut self, record: ExitRecord, now_ms: u64) {
        if !record.is_process() {
            return;
        }
        let known = self
            .live
            .get_mut(&record.pid)
            .or_else(|| self.ended.iter_mut().rev().find(|t| t.pid == record.pid));
        if let Some(tracked) = known {
            tracked.peak_rss = tracked.peak_rss.max(record.hiwater_rss_bytes);
            tracked.exit.get_or_insert(wait_status(record.exit_code));
            return;
        }
        if self.pending_exits.len() < MAX_PENDING_EXITS {
            self.pending_exits.push((record, now_ms));
        }
        self.resolve_pending_exits();
    }

    /// Adopts the exit records whose parent belongs to the run: its own children may have
    /// exited first, and a parent may be sampled only after its child's record arrived.
    fn resolve_pending_exits(&mut self) {
        while let Some(index) = self
            .pending_exits
            .iter()
            .position(|(r, _)| self.is_member(r.ppid))
        {
            let (record, at) = self.pending_exits.swap_remove(index);
            self.adopt_exit(record, at);
        }
    }

    fn is_member(&self, pid: i32) -> bool {
        pid == self.own_pid
            || self.live.contains_key(&pid)
            || self.ended.iter().any(|t| t.pid == pid)
    }

    fn adopt_exit(&mut self, record: ExitRecord, now_ms: u64) {
        let exit = wait_status(record.exit_code);
        self.ended.push(Tracked {
            pid: record.pid,
            ppid: record.ppid,
            starttime: 0,
            name: record.comm.clone(),
            command: record.comm,
            peak_rss: record.hiwater_rss_bytes,
            last_rss: 0,
            started_ms: now_ms.saturating_sub(record.elapsed_us / 1000),
            ended_ms: Some(now_ms),
            exit: Some(exit),
            maybe_before_exec: false,
        });
    }

    fn suspect_oom_victims(&mut self, vanished: &[Tracked]) {
        self.suspected_victims.extend(vanished.iter().cloned());
    }

    fn command_of(&self, pid: i32) -> String {
        self.live
            .get(&pid)
            .or_else(|| self.ended.iter().rev().find(|t| t.pid == pid))
            .map(|t| t.command.clone())
            .unwrap_or_else(|| format!("pid {pid}"))
    }

    fn describe(&self, pids: &[i32]) -> Vec<ProcessAtPeak> {
        pids.iter()
            .map(|&pid| ProcessAtPeak {
                pid,
                rss_bytes: self.live.get(&pid).map_or(0, |t| t.last_rss),
                command: self.command_of(pid),
            })
            .collect()
    }

    fn at_peak_described(&self) -> Vec<ProcessAtPeak> {
        self.at_peak
            .iter()
            .map(|&(pid, rss_bytes)| ProcessAtPeak {
                pid,
                rss_bytes,
                command: self.command_of(pid),
            })
            .collect()
    }

    /// The killed processes: exactly from the kernel log where it could be read, else the
    /// largest processes that vanished when the counter rose.
    fn victims(
        &self,
        kernel: &[crate::kmsg::KernelOomKill],
        cgroup_suffix: Option<&str>,
        kill_count: u64,
    ) -> Vec<OomVictim> {
        let tracked =
            |pid: i32| self.live.contains_key(&pid) || self.ended.iter().any(|t| t.pid == pid);
        let ours: Vec<OomVictim> = kernel
            .iter()
            .filter(|k| match (&k.task_memcg, cgroup_suffix) {
                (Some(memcg), Some(suffix)) => memcg.ends_with(suffix),
                _ => tracked(k.pid),
            })
            .map(|k| OomVictim {
                pid: k.pid,
                // A process killed before its first sample is known by its kernel name.
                command: if tracked(k.pid) {
                    self.command_of(k.pid)
                } else {
                    k.comm.clone()
                },
                rss_bytes: k.rss_bytes,
                evidence: "kernel-log",
            })
            .collect();
        if !ours.is_empty() || kill_count == 0 {
            return ours;
        }
        let mut suspects = self.suspected_victims.clone();
        if suspects.is_empty() {
            // The kill and the exit fell in one tick: any process reaped by SIGKILL.
            suspects = self
                .ended
                .iter()
                .filter(|t| matches!(t.exit, Some((_, Some(9)))))
                .cloned()
                .collect();
        }
        suspects.sort_by_key(|t| std::cmp::Reverse(t.last_rss));
        suspects
            .into_iter()
            .take(kill_count as usize)
            .map(|t| OomVictim {
                pid: t.pid,
                command: t.command,
                rss_bytes: t.last_rss,
                evidence: "vanished",
            })
            .collect()
    }

    fn records(&self) -> Vec<ProcessRecord> {
        let mut all: Vec<&Tracked> = self.ended.iter().chain(self.live.values()).collect();
        all.sort_by_key(|t| (t.started_ms, t.pid));
        all.into_iter()
            .map(|t| ProcessRecord {
                pid: t.pid,
                ppid: t.ppid,
                command: t.command.clone(),
                peak_rss_bytes: t.peak_rss,
                started_ms: t.started_ms,
                ended_ms: t.ended_ms,
                exit: t.exit.map(|(code, signal)| ExitInfo {
                    code,
                    signal,
                    status: signal.map_or(code.unwrap_or(0), |s| 128 + s),
                    description: describe_exit(code, signal),
                }),
            })
            .collect()
    }
}

/// Decodes a wait status (taskstats' `ac_exitcode`): signal in the low 7 bits, code above.
fn wait_status(status: u32) -> (Option<i32>, Option<i32>) {
    let signal = (status & 0x7f) as i32;
    if signal == 0 {
        (Some(((status >> 8) & 0xff) as i32), None)
    } else {
        (None, Some(signal))
    }
}

/// Halves the timeline, keeping from each pair the sample with more charged memory so that
/// peaks survive.
fn downsample(samples: Vec<Sample>) -> Vec<Sample> {
    let mut out = Vec::with_capacity(samples.len() / 2 + 1);
    let mut iter = samples.into_iter();
    while let Some(a) = iter.next() {
        match iter.next() {
            Some(b) if b.charged_bytes > a.charged_bytes => out.push(b),
            _ => out.push(a),
        }
    }
    out
}

/// Reaps every exited child (the command and adopted orphans): (pid, code, signal).
fn reap_children() -> Vec<(i32, Option<i32>, Option<i32>)> {
    let mut reaped = Vec::new();
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes into a local.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            break;
        }
        if libc::WIFEXITED(status) {
            reaped.push((pid, Some(libc::WEXITSTATUS(status)), None));
        } else if libc::WIFSIGNALED(status) {
            reaped.push((pid, None, Some(libc::WTERMSIG(status))));
        }
    }
    reaped
}

fn kill_everything(cgroup: Option<&RunCgroup>, main_pid: i32) {
    match cgroup {
        Some(cg) => cg.kill_all(),
        None => {
            for pid in procfs::descendants(std::process::id() as i32) {
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    // SAFETY: as above.
    unsafe { libc::kill(main_pid, libc::SIGKILL) };
}

fn wait_for_exit(pids: &[i32], sampler: &mut Sampler, now_ms: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        for (pid, code, signal) in reap_children() {
            sampler.mark_exited(pid, now_ms, code, signal);
        }
        let alive = pids
            .iter()
            .any(|pid| procfs::read_status(*pid).is_some_and(|s| s.rss > 0 || s.hwm > 0));
        if !alive {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    for (pid, code, signal) in reap_children() {
        sampler.mark_exited(pid, now_ms, code, signal);
    }
}

/// CPU time consumed by the calling thread.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the local timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills a zeroed cpu_set_t.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

fn cpu_set_of(cpus: &[usize]) -> libc::cpu_set_t {
    // SAFETY: CPU_SET on a zeroed set with in-range indices.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        set
    }
}

fn host_swap_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("SwapTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

fn swap_limitable(cgroup: Option<&RunCgroup>) -> bool {
    cgroup.is_some_and(|c| c.path().join("memory.memsw.limit_in_bytes").exists())
}

struct OwnUsage {
    cpu_ms: u64,
    max_rss_bytes: u64,
}

impl OwnUsage {
    fn since(&self, before: &OwnUsage) -> OwnUsage {
        OwnUsage {
            cpu_ms: self.cpu_ms.saturating_sub(before.cpu_ms),
            max_rss_bytes: self.max_rss_bytes,
        }
    }
}

fn own_rusage() -> OwnUsage {
    // SAFETY: getrusage fills a zeroed struct.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let ms = |tv: libc::timeval| tv.tv_sec as u64 * 1000 + tv.tv_usec as u64 / 1000;
    OwnUsage {
        cpu_ms: ms(usage.ru_utime) + ms(usage.ru_stime),
        // Not ru_maxrss: the kernel folds the pre-exec image of the forking parent into it
        // (a cargo test binary made memfit look 53 MiB large). VmHWM belongs to our own mm.
        max_rss_bytes: procfs::read_status(std::process::id() as i32).map_or(0, |s| s.hwm),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: u64, charged: u64) -> Sample {
        Sample {
            t_ms: t,
            charged_bytes: charged,
            working_bytes: 0,
            top: vec![],
        }
    }

    #[test]
    fn downsampling_keeps_the_peak() {
        let samples: Vec<Sample> = (0..9)
            .map(|i| sample(i, if i == 5 { 100 } else { i }))
            .collect();
        let halved = downsample(samples);
        assert_eq!(halved.len(), 5);
        assert!(halved.iter().any(|s| s.charged_bytes == 100));
    }
}
