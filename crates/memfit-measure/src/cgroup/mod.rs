//! The cgroup driver: find the memory controller (v2 or v1), create one fresh cgroup per
//! run under it, set the limit, read the kernel's counters, and remove it again.
//!
//! Facts used here are in `shared/research/prior-art-measure.md` §2.3–2.7: `memory.peak`
//! (v2, Linux 5.19+) and `memory.max_usage_in_bytes` (v1) are the watermarks; `oom_kill` in
//! `memory.events` (v2) or `memory.oom_control` (v1, Linux 4.13+) counts OOM kills; working
//! memory is usage − inactive_file, as docker stats and cAdvisor compute it.

mod parse;

pub use parse::{
    find_memory_hierarchy, parse_flat_keyed, parse_v1_stat, parse_v2_stat, FoundHierarchy,
    MemoryStat,
};

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The cgroup version whose memory controller memfit drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// Where the memory controller is mounted and where this process sits in it.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    pub version: Version,
    /// Directory under which memfit creates its per-run cgroups.
    pub parent: PathBuf,
    /// Where the hierarchy is mounted, and the mount's super options: what a container's
    /// own cgroup mount looks like (see `container_view`).
    pub mount: PathBuf,
    pub mount_options: String,
}

impl Hierarchy {
    /// Finds a memory controller this process can create cgroups under, or says why not.
    pub fn detect() -> Result<Hierarchy, String> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let own = fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let found = find_memory_hierarchy(&mountinfo, &own, |mount| {
            fs::read_to_string(mount.join("cgroup.controllers")).ok()
        })
        .ok_or_else(|| "no cgroup memory controller is mounted".to_string())?;
        let parent = pick_parent(&found)?;
        probe_writable(&parent)?;
        Ok(Hierarchy {
            version: found.version,
            parent,
            mount: found.mount,
            mount_options: found.mount_options,
        })
    }
}

/// The directory to create run cgroups in: this process's own cgroup where that works (a
/// container's or a delegated subtree's limits then still apply above ours), else the root.
fn pick_parent(found: &FoundHierarchy) -> Result<PathBuf, String> {
    let own = found.mount.join(found.own_path.trim_start_matches('/'));
    // Without a cgroup namespace a container sees its host path in /proc/self/cgroup, which
    // does not exist in its own mount; its mount root is then its own cgroup.
    let own = if own.is_dir() {
        own
    } else {
        found.mount.clone()
    };
    match found.version {
        Version::V1 => Ok(own),
        Version::V2 => {
            // cgroup v2's "no internal process" rule: a non-root cgroup that holds processes
            // cannot enable controllers for children. The root may.
            if v2_memory_delegated(&own) || enable_v2_memory(&own).is_ok() {
                return Ok(own);
            }
            if v2_memory_delegated(&found.mount) || enable_v2_memory(&found.mount).is_ok() {
                return Ok(found.mount.clone());
            }
            Err(format!(
                "cgroup v2: the memory controller cannot be enabled for children of {} (it holds processes) nor of the root; run memfit as root, or inside a delegated scope: systemd-run --user --scope -p Delegate=yes memfit …",
                own.display()
            ))
        }
    }
}

fn v2_memory_delegated(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.subtree_control"))
        .map(|s| s.split_whitespace().any(|c| c == "memory"))
        .unwrap_or(false)
}

fn enable_v2_memory(dir: &Path) -> io::Result<()> {
    fs::write(dir.join("cgroup.subtree_control"), "+memory")
}

fn probe_writable(parent: &Path) -> Result<(), String> {
    let probe = parent.join(format!("memfit-probe-{}", std::process::id()));
    match fs::create_dir(&probe) {
        Ok(()) => {
            let _ = fs::remove_dir(&probe);
            Ok(())
        }
        Err(e) => Err(format!(
            "cannot create a cgroup under {}: {e}; run as root or in a delegated cgroup (systemd-run --user --scope -p Delegate=yes)",
            parent.display()
        )),
    }
}

/// Reads the memory files of one cgroup directory, of either version.
#[derive(Debug, Clone)]
pub struct CgroupFiles {
    version: Version,
    path: PathBuf,
}

/// One run's cgroup. Dropping it kills whatever is left inside and removes the directory.
#[derive(Debug)]
pub struct RunCgroup {
    files: CgroupFiles,
    procs: File,
    removed: bool,
}

impl std::ops::Deref for RunCgroup {
    type Target = CgroupFiles;
    fn deref(&self) -> &CgroupFiles {
        &self.files
    }
}

/// Counters read once before the command starts, to compute deltas.
#[derive(Debug, Clone, Copy, Default)]
pub struct OomCounters {
    /// Processes killed by an OOM killer (`oom_kill`).
    pub oom_kill: u64,
    /// Times the limit was hit (v2 `oom`/`max` events, v1 `failcnt`).
    pub limit_hits: u64,
}

impl CgroupFiles {
    /// Reads an existing cgroup directory (a run's, or a recorded tree in tests).
    pub fn open(version: Version, path: impl Into<PathBuf>) -> CgroupFiles {
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

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every process in the group, the authoritative membership list.
    pub fn pids(&self) -> Vec<i32> {
        self.read("cgroup.procs")
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Charged memory now (page cache and kernel memory included).
    pub fn usage(&self) -> u64 {
        match self.version {
            Version::V2 => self.read_u64("memory.current"),
            Version::V1 => self.read_u64("memory.usage_in_bytes"),
        }
        .unwrap_or(0)
    }

    /// The kernel's watermark of charged memory since the group was created.
    /// `None` on v2 kernels older than 5.19, which have no `memory.peak`.
    pub fn peak(&self) -> Option<u64> {
        match self.version {
            Version::V2 => self.read_u64("memory.peak"),
            Version::V1 => self.read_u64("memory.max_usage_in_bytes"),
        }
    }

    pub fn stat(&self) -> MemoryStat {
        let text = self.read("memory.stat").unwrap_or_default();
        match self.version {
            Version::V2 => parse_v2_stat(&text),
            Version::V1 => parse_v1_stat(&text),
        }
    }

    pub fn oom_counters(&self) -> OomCounters {
        match self.version {
            Version::V2 => {
                let events = parse_flat_keyed(&self.read("memory.events").unwrap_or_default());
                OomCounters {
                    oom_kill: events.get("oom_kill").copied().unwrap_or(0),
                    limit_hits: events.get("max").copied().unwrap_or(0),
                }
            }
            Version::V1 => {
                let control =
                    parse_flat_keyed(&self.read("memory.oom_control").unwrap_or_default());
                OomCounters {
                    oom_kill: control.get("oom_kill").copied().unwrap_or(0),
                    limit_hits: self.read_u64("memory.failcnt").unwrap_or(0),
                }
            }
        }
    }
}

impl RunCgroup {
    /// Creates `parent/name` with the given hard limit and swap allowance.
    pub fn create(
        hierarchy: &Hierarchy,
        name: &str,
        limit: Option<u64>,
        swap: u64,
    ) -> io::Result<RunCgroup> {
        let path = hierarchy.parent.join(name);
        fs::create_dir(&path)?;
        // From here on the directory is owned by the guard, whatever fails next.
        let procs = match OpenOptions::new()
            .write(true)
            .open(path.join("cgroup.procs"))
        {
            Ok(f) => f,
            Err(e) => {
                let _ = fs::remove_dir(&path);
                return Err(e);
            }
        };
        let cgroup = RunCgroup {
            files: CgroupFiles {
                version: hierarchy.version,
                path,
            },
            procs,
            removed: false,
        };
        cgroup.configure(limit, swap)?;
        Ok(cgroup)
    }

    fn configure(&self, limit: Option<u64>, swap: u64) -> io::Result<()> {
        match self.version {
            Version::V2 => {
                if let Some(limit) = limit {
                    self.write("memory.max", &limit.to_string())?;
                }
                // Absent without swap accounting; then there is no swap to limit either.
                if self.path.join("memory.swap.max").exists() {
                    self.write("memory.swap.max", &swap.to_string())?;
                }
            }
            Version::V1 => {
                if let Some(limit) = limit {
                    self.write("memory.limit_in_bytes", &limit.to_string())?;
                    // memsw = memory + swap; only present with swap accounting enabled.
                    if self.path.join("memory.memsw.limit_in_bytes").exists() {
                        self.write("memory.memsw.limit_in_bytes", &(limit + swap).to_string())?;
                    }
                }
                // Without a swap limit, keep the kernel from swapping this group's pages.
                if swap == 0 && self.path.join("memory.swappiness").exists() {
                    let _ = self.write("memory.swappiness", "0");
                }
            }
        }
        Ok(())
    }

    fn write(&self, file: &str, value: &str) -> io::Result<()> {
        fs::write(self.files.path.join(file), value).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "writing {value} to {}: {e}",
                    self.files.path.join(file).display()
                ),
            )
        })
    }

    /// The open `cgroup.procs`, written with "0" by the child before exec to enter the group.
    pub fn procs_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }

    /// SIGKILLs every process in the group (v2 `cgroup.kill` where the kernel has it, which is
    /// race-free against forks; else a kill loop over `cgroup.procs`).
    pub fn kill_all(&self) {
        if self.version == Version::V2 && self.path.join("cgroup.kill").exists() {
            let _ = fs::write(self.path.join("cgroup.kill"), "1");
            return;
        }
        for pid in self.pids() {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }

    /// Kills what is left, waits for the group to empty and removes it.
    ///
    /// Killed processes that are memfit's children (or orphans reparented to it as the
    /// subreaper) must be reaped by the caller's `reap` for the group to empty.
    pub fn remove(mut self, reap: &mut dyn FnMut()) -> io::Result<()> {
        self.remove_inner(reap)
    }

    fn remove_inner(&mut self, reap: &mut dyn FnMut()) -> io::Result<()> {
        if self.removed {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.pids().is_empty() {
                match fs::remove_dir(&self.path) {
                    Ok(()) => {
                        self.removed = true;
                        return Ok(());
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        self.removed = true;
                        return Ok(());
                    }
                    // EBUSY while exiting tasks are still being uncharged.
                    Err(e) if Instant::now() > deadline => return Err(e),
                    Err(_) => {}
                }
            } else {
                self.kill_all();
                if Instant::now() > deadline {
                    return Err(io::Error::other(format!(
                        "processes {:?} survived SIGKILL in {}",
                        self.pids(),
                        self.path.display()
                    )));
                }
            }
            reap();
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        let _ = self.remove_inner(&mut reap_any_children);
    }
}

/// Reaps any exited child of this process without blocking.
pub fn reap_any_children() {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid pointer to a local.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            break;
        }
    }
}
