//! A cgroup of one's own: created with a limit, entered by a child before exec, emptied and
//! removed on every path out.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::cgroup::{stale, CgroupFiles, Hierarchy};
use crate::process;
use crate::CgroupVersion;

/// The leaf a run's command goes into when its cgroup is a container runtime's parent on v2
/// ([`OwnedCgroup::create_command_leaf`]): not a container.
pub const COMMAND_LEAF: &str = "memfit-command";

/// Docker's CFS period for `--cpus` (100 ms, moby daemon/daemon_unix.go).
const CFS_PERIOD_US: u64 = 100_000;
/// The kernel refuses quotas under 1 ms.
const MIN_QUOTA_US: u64 = 1_000;

/// A cgroup this process created. Dropping it kills whatever is left inside and removes the
/// directory. While it exists its directory is locked, which tells another memfit that its
/// owner still runs (see [`super::stale`]).
#[derive(Debug)]
pub struct OwnedCgroup {
    files: CgroupFiles,
    procs: File,
    removed: bool,
    /// The transient systemd slice this cgroup is ([`OwnedCgroup::create_slice`]): stopped,
    /// not removed, at the end.
    systemd_unit: Option<String>,
    /// The directory, `flock`ed; released when this process closes it or dies.
    _lock: File,
}

impl std::ops::Deref for OwnedCgroup {
    type Target = CgroupFiles;
    fn deref(&self) -> &CgroupFiles {
        &self.files
    }
}

impl OwnedCgroup {
    /// Creates `parent/name` in a memory hierarchy with the given hard limit and swap
    /// allowance.
    pub fn create(
        hierarchy: &Hierarchy,
        name: &str,
        limit: Option<u64>,
        swap: u64,
    ) -> io::Result<OwnedCgroup> {
        let cgroup = OwnedCgroup::create_empty(hierarchy, name)?;
        cgroup.configure(limit, swap)?;
        Ok(cgroup)
    }

    /// Creates `parent/name` in any hierarchy, with the kernel's defaults. `name` should come
    /// from [`CgroupOwner::cgroup_name`](super::CgroupOwner::cgroup_name), so that another
    /// memfit can tell when this one is gone. An `ErrorKind::NotFound` can mean a memfit in
    /// another PID namespace swept the directory the instant it was made: create another.
    pub fn create_empty(hierarchy: &Hierarchy, name: &str) -> io::Result<OwnedCgroup> {
        let path = hierarchy.parent.join(name);
        fs::create_dir(&path)?;
        let owned = stale::lock_created(&path)
            .and_then(|lock| OwnedCgroup::own(CgroupFiles::open(hierarchy.version, &path), lock));
        // From here on the directory is owned by the value; until then it is removed here.
        owned.inspect_err(|_| {
            let _ = fs::remove_dir(&path);
        })
    }

    /// Creates the run's cgroup as transient systemd slice `name` at the top of `hierarchy`
    /// (see [`super::systemd`]), with the same limits [`OwnedCgroup::create`] sets, which
    /// systemd holds as the slice's properties too. For container engines with the systemd
    /// cgroup driver, whose containers' parent must be a slice.
    pub fn create_slice(
        hierarchy: &Hierarchy,
        name: &str,
        limit: Option<u64>,
        swap: u64,
        cpus: Option<f64>,
    ) -> io::Result<OwnedCgroup> {
        let limits = super::systemd::SliceLimits {
            memory_max: limit,
            swap_max: (hierarchy.version == CgroupVersion::V2).then_some(swap),
            cpus,
        };
        let path = super::systemd::start_slice(name, limits, &hierarchy.mount)?;
        let owned = stale::lock_created(&path)
            .and_then(|lock| OwnedCgroup::own(CgroupFiles::open(hierarchy.version, &path), lock))
            .map(|mut owned| {
                owned.systemd_unit = Some(name.to_string());
                owned
            });
        let owned = match owned {
            Ok(owned) => owned,
            Err(e) => {
                let _ = super::systemd::stop_unit_and_wait(name, &path);
                return Err(e);
            }
        };
        // Dropped (stopped) on error.
        owned.configure(limit, swap)?;
        Ok(owned)
    }

    /// The systemd slice this cgroup is, when it is one.
    pub fn systemd_unit(&self) -> Option<&str> {
        self.systemd_unit.as_deref()
    }

    /// Takes over the cgroup of a memfit that is gone, its directory locked by the caller, to
    /// empty and remove it.
    pub(super) fn adopt_stale(
        files: CgroupFiles,
        lock: File,
        systemd_unit: Option<String>,
    ) -> io::Result<OwnedCgroup> {
        let mut owned = OwnedCgroup::own(files, lock)?;
        owned.systemd_unit = systemd_unit;
        Ok(owned)
    }

    fn own(files: CgroupFiles, lock: File) -> io::Result<OwnedCgroup> {
        let procs = OpenOptions::new()
            .write(true)
            .open(files.path().join("cgroup.procs"))?;
        Ok(OwnedCgroup {
            files,
            procs,
            removed: false,
            systemd_unit: None,
            _lock: lock,
        })
    }

    /// A CPU quota as `docker run --cpus` sets it: `cpus` CPUs of time per 100 ms period
    /// (v2 `cpu.max`, v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`; Documentation/scheduler/
    /// sched-bwc.rst). The CPUs the command sees are left alone.
    pub fn set_cpu_quota(&self, cpus: f64) -> io::Result<()> {
        let quota = ((cpus * CFS_PERIOD_US as f64).round() as u64).max(MIN_QUOTA_US);
        match self.version() {
            CgroupVersion::V2 => self.write("cpu.max", &format!("{quota} {CFS_PERIOD_US}")),
            CgroupVersion::V1 => {
                self.write("cpu.cfs_period_us", &CFS_PERIOD_US.to_string())?;
                self.write("cpu.cfs_quota_us", &quota.to_string())
            }
        }
    }

    fn configure(&self, limit: Option<u64>, swap: u64) -> io::Result<()> {
        let has = |file: &str| self.path().join(file).exists();
        match self.version() {
            CgroupVersion::V2 => {
                if let Some(limit) = limit {
                    self.write("memory.max", &limit.to_string())?;
                }
                // Absent without swap accounting; then there is no swap to limit either.
                if has("memory.swap.max") {
                    self.write("memory.swap.max", &swap.to_string())?;
                }
            }
            CgroupVersion::V1 => {
                if let Some(limit) = limit {
                    self.write("memory.limit_in_bytes", &limit.to_string())?;
                    // memsw = memory + swap; only present with swap accounting enabled.
                    if has("memory.memsw.limit_in_bytes") {
                        let memsw = limit.checked_add(swap).ok_or_else(|| {
                            io::Error::new(
                                io::ErrorKind::InvalidInput,
                                "the limit plus the swap overflows 64 bits",
                            )
                        })?;
                        self.write("memory.memsw.limit_in_bytes", &memsw.to_string())?;
                    }
                }
                // Without a swap limit, keep the kernel from swapping this group's pages.
                if swap == 0 && has("memory.swappiness") {
                    let _ = self.write("memory.swappiness", "0");
                }
            }
        }
        Ok(())
    }

    fn write(&self, file: &str, value: &str) -> io::Result<()> {
        let path = self.path().join(file);
        fs::write(&path, value).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("writing {value} to {}: {e}", path.display()),
            )
        })
    }

    /// Whether the kernel accounts swap for this cgroup (v2 `memory.swap.max`, v1
    /// `memory.memsw.*`): without it a limit cannot keep a command from swapping.
    pub fn swap_limitable(&self) -> bool {
        let file = match self.version() {
            CgroupVersion::V2 => "memory.swap.max",
            CgroupVersion::V1 => "memory.memsw.limit_in_bytes",
        };
        self.path().join(file).exists()
    }

    /// The open `cgroup.procs`: a child writes "0" to it before exec to enter the group.
    pub fn procs_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }

    /// SIGKILLs every process in the group and in its child cgroups (v2 `cgroup.kill` where
    /// the kernel has it, which is recursive and race-free against forks; else a kill loop).
    pub fn kill_all(&self) {
        let kill_file = self.path().join("cgroup.kill");
        if self.version() == CgroupVersion::V2 && kill_file.exists() {
            let _ = fs::write(kill_file, "1");
            return;
        }
        for pid in self.pids_recursive() {
            process::kill(pid, libc::SIGKILL);
        }
    }

    /// On cgroup v2, a leaf below this group for the command itself, with this group's
    /// controllers handed down to its children: a cgroup that holds processes cannot enable
    /// controllers for its children ("no internal processes", Documentation/admin-guide/
    /// cgroup-v2.rst), so a container runtime given this group as its parent (`docker run
    /// --cgroup-parent`) could make a container's cgroup under it but not give it memory
    /// accounting, a watermark or OOM events of its own — and `docker run -m` fails outright
    /// (runc cannot write memory.max). The command goes into the leaf before it runs; this
    /// group keeps the limit over both. Memory is required; pids and cpu where available.
    pub fn create_command_leaf(&self) -> io::Result<CgroupFiles> {
        if self.version() != CgroupVersion::V2 {
            return Err(io::Error::other("a command leaf is for cgroup v2"));
        }
        let available = fs::read_to_string(self.path().join("cgroup.controllers"))?;
        for controller in ["memory", "pids", "cpu"] {
            if !available.split_whitespace().any(|c| c == controller) {
                continue;
            }
            let enabled = super::enable_for_children(self.path(), controller);
            if controller == "memory" {
                enabled.map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!(
                            "enabling memory in {}/cgroup.subtree_control: {e}",
                            self.path().display()
                        ),
                    )
                })?;
            }
        }
        let leaf = self.create_child(COMMAND_LEAF)?;
        // The same limits on the leaf: a runtime in the command that reads its own cgroup's
        // limit (the container view makes the leaf its root) sees the run's.
        for file in ["memory.max", "memory.swap.max"] {
            if let Ok(value) = fs::read_to_string(self.path().join(file)) {
                let _ = fs::write(leaf.path().join(file), value.trim());
            }
        }
        Ok(leaf)
    }

    /// Creates a child cgroup of this one, to be removed with it.
    pub fn create_child(&self, name: &str) -> io::Result<CgroupFiles> {
        let path = self.path().join(name);
        fs::create_dir(&path)?;
        Ok(CgroupFiles::open(self.version(), path))
    }

    /// Kills what is left, waits for the group to empty and removes it.
    ///
    /// Killed processes that are this process's children (or orphans reparented to it as the
    /// subreaper) must be reaped by `reap` for the group to empty.
    pub fn remove(mut self, reap: &mut dyn FnMut()) -> io::Result<()> {
        self.remove_inner(reap)
    }

    fn remove_inner(&mut self, reap: &mut dyn FnMut()) -> io::Result<()> {
        if self.removed {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.pids_recursive().is_empty() {
                // Child cgroups (a container runtime's, or adopted ones) go first: a cgroup
                // with children cannot be removed.
                remove_descendants(self.path());
                let removed = match &self.systemd_unit {
                    // systemd removes a slice's cgroup when the slice stops.
                    Some(unit) => super::systemd::stop_unit_and_wait(unit, self.path())
                        .or_else(|_| remove_dir(self.path())),
                    None => remove_dir(self.path()),
                };
                match removed {
                    Ok(()) => {
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
                        self.pids_recursive(),
                        self.path().display()
                    )));
                }
            }
            reap();
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Removes every child cgroup below `dir`, deepest first (empty ones only: the kernel refuses
/// a cgroup that holds processes).
fn remove_descendants(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_descendants(&entry.path());
            let _ = remove_dir(&entry.path());
        }
    }
}

/// Removes a cgroup directory; one already gone counts as removed.
fn remove_dir(path: &Path) -> io::Result<()> {
    match fs::remove_dir(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

impl Drop for OwnedCgroup {
    fn drop(&mut self) {
        let _ = self.remove_inner(&mut || {
            process::reap_exited();
        });
    }
}
