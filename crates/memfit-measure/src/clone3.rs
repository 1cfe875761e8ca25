//! Spawning straight into a cgroup v2 with `clone3(CLONE_INTO_CGROUP)` (Linux 5.7): the child
//! is created inside the run's cgroup, so there is no migration through `cgroup.procs`,
//! which others measured stalling up to ~100 ms (oven-sh/bun#37466). Where the kernel refuses (older kernel, seccomp, cgroup v1)
//! the caller falls back to the pre-exec `cgroup.procs` write.
//!
//! Between clone3 and execve the child runs in a copy of a multi-threaded process, so it
//! only makes async-signal-safe system calls on data prepared before the clone.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use memfit_sys::process;

use crate::container_view::ViewSetup;

/// `CLONE_INTO_CGROUP` as the u64 the kernel expects (libc's c_int constant overflows;
/// rust-lang/libc#3584).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` up to `cgroup` (CLONE_ARGS_SIZE_VER2 = 88 bytes).
#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Why clone3 could not be used; the caller then spawns the ordinary way.
#[derive(Debug)]
pub enum Clone3Error {
    /// The kernel or a seccomp filter refuses clone3 or CLONE_INTO_CGROUP.
    Unsupported(io::Error),
    /// The command could not be started (not found, not executable…).
    Exec(io::Error),
}

/// Starts `program args…` inside the cgroup directory `cgroup`; returns its pid.
pub fn spawn_into_cgroup(
    program: &OsStr,
    args: &[OsString],
    cgroup: &Path,
    null_stdio: bool,
    cpu_set: Option<&libc::cpu_set_t>,
    view: Option<&ViewSetup>,
) -> Result<i32, Clone3Error> {
    let path = resolve_program(program).map_err(Clone3Error::Exec)?;
    let path_c = cstring(path.as_os_str()).map_err(Clone3Error::Exec)?;
    let argv_c: Vec<CString> = std::iter::once(program)
        .chain(args.iter().map(OsString::as_os_str))
        .map(cstring)
        .collect::<Result<_, _>>()
        .map_err(Clone3Error::Exec)?;
    let envp_c: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut pair = k;
            pair.push("=");
            pair.push(v);
            cstring(&pair)
        })
        .collect::<Result<_, _>>()
        .map_err(Clone3Error::Exec)?;
    let mut argv: Vec<*const libc::c_char> = argv_c.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = envp_c.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());

    let cgroup_fd = open_fd(cgroup, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .map_err(Clone3Error::Unsupported)?;
    let null_fd = if null_stdio {
        Some(
            open_fd(Path::new("/dev/null"), libc::O_RDWR | libc::O_CLOEXEC)
                .map_err(Clone3Error::Exec)?,
        )
    } else {
        None
    };
    let (error_read, error_write) = pipe().map_err(Clone3Error::Exec)?;

    let mut clone_args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup_fd.as_raw_fd() as u64,
    };
    // SAFETY: clone3 with a valid clone_args; the child branch below only makes
    // async-signal-safe calls on memory prepared above and ends in execve or _exit.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut clone_args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid == 0 {
        // SAFETY: in the child; see above.
        unsafe {
            child_exec(
                &path_c,
                &argv,
                &envp,
                null_fd.as_ref().map(|f| f.as_raw_fd()),
                cpu_set,
                view,
                error_write.as_raw_fd(),
            )
        }
    }
    if pid < 0 {
        return Err(Clone3Error::Unsupported(io::Error::last_os_error()));
    }
    let pid = pid as i32;
    drop(error_write);
    // The pipe closes on a successful exec (O_CLOEXEC); else the child wrote its errno.
    let mut errno = [0u8; 4];
    // SAFETY: reading into a local buffer.
    let n = unsafe { libc::read(error_read.as_raw_fd(), errno.as_mut_ptr().cast(), 4) };
    if n == 4 {
        let mut status = 0;
        // SAFETY: reaping the child that failed to exec.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        return Err(Clone3Error::Exec(io::Error::from_raw_os_error(
            i32::from_ne_bytes(errno),
        )));
    }
    Ok(pid)
}

/// The child between clone3 and execve.
unsafe fn child_exec(
    path: &CString,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    null_fd: Option<i32>,
    cpu_set: Option<&libc::cpu_set_t>,
    view: Option<&ViewSetup>,
    error_fd: i32,
) -> ! {
    let fail = |error_fd: i32| -> ! {
        let errno = *libc::__errno_location();
        let bytes = errno.to_ne_bytes();
        libc::write(error_fd, bytes.as_ptr().cast(), 4);
        libc::_exit(127)
    };
    if let Some(fd) = null_fd {
        for target in 0..3 {
            if libc::dup2(fd, target) < 0 {
                fail(error_fd);
            }
        }
    }
    process::reset_signal_state();
    if let Some(view) = view {
        view.enter();
    }
    if let Some(set) = cpu_set {
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) != 0 {
            fail(error_fd);
        }
    }
    libc::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        0,
        0,
        0,
    );
    libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
    fail(error_fd)
}

/// The executable a program name refers to, looked up in PATH as execvp(3) would.
fn resolve_program(program: &OsStr) -> io::Result<PathBuf> {
    if program.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let mut denied = false;
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(program);
        if let Ok(meta) = candidate.metadata() {
            use std::os::unix::fs::PermissionsExt;
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
            denied = true;
        }
    }
    Err(io::Error::from(if denied {
        io::ErrorKind::PermissionDenied
    } else {
        io::ErrorKind::NotFound
    }))
}

fn cstring(text: &OsStr) -> io::Result<CString> {
    CString::new(text.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "argument contains a NUL byte"))
}

fn open_fd(path: &Path, flags: i32) -> io::Result<OwnedFd> {
    let c = cstring(path.as_os_str())?;
    // SAFETY: open(2) with a valid C string; the fd is owned right away.
    let fd = unsafe { libc::open(c.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is fresh and valid.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds are fresh and valid.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writable cgroup v2 hierarchy (any, controllers or not): clone3 placement works there.
    fn v2_mount() -> Option<PathBuf> {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        mounts.lines().find_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let mount_point = before.split_whitespace().nth(4)?;
            after
                .starts_with("cgroup2 ")
                .then(|| PathBuf::from(mount_point))
        })
    }

    #[test]
    fn the_child_starts_inside_the_cgroup() {
        let Some(mount) = v2_mount() else {
            eprintln!("skipping: no cgroup v2 hierarchy mounted");
            return;
        };
        let dir = mount.join(format!("memfit-clone3-test-{}", std::process::id()));
        if let Err(e) = std::fs::create_dir(&dir) {
            eprintln!(
                "skipping: cannot create {} ({e}); needs root",
                dir.display()
            );
            return;
        }
        let result =
            spawn_into_cgroup(OsStr::new("sleep"), &["0.3".into()], &dir, true, None, None);
        let pid = match result {
            Ok(pid) => pid,
            Err(Clone3Error::Unsupported(e)) => {
                let _ = std::fs::remove_dir(&dir);
                eprintln!("skipping: clone3(CLONE_INTO_CGROUP) unsupported here: {e}");
                return;
            }
            Err(Clone3Error::Exec(e)) => panic!("exec failed: {e}"),
        };
        let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        std::fs::remove_dir(&dir).unwrap();
        assert!(
            procs.lines().any(|l| l.trim() == pid.to_string()),
            "{procs}"
        );
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            own.lines()
                .any(|l| l.starts_with("0::") && l.ends_with(&name)),
            "{own}"
        );
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }

    #[test]
    fn a_missing_program_is_reported_not_found() {
        let Some(mount) = v2_mount() else {
            return;
        };
        let err = spawn_into_cgroup(
            OsStr::new("no-such-program-memfit"),
            &[],
            &mount,
            true,
            None,
            None,
        )
        .unwrap_err();
        match err {
            Clone3Error::Exec(e) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
            Clone3Error::Unsupported(e) => panic!("{e}"),
        }
    }
}
