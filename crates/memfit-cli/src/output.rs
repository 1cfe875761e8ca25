//! Writing report files: checked before the command runs (a ten-minute build should not
//! end in "cannot write"), written after through memfit-sys's safe writer (no partial files,
//! never through a link, only over a regular file; `-` is standard output).

use std::path::Path;

use anyhow::{bail, Result};
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
