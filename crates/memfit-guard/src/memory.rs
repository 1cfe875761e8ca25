//! Where the memory numbers come from: the container's cgroup (v2 or v1), else the machine
//! (`/proc/meminfo`, as on a Fly.io VM), else the process tree. Reads are a few small files,
//! through memfit-sys.

use memfit_sys::cgroup::{self, CgroupFiles};
use memfit_sys::procfs;
use memfit_sys::CgroupVersion;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The container's own cgroup.
    Cgroup(CgroupFiles),
    /// The machine: usage = MemTotal − MemAvailable.
    Meminfo,
    /// Σ RSS of the guard's process tree.
    Tree,
}

/// One reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    /// What the limit is compared with: the working set (usage − inactive file cache), as
    /// Kubernetes and cAdvisor count it: the kernel reclaims that cache before it kills.
    pub working: u64,
    /// Charged usage, page cache included.
    pub charged: u64,
}

/// The memory cgroup this process is in.
pub fn own_cgroup() -> Option<Source> {
    cgroup::own_cgroup().map(Source::Cgroup)
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Cgroup(files) => {
                let version = match files.version() {
                    CgroupVersion::V1 => "v1",
                    CgroupVersion::V2 => "v2",
                };
                format!("cgroup {version} {}", files.path().display())
            }
            Source::Meminfo => {
                "the machine's memory (/proc/meminfo: no cgroup limit, a VM)".to_string()
            }
            Source::Tree => "the process tree (Σ RSS; no cgroup)".to_string(),
        }
    }

    pub fn cgroup_version(&self) -> Option<CgroupVersion> {
        match self {
            Source::Cgroup(files) => Some(files.version()),
            Source::Meminfo | Source::Tree => None,
        }
    }

    /// The limit the source enforces: the smallest of the cgroup and its ancestors (a pod's
    /// limit above a container's), or the machine's RAM.
    pub fn limit(&self) -> Option<u64> {
        match self {
            Source::Cgroup(files) => files.enclosing_limit().map(|l| l.bytes),
            Source::Meminfo | Source::Tree => procfs::meminfo("MemTotal"),
        }
    }

    pub fn read(&self, tree: impl FnOnce() -> u64) -> Reading {
        match self {
            Source::Cgroup(files) => {
                let charged = files.usage();
                Reading {
                    working: charged.saturating_sub(files.inactive_file()),
                    charged,
                }
            }
            Source::Meminfo => {
                let total = procfs::meminfo("MemTotal").unwrap_or(0);
                let available = procfs::meminfo("MemAvailable").unwrap_or(total);
                let used = total.saturating_sub(available);
                Reading {
                    working: used,
                    charged: used,
                }
            }
            Source::Tree => {
                let sum = tree();
                Reading {
                    working: sum,
                    charged: sum,
                }
            }
        }
    }

    /// The kernel's high-water mark of the cgroup (v2 `memory.peak`, v1
    /// `memory.max_usage_in_bytes`); `None` without a cgroup or on a v2 kernel before 5.19.
    pub fn watermark(&self) -> Option<u64> {
        match self {
            Source::Cgroup(files) => files.peak(),
            Source::Meminfo | Source::Tree => None,
        }
    }

    /// The kernel's OOM kills in this cgroup so far (v2 memory.events, v1 memory.oom_control).
    pub fn oom_kills(&self) -> Option<u64> {
        match self {
            Source::Cgroup(files) => Some(files.oom_counters().oom_kill),
            Source::Meminfo | Source::Tree => None,
        }
    }

    /// Whether a kernel OOM kill in this cgroup ends every process in it: cgroup v2's
    /// `memory.oom.group` = 1, which Kubernetes ≥ 1.28 sets on a container's cgroup
    /// (kubernetes/kubernetes#117793).
    pub fn oom_group(&self) -> bool {
        match self {
            Source::Cgroup(files) if files.version() == CgroupVersion::V2 => {
                std::fs::read_to_string(files.path().join("memory.oom.group"))
                    .is_ok_and(|t| t.trim() == "1")
            }
            _ => false,
        }
    }

    /// Memory pressure: the share of the last 10 s some task stalled on memory (v2 PSI).
    pub fn pressure_some_avg10(&self) -> Option<f64> {
        match self {
            Source::Cgroup(files) => files.pressure_some_avg10(),
            Source::Meminfo | Source::Tree => None,
        }
    }
}
