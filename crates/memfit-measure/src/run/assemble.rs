//! The report, from what the stages measured.

use super::prepare::Prepared;
use super::teardown::Finished;
use super::RunOptions;
use crate::report::{
    CpuThrottlingInfo, ExitInfo, Mode, OomInfo, Peak, PeakSource, RunReport, RuntimeViewInfo,
    SamplingCost, WorkingSource, RUN_SCHEMA,
};

pub(super) fn assemble(options: &RunOptions, prepared: Prepared, finished: Finished) -> RunReport {
    let Finished {
        mut supervised,
        left_behind,
        oom,
        victims,
        watermark,
        cgroup_path,
        container_view,
        inherited_env,
        exit_records,
        own_usage,
        containers,
        cpu_throttling,
        runtime_view,
    } = finished;
    let mut caveats = prepared.caveats;
    let mode = prepared.mode;
    if mode == Mode::CgroupV2 && watermark.is_none() {
        caveats.push("this kernel has no memory.peak (Linux < 5.19): the peak is the sampled maximum and may miss short spikes".to_string());
    }
    let sampler = &mut supervised.sampler;
    let samples_taken = sampler.samples_taken;
    let sampled_peak = sampler.max_charged;
    let mut processes = sampler.records();
    let runtime_view = runtime_view.map(|view| {
        for process in &mut processes {
            process.v8 = view.record(process.pid);
            process.jvm = view.jvm_record(process.pid);
            process.python = view.python_record(process.pid);
        }
        caveats.extend(crate::python_verdict::caveats(
            &processes,
            options.python_tracemalloc,
        ));
        let info = RuntimeViewInfo {
            node: true,
            jvm: true,
            python: options.python_tracemalloc,
            processes_reporting: processes
                .iter()
                .filter(|p| p.v8.is_some() || p.jvm.is_some() || p.python.is_some())
                .count(),
            rejected_lines: view.rejected,
        };
        if let Err(e) = view.close() {
            caveats.push(format!(
                "could not remove the runtime view's directory: {e}"
            ));
        }
        info
    });
    // Each process's own high-water mark (VmHWM as sampled, hiwater_rss from its exit record)
    // is the kernel's counter too: it bounds the peaks from below when no sample caught them.
    let process_peak = processes
        .iter()
        .map(|p| p.peak_rss_bytes)
        .max()
        .unwrap_or(0);
    let (charged_peak, source) = match watermark {
        Some(w) => (w.max(sampled_peak), PeakSource::KernelWatermark),
        None if mode == Mode::MeasureOnly => (sampled_peak.max(process_peak), PeakSource::Sampled),
        None => (sampled_peak, PeakSource::Sampled),
    };
    let floor = process_peak.min(charged_peak);
    let (working_peak, working_source) = if floor > sampler.max_working {
        (floor, WorkingSource::ProcessPeak)
    } else {
        (sampler.max_working, WorkingSource::Sampled)
    };
    RunReport {
        schema: RUN_SCHEMA.to_string(),
        memfit_version: env!("CARGO_PKG_VERSION").to_string(),
        command: options
            .command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        mode,
        mode_reason: prepared.mode_reason,
        cgroup_path,
        container_view,
        limit_bytes: options.limit,
        limit_enforced: mode != Mode::MeasureOnly && options.limit.is_some(),
        effective_limit_bytes: prepared.effective_limit.as_ref().map(|e| e.bytes),
        effective_limit_cgroup: prepared.effective_limit.as_ref().map(|e| {
            // In a container's own cgroup namespace its cgroup is the root of the mount.
            match &prepared.hierarchy {
                Some(h) if h.mount == e.cgroup => format!(
                    "{} (the root of the cgroup mount: the container memfit runs in)",
                    e.cgroup.display()
                ),
                _ => e.cgroup.display().to_string(),
            }
        }),
        swap_bytes: options.swap,
        platform: options.platform.clone(),
        cpus: prepared.visible_cpus,
        host_cpus: prepared.host_cpus,
        cpu_quota: prepared.cpu_quota,
        cpu_throttling: cpu_throttling.map(|t| CpuThrottlingInfo {
            periods: t.periods,
            throttled_periods: t.throttled_periods,
            throttled_ms: t.throttled_us / 1000,
        }),
        pid: options.pid,
        inherited_env,
        exit: ExitInfo::of(supervised.main_exit),
        oom_killed: oom.map(|o| o.oom_kill > 0),
        oom: OomInfo {
            kill_count: oom.map_or(0, |o| o.oom_kill),
            limit_hits: oom.map_or(0, |o| o.limit_hits),
            victims,
        },
        peak: Peak {
            charged_bytes: charged_peak,
            working_bytes: working_peak,
            working_source,
            source,
            sampled_charged_bytes: sampled_peak,
            page_cache_bytes: sampler.page_cache_at_peak,
            kernel_bytes: sampler.kernel_at_peak,
            swap_used_bytes: if supervised.host_swap {
                sampler.max_swap.max(supervised.swap_watermark.unwrap_or(0))
            } else {
                0
            },
        },
        at_peak: sampler.at_peak_described(),
        at_peak_t_ms: sampler.at_peak_t_ms,
        processes,
        samples: std::mem::take(&mut sampler.samples),
        duration_ms: supervised.duration_ms,
        left_behind,
        interrupted: supervised.interrupted,
        containers,
        steps: Vec::new(),
        sampling: SamplingCost {
            samples_taken,
            mean_interval_ms: if samples_taken > 1 {
                supervised.intervals_total.as_secs_f64() * 1000.0 / (samples_taken - 1) as f64
            } else {
                0.0
            },
            own_cpu_ms: own_usage.cpu_ms,
            own_max_rss_bytes: own_usage.max_rss_bytes,
            exit_records,
            near_limit_samples: supervised.near_limit_samples,
            alarm_wakeups: supervised.alarm_wakeups,
        },
        caveats,
        runtime_view,
    }
}
