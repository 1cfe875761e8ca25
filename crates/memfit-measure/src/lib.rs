//! memfit's measurement engine.
//!
//! It runs a command the way a container would — under a hard memory limit, without swap,
//! with a restricted number of visible CPUs — in a fresh cgroup (v2 or v1), or, where no
//! cgroup can be created, measures without a limit and says so. While the command runs it
//! samples the charged and working memory of the group and every process in it; when it
//! ends it reads the kernel's own watermark and OOM counters, names the process the kernel
//! killed, kills what the command left behind and removes the cgroup. [`run`] returns a
//! [`RunReport`]; [`bisect`] repeats runs to find the smallest limit that still passes.
//! Renderers ([`svg`], [`html`]) only read the reports; [`compare`] puts two reports side by
//! side and answers the CI gate on a regression.
//!
//! The Linux plumbing (cgroup files, /proc, reaping) is memfit-sys's, shared with the guard.
//!
//! Not here: command-line parsing and terminal output (memfit-cli), log classification
//! (memfit-explain), static checks (memfit-audit), production supervision (memfit-guard).

pub mod bisect;
pub mod build_owner;
pub mod chart;
mod clone3;
pub mod compare;
pub mod compose;
mod container_view;
pub mod docker;
mod environment;
mod exec_events;
pub mod html;
mod kmsg;
mod peak_alarm;
mod python_verdict;
mod report;
mod run;
mod runtime_verdict;
mod runtime_view;
mod sampler;
mod signals;
mod spawn;
pub mod svg;
mod taskstats;
mod units;
mod watch;

pub use bisect::{
    bisect, BisectError, BisectObserver, BisectOptions, BisectReport, Precision, TryRecord,
};
pub use environment::{Environment, Variable};
pub use memfit_sys::cgroup::SweptCgroup;
pub use report::{
    describe_exit, short_command, BuildStep, ContainerKind, ContainerRecord, ExitInfo, JvmRecord,
    Mode, OomInfo, OomVictim, Peak, PeakSource, ProcessAtPeak, ProcessRecord, ProcessRss,
    PythonRecord, RunReport, RuntimeSample, RuntimeViewInfo, Sample, SamplingCost, V8Record,
    VictimEvidence, WorkingSource, RUN_SCHEMA, SWAP_THAT_COUNTS,
};
pub use run::{run, sweep_stale_cgroups, RunError, RunOptions};
pub use signals::SignalWatcher;
pub use spawn::{PidMode, SpawnError, Stdio};
