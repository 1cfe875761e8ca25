//! After the command: kill what it left running (as a container runtime does when PID 1
//! exits), collect the last exit records, read the kernel's counters and watermark, name the
//! OOM victims, and remove the cgroup.

use std::time::{Duration, Instant};

use memfit_sys::cgroup::OomCounters;
use memfit_sys::{process, procfs};

use super::own_cost::OwnUsage;
use super::prepare::Prepared;
use super::start::Running;
use super::supervise::{self, Supervised};
use crate::report::{OomVictim, ProcessAtPeak};
use crate::sampler::Sampler;

/// Everything measured, the cgroup gone.
pub(super) struct Finished {
    pub supervised: Supervised,
    pub left_behind: Vec<ProcessAtPeak>,
    /// OOM counter deltas over the run; `None` without a cgroup.
    pub oom: Option<OomCounters>,
    pub victims: Vec<OomVictim>,
    /// The kernel's watermark (`None` without a cgroup, or on v2 before Linux 5.19).
    pub watermark: Option<u64>,
    pub cgroup_path: Option<String>,
    pub container_view: bool,
    pub inherited_env: Vec<String>,
    pub exit_records: bool,
    pub own_usage: OwnUsage,
}

pub(super) fn teardown(
    prepared: &mut Prepared,
    mut running: Running,
    mut supervised: Supervised,
) -> Finished {
    let cgroup = prepared.cgroup.as_ref();
    let sampler = &mut supervised.sampler;
    let ended_ms = supervised.duration_ms;

    let leftover = supervise::members(cgroup);
    let left_behind = sampler.describe(&leftover);
    if !leftover.is_empty() {
        supervise::kill_everything(cgroup, running.pid);
        for pid in &leftover {
            process::kill(*pid, libc::SIGKILL);
        }
        wait_for_exit(&leftover, sampler, ended_ms);
    }

    if let Some(listener) = running.exit_listener.as_mut() {
        for record in listener.drain() {
            sampler.record_exit(record, ended_ms);
        }
    }
    let exit_records = running.exit_listener.take().is_some();
    let final_counters = cgroup.map(|c| c.oom_counters());
    let watermark = cgroup.and_then(|c| c.peak());
    let kernel_kills = running
        .kernel_log
        .as_mut()
        .map(|k| k.oom_kills())
        .unwrap_or_default();
    let cgroup_path = cgroup.map(|c| c.path().display().to_string());
    if let Some(cg) = prepared.cgroup.take() {
        let mut reap = || {
            for reaped in process::reap_exited() {
                sampler.mark_exited(reaped, ended_ms);
            }
        };
        if let Err(e) = cg.remove(&mut reap) {
            prepared
                .caveats
                .push(format!("could not remove the run's cgroup: {e}"));
        }
    }

    let baseline = running.baseline;
    let oom = final_counters.map(|after| OomCounters {
        oom_kill: after.oom_kill.saturating_sub(baseline.oom_kill),
        limit_hits: after.limit_hits.saturating_sub(baseline.limit_hits),
    });
    // The kernel names a victim's memcg by its path; the run cgroup's name ends it.
    let cgroup_name = cgroup_path
        .as_deref()
        .and_then(|p| p.rsplit('/').next())
        .map(|name| format!("/{name}"));
    let victims = sampler.victims(
        &kernel_kills,
        cgroup_name.as_deref(),
        oom.map_or(0, |o| o.oom_kill),
    );
    Finished {
        left_behind,
        oom,
        victims,
        watermark,
        cgroup_path,
        container_view: running.container_view,
        inherited_env: std::mem::take(&mut running.inherited_env),
        exit_records,
        own_usage: OwnUsage::now().since(&running.own_usage_before),
        supervised,
    }
}

/// Waits (up to 5 s) until the killed processes are gone, reaping what is ours.
fn wait_for_exit(pids: &[i32], sampler: &mut Sampler, now_ms: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        for reaped in process::reap_exited() {
            sampler.mark_exited(reaped, now_ms);
        }
        let alive = pids
            .iter()
            .any(|pid| procfs::read_status(*pid).is_some_and(|s| s.rss > 0 || s.hwm > 0));
        if !alive {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    for reaped in process::reap_exited() {
        sampler.mark_exited(reaped, now_ms);
    }
}
