//! The sampler: every process of the run and the group's memory, tick by tick. It names
//! processes (following them through exec), keeps each one's own peak, completes the list
//! from the kernel's exit records, keeps the timeline within bounds, and identifies the
//! processes the OOM killer took.

use std::collections::HashMap;

use memfit_sys::cgroup::MemoryStat;
use memfit_sys::process::{ExitStatus, Reaped};
use memfit_sys::procfs;

use crate::exec_events::SharedExecLog;
use crate::kmsg::KernelOomKill;
use crate::report::{
    ExitInfo, OomVictim, ProcessAtPeak, ProcessRecord, ProcessRss, RuntimeSample, Sample,
    VictimEvidence,
};
use crate::taskstats::ExitRecord;

/// The timeline keeps at most this many samples; older ones are merged pairwise.
const MAX_SAMPLES: usize = 4000;
const TOP_PER_SAMPLE: usize = 8;
/// Exit records of unknown parentage kept while waiting for their parent's record.
const MAX_PENDING_EXITS: usize = 10_000;

/// The run cgroup's memory at one tick.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupMemory {
    pub usage: u64,
    pub stat: MemoryStat,
    /// Swap in use (`None` without swap accounting).
    pub swap: Option<u64>,
}

/// An exit record waiting for its parent to be known, and when it arrived.
struct PendingExit {
    record: ExitRecord,
    seen_ms: u64,
}

/// One process seen during the run.
#[derive(Debug, Clone)]
pub(crate) struct Tracked {
    pid: i32,
    ppid: i32,
    starttime: u64,
    name: String,
    command: String,
    peak_rss: u64,
    last_rss: u64,
    started_ms: u64,
    ended_ms: Option<u64>,
    exit: Option<ExitStatus>,
    /// Forked but maybe not yet exec'd: its command line is still its parent's. Exec of the
    /// same binary keeps the name, so the command line is re-read until it differs.
    maybe_before_exec: bool,
    /// Known only by the kernel's 15-byte name so far (an exit record): the exec log may
    /// still tell its command line.
    command_is_comm: bool,
}

pub(crate) struct Sampler {
    /// memfit itself: its children (the command, adopted orphans) belong to the run.
    own_pid: i32,
    /// Exit records whose parent is not known (yet): a short-lived parent's record may come
    /// after its children's.
    pending_exits: Vec<PendingExit>,
    boot_ms_at_start: u64,
    ticks_per_second: u64,
    live: HashMap<i32, Tracked>,
    ended: Vec<Tracked>,
    pub(crate) samples: Vec<Sample>,
    pub(crate) samples_taken: u64,
    pub(crate) max_charged: u64,
    pub(crate) max_working: u64,
    pub(crate) page_cache_at_peak: u64,
    /// Kernel memory (slab, stacks, page tables) charged at the sampled peak.
    pub(crate) kernel_at_peak: u64,
    /// The most swap any sample saw in use.
    pub(crate) max_swap: u64,
    at_peak: Vec<ProcessRss>,
    pub(crate) at_peak_t_ms: u64,
    /// Processes that vanished in a tick when the oom_kill counter rose.
    suspected_victims: Vec<Tracked>,
    /// The first sample in which the cgroup's `oom_kill` counter rose.
    oom_seen_ms: Option<u64>,
    /// Command lines read at exec (the process events connector), where it could listen.
    exec_log: Option<SharedExecLog>,
}

impl Sampler {
    pub(crate) fn new(boot_ms_at_start: u64, ticks_per_second: u64, own_pid: i32) -> Sampler {
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
            kernel_at_peak: 0,
            max_swap: 0,
            at_peak: Vec::new(),
            at_peak_t_ms: 0,
            suspected_victims: Vec::new(),
            oom_seen_ms: None,
            exec_log: None,
        }
    }

    /// Command lines captured at exec complete what exit records and zombies cannot tell.
    pub(crate) fn set_exec_log(&mut self, log: Option<SharedExecLog>) {
        self.exec_log = log;
    }

    /// The command line `pid` exec'd as `comm`, from the exec log.
    fn exec_command(&self, pid: i32, comm: &str) -> Option<String> {
        self.exec_log.as_ref()?.lock().ok()?.command(pid, comm)
    }

    /// Reads every listed process and the group's memory; returns the processes that were
    /// live at the previous sample and are gone now.
    pub(crate) fn sample(
        &mut self,
        pids: &[i32],
        now_ms: u64,
        group: Option<GroupMemory>,
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
                let cmdline =
                    procfs::read_cmdline(pid).or_else(|| self.exec_command(pid, &status.name));
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
                        command_is_comm: false,
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
            seen.push(ProcessRss {
                pid,
                rss_bytes: status.rss,
            });
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

        let (charged, working, page_cache, kernel) = match group {
            Some(GroupMemory { usage, stat, swap }) => {
                self.max_swap = self.max_swap.max(swap.unwrap_or(0));
                (usage, stat.working(usage), stat.file, stat.kernel)
            }
            None => (rss_sum, anon_sum, 0, 0),
        };
        seen.sort_by_key(|p| std::cmp::Reverse(p.rss_bytes));
        if charged >= self.max_charged {
            self.max_charged = charged;
            self.page_cache_at_peak = page_cache;
            self.kernel_at_peak = kernel;
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
            runtime: None,
        });
        if self.samples.len() > MAX_SAMPLES {
            self.samples = downsample(std::mem::take(&mut self.samples));
        }
        vanished
    }

    /// The runtime view's sums at the sample just taken.
    pub(crate) fn set_runtime(&mut self, runtime: Option<RuntimeSample>) {
        if let Some(last) = self.samples.last_mut() {
            last.runtime = runtime;
        }
    }

    pub(crate) fn mark_exited(&mut self, reaped: Reaped, now_ms: u64) {
        if let Some(t) = self.live.get_mut(&reaped.pid) {
            t.ended_ms = Some(now_ms);
            t.exit = Some(reaped.status);
        } else if let Some(t) = self.ended.iter_mut().rev().find(|t| t.pid == reaped.pid) {
            t.exit.get_or_insert(reaped.status);
        }
    }

    /// Takes the kernel's exit record of a process: its final peak for a known process, or a
    /// whole entry for one that lived and died between two samples.
    pub(crate) fn record_exit(&mut self, record: ExitRecord, now_ms: u64) {
        if !record.is_process() {
            return;
        }
        let known = self
            .live
            .get_mut(&record.pid)
            .or_else(|| self.ended.iter_mut().rev().find(|t| t.pid == record.pid));
        if let Some(tracked) = known {
            tracked.peak_rss = tracked.peak_rss.max(record.hiwater_rss_bytes);
            if let Some(status) = record.status() {
                tracked.exit.get_or_insert(status);
            }
            return;
        }
        if self.pending_exits.len() < MAX_PENDING_EXITS {
            self.pending_exits.push(PendingExit {
                record,
                seen_ms: now_ms,
            });
        }
        self.resolve_pending_exits();
    }

    /// Adopts the exit records whose parent belongs to the run: its own children may have
    /// exited first, and a parent may be sampled only after its child's record arrived.
    pub(crate) fn resolve_pending_exits(&mut self) {
        while let Some(index) = self
            .pending_exits
            .iter()
            .position(|pending| self.is_member(pending.record.ppid))
        {
            let pending = self.pending_exits.swap_remove(index);
            self.adopt_exit(pending.record, pending.seen_ms);
        }
    }

    fn is_member(&self, pid: i32) -> bool {
        pid == self.own_pid
            || self.live.contains_key(&pid)
            || self.ended.iter().any(|t| t.pid == pid)
    }

    fn adopt_exit(&mut self, record: ExitRecord, now_ms: u64) {
        let exit = record.status();
        let command = self.exec_command(record.pid, &record.comm);
        self.ended.push(Tracked {
            pid: record.pid,
            ppid: record.ppid,
            starttime: 0,
            name: record.comm.clone(),
            command_is_comm: command.is_none(),
            command: command.unwrap_or(record.comm),
            peak_rss: record.hiwater_rss_bytes,
            last_rss: 0,
            started_ms: now_ms.saturating_sub(record.elapsed_us / 1000),
            ended_ms: Some(now_ms),
            exit,
            maybe_before_exec: false,
        });
    }

    /// The `oom_kill` counter rose in the sample at `now_ms`: the processes that vanished
    /// in it are suspects.
    pub(crate) fn suspect_oom_victims(&mut self, vanished: &[Tracked], now_ms: u64) {
        self.suspected_victims.extend(vanished.iter().cloned());
        self.oom_seen_ms.get_or_insert(now_ms);
    }

    /// When a victim was seen gone: its exit, else the first sample the counter rose in.
    fn seen_ms(&self, pid: i32) -> Option<u64> {
        self.live
            .get(&pid)
            .and_then(|t| t.ended_ms)
            .or_else(|| self.ended.iter().rev().find(|t| t.pid == pid)?.ended_ms)
            .or(self.oom_seen_ms)
    }

    fn name_of(&self, pid: i32) -> Option<&str> {
        self.live
            .get(&pid)
            .or_else(|| self.ended.iter().rev().find(|t| t.pid == pid))
            .map(|t| t.name.as_str())
    }

    fn command_of(&self, pid: i32) -> String {
        self.live
            .get(&pid)
            .or_else(|| self.ended.iter().rev().find(|t| t.pid == pid))
            .map(|t| t.command.clone())
            .unwrap_or_else(|| format!("pid {pid}"))
    }

    pub(crate) fn describe(&self, pids: &[i32]) -> Vec<ProcessAtPeak> {
        pids.iter()
            .map(|&pid| ProcessAtPeak {
                pid,
                rss_bytes: self.live.get(&pid).map_or(0, |t| t.last_rss),
                command: self.command_of(pid),
            })
            .collect()
    }

    pub(crate) fn at_peak_described(&self) -> Vec<ProcessAtPeak> {
        self.at_peak
            .iter()
            .map(|p| ProcessAtPeak {
                pid: p.pid,
                rss_bytes: p.rss_bytes,
                command: self.command_of(p.pid),
            })
            .collect()
    }

    /// The killed processes: exactly from the kernel log where it could be read, else the
    /// largest processes that vanished when the counter rose.
    pub(crate) fn victims(
        &self,
        kernel: &[KernelOomKill],
        cgroup_name: Option<&str>,
        kill_count: u64,
    ) -> Vec<OomVictim> {
        let tracked =
            |pid: i32| self.live.contains_key(&pid) || self.ended.iter().any(|t| t.pid == pid);
        let ours: Vec<OomVictim> = kernel
            .iter()
            .filter(|k| match (&k.task_memcg, cgroup_name) {
                // The run's cgroup, or a container's below it.
                (Some(memcg), Some(name)) => memcg.split('/').any(|part| part == name),
                _ => tracked(k.pid),
            })
            .map(|k| OomVictim {
                pid: k.pid,
                // A process killed before its first sample, or that exec'd something else
                // since its last one, is known by its kernel name.
                command: if tracked(k.pid) && self.name_of(k.pid) == Some(k.comm.as_str()) {
                    self.command_of(k.pid)
                } else {
                    self.exec_command(k.pid, &k.comm)
                        .unwrap_or_else(|| k.comm.clone())
                },
                rss_bytes: k.rss_bytes,
                evidence: VictimEvidence::KernelLog,
                seen_ms: self.seen_ms(k.pid),
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
                .filter(|t| t.exit == Some(ExitStatus::Signaled(libc::SIGKILL)))
                .cloned()
                .collect();
        }
        suspects.sort_by_key(|t| std::cmp::Reverse(t.last_rss));
        suspects
            .into_iter()
            .take(kill_count as usize)
            .map(|t| OomVictim {
                pid: t.pid,
                seen_ms: t.ended_ms.or(self.oom_seen_ms),
                command: t.command,
                rss_bytes: t.last_rss,
                evidence: VictimEvidence::Vanished,
            })
            .collect()
    }

    pub(crate) fn records(&self) -> Vec<ProcessRecord> {
        let mut all: Vec<&Tracked> = self.ended.iter().chain(self.live.values()).collect();
        // The command memfit started comes first (`processes[0]`), then by start: a child
        // known only from its exit record has an estimated start that can tie with it.
        all.sort_by_key(|t| (t.ppid != self.own_pid, t.started_ms, t.pid));
        all.into_iter()
            .map(|t| ProcessRecord {
                pid: t.pid,
                ppid: t.ppid,
                // The exec log may have caught up since the exit record was taken.
                command: t
                    .command_is_comm
                    .then(|| self.exec_command(t.pid, &t.name))
                    .flatten()
                    .unwrap_or_else(|| t.command.clone()),
                peak_rss_bytes: t.peak_rss,
                started_ms: t.started_ms,
                ended_ms: t.ended_ms,
                exit: t.exit.map(ExitInfo::of),
                v8: None,
                jvm: None,
                python: None,
            })
            .collect()
    }
}

/// Halves the timeline, keeping from each pair the sample with more charged memory so that
/// peaks survive.
pub(crate) fn downsample(samples: Vec<Sample>) -> Vec<Sample> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: u64, charged: u64) -> Sample {
        Sample {
            t_ms: t,
            charged_bytes: charged,
            working_bytes: 0,
            top: vec![],
            runtime: None,
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
