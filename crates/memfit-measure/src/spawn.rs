//! Starting the command as a container runtime would, before it can allocate anything: inside
//! its cgroups, with the container view, its CPU affinity, its environment, and — like
//! `docker run` — as PID 1 of its own PID namespace (or behind a minimal init, like
//! `docker run --init`). `clone3` does it in one step; where the kernel refuses clone3 the
//! command is forked the ordinary way and joins its cgroups before exec (no PID namespace then).

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use memfit_sys::cgroup::{CgroupFiles, OwnedCgroup};
use memfit_sys::process;
use memfit_sys::CgroupVersion;
use serde::{Deserialize, Serialize};

use crate::clone3::{self, Clone3Error, CloneRequest};
use crate::container_view::ViewSetup;

/// What the command's stdin/stdout/stderr are connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdio {
    /// memfit's own, untouched (`memfit run`).
    Inherit,
    /// /dev/null (bisect tries, unless asked to show output).
    Null,
}

/// Where the command stands among processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PidMode {
    /// A child of memfit in memfit's PID namespace, as in a CI step or on a VM.
    #[default]
    Child,
    /// PID 1 of its own PID namespace, as `docker run` and Kubernetes run a container's
    /// command: the kernel ignores signals PID 1 has no handler for (so a V8 heap abort ends
    /// in SIGSEGV, 139, and SIGTERM does not stop it).
    Pid1,
    /// Behind a minimal init that is PID 1, as `docker run --init` (tini).
    Init,
}

/// Why the command could not be started; the message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("command not found: `{0}`; check its spelling and PATH")]
    CommandNotFound(String),
    #[error("cannot execute `{0}`: permission denied; is it an executable file?")]
    NotExecutable(String),
    #[error("cannot start `{command}`: {source}")]
    Other { command: String, source: io::Error },
    #[error("--pid1 and --init need clone3 with a PID namespace, which this kernel refused ({0}); run as root on Linux ≥ 5.3, or drop --pid1")]
    NoPidNamespace(io::Error),
}

/// Everything the child needs, prepared before the fork. `command` is not empty.
pub(crate) struct SpawnPlan<'a> {
    pub command: &'a [OsString],
    pub stdio: Stdio,
    /// The run's memory cgroup (v1 or v2).
    pub memory_cgroup: Option<&'a OwnedCgroup>,
    /// On cgroup v2, the leaf below the memory cgroup the command goes into instead (when
    /// its cgroup is a container runtime's parent: [`OwnedCgroup::create_command_leaf`]).
    pub command_leaf: Option<&'a CgroupFiles>,
    /// On cgroup v1 the CPU controller is a hierarchy of its own.
    pub cpu_cgroup_v1: Option<&'a OwnedCgroup>,
    pub cpu_set: Option<libc::cpu_set_t>,
    pub view: Option<Arc<ViewSetup>>,
    pub pid: PidMode,
    /// The executable that provides `__init` (the memfit binary), for [`PidMode::Init`].
    pub init_program: Option<&'a Path>,
    /// The command's whole environment, `NAME=value`.
    pub env: &'a [OsString],
}

/// The started command, and what the report should say about how it was started.
pub(crate) struct Spawned {
    pub pid: i32,
    pub caveat: Option<String>,
}

/// Starts the command; see the module documentation.
pub(crate) fn spawn(plan: &SpawnPlan) -> Result<Spawned, SpawnError> {
    let program = &plan.command[0];
    let argv = argv_of(plan);
    let path = clone3::resolve_program(&argv[0], env_value(plan.env, "PATH"))
        .map_err(|e| spawn_error(program, e))?;
    let into_cgroup = plan.command_leaf.map(|leaf| leaf.path()).or(plan
        .memory_cgroup
        .filter(|c| c.version() == CgroupVersion::V2)
        .map(|c| c.path()));
    let mut join_procs: Vec<RawFd> = plan.cpu_cgroup_v1.iter().map(|c| c.procs_fd()).collect();
    if into_cgroup.is_none() {
        join_procs.extend(plan.memory_cgroup.map(|c| c.procs_fd()));
    }
    let request = CloneRequest {
        path: &path,
        argv: &argv,
        env: plan.env,
        into_cgroup,
        join_procs: &join_procs,
        new_pid_namespace: plan.pid != PidMode::Child,
        null_stdio: plan.stdio == Stdio::Null,
        cpu_set: plan.cpu_set.as_ref(),
        view: plan.view.as_deref(),
        oom_score_adj: process::shield_from_oom_killer(),
    };
    match clone3::spawn(&request) {
        Ok(pid) => Ok(Spawned { pid, caveat: None }),
        Err(Clone3Error::Exec(source)) => Err(spawn_error(program, source)),
        Err(Clone3Error::Unsupported(reason)) if plan.pid != PidMode::Child => {
            Err(SpawnError::NoPidNamespace(reason))
        }
        Err(Clone3Error::Unsupported(reason)) => {
            // Every cgroup is joined by a write to its cgroup.procs before exec.
            let leaf_procs = match plan.command_leaf {
                Some(leaf) => Some(
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(leaf.path().join("cgroup.procs"))
                        .map_err(|source| SpawnError::Other {
                            command: program.to_string_lossy().into_owned(),
                            source,
                        })?,
                ),
                None => None,
            };
            let all_procs: Vec<RawFd> = match &leaf_procs {
                Some(procs) => vec![procs.as_raw_fd()],
                None => plan.memory_cgroup.iter().map(|c| c.procs_fd()).collect(),
            }
            .into_iter()
            .chain(plan.cpu_cgroup_v1.iter().map(|c| c.procs_fd()))
            .collect();
            Ok(Spawned {
                pid: fork_exec(plan, &path, &all_procs)?,
                caveat: Some(format!("clone3 was refused ({reason}): the command entered its cgroup by a cgroup.procs write before exec instead")),
            })
        }
    }
}

/// The argv to exec: the command, or memfit's init in front of it.
fn argv_of(plan: &SpawnPlan) -> Vec<OsString> {
    match (plan.pid, plan.init_program) {
        (PidMode::Init, Some(init)) => [init.as_os_str(), OsStr::new("__init"), OsStr::new("--")]
            .into_iter()
            .map(OsString::from)
            .chain(plan.command.iter().cloned())
            .collect(),
        _ => plan.command.to_vec(),
    }
}

/// The value of `name` in a `NAME=value` list.
fn env_value<'a>(env: &'a [OsString], name: &str) -> Option<&'a OsStr> {
    env.iter().find_map(|entry| {
        let bytes = entry.as_bytes();
        (bytes.len() > name.len()
            && bytes.starts_with(name.as_bytes())
            && bytes[name.len()] == b'=')
            .then(|| OsStr::from_bytes(&bytes[name.len() + 1..]))
    })
}

/// std's fork+exec, for kernels that refuse clone3: the child joins its cgroups by writing
/// "0" to their `cgroup.procs` before exec.
fn fork_exec(plan: &SpawnPlan, path: &Path, procs_fds: &[RawFd]) -> Result<i32, SpawnError> {
    let mut command = Command::new(path);
    command.arg0(&plan.command[0]).args(&plan.command[1..]);
    command.env_clear();
    for entry in plan.env {
        let bytes = entry.as_bytes();
        if let Some(eq) = bytes.iter().position(|b| *b == b'=') {
            command.env(
                OsStr::from_bytes(&bytes[..eq]),
                OsStr::from_bytes(&bytes[eq + 1..]),
            );
        }
    }
    if plan.stdio == Stdio::Null {
        command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
    }
    let procs_fds = procs_fds.to_vec();
    let cpu_set = plan.cpu_set;
    let view = plan.view.clone();
    let oom_score_adj = process::shield_from_oom_killer();
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
    // system calls on data prepared before the fork.
    unsafe {
        command.pre_exec(move || {
            for &fd in &procs_fds {
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some(adj) = &oom_score_adj {
                if !adj.apply_to_self() {
                    return Err(io::Error::last_os_error());
                }
            }
            process::reset_signal_state();
            if let Some(view) = &view {
                view.enter();
            }
            if let Some(set) = &cpu_set {
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            // Do not outlive memfit if it is SIGKILLed.
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            Ok(())
        });
    }
    let child = command
        .spawn()
        .map_err(|source| spawn_error(&plan.command[0], source))?;
    // The child is reaped with waitpid(-1) by the run loop, with every adopted orphan; std's
    // handle is not used again.
    Ok(child.id() as i32)
}

fn spawn_error(program: &OsStr, source: io::Error) -> SpawnError {
    let name = program.to_string_lossy().into_owned();
    match source.kind() {
        io::ErrorKind::NotFound => SpawnError::CommandNotFound(name),
        io::ErrorKind::PermissionDenied => SpawnError::NotExecutable(name),
        _ => SpawnError::Other {
            command: name,
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_environment_value_is_found_by_its_whole_name() {
        let env: Vec<OsString> = ["PATHX=/no".into(), "PATH=/bin:/usr/bin".into()].into();
        assert_eq!(env_value(&env, "PATH"), Some(OsStr::new("/bin:/usr/bin")));
        assert_eq!(env_value(&env, "HOME"), None);
    }
}
