//! Before the command starts: the CPUs it may use, its cgroup (or why there is none), and
//! what the chosen mode means for the report.

use std::sync::atomic::{AtomicU32, Ordering};

use memfit_sys::cgroup::{Hierarchy, OwnedCgroup};
use memfit_sys::procfs;
use memfit_sys::CgroupVersion;

use super::{RunError, RunOptions};
use crate::report::Mode;

static RUN_SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// What the run has before its command starts.
pub(super) struct Prepared {
    pub host_cpus: usize,
    pub cpu_set: Option<libc::cpu_set_t>,
    pub hierarchy: Option<Hierarchy>,
    pub cgroup: Option<OwnedCgroup>,
    pub mode: Mode,
    /// Why no cgroup is used, in measure-only mode.
    pub mode_reason: Option<String>,
    pub caveats: Vec<String>,
}

pub(super) fn prepare(options: &RunOptions) -> Result<Prepared, RunError> {
    let allowed_cpus = allowed_cpus();
    let host_cpus = allowed_cpus.len().max(1);
    let cpu_set = match options.cpus {
        Some(wanted) if wanted == 0 || wanted > host_cpus => {
            return Err(RunError::TooManyCpus {
                wanted,
                available: host_cpus,
            })
        }
        Some(wanted) => Some(cpu_set_of(&allowed_cpus[..wanted])),
        None => None,
    };

    let mut caveats = options.caveats.clone();
    let (hierarchy, cgroup, mode_reason) = if options.measure_only {
        (None, None, Some("--measure-only was given".to_string()))
    } else {
        match Hierarchy::detect() {
            Ok(hierarchy) => {
                let cgroup = create_cgroup(&hierarchy, options)?;
                (Some(hierarchy), Some(cgroup), None)
            }
            Err(reason) => (None, None, Some(reason)),
        }
    };
    let mode = match cgroup.as_ref().map(|c| c.version()) {
        Some(CgroupVersion::V2) => Mode::CgroupV2,
        Some(CgroupVersion::V1) => Mode::CgroupV1,
        None => Mode::MeasureOnly,
    };
    if let Some(reason) = &mode_reason {
        caveats.push(format!(
            "measure-only: {reason}. No limit is enforced, the peak is sampled (Σ RSS counts shared pages once per process) and no OOM verdict is possible"
        ));
    }
    if options.cpus.is_none() && host_cpus > 1 {
        caveats.push(format!(
            "the command sees all {host_cpus} CPUs of this machine; tools that start a worker per CPU (terser, jest, rustc) use more memory here than on a 1–2 vCPU plan: emulate the target with --cpus"
        ));
    }
    let host_has_swap = procfs::meminfo("SwapTotal").unwrap_or(0) > 0;
    let swap_limitable = cgroup.as_ref().is_some_and(OwnedCgroup::swap_limitable);
    if host_has_swap && mode == Mode::CgroupV1 && !swap_limitable {
        caveats.push("this host has swap and the kernel has no swap accounting (memory.memsw.*): the command may swap instead of being OOM-killed".to_string());
    }
    Ok(Prepared {
        host_cpus,
        cpu_set,
        hierarchy,
        cgroup,
        mode,
        mode_reason,
        caveats,
    })
}

/// A fresh cgroup for this run, named after memfit's pid and the run's sequence number.
fn create_cgroup(hierarchy: &Hierarchy, options: &RunOptions) -> Result<OwnedCgroup, RunError> {
    let name = format!(
        "memfit-{}-{}",
        std::process::id(),
        RUN_SEQUENCE.fetch_add(1, Ordering::Relaxed)
    );
    OwnedCgroup::create(hierarchy, &name, options.limit, options.swap).map_err(|source| {
        RunError::Cgroup {
            parent: hierarchy.parent.display().to_string(),
            source,
        }
    })
}

/// The CPUs memfit itself may run on (its affinity mask), in order.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills a zeroed cpu_set_t.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

fn cpu_set_of(cpus: &[usize]) -> libc::cpu_set_t {
    // SAFETY: CPU_SET on a zeroed set with in-range indices.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        set
    }
}
