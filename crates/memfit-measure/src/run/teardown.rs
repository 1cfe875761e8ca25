//! After the command: kill what it left running (as a container runtime does when PID 1
//! exits), collect the last exit records, read the kernel's counters and watermark, name the
//! OOM victims, and remove the cgroup.

use std::time::{Duration, Instant};

use memfit_sys::cgroup::{CpuThrottling, OomCounters};
use memfit_sys::{process, procfs};

use super::own_cost::OwnUsage;
use super::prepare::Prepared;
use super::start::Running;
use super::supervise::{self, Supervised};
use crate::report::{ContainerRecord, OomVictim, ProcessAtPeak};
use crate::runtime_view::RuntimeView;
use crate::sampler::Sampler;
use crate::units::{self, Seen};
use crate::watch::{Adoption, ContainerWatcher, Strangers};

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
    pub containers: Vec<ContainerRecord>,
    pub cpu_throttling: Option<CpuThrottling>,
    /// The runtime view, read to the end; its directory is removed by `assemble`.
    pub runtime_view: Option<RuntimeView>,
}

pub(super) fn teardown(
    prepared: &mut Prepared,
    mut running: Running,
    mut supervised: Supervised,
) -> Finished {
    let cgroup = prepared.cgroup.as_ref();
    let sampler = &mut supervised.sampler;
    let ended_ms = supervised.duration_ms;

    // Containers stop being watched (and BuildKit steps adopted) before what is left is
    // killed.
    let (adopted, mut units, strangers) = running
        .watcher
        .take()
        .map(ContainerWatcher::stop)
        .unwrap_or_default();
    let filtered = prepared
        .docker
        .as_ref()
        .is_some_and(|d| d.own_steps.is_some());
    prepared
        .caveats
        .extend(adoption_caveats(&adopted, &strangers, filtered));
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
    // The last reports (each Node thread's at its exit) are in the FIFO by now.
    let mut runtime_view = running.runtime_view.take();
    if let Some(view) = runtime_view.as_mut() {
        view.drain();
    }
    let final_counters = cgroup.map(|c| c.oom_counters());
    let watermark = cgroup.and_then(|c| c.peak());
    // v1 keeps the quota in a cgroup of the cpu hierarchy; v2 in the run's own.
    let cpu_throttling = prepared.cpu_quota.and(match &prepared.cpu_v1 {
        Some((_, cpu)) => cpu.cpu_throttling(),
        None => cgroup.and_then(|c| c.cpu_throttling()),
    });
    let kernel_kills = running
        .kernel_log
        .as_mut()
        .map(|k| k.oom_kills())
        .unwrap_or_default();
    let cgroup_path = cgroup.map(|c| c.path().display().to_string());
    let since_start = |t: Instant| t.saturating_duration_since(running.started).as_millis() as u64;
    units.learn(adopted.iter().filter_map(|a| {
        Some(Seen {
            id: a.target.path().file_name()?.to_string_lossy().into_owned(),
            command: a.command.clone(),
            started_ms: since_start(a.started),
            ended_ms: a.ended.map(since_start),
        })
    }));
    let mut containers = units.finish(ended_ms);
    // A container's cgroup may be gone before a sample read its OOM counter: the kernel log
    // names the victim's cgroup, the container's id among its path.
    for container in &mut containers {
        let logged = kernel_kills
            .iter()
            .filter(|k| {
                k.task_memcg
                    .as_deref()
                    .is_some_and(|memcg| memcg.split('/').any(|part| part == container.id))
            })
            .count() as u64;
        container.oom_kills = container.oom_kills.max(logged);
    }
    let container_kills: u64 = containers.iter().map(|c| c.oom_kills).sum();
    if let Some(docker) = &mut prepared.docker {
        // memfit's compose file is not needed any more.
        drop(docker.compose_dir.take());
        let ids: Vec<&str> = containers.iter().map(|c| c.id.as_str()).collect();
        let mut names = crate::docker::container_names(&docker.inspect_with, &ids);
        for container in &mut containers {
            container.name = names.remove(&container.id);
        }
    }
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

    if let Some(docker) = &prepared.docker {
        docker.paths_before.remove_created();
    }
    // The kernel names a victim's memcg by its path: the run's cgroup, or a container's below.
    let cgroup_name = cgroup_path.as_deref().and_then(|p| p.rsplit('/').next());
    let kernel_kills_in_run = kernel_kills
        .iter()
        .filter(|k| {
            k.task_memcg
                .as_deref()
                .zip(cgroup_name)
                .is_some_and(|(memcg, name)| memcg.split('/').any(|part| part == name))
        })
        .count() as u64;
    let baseline = running.baseline;
    // cgroup v1 counts a kill only in the victim's own cgroup, which for a container is a
    // child of the run's: its counter, and the kernel log, say what the run's does not.
    let oom = final_counters.map(|after| OomCounters {
        oom_kill: after
            .oom_kill
            .saturating_sub(baseline.oom_kill)
            .max(container_kills)
            .max(kernel_kills_in_run),
        limit_hits: after.limit_hits.saturating_sub(baseline.limit_hits),
    });
    let victims = sampler.victims(&kernel_kills, cgroup_name, oom.map_or(0, |o| o.oom_kill));
    // A container killed before a sample saw its command is named by its victim.
    for container in &mut containers {
        if !container.command.is_empty() && !units::is_runtime_init(&container.command) {
            continue;
        }
        let victim = kernel_kills
            .iter()
            .filter(|k| {
                k.task_memcg
                    .as_deref()
                    .is_some_and(|memcg| memcg.split('/').any(|part| part == container.id))
            })
            .find_map(|k| victims.iter().find(|v| v.pid == k.pid));
        if let Some(victim) = victim {
            container.command = victim.command.split(' ').map(str::to_string).collect();
        }
    }
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
        containers,
        cpu_throttling,
        supervised,
        runtime_view,
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

/// What the report says of the BuildKit steps memfit adopted, and of those it left alone.
fn adoption_caveats(adopted: &[Adoption], strangers: &Strangers, filtered: bool) -> Vec<String> {
    let mut caveats = Vec::new();
    if !adopted.is_empty() {
        let moved: usize = adopted.iter().map(|a| a.moved).sum();
        let others = if filtered {
            "only the steps whose command is a RUN instruction of this build's Dockerfile were adopted (from each step's runc bundle, before it ran)"
        } else {
            "this build's steps could not be told from another build's (its Dockerfile is not read for compose, `-f -` or a URL, nor trusted to give the steps' commands with a RUN heredoc or `# syntax=`), so every step dockerd started meanwhile was adopted: a build another client ran on the same dockerd at the same time would be counted too"
        };
        caveats.push(format!("dockerd's BuildKit ignored --cgroup-parent (moby/moby#45796): memfit moved the {} RUN step(s) it started into the run's cgroup as they began ({moved} processes); what the container runtime charged before the move (its own start, a few MiB) is not counted; {others}", adopted.len()));
    }
    if !strangers.foreign.is_empty() {
        let n = strangers.foreign.len();
        let (step, was, whose) = if n == 1 {
            ("step", "was", "its command is")
        } else {
            ("steps", "were", "their commands are")
        };
        let shown: Vec<String> = strangers
            .foreign
            .iter()
            .take(10)
            .map(|id| format!("buildkit/{id}"))
            .collect();
        caveats.push(format!("{n} BuildKit {step} of another build on the same dockerd {was} seen and left alone, not counted and not limited ({whose} not a RUN instruction of this build's Dockerfile): {}{}", shown.join(", "), if n > 10 { ", …" } else { "" }));
    }
    if !strangers.ambiguous.is_empty() {
        let mut shown: Vec<String> = strangers
            .ambiguous
            .iter()
            .map(|i| format!("`{i}`"))
            .collect();
        shown.dedup();
        caveats.push(format!("ambiguous: {} started more often than this build's Dockerfile runs it — another build on the same dockerd runs the same RUN text, and nothing dockerd shows tells the two apart; every such step was adopted and counted here", shown.join(", ")));
    }
    if strangers.unknown > 0 {
        caveats.push(format!("{} BuildKit step(s) were adopted without knowing what they run (no runc bundle to read): one of another build on the same dockerd would be counted too", strangers.unknown));
    }
    caveats
}
