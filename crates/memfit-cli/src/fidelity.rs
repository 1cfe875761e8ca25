//! How the command is started — CPU quota or cpuset, PID 1 or an init, its environment —
//! resolved once from the fidelity options and the target's plan, for `run` and `bisect`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use memfit_core::{ProcessModel, Target};
use memfit_measure::{Environment, PidMode, Variable};

use crate::args::FidelityArgs;

/// The parts of `RunOptions` the fidelity options decide.
pub struct Fidelity {
    pub cpu_quota: Option<f64>,
    pub cpuset: Option<Vec<usize>>,
    pub pid: PidMode,
    pub init_program: Option<PathBuf>,
    pub environment: Environment,
    pub caveats: Vec<String>,
}

pub fn resolve(args: &FidelityArgs, target: Option<&Target>) -> Result<Fidelity> {
    let mut caveats = Vec::new();
    let cpu_quota = match (args.cpus, target.and_then(|t| t.cpus)) {
        (Some(cpus), _) => Some(cpus),
        // A plan with more vCPUs than this machine has gets what there is, and says so.
        (None, Some(plan)) => {
            let here = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            if plan > here {
                caveats.push(format!(
                    "the plan has {plan} vCPUs and this machine {here}: the command gets {here}"
                ));
            }
            Some(plan.min(here))
        }
        (None, None) => None,
    };
    let platform_pid = target.and_then(|t| t.platform).map(|p| p.process);
    let pid = match (args.init, args.pid1, platform_pid) {
        (true, _, _) => PidMode::Init,
        (false, true, _) => PidMode::Pid1,
        (false, false, Some(ProcessModel::Pid1 { .. })) => PidMode::Pid1,
        (false, false, Some(ProcessModel::Init { .. })) => PidMode::Init,
        _ => PidMode::Child,
    };
    let init_program = match pid {
        PidMode::Init => Some(std::env::current_exe().context(
            "--init runs memfit's own init, and the path of the memfit binary cannot be read",
        )?),
        _ => None,
    };
    let mut set = Vec::new();
    for file in &args.env_file {
        set.extend(read_env_file(file)?);
    }
    for entry in &args.env {
        set.extend(variable(entry, || format!("--env {entry}"))?);
    }
    Ok(Fidelity {
        cpu_quota,
        cpuset: args.cpuset.as_ref().map(|list| list.0.clone()),
        pid,
        init_program,
        environment: Environment {
            clear: args.env_clear,
            set,
        },
        caveats,
    })
}

/// `NAME=VALUE`, or `NAME` alone for this machine's value (skipped when it has none), as
/// `docker run -e` and `--env-file` read them.
fn variable(entry: &str, place: impl Fn() -> String) -> Result<Option<Variable>> {
    let (name, value) = match entry.split_once('=') {
        Some((name, value)) => (name, Some(OsString::from(value))),
        None => (entry, None),
    };
    let name = name.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        bail!(
            "{}: a variable needs a name without spaces, e.g. NODE_ENV=production",
            place()
        );
    }
    Ok(value
        .or_else(|| std::env::var_os(name))
        .map(|value| Variable {
            name: OsString::from(name),
            value,
        }))
}

/// A `docker run --env-file` file: one `NAME=VALUE` (or `NAME`) per line; blank lines and
/// lines starting with `#` are skipped; values are taken as written (no quotes removed).
fn read_env_file(path: &Path) -> Result<Vec<Variable>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read --env-file {}: give a file of NAME=VALUE lines",
            path.display()
        )
    })?;
    let mut set = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let place = || format!("{}:{}", path.display(), index + 1);
        set.extend(variable(line, place)?);
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_read_as_docker_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.env");
        std::fs::write(
            &file,
            "# comment\n\nNODE_ENV=production\nQUOTED=\"kept\"\nMEMFIT_TEST_UNSET_VARIABLE\n",
        )
        .unwrap();
        let set = read_env_file(&file).unwrap();
        let pairs: Vec<(OsString, OsString)> = set.into_iter().map(|v| (v.name, v.value)).collect();
        assert_eq!(
            pairs,
            [
                ("NODE_ENV".into(), "production".into()),
                ("QUOTED".into(), "\"kept\"".into())
            ]
        );
        std::fs::write(&file, "BAD NAME=x\n").unwrap();
        let err = read_env_file(&file).unwrap_err().to_string();
        assert!(err.contains("app.env:1"), "{err}");
    }
}
