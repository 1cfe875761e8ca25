//! Everything memfit prints or writes.
//!
//! Standard output and standard error: `print!`/`eprint!` panic when a write fails (a closed
//! pipe, `> /dev/full`), so memfit writes through [`print`], [`print_raw`] and [`eprint`]
//! instead. A closed standard output ends the command quietly with status 0, as ripgrep does
//! (`crates/core/main.rs`: "a broken pipe means graceful termination"); any other failure
//! (ENOSPC) is one line and exit 2. Standard error failing has nowhere to be reported and is
//! ignored, so a run's status still passes through. Text for a terminal goes through
//! [`memfit_core::text::escape_control`]: it quotes files, logs and command lines memfit did
//! not write.
//!
//! Report files: checked before the command runs (a ten-minute build should not end in
//! "cannot write"), written after through memfit-sys's safe writer (no partial files, never
//! through a link, only over a regular file; `-` is standard output). And the one line that
//! says what memfit cleaned up before it started.

use std::fmt;
use std::io::{self, Write};
use std::path::Path;

use anyhow::{bail, Result};
use memfit_core::text::escape_control;
use memfit_measure::SweptCgroup;
use memfit_sys::safe_write;

/// Standard output could not be written.
#[derive(Debug)]
pub struct StdoutError(pub io::Error);

impl fmt::Display for StdoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot write to standard output: {}; free some space or send the output elsewhere",
            self.0
        )
    }
}

impl std::error::Error for StdoutError {}

impl StdoutError {
    /// The reader went away (`| head`): not an error, as for ripgrep.
    pub fn is_closed_pipe(&self) -> bool {
        self.0.kind() == io::ErrorKind::BrokenPipe
    }
}

/// Whether `error` is standard output closed by its reader, from [`print`] or from a report
/// written to `-`: the command then ends quietly with status 0.
pub fn is_closed_stdout(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<StdoutError>()
            .is_some_and(StdoutError::is_closed_pipe)
            || matches!(
                cause.downcast_ref::<safe_write::WriteError>(),
                Some(safe_write::WriteError::Io { path, source })
                    if safe_write::is_stdout(path) && source.kind() == io::ErrorKind::BrokenPipe
            )
    })
}

/// Prints text for a terminal, control characters escaped.
pub fn print(text: &str) -> Result<(), StdoutError> {
    print_raw(escape_control(text).as_bytes())
}

/// Prints bytes as they are: JSON, SARIF, diffs meant for `patch`.
pub fn print_raw(bytes: &[u8]) -> Result<(), StdoutError> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(StdoutError)
}

/// Prints text for a terminal to standard error, control characters escaped; a failure is
/// ignored (there is nowhere left to report it).
pub fn eprint(text: &str) {
    let _ = io::stderr()
        .lock()
        .write_all(escape_control(text).as_bytes());
}

/// Fails early, with a message that says what to do, when `path` cannot be written.
pub fn check_writable(path: &Path) -> Result<()> {
    if !safe_write::is_stdout(path) {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            bail!(
                "cannot write {}: directory {} does not exist; create it or choose another path",
                path.display(),
                dir.display()
            );
        }
    }
    Ok(safe_write::check(path)?)
}

/// Writes a report; see the module documentation.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    Ok(safe_write::write(path, contents)?)
}

/// Says, in one line on stderr, which cgroups left by a killed memfit were swept.
pub fn say_swept(swept: &[SweptCgroup]) {
    if swept.is_empty() {
        return;
    }
    let cgroups: Vec<String> = swept
        .iter()
        .map(|s| match s.killed {
            0 => format!("{} (empty)", s.path.display()),
            1 => format!("{} (1 process killed)", s.path.display()),
            n => format!("{} ({n} processes killed)", s.path.display()),
        })
        .collect();
    eprint(&format!(
        "memfit: removed {} left by a memfit that no longer runs, and killed what {} held, as a container runtime would: {}\n",
        if swept.len() == 1 { "1 cgroup".to_string() } else { format!("{} cgroups", swept.len()) },
        if swept.len() == 1 { "it" } else { "they" },
        escape_control(&cgroups.join(", "))
    ));
}
