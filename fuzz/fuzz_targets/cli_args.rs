//! The command line: the input is the argument list after `memfit`, one argument per
//! NUL-separated piece (argv cannot hold a NUL, and may hold anything else, invalid UTF-8
//! included). clap parses it as the binary does; `memfit guard`'s own options go through
//! the guard's parser, and a parsed limit/platform through the target resolution. Every
//! argument is also tried as a size, a duration and NODE_OPTIONS.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use clap::Parser;
use libfuzzer_sys::fuzz_target;
use memfit_cli::args::{Cli, Commands, LimitArgs};
use memfit_core::{ByteSize, HeapFlags, Target, TargetRequest};

fn resolve(limits: &LimitArgs) {
    let _ = Target::resolve(&TargetRequest {
        limit: limits.limit,
        platform: limits.platform.as_deref(),
        cpus: limits.fidelity.cpus,
        config: None,
    });
}

fuzz_target!(|data: &[u8]| {
    let args: Vec<OsString> = data
        .split(|&b| b == 0)
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect();
    for arg in &args {
        let text = arg.to_string_lossy();
        let _ = ByteSize::parse(&text);
        let _ = memfit_guard::options::parse_duration(&text);
        let flags = HeapFlags::parse_node_options(&text);
        let _ = (
            flags.old_space_bytes(Some(512 << 20)),
            flags.semi_space_mib(),
        );
        let _ = memfit_core::platform::suggestions(&text);
    }
    let argv = std::iter::once(OsString::from("memfit")).chain(args);
    let Ok(cli) = Cli::try_parse_from(argv) else {
        return;
    };
    match cli.command {
        Commands::Guard(guard) => {
            let _ = memfit_guard::options::Options::parse(&guard.args, |_| None);
            // And with every MEMFIT_GUARD_* variable set to the first argument.
            let value = guard.args.first().cloned();
            let _ = memfit_guard::options::Options::parse(&guard.args, |_| value.clone());
        }
        Commands::Run(run) => resolve(&run.limits),
        Commands::Plan(plan) => {
            let _ = format!("{plan:?}");
        }
        other => {
            let _ = format!("{other:?}");
        }
    }
});
