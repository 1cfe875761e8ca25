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
use std::time::Duration;

use crate::report::RunReport;
use crate::signals::SignalWatcher;
use crate::spawn::{SpawnError, Stdio};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub command: Vec<OsString>,
    pub limit: Option<u64>,
    pub swap: u64,
    /// Restrict the CPUs the command can see to this many.
    pub cpus: Option<usize>,
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
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no command given; put it after `--`, e.g. memfit run --limit 512M -- npm run build")]
    EmptyCommand,
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error("--cpus {wanted}: only {available} CPU(s) are available to memfit here; use a number from 1 to {available}")]
    TooManyCpus { wanted: usize, available: usize },
    #[error("cannot create the run's cgroup under {parent}: {source}")]
    Cgroup { parent: String, source: io::Error },
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
