//! Cgroups whose memfit is gone. A memfit that is SIGKILLed (the OOM killer, a CI runner's
//! timeout, `docker kill`) cannot remove its run's cgroup, and what the command started lives
//! on in it. The next memfit sweeps it, as a container runtime cleans up after a dead shim:
//! it kills what the cgroup holds and removes it.
//!
//! Two facts tell a dead owner from a live one, from any PID namespace:
//! * the name records the owner ([`CgroupOwner`]: pid, start time, PID namespace), so a
//!   memfit that can see its owner checks that it runs, and names never collide between PID
//!   namespaces (PID 1 of one container is not PID 1 of the next);
//! * the owner holds an exclusive `flock(2)` on the cgroup's directory for as long as it
//!   lives (the kernel drops it when the process dies, whatever kills it), so a sweeper that
//!   cannot see the owner still cannot take a live run's cgroup.
//!
//! Only names of exactly this form are looked at: nothing memfit did not create is touched.

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::cgroup::{CgroupFiles, OwnedCgroup};
use crate::procfs;
use crate::CgroupVersion;

const PREFIX: &str = "memfit-";

/// The memfit process a run's cgroup belongs to, as the cgroup's name records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupOwner {
    /// As the `/proc` memfit reads shows it.
    pub pid: u32,
    /// `/proc/PID/stat` field 22, clock ticks after boot: with the pid, one process across
    /// pid reuse (proc(5)).
    pub start_ticks: u64,
    /// The inode of its PID namespace (`/proc/PID/ns/pid`, namespaces(7)).
    pub pid_namespace: u64,
}

impl CgroupOwner {
    /// This process.
    pub fn current() -> CgroupOwner {
        let pid = fs::read_link("/proc/self")
            .ok()
            .and_then(|p| p.to_str()?.parse().ok())
            .unwrap_or_else(std::process::id);
        CgroupOwner {
            pid,
            start_ticks: fs::read_to_string("/proc/self/stat")
                .ok()
                .and_then(|t| procfs::parse_stat_starttime(&t))
                .unwrap_or(0),
            pid_namespace: namespace_inode("/proc/self/ns/pid").unwrap_or(0),
        }
    }

    /// `memfit-PID-START-PIDNS-SEQUENCE-RANDOM`: the random part keeps two runs apart even if
    /// all else were equal.
    pub fn cgroup_name(&self, sequence: u32) -> io::Result<String> {
        Ok(format!(
            "{PREFIX}{}-{}-{}-{sequence}-{:08x}",
            self.pid,
            self.start_ticks,
            self.pid_namespace,
            crate::safe_write::random_u64()? as u32
        ))
    }

    /// The owner a run's cgroup name records; `None` for any other name (an older memfit's
    /// `memfit-PID-SEQ` included: it holds no lock, so its death cannot be told).
    pub fn of_cgroup_name(name: &str) -> Option<CgroupOwner> {
        let fields: Vec<&str> = name.strip_prefix(PREFIX)?.split('-').collect();
        let [pid, start, namespace, sequence, random] = fields[..] else {
            return None;
        };
        let decimal = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !decimal(sequence) || random.len() != 8 || u32::from_str_radix(random, 16).is_err() {
            return None;
        }
        Some(CgroupOwner {
            pid: pid.parse().ok().filter(|_| decimal(pid))?,
            start_ticks: start.parse().ok().filter(|_| decimal(start))?,
            pid_namespace: namespace.parse().ok().filter(|_| decimal(namespace))?,
        })
    }

    /// Whether this owner is a process this memfit can see, and it still runs.
    fn runs_here(&self) -> bool {
        let proc_dir = format!("/proc/{}", self.pid);
        let started = fs::read_to_string(format!("{proc_dir}/stat"))
            .ok()
            .and_then(|t| procfs::parse_stat_starttime(&t));
        started == Some(self.start_ticks)
            && namespace_inode(&format!("{proc_dir}/ns/pid")) == Some(self.pid_namespace)
    }
}

fn namespace_inode(path: &str) -> Option<u64> {
    fs::metadata(path).ok().map(|m| m.ino())
}

/// Takes the owner's lock on a cgroup directory just created at `path`: held until the
/// returned file is closed (memfit exits or dies). A sweeper may hold it for a moment, and
/// may have removed the directory by then; that is an `ErrorKind::NotFound`, and the caller
/// creates another.
pub(super) fn lock_created(path: &Path) -> io::Result<File> {
    let dir = open_dir(path)?;
    flock(&dir, libc::LOCK_EX)?;
    let still_there = fs::symlink_metadata(path)
        .is_ok_and(|now| now.ino() == dir_ino(&dir) && now.dev() == dir_dev(&dir));
    if !still_there {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{} was swept as it was being created; try again",
                path.display()
            ),
        ));
    }
    Ok(dir)
}

fn dir_ino(dir: &File) -> u64 {
    dir.metadata().map_or(0, |m| m.ino())
}

fn dir_dev(dir: &File) -> u64 {
    dir.metadata().map_or(0, |m| m.dev())
}

fn open_dir(path: &Path) -> io::Result<File> {
    // O_CLOEXEC (std's default) matters: a command that inherited the descriptor would hold
    // the lock after memfit died, and its cgroup would never be swept.
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)
}

fn flock(file: &File, operation: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: flock on an open descriptor.
        if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// A cgroup swept: its path, and how many processes it still held (killed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweptCgroup {
    pub path: PathBuf,
    pub killed: usize,
}

/// Sweeps the cgroups under `parent` whose memfit no longer runs; see the module
/// documentation. A cgroup that cannot be emptied or removed is left (and not reported).
pub fn sweep_stale(parent: &Path, version: CgroupVersion) -> Vec<SweptCgroup> {
    sweep(parent, version, false)
}

/// Sweeps the systemd slices of runs whose memfit no longer runs, under `root` (the
/// hierarchy's mount point, where they are made): each is stopped through systemd.
pub fn sweep_stale_slices(root: &Path, version: CgroupVersion) -> Vec<SweptCgroup> {
    sweep(root, version, true)
}

fn sweep(parent: &Path, version: CgroupVersion, slices_only: bool) -> Vec<SweptCgroup> {
    let Ok(entries) = fs::read_dir(parent) else {
        return Vec::new();
    };
    let me = CgroupOwner::current();
    let mut swept = Vec::new();
    for entry in entries.flatten() {
        // The v2 leaf a memfit alone in its cgroup moved into (see `Hierarchy::detect`), left
        // by one that was killed: empty, it only goes (rmdir fails on one in use).
        let name = entry.file_name();
        if slices_only && !name.to_str().is_some_and(super::systemd::is_memfit_slice) {
            continue;
        }
        if name.to_str().is_some_and(|n| {
            n.strip_prefix("memfit-self-")
                .is_some_and(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        }) && name.to_str() != Some(&super::discover::self_leaf_name())
        {
            let path = entry.path();
            let empty = fs::read_to_string(path.join("cgroup.procs"))
                .is_ok_and(|procs| procs.trim().is_empty());
            if empty && fs::remove_dir(&path).is_ok() {
                swept.push(SweptCgroup { path, killed: 0 });
            }
            continue;
        }
        // A run's systemd slice (see `super::systemd`) records its owner as its name does.
        let slice = name
            .to_str()
            .filter(|n| super::systemd::is_memfit_slice(n))
            .map(str::to_string);
        let owner = match &slice {
            Some(unit) => unit
                .strip_suffix(".slice")
                .and_then(|n| CgroupOwner::of_cgroup_name(&n.replace('_', "-"))),
            None => name.to_str().and_then(CgroupOwner::of_cgroup_name),
        };
        let Some(owner) = owner else {
            continue;
        };
        if owner == me || owner.runs_here() {
            continue;
        }
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        let Ok(lock) = open_dir(&path) else {
            continue;
        };
        // Held: its memfit runs, in a PID namespace this one cannot see.
        if flock(&lock, libc::LOCK_EX | libc::LOCK_NB).is_err() {
            continue;
        }
        let files = CgroupFiles::open(version, &path);
        let killed = files.pids_recursive().len();
        let Ok(stale) = OwnedCgroup::adopt_stale(files, lock, slice) else {
            continue;
        };
        // Its processes are not this memfit's children: nothing to reap.
        if stale.remove(&mut || {}).is_ok() {
            swept.push(SweptCgroup { path, killed });
        }
    }
    swept.sort_by(|a, b| a.path.cmp(&b.path));
    swept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_records_its_owner_and_nothing_else_parses() {
        let owner = CgroupOwner {
            pid: 1,
            start_ticks: 4_711,
            pid_namespace: 4_026_532_190,
        };
        let name = owner.cgroup_name(3).unwrap();
        assert!(name.starts_with("memfit-1-4711-4026532190-3-"), "{name}");
        assert_eq!(CgroupOwner::of_cgroup_name(&name), Some(owner));
        for other in [
            "memfit-1-0",
            "memfit-probe-12",
            "memfit-1-2-3-4",
            "memfit-1-2-3-4-5",
            "memfit-1-2-3-4-0000000g",
            "memfit-+1-2-3-4-00000000",
            "memfit-1-2-3-4-00000000-x",
            "docker-1-2-3-4-00000000",
        ] {
            assert_eq!(CgroupOwner::of_cgroup_name(other), None, "{other}");
        }
    }

    #[test]
    fn this_process_runs_and_a_made_up_owner_does_not() {
        let me = CgroupOwner::current();
        assert!(me.runs_here());
        assert!(!CgroupOwner {
            start_ticks: me.start_ticks + 1,
            ..me
        }
        .runs_here());
        assert!(!CgroupOwner {
            pid_namespace: me.pid_namespace + 1,
            ..me
        }
        .runs_here());
    }
}
