//! Writing report files: checked before the command runs (a ten-minute build should not
//! end in "cannot write"), written atomically after (no partial files).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Fails early, with a message that says what to do, when `path` cannot be written.
pub fn check_writable(path: &Path) -> Result<()> {
    let dir = parent_dir(path);
    if !dir.is_dir() {
        anyhow::bail!(
            "cannot write {}: directory {} does not exist; create it or choose another path",
            path.display(),
            dir.display()
        );
    }
    if path.is_dir() {
        anyhow::bail!(
            "cannot write {}: it is a directory; give a file name",
            path.display()
        );
    }
    let probe = temp_path(path);
    fs::File::create(&probe).with_context(|| {
        format!(
            "cannot write {}: {} is not writable",
            path.display(),
            dir.display()
        )
    })?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// Writes to a temporary file beside `path` and renames it into place.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    let result = (|| -> std::io::Result<()> {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    parent_dir(path).join(format!(".{name}.memfit-{}.tmp", std::process::id()))
}
