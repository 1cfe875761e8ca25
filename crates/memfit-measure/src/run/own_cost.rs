//! What measuring costs memfit itself: CPU time (for the adaptive sampling interval and the
//! report) and its own resident memory.

use memfit_sys::procfs;
use std::time::Duration;

/// CPU time consumed by the calling thread.
pub(super) fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the local timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// What measuring cost memfit itself.
pub(super) struct OwnUsage {
    pub cpu_ms: u64,
    pub max_rss_bytes: u64,
}

impl OwnUsage {
    pub fn now() -> OwnUsage {
        // SAFETY: getrusage fills a zeroed struct.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_SELF, &mut usage);
            usage
        };
        let ms = |tv: libc::timeval| tv.tv_sec as u64 * 1000 + tv.tv_usec as u64 / 1000;
        OwnUsage {
            cpu_ms: ms(usage.ru_utime) + ms(usage.ru_stime),
            // Not ru_maxrss: the kernel folds the pre-exec image of the forking parent into it
            // (a cargo test binary made memfit look 53 MiB large). VmHWM belongs to our own mm.
            max_rss_bytes: procfs::read_status(std::process::id() as i32).map_or(0, |s| s.hwm),
        }
    }

    pub fn since(&self, before: &OwnUsage) -> OwnUsage {
        OwnUsage {
            cpu_ms: self.cpu_ms.saturating_sub(before.cpu_ms),
            max_rss_bytes: self.max_rss_bytes,
        }
    }
}
