//! The `memfit` binary: argument parsing, dispatch and terminal rendering. No domain logic
//! lives here; it calls the engine crates and renders their reports.

mod audit_cmd;
mod bisect_cmd;
mod build_steps;
mod explain_cmd;
mod fidelity;
mod output;
mod plan_cmd;
mod run_cmd;

use std::process::ExitCode;

use clap::Parser;

use memfit_cli::args::{self, Cli, Commands};

/// Exit codes, kept stable: the wrapped command's status passes through where there is one.
pub const EXIT_FINDINGS: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    // `memfit __init -- CMD`: the minimal init `memfit run --init` puts in front of the
    // command as PID 1 of its namespace (not a user command).
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if raw.get(1).is_some_and(|a| a == "__init") {
        let command = raw
            .get(2)
            .filter(|a| *a == "--")
            .map_or(&raw[2..], |_| &raw[3..]);
        return ExitCode::from(memfit_sys::process::run_init(command).clamp(0, 255) as u8);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Commands::Run(args) => run_cmd::execute(args),
        Commands::Bisect(args) => bisect_cmd::execute(args),
        Commands::Explain(args) => explain_cmd::execute(args),
        Commands::Plan(args) => plan_cmd::execute(args),
        Commands::Audit(args) => audit_cmd::audit(args),
        Commands::Fix(args) => audit_cmd::fix(args),
        Commands::Guard(args) => Ok(memfit_guard::main_with(&args.args).clamp(0, 255) as u8),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("memfit: error: {error:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}
