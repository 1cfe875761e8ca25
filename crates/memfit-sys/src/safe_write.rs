//! Writing a file as root in a directory someone else controls (a repository, a shared report
//! directory) without being turned against the machine: the one writer every memfit command
//! uses for reports and fixes.
//!
//! * The temporary file has a random name and is created exclusively, never through a link
//!   (`O_CREAT | O_EXCL | O_NOFOLLOW`): a link planted at a predictable name cannot redirect it.
//! * Only a regular file is replaced: a link, a device (`/dev/null`), a FIFO or a directory at
//!   the target is refused, not written through or replaced. `-` is standard output.
//! * An existing file keeps its owner, group and mode.
//! * The new contents appear at once (rename), and `expected` guards against a change made
//!   since the caller read the file.

use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a write was refused or failed; the message says what to do.
#[derive(Debug)]
pub enum WriteError {
    /// The target exists and is not a regular file.
    NotARegularFile {
        path: PathBuf,
        what: &'static str,
    },
    /// The file changed since it was read.
    ChangedMeanwhile(PathBuf),
    Io {
        path: PathBuf,
        source: io::Error,
    },
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::NotARegularFile { path, what } => write!(
                f,
                "cannot write {}: it is {what}, not a regular file; give a file name (or - for standard output)",
                path.display()
            ),
            WriteError::ChangedMeanwhile(path) => write!(
                f,
                "{} changed while memfit was working; it was left as it is: run again",
                path.display()
            ),
            WriteError::Io { path, source } => write!(f, "cannot write {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for WriteError {}

/// Whether `path` names standard output.
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Checks early that `path` can be written: its directory exists, and it is absent or a
/// regular file (the directory is probed with an exclusive temporary file).
pub fn check(path: &Path) -> Result<(), WriteError> {
    if is_stdout(path) {
        return Ok(());
    }
    refuse_non_regular(path)?;
    let dir = parent_dir(path);
    let (fd, temp) = create_temp(&dir, path).map_err(|source| io_error(path, source))?;
    drop(fd);
    let _ = fs::remove_file(temp);
    Ok(())
}

/// Writes `contents` to `path` (or standard output for `-`), replacing a regular file at once.
pub fn write(path: &Path, contents: &[u8]) -> Result<(), WriteError> {
    if is_stdout(path) {
        return replace(path, contents, None);
    }
    // A report replaces whatever regular file holds its name (the last run's report).
    let mut staged = stage(path, contents, None)?;
    staged.overwrite = true;
    commit(vec![staged])
}

/// Replaces a regular file with `contents` if it still holds `expected` (what the caller read
/// and edited); a file that changed meanwhile is left alone.
pub fn replace(path: &Path, contents: &[u8], expected: Option<&[u8]>) -> Result<(), WriteError> {
    if is_stdout(path) {
        let mut out = io::stdout().lock();
        return out
            .write_all(contents)
            .and_then(|()| out.flush())
            .map_err(|source| io_error(path, source));
    }
    commit(vec![stage(path, contents, expected)?])
}

/// A file's new contents written to a temporary file beside it, waiting for [`commit`].
/// Dropped uncommitted, the temporary file goes.
#[derive(Debug)]
pub struct Staged {
    target: PathBuf,
    temp: Option<PathBuf>,
    /// What the target held when the caller read it; `None`: it did not exist.
    expected: Option<Vec<u8>>,
    /// Replace the target whatever it holds ([`write`]): there is no `expected`.
    overwrite: bool,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let _ = fs::remove_file(temp);
        }
    }
}

/// Writes `contents` to a new temporary file beside `path` with the target's owner, group
/// and mode. `expected` is what the caller read (`None`: the file is to be created).
pub fn stage(path: &Path, contents: &[u8], expected: Option<&[u8]>) -> Result<Staged, WriteError> {
    let existing = refuse_non_regular(path)?;
    let dir = parent_dir(path);
    let (fd, temp) = create_temp(&dir, path).map_err(|source| io_error(path, source))?;
    let staged = Staged {
        target: path.to_path_buf(),
        temp: Some(temp),
        expected: expected.map(<[u8]>::to_vec),
        overwrite: false,
    };
    (|| -> io::Result<()> {
        let mut file = fs::File::from(fd);
        file.write_all(contents)?;
        if let Some(meta) = &existing {
            // Keep the file's owner, group and mode (memfit may run as root on a user's files).
            std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))?;
            file.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        }
        file.sync_all()
    })()
    .map_err(|source| io_error(path, source))?;
    Ok(staged)
}

/// Renames every staged file over its target, all or none. First every target is checked to
/// hold still what the caller read (and a hard link to it is kept aside); then the renames; if
/// one fails, the targets already replaced get their old files back and new ones go. The
/// error names the file that failed.
pub fn commit(staged: Vec<Staged>) -> Result<(), WriteError> {
    // (staged, hard link to the old file) in rename order.
    let mut ready: Vec<(Staged, Option<PathBuf>)> = Vec::with_capacity(staged.len());
    let mut result = Ok(());
    for item in staged {
        if result.is_err() {
            break;
        }
        match keep_aside(&item) {
            Ok(backup) => ready.push((item, backup)),
            Err(e) => result = Err(e),
        }
    }
    let mut done = 0;
    if result.is_ok() {
        for (item, _) in &mut ready {
            let Some(temp) = item.temp.as_ref() else {
                continue;
            };
            if let Err(source) = fs::rename(temp, &item.target) {
                result = Err(io_error(&item.target, source));
                break;
            }
            item.temp = None;
            done += 1;
        }
    }
    if result.is_err() {
        // Undo in reverse order what was renamed.
        for (item, backup) in ready[..done].iter_mut().rev() {
            let _ = match backup.take() {
                Some(old) => fs::rename(old, &item.target),
                None => fs::remove_file(&item.target),
            };
        }
    }
    for (_, backup) in &mut ready {
        if let Some(old) = backup.take() {
            let _ = fs::remove_file(old);
        }
    }
    result
}

/// Checks that the target still holds what was read, and keeps a hard link to it aside for a
/// rollback (`None` for a file to be created).
fn keep_aside(item: &Staged) -> Result<Option<PathBuf>, WriteError> {
    let path = &item.target;
    let existing = refuse_non_regular(path)?;
    match (&item.expected, existing) {
        (None, None) => return Ok(None),
        (None, Some(_)) if item.overwrite => {}
        (None, Some(_)) | (Some(_), None) => {
            return Err(WriteError::ChangedMeanwhile(path.to_path_buf()))
        }
        (Some(expected), Some(_)) => {
            let now = fs::read(path).map_err(|source| io_error(path, source))?;
            if &now != expected {
                return Err(WriteError::ChangedMeanwhile(path.to_path_buf()));
            }
        }
    }
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    for _ in 0..8 {
        let random = random_u64().map_err(|source| io_error(path, source))?;
        let backup = dir.join(format!(".{name}.memfit-{random:016x}.old"));
        match fs::hard_link(path, &backup) {
            Ok(()) => return Ok(Some(backup)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(io_error(path, source)),
        }
    }
    Err(io_error(
        path,
        io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary name"),
    ))
}

/// The target's metadata when it is a regular file, `None` when absent; an error for a link,
/// a device, a FIFO, a socket or a directory.
fn refuse_non_regular(path: &Path) -> Result<Option<fs::Metadata>, WriteError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io_error(path, source)),
    };
    let kind = meta.file_type();
    let what = if kind.is_file() {
        return Ok(Some(meta));
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_fifo() {
        "a FIFO"
    } else {
        "a socket"
    };
    Err(WriteError::NotARegularFile {
        path: path.to_path_buf(),
        what,
    })
}

/// A new file beside the target, with a random name, created exclusively and never through a
/// link.
fn create_temp(dir: &Path, target: &Path) -> io::Result<(OwnedFd, PathBuf)> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    for _ in 0..8 {
        let temp = dir.join(format!(".{name}.memfit-{:016x}.tmp", random_u64()?));
        let c = CString::new(temp.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
        // SAFETY: open(2) with a valid C string; the fd is owned at once.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o644,
            )
        };
        if fd >= 0 {
            // SAFETY: fd is fresh and valid.
            return Ok((unsafe { OwnedFd::from_raw_fd(fd) }, temp));
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::AlreadyExists {
            return Err(error);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free temporary name",
    ))
}

pub(crate) fn random_u64() -> io::Result<u64> {
    let mut bytes = [0u8; 8];
    // SAFETY: getrandom fills the local buffer.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::from_ne_bytes(bytes))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn io_error(path: &Path, source: io::Error) -> WriteError {
    WriteError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_at_the_target_is_refused_and_its_destination_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let report = dir.path().join("run.json");
        std::os::unix::fs::symlink(&victim, &report).unwrap();
        let err = write(&report, b"{}").unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    }

    #[test]
    fn devices_and_directories_are_not_replaced() {
        assert!(write(Path::new("/dev/null"), b"x")
            .unwrap_err()
            .to_string()
            .contains("a device"));
        let dir = tempfile::tempdir().unwrap();
        assert!(write(dir.path(), b"x")
            .unwrap_err()
            .to_string()
            .contains("a directory"));
        assert!(Path::new("/dev/null")
            .metadata()
            .unwrap()
            .file_type()
            .is_char_device());
    }

    #[test]
    fn temporary_names_cannot_be_predicted_or_planted() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        // Links at the names the old writer used.
        for pid_name in [
            format!(".run.json.memfit-{}.tmp", std::process::id()),
            format!(".Dockerfile.memfit-fix-{}", std::process::id()),
        ] {
            std::os::unix::fs::symlink(&victim, dir.path().join(pid_name)).unwrap();
        }
        write(&dir.path().join("run.json"), b"{}").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(fs::read(dir.path().join("run.json")).unwrap(), b"{}");
    }

    #[test]
    fn a_report_replaces_the_last_one() {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("run.json");
        write(&report, b"first").unwrap();
        write(&report, b"second").unwrap();
        assert_eq!(fs::read(&report).unwrap(), b"second");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "a backup was left"
        );
    }

    #[test]
    fn an_existing_file_keeps_its_mode_and_a_changed_one_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("Dockerfile");
        fs::write(&file, "FROM node:20\n").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
        replace(&file, b"FROM node:22\n", Some(b"FROM node:20\n")).unwrap();
        assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o640);
        let err = replace(&file, b"FROM node:24\n", Some(b"FROM node:20\n")).unwrap_err();
        assert!(matches!(err, WriteError::ChangedMeanwhile(_)));
        assert_eq!(fs::read_to_string(&file).unwrap(), "FROM node:22\n");
        // Nothing left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_commit_that_fails_midway_puts_back_what_it_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("a");
        let second = dir.path().join("b");
        let created = dir.path().join("c");
        fs::write(&first, "old a").unwrap();
        fs::write(&second, "old b").unwrap();
        let staged = vec![
            stage(&first, b"new a", Some(b"old a")).unwrap(),
            stage(&created, b"new c", None).unwrap(),
            stage(&second, b"new b", Some(b"old b")).unwrap(),
        ];
        // The last rename fails: its temporary file is gone.
        fs::remove_file(staged[2].temp.as_ref().unwrap()).unwrap();
        let err = commit(staged).unwrap_err();
        assert!(err.to_string().contains("/b"), "{err}");
        assert_eq!(fs::read_to_string(&first).unwrap(), "old a");
        assert_eq!(fs::read_to_string(&second).unwrap(), "old b");
        assert!(!created.exists());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            2,
            "nothing left behind"
        );
    }
}
