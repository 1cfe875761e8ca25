//! `memfit guard`: a tiny PID 1 that keeps a service alive under its memory limit.
//!
//! As tini does, it starts one child, forwards signals to it (or to its process group),
//! reaps every zombie, and exits with the child's status (128 + signal when it was killed);
//! when it is not PID 1 it becomes a subreaper. Beside that it watches the container's memory
//! (its cgroup, else the machine, else the process tree), samples faster as the limit nears,
//! and acts before the kernel's OOM killer: a log line with the top processes at the warning
//! threshold (and an optional hook), a graceful restart at the critical one. It reports a
//! leak trend from the post-GC lows and serves `/health/memory` and `/metrics`.
//!
//! One thread does the supervising ([`supervisor`]), blocked in `sigtimedwait` between
//! samples (no signal handlers); one small thread serves HTTP ([`http`]). The cgroup and /proc
//! plumbing is memfit-sys's, shared with `memfit run`. Nothing here parses project files: the
//! guard ships inside containers and its own footprint is a feature.

pub mod http;
pub mod logging;
pub mod memory;
mod metrics;
pub mod options;
pub mod policy;
pub mod procs;
pub mod startup;
mod supervisor;
pub mod trend;

use std::ffi::OsString;

use crate::logging::{Field, Level};
use crate::options::{table, Options, Parsed};
use crate::supervisor::Guard;

/// An event at the info level with no fields but its message.
fn log(event: &str, message: impl AsRef<str>) {
    logging::event(Level::Info, event, message.as_ref(), &[]);
}

/// An event with its level and fields.
fn log_with(level: Level, event: &str, message: impl AsRef<str>, fields: &[(&str, Field)]) {
    logging::event(level, event, message.as_ref(), fields);
}

/// Entry point for `memfit guard ARGS`.
pub fn main_with(args: &[OsString]) -> i32 {
    main_named("memfit guard", args)
}

/// Entry point for `BIN ARGS` (`memfit guard` or the `memfit-guard` binary): the options from
/// the arguments and the `MEMFIT_GUARD_*` variables.
pub fn main_named(bin: &str, args: &[OsString]) -> i32 {
    let options = match Options::parse(args, |name| std::env::var_os(name)) {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::Help) => {
            println!("{}", table::help(bin));
            return 0;
        }
        Ok(Parsed::Version) => {
            println!("memfit-guard {}", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        Err(message) => {
            eprintln!("memfit guard: error: {}", logging::escape_text(&message));
            return 2;
        }
    };
    logging::set_format(options.log_format);
    match Guard::start(*options) {
        Ok(mut guard) => guard.run(),
        Err(message) => {
            log_with(Level::Error, "error", format!("error: {message}"), &[]);
            2
        }
    }
}
