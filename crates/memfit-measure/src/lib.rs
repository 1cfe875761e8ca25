//! memfit's measurement engine.
//!
//! It runs a command the way a container would — under a hard memory limit, without swap,
//! with a restricted number of visible CPUs — in a fresh cgroup (v2 or v1), or, where no
//! cgroup can be created, measures without a limit and says so. While the command runs it
//! samples the charged and working memory of the group and every process in it; when it
//! ends it reads the kernel's own watermark and OOM counters, names the process the kernel
//! killed, kills what the command left behind and removes the cgroup. [`run`] returns a
//! [`RunReport`]; [`bisect`] repeats runs to find the smallest limit that still passes.
//! Renderers ([`svg`], [`html`]) only read the reports.
//!
//! Not here: command-line parsing and terminal output (memfit-cli), log classification
//! (memfit-explain), static checks (memfit-audit), production supervision (memfit-guard).

pub mod bisect;
pub mod cgroup;
mod clone3;
mod container_view;
pub mod html;
mod kmsg;
pub mod procfs;
mod report;
mod run;
mod signals;
pub mod svg;
mod taskstats;

pub use bisect::{
    bisect, BisectError, BisectObserver, BisectOptions, BisectReport, Precision, TryRecord,
};
pub use report::{
    describe_exit, short_command, ExitInfo, Mode, OomInfo, OomVictim, Peak, ProcessAtPeak,
    ProcessRecord, RunReport, Sample, SamplingCost,
};
pub use run::{run, RunError, RunOptions, Stdio};
pub use signals::SignalWatcher;
