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
pub mod memory;
mod metrics;
pub mod options;
pub mod policy;
pub mod procs;
pub mod startup;
mod supervisor;
pub mod trend;

use std::ffi::OsString;

use crate::options::{Options, USAGE};
use crate::supervisor::Guard;

fn log(message: impl AsRef<str>) {
    eprintln!("memfit guard: {}", message.as_ref());
}

/// Entry point for both `memfit guard ARGS` and the `memfit-guard` binary.
pub fn main_with(args: &[OsString]) -> i32 {
    let options = match Options::parse(args, std::env::var_os(options::ACTION_TOKEN_ENV)) {
        Ok(o) => o,
        Err(None) => {
            println!("{USAGE}");
            return 0;
        }
        Err(Some(message)) => {
            eprintln!("memfit guard: error: {message}");
            return 2;
        }
    };
    match Guard::start(options) {
        Ok(mut guard) => guard.run(),
        Err(message) => {
            eprintln!("memfit guard: error: {message}");
            2
        }
    }
}
