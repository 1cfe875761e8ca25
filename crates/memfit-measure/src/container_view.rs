//! Shows the command its run cgroup the way a container shows a process its own: as the root
//! of the cgroup filesystem.
//!
//! A runtime that sizes itself from "the container's limit" reads it from a path, not from
//! the kernel's accounting. Node 18 (libuv ≤ 1.44) reads `/sys/fs/cgroup/memory/
//! memory.limit_in_bytes`, the root of the hierarchy: in a container that is the container's
//! cgroup, on a host it is unlimited. Measured here: Node 18.20.8 in a memfit run cgroup of
//! 512 MiB without this view sized its heap from the host (4144 MiB); with it, 259 MiB, as in
//! a container. The JVM (which parses /proc/self/mountinfo) and Node ≥ 20 read their own cgroup
//! either way and see the same limit in both views.
//!
//! What a container runtime does, memfit does between fork and exec, after the child joined
//! its cgroup: a private mount namespace (mounts propagate in from the host, never out), a
//! new cgroup namespace rooted at the run cgroup, and a fresh mount of the memory hierarchy
//! over the host's. Every step that fails leaves the child with the host's view, never with
//! a half-made one: the cgroup namespace is left again (setns to the host's) and a detached
//! mount is put back.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use memfit_sys::cgroup::Hierarchy;
use memfit_sys::process::{self, MountNamespaceStep};
use memfit_sys::CgroupVersion;

/// How the view was made, reported by the child through a pipe before exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewOutcome {
    Entered,
    /// The step that failed; the child kept the host's view.
    Failed(&'static str),
}

const STEPS: [&str; 6] = [
    "",
    "unshare(CLONE_NEWNS)",
    "making / a slave mount",
    "unshare(CLONE_NEWCGROUP)",
    "unmounting the host's cgroup mount",
    "mounting the cgroup filesystem",
];

/// Everything the child needs, prepared before the fork (the child may not allocate).
pub struct ViewSetup {
    /// The hierarchies mounted afresh: memory, and on cgroup v1 the CPU hierarchy when the
    /// run has a CPU quota (runtimes read their quota there, as in a container).
    mounts: Vec<ViewMount>,
    host_cgroup_ns: OwnedFd,
    report_write: OwnedFd,
}

/// One cgroup filesystem mounted over the host's.
struct ViewMount {
    mount_point: CString,
    fstype: CString,
    data: CString,
}

/// The parent's end: what the child reported.
pub struct ViewReport {
    report_read: OwnedFd,
}

/// Prepares the view for a run in `hierarchies` (the memory hierarchy first).
pub fn prepare(hierarchies: &[&Hierarchy]) -> io::Result<(ViewSetup, ViewReport)> {
    ViewSetup::prepare(hierarchies)
}

impl ViewMount {
    fn of(hierarchy: &Hierarchy) -> io::Result<ViewMount> {
        let (fstype, data) = match hierarchy.version {
            // The same controllers as the host's mount (a co-mounted `cpu,memory` hierarchy
            // must be mounted with both), without the generic rw/ro flags.
            CgroupVersion::V1 => (
                "cgroup",
                hierarchy
                    .mount_options
                    .split(',')
                    .filter(|o| !matches!(*o, "rw" | "ro" | ""))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            // cgroup2 mounts share one superblock; its options stay the host's.
            CgroupVersion::V2 => ("cgroup2", String::new()),
        };
        Ok(ViewMount {
            mount_point: CString::new(hierarchy.mount.as_os_str().as_encoded_bytes())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?,
            fstype: CString::new(fstype).expect("no NUL"),
            data: CString::new(data)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in options"))?,
        })
    }

    unsafe fn mount(&self) -> libc::c_int {
        let data = if self.data.as_bytes().is_empty() {
            std::ptr::null()
        } else {
            self.data.as_ptr().cast()
        };
        libc::mount(
            c"cgroup".as_ptr(),
            self.mount_point.as_ptr(),
            self.fstype.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RELATIME,
            data,
        )
    }
}

impl ViewSetup {
    fn prepare(hierarchies: &[&Hierarchy]) -> io::Result<(ViewSetup, ViewReport)> {
        let mounts = hierarchies
            .iter()
            .map(|h| ViewMount::of(h))
            .collect::<io::Result<Vec<_>>>()?;
        let ns = CString::new("/proc/self/ns/cgroup").expect("no NUL");
        // SAFETY: open(2) with a valid C string.
        let fd = unsafe { libc::open(ns.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is fresh and valid.
        let host_cgroup_ns = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two fds.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both fds are fresh and valid.
        let (report_read, report_write) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok((
            ViewSetup {
                mounts,
                host_cgroup_ns,
                report_write,
            },
            ViewReport { report_read },
        ))
    }

    /// In the child, after it joined its cgroup and before exec. Only system calls on data
    /// prepared before the fork; reports the outcome through the pipe.
    ///
    /// # Safety
    /// Call only in a freshly forked child, between fork and exec.
    pub unsafe fn enter(&self) {
        let step = self.steps();
        let byte = step as u8;
        libc::write(
            self.report_write.as_raw_fd(),
            (&byte as *const u8).cast(),
            1,
        );
    }

    unsafe fn steps(&self) -> usize {
        match process::private_mount_namespace() {
            Ok(()) => {}
            Err(MountNamespaceStep::Unshare) => return 1,
            Err(MountNamespaceStep::MakeSlave) => return 2,
        }
        if libc::unshare(libc::CLONE_NEWCGROUP) != 0 {
            return 3;
        }
        for (index, view) in self.mounts.iter().enumerate() {
            if libc::umount2(view.mount_point.as_ptr(), libc::MNT_DETACH) != 0 {
                self.back_to_host(index);
                return 4;
            }
            if view.mount() != 0 {
                self.back_to_host(index + 1);
                return 5;
            }
        }
        0
    }

    /// Back to the host's cgroup namespace, where a fresh mount of each hierarchy already
    /// replaced is the host's view again.
    unsafe fn back_to_host(&self, replaced: usize) {
        libc::setns(self.host_cgroup_ns.as_raw_fd(), libc::CLONE_NEWCGROUP);
        for view in &self.mounts[..replaced] {
            view.mount();
        }
    }
}

impl ViewReport {
    /// In the parent, after the child exec'd (the report is written before exec).
    pub fn outcome(&self) -> ViewOutcome {
        let mut byte = 0xffu8;
        // SAFETY: reading one byte into a local.
        let n = unsafe {
            libc::read(
                self.report_read.as_raw_fd(),
                (&mut byte as *mut u8).cast(),
                1,
            )
        };
        match (n, byte) {
            (1, 0) => ViewOutcome::Entered,
            (1, b) if (b as usize) < STEPS.len() => ViewOutcome::Failed(STEPS[b as usize]),
            _ => ViewOutcome::Failed("the child did not report"),
        }
    }
}
