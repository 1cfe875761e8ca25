//! A wake-up from the kernel when the run's memory nears its limit, so a sample is taken at
//! the peak however long the sampling period is: on cgroup v1 a usage threshold
//! (`cgroup.event_control` with an eventfd on `memory.usage_in_bytes`, Documentation/
//! admin-guide/cgroup-v1/memory.rst "Memory thresholds"); on v2 a change of `memory.events`,
//! which the kernel signals to poll() when the limit is hit (cgroup-v2.rst: "a value change
//! in this file generates a file modified event").

use std::fs::{self, File};
use std::io::{self, Read, Seek};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use memfit_sys::cgroup::CgroupFiles;
use memfit_sys::CgroupVersion;

/// The share of the limit (in percent) at which v1 wakes the sampler.
pub(crate) const THRESHOLD_PERCENT: u64 = 90;

pub(crate) enum PeakAlarm {
    /// v1: an eventfd the kernel signals when usage crosses the threshold (either way).
    Threshold {
        eventfd: OwnedFd,
        /// Kept open for as long as the threshold is registered.
        _usage: File,
    },
    /// v2: `memory.events`, signalled (POLLPRI) when it changes.
    Events(File),
}

impl PeakAlarm {
    /// Arms the alarm for `cgroup` and its hard limit; `None` where the kernel offers none.
    pub(crate) fn arm(cgroup: &CgroupFiles, limit: u64) -> Option<PeakAlarm> {
        match cgroup.version() {
            CgroupVersion::V1 => Self::threshold(cgroup, limit / 100 * THRESHOLD_PERCENT).ok(),
            CgroupVersion::V2 => {
                let mut events = File::open(cgroup.path().join("memory.events")).ok()?;
                // A first read, so that the next change is what wakes poll().
                let _ = events.read_to_end(&mut Vec::new());
                Some(PeakAlarm::Events(events))
            }
        }
    }

    fn threshold(cgroup: &CgroupFiles, bytes: u64) -> io::Result<PeakAlarm> {
        // SAFETY: eventfd(2) with valid flags; the fd is owned right away.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, valid descriptor.
        let eventfd = unsafe { OwnedFd::from_raw_fd(fd) };
        let usage = File::open(cgroup.path().join("memory.usage_in_bytes"))?;
        fs::write(
            cgroup.path().join("cgroup.event_control"),
            format!("{} {} {bytes}", eventfd.as_raw_fd(), usage.as_raw_fd()),
        )?;
        Ok(PeakAlarm::Threshold {
            eventfd,
            _usage: usage,
        })
    }

    /// The descriptor to poll and the events that mean "rang".
    pub(crate) fn poll_target(&self) -> (RawFd, i16) {
        match self {
            PeakAlarm::Threshold { eventfd, .. } => (eventfd.as_raw_fd(), libc::POLLIN),
            PeakAlarm::Events(file) => (file.as_raw_fd(), libc::POLLPRI | libc::POLLERR),
        }
    }

    /// Consumes a ring, so that poll() waits for the next one.
    pub(crate) fn reset(&mut self) {
        match self {
            PeakAlarm::Threshold { eventfd, .. } => {
                let mut count = [0u8; 8];
                // SAFETY: reading 8 bytes into a buffer we own; non-blocking.
                unsafe { libc::read(eventfd.as_raw_fd(), count.as_mut_ptr().cast(), 8) };
            }
            PeakAlarm::Events(file) => {
                let _ = file.rewind();
                let _ = file.read_to_end(&mut Vec::new());
            }
        }
    }
}
