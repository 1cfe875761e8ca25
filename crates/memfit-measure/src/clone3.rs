//! Starting the command with `clone3` (Linux 5.3), which can do in one system call what a
//! container runtime does: create the child straight inside the run's cgroup v2
//! (`CLONE_INTO_CGROUP`, Linux 5.7: no migration through `cgroup.procs`, which others measured
//! stalling up to ~100 ms, oven-sh/bun#37466) and in a PID namespace of its own
//! (`CLONE_NEWPID`: the command is PID 1, as in `docker run`). On cgroup v1 the child joins its
//! cgroups by writing "0" to their `cgroup.procs` before exec. Where the kernel or a seccomp
//! filter refuses clone3, the caller falls back to fork+exec (without a PID namespace).
//!
//! Between clone3 and execve the child runs in a copy of a multi-threaded process, so it
//! only makes async-signal-safe system calls on data prepared before the clone.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
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

/// Why clone3 could not be used.
#[derive(Debug)]
pub enum Clone3Error {
    /// The kernel or a seccomp filter refuses clone3 or one of its flags.
    Unsupported(io::Error),
    /// The command could not be started (not found, not executable…).
    Exec(io::Error),
}

/// What the child is made with.
pub struct CloneRequest<'a> {
    /// The executable's path (already resolved) and the full argv, argv[0] included.
    pub path: &'a Path,
    pub argv: &'a [OsString],
    /// `NAME=value` entries: the command's whole environment.
    pub env: &'a [OsString],
    /// cgroup v2: create the child inside this cgroup directory.
    pub into_cgroup: Option<&'a Path>,
    /// cgroup v1: the `cgroup.procs` files the child writes "0" to before anything else.
    pub join_procs: &'a [RawFd],
    /// Make the child PID 1 of a new PID namespace, with /proc mounted for it.
    pub new_pid_namespace: bool,
    pub null_stdio: bool,
    pub cpu_set: Option<&'a libc::cpu_set_t>,
    pub view: Option<&'a ViewSetup>,
    /// The `oom_score_adj` the command gets back from memfit, which shielded itself
    /// ([`process::shield_from_oom_killer`]).
    pub oom_score_adj: Option<process::OomScoreAdj>,
}

/// Starts the child; returns its pid (in memfit's PID namespace).
pub fn spawn(request: &CloneRequest) -> Result<i32, Clone3Error> {
    let path_c = cstring(request.path.as_os_str()).map_err(Clone3Error::Exec)?;
    let argv_c: Vec<CString> = request
        .argv
        .iter()
        .map(|a| cstring(a))
        .collect::<Result<_, _>>()
        .map_err(Clone3Error::Exec)?;
    let envp_c: Vec<CString> = request
        .env
        .iter()
        .map(|e| cstring(e))
        .collect::<Result<_, _>>()
        .map_err(Clone3Error::Exec)?;
    let mut argv: Vec<*const libc::c_char> = argv_c.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = envp_c.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());

    let cgroup_fd = request
        .into_cgroup
        .map(|dir| open_fd(dir, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC))
        .transpose()
        .map_err(Clone3Error::Unsupported)?;
    let null_fd = if request.null_stdio {
        Some(
            open_fd(Path::new("/dev/null"), libc::O_RDWR | libc::O_CLOEXEC)
                .map_err(Clone3Error::Exec)?,
        )
    } else {
        None
    };
    let (error_read, error_write) = pipe().map_err(Clone3Error::Exec)?;

    let mut flags = 0;
    if cgroup_fd.is_some() {
        flags |= CLONE_INTO_CGROUP;
    }
    if request.new_pid_namespace {
        flags |= libc::CLONE_NEWPID as u64;
    }
    let mut clone_args = CloneArgs {
        flags,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup_fd.as_ref().map_or(0, |fd| fd.as_raw_fd() as u64),
    };
    let child = ChildPlan {
        path: &path_c,
        argv: &argv,
        envp: &envp,
        join_procs: request.join_procs,
        mount_proc: request.new_pid_namespace,
        null_fd: null_fd.as_ref().map(|f| f.as_raw_fd()),
        cpu_set: request.cpu_set,
        view: request.view,
        oom_score_adj: request.oom_score_adj,
        error_fd: error_write.as_raw_fd(),
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
        unsafe { child.exec() }
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

/// Everything the child uses between clone3 and execve, prepared by the parent.
struct ChildPlan<'a> {
    path: &'a CString,
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    join_procs: &'a [RawFd],
    mount_proc: bool,
    null_fd: Option<i32>,
    cpu_set: Option<&'a libc::cpu_set_t>,
    view: Option<&'a ViewSetup>,
    oom_score_adj: Option<process::OomScoreAdj>,
    error_fd: i32,
}

impl ChildPlan<'_> {
    /// The child between clone3 and execve.
    unsafe fn exec(&self) -> ! {
        for &fd in self.join_procs {
            // Writing "0" moves the writing process: the command enters its cgroup before
            // exec, so nothing it allocates escapes the limit.
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                self.fail();
            }
        }
        // Before /proc is remounted for a new PID namespace (/proc/self is this process
        // either way). A command left at memfit's -1000 could never be OOM-killed.
        if let Some(adj) = &self.oom_score_adj {
            if !adj.apply_to_self() {
                self.fail();
            }
        }
        if let Some(fd) = self.null_fd {
            for target in 0..3 {
                if libc::dup2(fd, target) < 0 {
                    self.fail();
                }
            }
        }
        process::reset_signal_state();
        if let Some(view) = self.view {
            view.enter();
        }
        if self.mount_proc && !mount_own_proc() {
            self.fail();
        }
        if let Some(set) = self.cpu_set {
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) != 0 {
                self.fail();
            }
        }
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
        libc::execve(self.path.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr());
        self.fail()
    }

    unsafe fn fail(&self) -> ! {
        let errno = *libc::__errno_location();
        let bytes = errno.to_ne_bytes();
        libc::write(self.error_fd, bytes.as_ptr().cast(), 4);
        libc::_exit(127)
    }
}

/// In a new PID namespace, /proc must show that namespace, as in a container: a private mount
/// namespace (mounts propagate in from the host, never out) with a fresh procfs on /proc.
unsafe fn mount_own_proc() -> bool {
    if process::private_mount_namespace().is_err() {
        return false;
    }
    libc::mount(
        c"proc".as_ptr(),
        c"/proc".as_ptr(),
        c"proc".as_ptr(),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        std::ptr::null(),
    ) == 0
}

/// The executable a program name refers to, looked up in `path` as execvp(3) would.
pub fn resolve_program(program: &OsStr, path: Option<&OsStr>) -> io::Result<PathBuf> {
    if program.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(program));
    }
    let path = path.unwrap_or(OsStr::new("/usr/local/bin:/usr/bin:/bin"));
    let mut denied = false;
    for dir in std::env::split_paths(path) {
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
        memfit_sys::mountinfo::parse(&mounts)
            .into_iter()
            .find(|m| m.fstype == "cgroup2")
            .map(|m| m.mount_point)
    }

    fn request<'a>(
        path: &'a Path,
        argv: &'a [OsString],
        into_cgroup: Option<&'a Path>,
        new_pid_namespace: bool,
    ) -> CloneRequest<'a> {
        CloneRequest {
            path,
            argv,
            env: &[],
            into_cgroup,
            join_procs: &[],
            new_pid_namespace,
            null_stdio: true,
            cpu_set: None,
            view: None,
            oom_score_adj: None,
        }
    }

    fn wait(pid: i32) -> i32 {
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        status
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
        let argv = ["sleep".into(), "0.3".into()];
        let sleep = resolve_program(OsStr::new("sleep"), None).unwrap();
        let pid = match spawn(&request(&sleep, &argv, Some(&dir), false)) {
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
        let status = wait(pid);
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
    fn a_new_pid_namespace_makes_the_command_pid_1() {
        // `sh -c 'test $$ = 1'` exits 0 only as PID 1; /proc shows the new namespace.
        let argv = [
            "sh".into(),
            "-c".into(),
            "test $$ = 1 && test -d /proc/1 && ! test -d /proc/2".into(),
        ];
        let sh = resolve_program(OsStr::new("sh"), None).unwrap();
        let pid = match spawn(&request(&sh, &argv, None, true)) {
            Ok(pid) => pid,
            Err(Clone3Error::Unsupported(e)) => {
                eprintln!("skipping: clone3(CLONE_NEWPID) refused here (needs root): {e}");
                return;
            }
            Err(Clone3Error::Exec(e)) => panic!("exec failed: {e}"),
        };
        let status = wait(pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "status {status}"
        );
    }

    #[test]
    fn a_missing_program_is_reported_not_found() {
        let err = resolve_program(OsStr::new("no-such-program-memfit"), None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
