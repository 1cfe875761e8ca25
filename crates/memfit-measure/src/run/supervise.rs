//! The sampling loop: reap, read the exit records, sample the group and every process, watch
//! the OOM counter, then sleep until the next tick or a signal. Forwards termination signals
//! to the command (a third one kills everything).

use std::time::Duration;

use memfit_sys::cgroup::OwnedCgroup;
use memfit_sys::process::{self, ExitStatus};
use memfit_sys::procfs;

use super::own_cost::thread_cpu_time;
use super::start::Running;
use crate::peak_alarm::PeakAlarm;
use crate::sampler::{GroupMemory, Sampler};
use crate::signals::SignalWatcher;

/// Default sampling bounds: at most every 30 ms when sampling is cheap; in between, 150 × the
/// cost of one sample. A tick costs more than the sample it times (wake-up, reaping), so 150
/// rather than 100 keeps memfit under 1% of a core (bench/README.md: 1, 10 and 100
/// processes). The period never exceeds 100 ms: where a sample is slow (5 ms of CPU under
/// qemu's software emulation, a busy host) 150 × its cost would sample every 750 ms and miss
/// a peak that lasts half a second.
const MIN_INTERVAL: Duration = Duration::from_millis(30);
const MAX_INTERVAL: Duration = Duration::from_millis(100);
const COST_FACTOR: u32 = 150;
/// Within this share of the limit (in percent), or rising by more than this share of it in
/// one tick, memory is sampled at [`MIN_INTERVAL`] whatever a sample costs: the peak is there.
const NEAR_LIMIT_PERCENT: u64 = 80;
const FAST_RISE_PERCENT: u64 = 10;
/// Without a limit, a rise of this much in one tick also counts as fast.
const FAST_RISE_BYTES: u64 = 64 << 20;
/// A debugging knob: count every sample as this many more milliseconds of CPU, to reproduce
/// a slow sampler (an emulated or busy machine) on a fast one. Not a user option.
const DEBUG_SAMPLE_COST_VAR: &str = "MEMFIT_DEBUG_SAMPLE_COST_MS";

/// What the loop saw, up to the command's exit.
pub(super) struct Supervised {
    pub sampler: Sampler,
    pub main_exit: ExitStatus,
    /// When the command exited, from its start.
    pub duration_ms: u64,
    /// memfit received SIGINT/SIGTERM/SIGHUP/SIGQUIT.
    pub interrupted: bool,
    /// The sum of the sleeps between samples, for the mean interval.
    pub intervals_total: Duration,
    /// The kernel's swap watermark (or its lower bound on v1) when the command exited.
    pub swap_watermark: Option<u64>,
    /// Whether the machine had swap (a device or file) at the start or the end of the run.
    pub host_swap: bool,
    /// Ticks sampled at the fastest period because memory was near the limit or rising fast.
    pub near_limit_samples: u64,
    /// Samples the kernel asked for: memory crossed 90% of the limit (v1) or hit it (v2).
    pub alarm_wakeups: u64,
}

pub(super) fn supervise(
    running: &mut Running,
    cgroup: Option<&OwnedCgroup>,
    signals: &SignalWatcher,
    fixed_interval: Option<Duration>,
) -> Supervised {
    let mut sampler = Sampler::new(
        running.boot_ms_at_start,
        procfs::clock_ticks_per_second(),
        std::process::id() as i32,
    );
    sampler.set_exec_log(running.exec_watcher.as_ref().map(|w| w.log()));
    let mut main_exit = None;
    let mut duration_ms = 0;
    let mut interrupted = false;
    let mut termination_signals = 0;
    let mut last_oom = running.baseline;
    let mut interval = fixed_interval.unwrap_or(MIN_INTERVAL);
    let mut intervals_total = Duration::ZERO;
    let limit = cgroup
        .and_then(|cg| cg.enclosing_hard_limit())
        .map(|l| l.bytes);
    // The kernel wakes the loop when memory nears the limit: a sample at the peak, whatever
    // the period.
    let mut alarm = cgroup
        .zip(limit)
        .and_then(|(cg, limit)| PeakAlarm::arm(cg, limit));
    let mut previous_usage = 0;
    let mut near_limit_samples = 0;
    let mut alarm_wakeups = 0;
    let host_swap = has_swap();
    let debug_cost = std::env::var(DEBUG_SAMPLE_COST_VAR)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(Duration::ZERO, |ms| Duration::from_millis(ms.min(1000)));

    loop {
        let tick_cpu_started = thread_cpu_time();
        let now_ms = running.started.elapsed().as_millis() as u64;
        for reaped in process::reap_exited() {
            sampler.mark_exited(reaped, now_ms);
            if reaped.pid == running.pid {
                main_exit = Some(reaped.status);
                duration_ms = now_ms;
            }
        }
        if let Some(listener) = running.exit_listener.as_mut() {
            for record in listener.drain() {
                sampler.record_exit(record, now_ms);
            }
        }
        let pids = members(cgroup);
        let memory = cgroup.map(|cg| GroupMemory {
            usage: cg.usage(),
            stat: cg.stat(),
            swap: cg.swap_usage(),
        });
        let usage = memory.map_or(0, |m| m.usage);
        let vanished = sampler.sample(&pids, now_ms, memory);
        if let Some(view) = running.runtime_view.as_mut() {
            view.drain();
            view.sample_jvms(&pids);
            sampler.set_runtime(view.sample(&pids));
        }
        sampler.resolve_pending_exits();
        if let Some(cg) = cgroup {
            let counters = cg.oom_counters();
            if counters.oom_kill > last_oom.oom_kill {
                sampler.suspect_oom_victims(&vanished, now_ms);
            }
            last_oom = counters;
        }
        if let Some(main_exit) = main_exit {
            return Supervised {
                sampler,
                main_exit,
                duration_ms,
                interrupted,
                intervals_total,
                // Without a swap device nothing was swapped: v1's watermarks of memory and
                // memory + swap differ by a few pages of per-CPU charge batching anyway.
                swap_watermark: cgroup
                    .and_then(|cg| cg.swap_peak())
                    .filter(|_| host_swap || has_swap()),
                host_swap: host_swap || has_swap(),
                near_limit_samples,
                alarm_wakeups,
            };
        }
        if fixed_interval.is_none() {
            // CPU time, not wall time: a busy machine must not slow the sampling down.
            let cost = thread_cpu_time().saturating_sub(tick_cpu_started) + debug_cost;
            interval = (cost * COST_FACTOR).clamp(MIN_INTERVAL, MAX_INTERVAL);
            if near_the_peak(usage, previous_usage, limit) {
                interval = MIN_INTERVAL;
                near_limit_samples += 1;
            }
        }
        previous_usage = usage;
        intervals_total += interval;
        let (received, rang) =
            signals.wait_or_alarm(interval, alarm.as_ref().map(PeakAlarm::poll_target));
        if rang {
            alarm_wakeups += 1;
            if let Some(alarm) = alarm.as_mut() {
                alarm.reset();
            }
        }
        for received in received {
            if !received.is_termination() {
                continue;
            }
            interrupted = true;
            termination_signals += 1;
            if termination_signals >= 3 {
                // Asked three times: stop everything now.
                kill_everything(cgroup, running.pid);
            } else if received.sent_by_process {
                process::kill(running.pid, received.signal);
            }
        }
    }
}

/// Whether the machine has swap to use (`SwapTotal` in /proc/meminfo).
fn has_swap() -> bool {
    procfs::meminfo("SwapTotal").is_some_and(|bytes| bytes > 0)
}

/// Whether memory is where a peak is likely: near the limit, or rising fast.
fn near_the_peak(usage: u64, previous: u64, limit: Option<u64>) -> bool {
    let rise = usage.saturating_sub(previous);
    match limit {
        Some(limit) => {
            usage.saturating_mul(100) >= limit.saturating_mul(NEAR_LIMIT_PERCENT)
                || rise.saturating_mul(100) >= limit.saturating_mul(FAST_RISE_PERCENT)
        }
        None => rise >= FAST_RISE_BYTES,
    }
}

/// The processes of the run: the members of its cgroup and of the containers' below it, or
/// memfit's descendants without one.
pub(super) fn members(cgroup: Option<&OwnedCgroup>) -> Vec<i32> {
    match cgroup {
        Some(cg) => cg.pids_recursive(),
        None => procfs::descendants(std::process::id() as i32),
    }
}

pub(super) fn kill_everything(cgroup: Option<&OwnedCgroup>, main_pid: i32) {
    match cgroup {
        Some(cg) => cg.kill_all(),
        None => {
            for pid in procfs::descendants(std::process::id() as i32) {
                process::kill(pid, libc::SIGKILL);
            }
        }
    }
    process::kill(main_pid, libc::SIGKILL);
}
