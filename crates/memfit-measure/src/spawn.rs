//! Starting the command inside its cgroup, before it can allocate anything: on cgroup v2 with
//! `clone3(CLONE_INTO_CGROUP)` (the child is created inside), elsewhere with a pre-exec write
//! of "0" to the cgroup's `cgroup.procs`. Either way the child gets the container view, the
//! CPU affinity and a parent-death signal before exec.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Arc;

use memfit_sys::cgroup::OwnedCgroup;
use memfit_sys::process;
use memfit_sys::CgroupVersion;

use crate::clone3::{self, Clone3Error};
use crate::container_view::ViewSetup;

/// What the command's stdin/stdout/stderr are connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdio {
    /// memfit's own, untouched (`memfit run`).
    Inherit,
    /// /dev/null (bisect tries, unless asked to show output).
    Null,
}

/// Everything the child needs, prepared before the fork. `command` is not empty.
pub(crate) struct SpawnPlan<'a> {
    pub command: &'a [OsString],
    pub stdio: Stdio,
    pub cgroup: Option<&'a OwnedCgroup>,
    pub cpu_set: Option<libc::cpu_set_t>,
    pub view: Option<Arc<ViewSetup>>,
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
}

/// The started command, and what the report should say about how it was started.
pub(crate) struct Spawned {
    pub pid: i32,
    pub caveat: Option<String>,
}

/// Starts the command; see the module documentation.
pub(crate) fn spawn(plan: &SpawnPlan) -> Result<Spawned, SpawnError> {
    let program = &plan.command[0];
    let Some(cgroup) = plan.cgroup.filter(|c| c.version() == CgroupVersion::V2) else {
        return spawn_with_pre_exec(plan).map(|pid| Spawned { pid, caveat: None });
    };
    // cgroup v2: create the child inside the cgroup, no migration through cgroup.procs.
    match clone3::spawn_into_cgroup(
        program,
        &plan.command[1..],
        cgroup.path(),
        plan.stdio == Stdio::Null,
        plan.cpu_set.as_ref(),
        plan.view.as_deref(),
    ) {
        Ok(pid) => Ok(Spawned { pid, caveat: None }),
        Err(Clone3Error::Exec(source)) => Err(spawn_error(program, source)),
        Err(Clone3Error::Unsupported(reason)) => Ok(Spawned {
            pid: spawn_with_pre_exec(plan)?,
            caveat: Some(format!("clone3(CLONE_INTO_CGROUP) was refused ({reason}): the command entered its cgroup by a cgroup.procs write before exec instead")),
        }),
    }
}

/// Spawns with std's fork+exec; the child enters the cgroup (if any) by writing "0" to its
/// `cgroup.procs` before exec. Used on cgroup v1, in measure-only mode, and where clone3 is
/// refused.
fn spawn_with_pre_exec(plan: &SpawnPlan) -> Result<i32, SpawnError> {
    let program = &plan.command[0];
    let mut command = Command::new(program);
    command.args(&plan.command[1..]);
    if plan.stdio == Stdio::Null {
        command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
    }
    let procs_fd = plan.cgroup.map(|c| c.procs_fd());
    let cpu_set = plan.cpu_set;
    let view = plan.view.clone();
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
    // system calls on data prepared before the fork.
    unsafe {
        command.pre_exec(move || {
            if let Some(fd) = procs_fd {
                // Writing "0" moves the writing process: the command enters its cgroup before
                // exec, so nothing it allocates escapes the limit.
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
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
        .map_err(|source| spawn_error(program, source))?;
    // The child is reaped with waitpid(-1) by the run loop, with every adopted orphan; std's
    // handle is not used again.
    Ok(child.id() as i32)
}

fn spawn_error(program: &std::ffi::OsStr, source: io::Error) -> SpawnError {
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
