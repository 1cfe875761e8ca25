//! The `--setup` command run before every try, stoppable: a request to stop (Ctrl-C,
//! SIGTERM) while it runs stops it and the bisect, before the command starts.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use memfit_sys::process;

use super::BisectError;
use crate::signals::SignalWatcher;
use crate::spawn::Stdio;

/// How a setup ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SetupEnd {
    Succeeded,
    /// memfit was asked to stop while it ran: the try must not start.
    Interrupted,
}

/// How long to wait for a setup between checks; SIGCHLD wakes the wait as soon as it exits.
const POLL: Duration = Duration::from_millis(200);

/// Runs `sh -c SETUP` in a process group of its own and waits for it. A termination signal
/// memfit receives is passed to that whole group, as `timeout(1)` does (in its own group it
/// does not get the terminal's Ctrl-C itself); a third one kills the group. Whatever the
/// group still holds once an interrupted setup has exited is killed.
pub(super) fn run_setup(
    setup: &str,
    stdio: Stdio,
    signals: &SignalWatcher,
) -> Result<SetupEnd, BisectError> {
    let mut command = Command::new("sh");
    command.arg("-c").arg(setup).process_group(0);
    if stdio == Stdio::Null {
        command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
    }
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            process::reset_signal_state();
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(BisectError::SetupSpawn)?;
    let group = child.id() as i32;
    let mut termination_signals = 0;
    loop {
        let status = child.try_wait().map_err(BisectError::SetupSpawn)?;
        if let Some(status) = status {
            if termination_signals > 0 {
                // The group outlives its leader while a member lives: its id is not reused.
                process::kill(-group, libc::SIGKILL);
                return Ok(SetupEnd::Interrupted);
            }
            return if status.success() {
                Ok(SetupEnd::Succeeded)
            } else {
                Err(BisectError::SetupFailed(status.to_string()))
            };
        }
        for received in signals.wait(POLL) {
            if !received.is_termination() {
                continue;
            }
            termination_signals += 1;
            let signal = if termination_signals >= 3 {
                libc::SIGKILL
            } else {
                received.signal
            };
            process::kill(-group, signal);
        }
    }
}
