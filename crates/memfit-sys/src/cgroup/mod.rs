//! cgroup memory controllers, v2 and v1: finding them ([`discover`]), reading one cgroup's
//! memory files ([`CgroupFiles`]), owning a cgroup of one's own ([`OwnedCgroup`]), and
//! sweeping those a killed memfit left behind ([`stale`]).
//!
//! The files and their meaning are the kernel's (Documentation/admin-guide/cgroup-v2.rst,
//! "Memory Interface Files"; cgroup-v1/memory.rst): `memory.peak` (v2, Linux 5.19+) and
//! `memory.max_usage_in_bytes` (v1) are the watermarks; `oom_kill` in `memory.events` (v2) or
//! `memory.oom_control` (v1, Linux 4.13+) counts OOM kills; working memory is usage −
//! inactive_file, as docker stats and cAdvisor compute it.

mod discover;
mod owned;
mod stale;
mod stat;
pub mod systemd;

pub use discover::{
    enable_for_children, find_hierarchy, find_memory_hierarchy, find_own_hierarchy,
    leave_self_leaf, own_cgroup, FoundHierarchy, Hierarchy,
};
pub use owned::{OwnedCgroup, COMMAND_LEAF};
pub use stale::{sweep_stale, sweep_stale_slices, CgroupOwner, SweptCgroup};
pub use stat::{
    flat_keyed_value, parse_flat_keyed, parse_limit, parse_v1_stat, parse_v2_stat, Limit,
    MemoryStat,
};

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::CgroupVersion;

/// Reads the memory files of one cgroup directory, of either version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupFiles {
    version: CgroupVersion,
    path: PathBuf,
}

/// The lowest limit on the way up a cgroup tree, and the cgroup that sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnclosingLimit {
    pub bytes: u64,
    pub cgroup: PathBuf,
}

/// What the kernel's CFS bandwidth control did to a cgroup with a CPU quota (`cpu.stat`):
/// the periods in which it ran and those in which it used up its quota and waited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuThrottling {
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_us: u64,
}

/// OOM counters, read before and after to compute deltas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OomCounters {
    /// Processes killed by an OOM killer (`oom_kill`).
    pub oom_kill: u64,
    /// Times the limit was hit (v2 `max` events, v1 `failcnt`).
    pub limit_hits: u64,
}

impl CgroupFiles {
    /// Reads an existing cgroup directory (a run's, the guard's own, or a recorded tree).
    pub fn open(version: CgroupVersion, path: impl Into<PathBuf>) -> CgroupFiles {
        CgroupFiles {
            version,
            path: path.into(),
        }
    }

    fn read(&self, file: &str) -> Option<String> {
        fs::read_to_string(self.path.join(file)).ok()
    }

    fn read_u64(&self, file: &str) -> Option<u64> {
        self.read(file)?.trim().parse().ok()
    }

    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every process in the group itself (not in its child cgroups).
    pub fn pids(&self) -> Vec<i32> {
        self.read("cgroup.procs")
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// The child cgroups (a container runtime's, under a cgroup it was given as parent).
    pub fn children(&self) -> Vec<CgroupFiles> {
        let Ok(entries) = fs::read_dir(&self.path) else {
            return Vec::new();
        };
        let mut children: Vec<CgroupFiles> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| CgroupFiles::open(self.version, e.path()))
            .collect();
        children.sort_by(|a, b| a.path.cmp(&b.path));
        children
    }

    /// Every process in the group and in all its descendants, bounded to a depth of 16.
    pub fn pids_recursive(&self) -> Vec<i32> {
        fn walk(files: &CgroupFiles, depth: usize, out: &mut Vec<i32>) {
            out.extend(files.pids());
            if depth < 16 {
                for child in files.children() {
                    walk(&child, depth + 1, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(self, 0, &mut out);
        out
    }

    /// Moves a process into this group (its threads with it: `cgroup.procs`).
    pub fn adopt(&self, pid: i32) -> io::Result<()> {
        fs::write(self.path.join("cgroup.procs"), pid.to_string())
    }

    /// Charged memory now (page cache and kernel memory included).
    pub fn usage(&self) -> u64 {
        match self.version {
            CgroupVersion::V2 => self.read_u64("memory.current"),
            CgroupVersion::V1 => self.read_u64("memory.usage_in_bytes"),
        }
        .unwrap_or(0)
    }

    /// The kernel's watermark of charged memory since the group was created.
    /// `None` on v2 kernels older than 5.19, which have no `memory.peak`.
    pub fn peak(&self) -> Option<u64> {
        match self.version {
            CgroupVersion::V2 => self.read_u64("memory.peak"),
            CgroupVersion::V1 => self.read_u64("memory.max_usage_in_bytes"),
        }
    }

    /// Swap in use now: v2 `memory.swap.current`; v1 `memory.memsw.usage_in_bytes` (memory +
    /// swap) − `memory.usage_in_bytes`. `None` without swap accounting.
    pub fn swap_usage(&self) -> Option<u64> {
        match self.version {
            CgroupVersion::V2 => self.read_u64("memory.swap.current"),
            CgroupVersion::V1 => {
                let both = self.read_u64("memory.memsw.usage_in_bytes")?;
                Some(both.saturating_sub(self.read_u64("memory.usage_in_bytes")?))
            }
        }
    }

    /// The kernel's watermark of swap: v2 `memory.swap.peak` (Linux 6.5+). v1 has no swap
    /// watermark; `memory.memsw.max_usage_in_bytes` − `memory.max_usage_in_bytes` is a lower
    /// bound of it (at the moment memory + swap peaked, memory was at most its own peak).
    /// `None` without swap accounting or on older v2 kernels.
    pub fn swap_peak(&self) -> Option<u64> {
        match self.version {
            CgroupVersion::V2 => self.read_u64("memory.swap.peak"),
            CgroupVersion::V1 => {
                let both = self.read_u64("memory.memsw.max_usage_in_bytes")?;
                Some(both.saturating_sub(self.read_u64("memory.max_usage_in_bytes")?))
            }
        }
    }

    pub fn stat(&self) -> MemoryStat {
        let text = self.read("memory.stat").unwrap_or_default();
        match self.version {
            CgroupVersion::V2 => parse_v2_stat(&text),
            CgroupVersion::V1 => MemoryStat {
                // v1 keeps kernel memory out of memory.stat.
                kernel: self.read_u64("memory.kmem.usage_in_bytes").unwrap_or(0),
                ..parse_v1_stat(&text)
            },
        }
    }

    /// Inactive page cache alone, read without parsing the whole of memory.stat: the part of
    /// usage the kernel reclaims before it kills.
    pub fn inactive_file(&self) -> u64 {
        let key = match self.version {
            CgroupVersion::V2 => "inactive_file",
            CgroupVersion::V1 => "total_inactive_file",
        };
        self.read("memory.stat")
            .and_then(|text| flat_keyed_value(&text, key))
            .unwrap_or(0)
    }

    pub fn oom_counters(&self) -> OomCounters {
        match self.version {
            CgroupVersion::V2 => {
                let events = self.read("memory.events").unwrap_or_default();
                OomCounters {
                    oom_kill: flat_keyed_value(&events, "oom_kill").unwrap_or(0),
                    limit_hits: flat_keyed_value(&events, "max").unwrap_or(0),
                }
            }
            CgroupVersion::V1 => {
                let control = self.read("memory.oom_control").unwrap_or_default();
                OomCounters {
                    oom_kill: flat_keyed_value(&control, "oom_kill").unwrap_or(0),
                    limit_hits: self.read_u64("memory.failcnt").unwrap_or(0),
                }
            }
        }
    }

    /// The CFS bandwidth counters of a cgroup of the cpu controller (v2: the same directory;
    /// v1: the cgroup in the cpu hierarchy): `nr_periods`, `nr_throttled`, and
    /// `throttled_usec` (v2) or `throttled_time` in ns (v1), as
    /// https://docs.kernel.org/scheduler/sched-bwc.html describes. `None` without them.
    pub fn cpu_throttling(&self) -> Option<CpuThrottling> {
        let stat = self.read("cpu.stat")?;
        let throttled_us = match self.version {
            CgroupVersion::V2 => flat_keyed_value(&stat, "throttled_usec")?,
            CgroupVersion::V1 => flat_keyed_value(&stat, "throttled_time")? / 1000,
        };
        Some(CpuThrottling {
            periods: flat_keyed_value(&stat, "nr_periods")?,
            throttled_periods: flat_keyed_value(&stat, "nr_throttled")?,
            throttled_us,
        })
    }

    /// The limits this cgroup's own files set: v2 `memory.max` and, when `with_high`,
    /// `memory.high` (the kernel throttles and reclaims hard at `high`; Node ≥ 20.3 sizes its
    /// heap from the lower of the two, nodejs/node#47259), v1 `memory.limit_in_bytes`. Empty
    /// when the directory has none of them (the v2 root, or above the mount).
    fn own_limits(&self, with_high: bool) -> Vec<Limit> {
        let files: &[&str] = match (self.version, with_high) {
            (CgroupVersion::V2, true) => &["memory.max", "memory.high"],
            (CgroupVersion::V2, false) => &["memory.max"],
            (CgroupVersion::V1, _) => &["memory.limit_in_bytes"],
        };
        files
            .iter()
            .filter_map(|f| self.read(f).and_then(|t| parse_limit(&t)))
            .collect()
    }

    /// The limit that holds for this cgroup: the smallest of its own and its ancestors' (a
    /// pod's limit above a container's, a CI job's above a step's), `memory.high` included, up
    /// to the first directory without limit files. `None` when nothing limits it.
    pub fn enclosing_limit(&self) -> Option<EnclosingLimit> {
        self.lowest_limit(true)
    }

    /// The same for the hard limit alone: what the OOM killer enforces.
    pub fn enclosing_hard_limit(&self) -> Option<EnclosingLimit> {
        self.lowest_limit(false)
    }

    fn lowest_limit(&self, with_high: bool) -> Option<EnclosingLimit> {
        let mut lowest: Option<EnclosingLimit> = None;
        let mut dir = Some(self.path.as_path());
        while let Some(current) = dir {
            let limits = CgroupFiles::open(self.version, current).own_limits(with_high);
            if limits.is_empty() {
                break;
            }
            for bytes in limits.into_iter().filter_map(Limit::bytes) {
                if lowest.as_ref().is_none_or(|l| bytes < l.bytes) {
                    lowest = Some(EnclosingLimit {
                        bytes,
                        cgroup: current.to_path_buf(),
                    });
                }
            }
            dir = current.parent();
        }
        lowest
    }

    /// Memory pressure: the share of the last 10 s some task stalled on memory (v2 PSI,
    /// Documentation/accounting/psi.rst). `None` on v1 or without PSI.
    pub fn pressure_some_avg10(&self) -> Option<f64> {
        if self.version != CgroupVersion::V2 {
            return None;
        }
        let text = self.read("memory.pressure")?;
        let line = text.lines().find(|l| l.starts_with("some"))?;
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("avg10="))
            .and_then(|v| v.parse().ok())
    }
}
