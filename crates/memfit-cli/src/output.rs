//! Writing report files: checked before the command runs (a ten-minute build should not
//! end in "cannot write"), written after through memfit-sys's safe writer (no partial files,
//! never through a link, only over a regular file; `-` is standard output). And the one line
//! that says what memfit cleaned up before it started.

use std::path::Path;

use anyhow::{bail, Result};
use memfit_measure::SweptCgroup;
use memfit_sys::safe_write;

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
    eprintln!(
        "memfit: removed {} left by a memfit that no longer runs, and killed what {} held, as a container runtime would: {}",
        if swept.len() == 1 { "1 cgroup".to_string() } else { format!("{} cgroups", swept.len()) },
        if swept.len() == 1 { "it" } else { "they" },
        cgroups.join(", ")
    );
}
