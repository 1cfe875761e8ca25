//! What a parent does for its children: the signal state a child gets before exec, reaping
//! every exited child (the command and adopted orphans), and reading wait statuses.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called exit with this code.
    Exited(i32),
    /// A signal ended it.
    Signaled(i32),
}

impl ExitStatus {
    /// Decodes a wait status (waitpid's, or taskstats' `ac_exitcode`): the signal in the low
    /// 7 bits, the exit code above. `None` for a stopped or continued child.
    pub fn from_wait_status(status: i32) -> Option<ExitStatus> {
        if libc::WIFEXITED(status) {
            Some(ExitStatus::Exited(libc::WEXITSTATUS(status)))
        } else if libc::WIFSIGNALED(status) {
            Some(ExitStatus::Signaled(libc::WTERMSIG(status)))
        } else {
            None
        }
    }

    pub fn code(self) -> Option<i32> {
        match self {
            ExitStatus::Exited(code) => Some(code),
            ExitStatus::Signaled(_) => None,
        }
    }

    pub fn signal(self) -> Option<i32> {
        match self {
            ExitStatus::Exited(_) => None,
            ExitStatus::Signaled(signal) => Some(signal),
        }
    }

    /// The shell's view, which a supervisor exits with: the code, or 128 + the signal.
    pub fn shell_status(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled(signal) => 128 + signal,
        }
    }
}

/// A child that ended and was reaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    pub pid: i32,
    pub status: ExitStatus,
}

/// Reaps every child that has ended, without blocking.
pub fn reap_exited() -> Vec<Reaped> {
    let mut reaped = Vec::new();
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes into a local.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            break;
        }
        if let Some(status) = ExitStatus::from_wait_status(status) {
            reaped.push(Reaped { pid, status });
        }
    }
    reaped
}

/// Sends a signal; a process already gone is not an error worth reporting here.
pub fn kill(pid: i32, signal: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Makes this process a subreaper: orphans of its descendants are reparented to it, so a
/// daemonized grandchild stays in its tree and can be waited for and reaped.
pub fn become_subreaper() {
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// Gives a child the signal state a freshly started program expects: no blocked signals and
/// SIGPIPE at its default. A supervisor blocks signals it waits for (sigtimedwait) and Rust
/// ignores SIGPIPE; a child inherits both across exec, and most programs never reset them.
///
/// # Safety
/// Only async-signal-safe calls: meant for a child between fork (or clone) and exec.
pub unsafe fn reset_signal_state() {
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    libc::signal(libc::SIGPIPE, libc::SIG_DFL);
}

/// Which step of [`private_mount_namespace`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountNamespaceStep {
    Unshare,
    MakeSlave,
}

/// Moves the calling process into a mount namespace of its own whose mounts receive the
/// host's but never propagate back (`/` made a recursive slave, as container runtimes do): a
/// mount or unmount made afterwards stays private.
///
/// # Safety
/// Only async-signal-safe calls: meant for a child between fork (or clone) and exec.
pub unsafe fn private_mount_namespace() -> Result<(), MountNamespaceStep> {
    if libc::unshare(libc::CLONE_NEWNS) != 0 {
        return Err(MountNamespaceStep::Unshare);
    }
    // A new mount namespace shares the host's propagation: without this, mounts and unmounts
    // made in it would propagate back to the host.
    if libc::mount(
        std::ptr::null(),
        c"/".as_ptr(),
        std::ptr::null(),
        libc::MS_REC | libc::MS_SLAVE,
        std::ptr::null(),
    ) != 0
    {
        return Err(MountNamespaceStep::MakeSlave);
    }
    Ok(())
}

/// Starts `command` with the reset signal state (and in a process group of its own when
/// `new_group`), and returns its pid. The caller reaps it with [`reap_exited`], with every
/// adopted orphan, so std's handle is not kept.
pub fn spawn_detached(command: &mut Command, new_group: bool) -> io::Result<i32> {
    // SAFETY: the closure runs between fork and exec and makes only async-signal-safe calls.
    unsafe {
        command.pre_exec(move || {
            reset_signal_state();
            if new_group && libc::setpgid(0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    Ok(child.id() as i32)
}

/// Blocks, in the calling thread, every signal a supervisor waits for with `sigtimedwait` and
/// forwards to its child — all but the synchronous ones (SIGFPE, SIGILL, SIGSEGV, SIGBUS,
/// SIGABRT, SIGTRAP, SIGSYS), which stay with whoever caused them, and the terminal's
/// SIGTTIN/SIGTTOU, as tini does. Returns the blocked set. The child gets the default state
/// back with [`reset_signal_state`].
pub fn block_forwarded_signals() -> libc::sigset_t {
    // SAFETY: plain sigset manipulation on a local.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        for s in [
            libc::SIGFPE,
            libc::SIGILL,
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGABRT,
            libc::SIGTRAP,
            libc::SIGSYS,
            libc::SIGTTIN,
            libc::SIGTTOU,
        ] {
            libc::sigdelset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// A minimal init, as `docker run --init` puts tini in front of a container's command: start
/// `command` as this process's child, forward every signal sent to this process to it, reap
/// every process that ends (orphans of the command are reparented to PID 1), and when the
/// command ends return its status as a shell reports it (128 + signal when a signal ended it),
/// which is what tini exits with. Errors starting the command return 127 (not found) or 126.
pub fn run_init(command: &[std::ffi::OsString]) -> i32 {
    let Some(program) = command.first() else {
        return 127;
    };
    let waited = block_forwarded_signals();
    let mut child = Command::new(program);
    child.args(&command[1..]);
    let pid = match spawn_detached(&mut child, false) {
        Ok(pid) => pid,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return 127,
        Err(_) => return 126,
    };
    loop {
        // SAFETY: sigwaitinfo with a valid set; siginfo is written into a local.
        let signal = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::sigwaitinfo(&waited, &mut info)
        };
        if signal > 0 && signal != libc::SIGCHLD {
            kill(pid, signal);
        }
        for reaped in reap_exited() {
            if reaped.pid == pid {
                return reaped.status.shell_status();
            }
        }
    }
}

/// An `oom_score_adj` value as the kernel reads it from `/proc/PID/oom_score_adj`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OomScoreAdj {
    value: i32,
    /// The value as written to the file, prepared before a fork.
    text: [u8; 5],
    len: usize,
}

impl OomScoreAdj {
    /// The value (`-1000..=1000`), or `None` when out of range.
    pub fn new(value: i32) -> Option<OomScoreAdj> {
        if !(-1000..=1000).contains(&value) {
            return None;
        }
        let formatted = value.to_string();
        let mut text = [0u8; 5];
        text[..formatted.len()].copy_from_slice(formatted.as_bytes());
        Some(OomScoreAdj {
            value,
            text,
            len: formatted.len(),
        })
    }

    pub fn value(&self) -> i32 {
        self.value
    }

    /// Sets the calling process's `oom_score_adj` to this value: raising it needs no
    /// privilege. False when the kernel refused.
    ///
    /// # Safety
    /// Only async-signal-safe calls: meant for a child between fork (or clone) and exec.
    pub unsafe fn apply_to_self(&self) -> bool {
        let fd = libc::open(
            c"/proc/self/oom_score_adj".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return false;
        }
        let written = libc::write(fd, self.text.as_ptr().cast(), self.len);
        libc::close(fd);
        written == self.len as isize
    }
}

/// Takes this process out of the kernel OOM killer's choice (`oom_score_adj` -1000, which
/// needs CAP_SYS_RESOURCE) and returns the value it had, which the commands it starts must be
/// given back before exec (a child inherits the value, and a -1000 command could never be
/// OOM-killed: its limit would stall it instead). `None` when nothing was lowered: no
/// privilege, or the value was -1000 already; children then inherit the value as it is.
///
/// Why: memfit's own pages count where it runs. Alone in a limited cgroup (a container's
/// command, a `systemd-run --scope`), the kernel killed memfit 27 ms after the command it
/// measured, whose memory was not yet uncharged (seen in the cgroup-v2 guest of
/// tests/vm/run.sh, where memfit's binary is in RAM). Only -1000 exempts a task
/// (Documentation/filesystems/proc.rst, oom_score_adj). Idempotent: the first call's original
/// is kept.
pub fn shield_from_oom_killer() -> Option<OomScoreAdj> {
    static ORIGINAL: std::sync::OnceLock<Option<OomScoreAdj>> = std::sync::OnceLock::new();
    *ORIGINAL.get_or_init(|| {
        let original = std::fs::read_to_string("/proc/self/oom_score_adj")
            .ok()?
            .trim()
            .parse::<i32>()
            .ok()
            .and_then(OomScoreAdj::new)?;
        if original.value() == -1000 {
            return None;
        }
        std::fs::write("/proc/self/oom_score_adj", "-1000").ok()?;
        Some(original)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_statuses_decode_as_the_shell_reports_them() {
        // exit(3) → 3 << 8; SIGKILL → 9; SIGKILL with a core flag → 9 | 0x80.
        assert_eq!(
            ExitStatus::from_wait_status(3 << 8),
            Some(ExitStatus::Exited(3))
        );
        assert_eq!(
            ExitStatus::from_wait_status(9),
            Some(ExitStatus::Signaled(9))
        );
        assert_eq!(
            ExitStatus::from_wait_status(6 | 0x80),
            Some(ExitStatus::Signaled(6))
        );
        assert_eq!(ExitStatus::Signaled(9).shell_status(), 137);
        assert_eq!(ExitStatus::Exited(2).shell_status(), 2);
    }

    #[test]
    fn a_detached_child_is_reaped_with_its_status() {
        let pid = spawn_detached(Command::new("sh").args(["-c", "exit 7"]), false).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Some(r) = reap_exited().into_iter().find(|r| r.pid == pid) {
                assert_eq!(r.status, ExitStatus::Exited(7));
                break;
            }
            assert!(std::time::Instant::now() < deadline, "child never reaped");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn an_oom_score_adj_is_written_as_the_kernel_reads_it() {
        for value in [-1000, -5, 0, 300, 1000] {
            let adj = OomScoreAdj::new(value).unwrap();
            assert_eq!(adj.value(), value);
            assert_eq!(&adj.text[..adj.len], value.to_string().as_bytes());
        }
        assert_eq!(OomScoreAdj::new(1001), None);
        assert_eq!(OomScoreAdj::new(-1001), None);
    }
}
