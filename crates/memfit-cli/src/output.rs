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
//!
//! The output convention (`--format`, `-o FILE`, markdown and GitHub escaping, colour) is
//! `memfit_cli::report_format`; [`write_report`] and [`human_text`] are its I/O half.

use std::fmt;
use std::io::{self, Write};
use std::ops::Range;
use std::path::Path;

use anyhow::{bail, Result};
use memfit_cli::report_format::{self, Destination, Stream};
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

/// Checks early that every file among `reports` can be written.
pub fn check_reports<T>(reports: &[(T, Destination)]) -> Result<()> {
    for (_, destination) in reports {
        if let Destination::Path(path) = destination {
            check_writable(path)?;
        }
    }
    Ok(())
}

/// Writes a report where it goes: standard error (failures ignored, as for [`eprint`]),
/// standard output (as [`print_raw`]) or a file, atomically.
pub fn write_report(destination: &Destination, bytes: &[u8]) -> Result<()> {
    match destination {
        Destination::Stderr => {
            let _ = io::stderr().lock().write_all(bytes);
            Ok(())
        }
        Destination::Path(_) if destination.is_stdout() => Ok(print_raw(bytes)?),
        Destination::Path(path) => write_atomically(path, bytes),
    }
}

/// What a line of a human text gets painted: the byte range of the (escaped) line and the
/// style, or `None`.
pub type Painter<'a> = &'a dyn Fn(&str) -> Option<(Range<usize>, anstyle::Style)>;

/// A human text for `destination`: control characters escaped, and on a terminal that takes
/// colour (`report_format::colour`), each line painted as `painter` says. A file gets no
/// colour.
pub fn human_text(destination: &Destination, text: &str, painter: Painter<'_>) -> Vec<u8> {
    let escaped = escape_control(text);
    let stream = match destination {
        Destination::Stderr => Some(Stream::Stderr),
        Destination::Path(_) if destination.is_stdout() => Some(Stream::Stdout),
        Destination::Path(_) => None,
    };
    if !stream.is_some_and(report_format::colour) {
        return escaped.into_owned().into_bytes();
    }
    let mut out = String::with_capacity(escaped.len() + 64);
    for line in escaped.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        match painter(body).filter(|(r, _)| body.get(r.clone()).is_some() && !r.is_empty()) {
            Some((range, style)) => {
                out.push_str(&body[..range.start]);
                out.push_str(&report_format::paint(style, &body[range.clone()]));
                out.push_str(&body[range.end..]);
            }
            None => out.push_str(body),
        }
        out.push_str(end);
    }
    out.into_bytes()
}

/// A painter for lines that start with a label: the rest of the line in the style given.
pub fn paint_after<'a>(
    rules: &'a [(&'a str, anstyle::Style)],
) -> impl Fn(&str) -> Option<(Range<usize>, anstyle::Style)> + 'a {
    move |line: &str| {
        rules.iter().find_map(|(prefix, style)| {
            line.starts_with(prefix)
                .then(|| (prefix.len() - prefix.trim_start().len()..line.len(), *style))
        })
    }
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
