//! The `memfit` binary: argument parsing, dispatch and terminal rendering. No domain logic
//! lives here; it calls the engine crates and renders their reports.

mod audit_cmd;
mod bisect_cmd;
mod build_steps;
mod compare_cmd;
mod docs_cmd;
mod explain_cmd;
mod fidelity;
mod fleet_cmd;
mod markdown;
mod output;
mod plan_cmd;
mod run_cmd;
mod runtime_summary;

use std::process::ExitCode;

use clap::Parser as _;

use memfit_cli::args::{self, Cli, Commands};
use memfit_cli::report_format;

/// Exit codes, kept stable: the wrapped command's status passes through where there is one.
pub const EXIT_FINDINGS: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
/// The command cannot be executed (found, but not an executable file) / was not found.
pub const EXIT_NOT_EXECUTABLE: u8 = 126;
pub const EXIT_NOT_FOUND: u8 = 127;

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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return clap_exit(error),
    };
    let result = match cli.command {
        Commands::Run(args) => run_cmd::execute(args),
        Commands::Bisect(args) => bisect_cmd::execute(args),
        Commands::Explain(args) => explain_cmd::execute(args),
        Commands::Plan(args) => plan_cmd::execute(args),
        Commands::Audit(args) => audit_cmd::audit(args),
        Commands::Fix(args) => audit_cmd::fix(args),
        Commands::Compare(args) => compare_cmd::execute(args),
        Commands::Guard(args) => Ok(memfit_guard::main_with(&args.args).clamp(0, 255) as u8),
        Commands::Completions(args) => docs_cmd::completions(args),
        Commands::Man(args) => docs_cmd::man(args),
    };
    // On cgroup v2 a memfit alone in its cgroup moved into a leaf of its own to make its
    // cgroups there; its cgroups are gone now, so it moves back and removes the leaf.
    if let Err(reason) = memfit_sys::cgroup::leave_self_leaf() {
        eprintln!("memfit: warning: {reason}");
    }
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) if output::is_closed_stdout(&error) => ExitCode::SUCCESS,
        Err(error) => {
            output::eprint(&format!("memfit: error: {error:#}\n"));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// `--help` and `--version` go to standard output through [`output::print_raw`] (clap's own
/// printing ignores a full disk); usage errors go to standard error with status 2.
fn clap_exit(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if !matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        error.exit();
    }
    let text = if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        error.render().ansi().to_string()
    } else {
        error.render().to_string()
    };
    match output::print_raw(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(closed) if closed.is_closed_pipe() => ExitCode::SUCCESS,
        Err(failed) => {
            output::eprint(&format!("memfit: error: {failed}\n"));
            ExitCode::from(EXIT_USAGE)
        }
    }
}
