//! `run`: start a command in a fresh cgroup, sample it until it exits, read the kernel's
//! verdict and clean up. Each stage has its file: [`prepare`] (CPUs, the cgroup, what the
//! mode means), [`start`] (the child, with its container view), [`supervise`] (the sampling
//! loop and signals), [`teardown`] (what the command left behind, the kernel's counters, the
//! cgroup removed) and [`assemble`] (the report).

mod assemble;
mod own_cost;
mod prepare;
mod start;
mod supervise;
mod teardown;

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use memfit_sys::cgroup::{self, Hierarchy, SweptCgroup};
use memfit_sys::CgroupVersion;

use crate::build_owner::DockerfileReader;
use crate::environment::Environment;
use crate::report::RunReport;
use crate::signals::SignalWatcher;
use crate::spawn::{PidMode, SpawnError, Stdio};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub command: Vec<OsString>,
    pub limit: Option<u64>,
    pub swap: u64,
    /// CPU time as `docker run --cpus` and the platforms' vCPUs give it: a CFS quota of this
    /// many CPUs. The command still sees every CPU.
    pub cpu_quota: Option<f64>,
    /// The CPUs the command may run on, and so the ones it sees (`docker run --cpuset-cpus`).
    pub cpuset: Option<Vec<usize>>,
    pub pid: PidMode,
    /// The executable that runs `__init -- CMD` (the memfit binary), for [`PidMode::Init`].
    pub init_program: Option<PathBuf>,
    pub environment: Environment,
    /// Fixed sampling period; `None` adapts it to the sampling cost.
    pub interval: Option<Duration>,
    /// Do not use a cgroup even where one is available.
    pub measure_only: bool,
    /// Let the command see the host's cgroup tree instead of its own cgroup as the root, as
    /// in a container (see `container_view`).
    pub host_view: bool,
    pub stdio: Stdio,
    /// `provider:plan` when the limit came from `--platform`.
    pub platform: Option<String>,
    /// Extra caveats the caller knows of (e.g. fractional platform CPUs).
    pub caveats: Vec<String>,
    /// Let the runtimes inside report their own memory (the Node preload): off with
    /// `--no-runtime-view`.
    pub runtime_view: bool,
    /// Reads the RUN steps of a build's Dockerfiles, so that only this build's BuildKit steps
    /// are adopted (see [`crate::build_owner`]); `None`: every step that appears is.
    pub dockerfiles: Option<Arc<dyn DockerfileReader>>,
    /// With the runtime view, Python processes run under `tracemalloc` and report it
    /// (`--python-tracemalloc`): it slows them, so only when asked.
    pub python_tracemalloc: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no command given; put it after `--`, e.g. memfit run --limit 512M -- npm run build")]
    EmptyCommand,
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error("--cpus {wanted}: the range is 0.01 to {available}, as there are only {available} CPU(s) available to memfit here (as docker run --cpus says)")]
    CpuQuotaOutOfRange { wanted: f64, available: usize },
    #[error("--cpuset: CPU {cpu} is not available to memfit here; use CPUs from {available}")]
    CpuNotAvailable { cpu: usize, available: String },
    #[error("--init runs memfit's own init; the path of the memfit binary is unknown")]
    NoInitProgram,
    #[error("cannot create the run's cgroup under {parent}: {source}")]
    Cgroup { parent: String, source: io::Error },
}

/// Sweeps the cgroups a SIGKILLed memfit left where this one creates its own (the memory
/// hierarchy, and on cgroup v1 the CPU one `--cpus` uses): what they hold is killed and they
/// are removed; the cgroup of a memfit that still runs is never touched. Returns what was
/// swept, for the caller to say. Once per memfit, before its first run.
pub fn sweep_stale_cgroups() -> Vec<SweptCgroup> {
    let Ok(memory) = Hierarchy::detect() else {
        return Vec::new();
    };
    let mut swept = cgroup::sweep_stale(&memory.parent, memory.version);
    // The systemd slices of runs with the systemd cgroup driver sit at the top.
    if memory.mount != memory.parent && Path::new("/run/systemd/system").is_dir() {
        swept.extend(cgroup::sweep_stale_slices(&memory.mount, memory.version));
    }
    if memory.version == CgroupVersion::V1 {
        if let Ok(cpu) = Hierarchy::detect_controller("cpu") {
            swept.extend(cgroup::sweep_stale(&cpu.parent, cpu.version));
        }
    }
    swept
}

/// Runs the command to completion and reports on it.
pub fn run(options: &RunOptions, signals: &SignalWatcher) -> Result<RunReport, RunError> {
    if options.command.is_empty() {
        return Err(RunError::EmptyCommand);
    }
    let mut prepared = prepare::prepare(options)?;
    let mut running = start::start(options, &mut prepared)?;
    let supervised = supervise::supervise(
        &mut running,
        prepared.cgroup.as_ref(),
        signals,
        options.interval,
    );
    let finished = teardown::teardown(&mut prepared, running, supervised);
    Ok(assemble::assemble(options, prepared, finished))
}
