//! The Node runtime view's plumbing, shared by `memfit run` (memfit-measure) and `memfit
//! guard`: a preload (`preload.js`) written into a private directory and injected with
//! `NODE_OPTIONS=--require`, through which every Node process and worker thread reports V8's
//! heap statistics, `process.memoryUsage()` and its GC pauses into a FIFO in that directory;
//! the bounded, defensive reading of that FIFO; and the latest report of each live thread.
//! With `--python-tracemalloc`, a `sitecustomize` ([`python`]) on PYTHONPATH reports
//! tracemalloc's traced memory of every Python process into the same FIFO.
//! What the reports mean for a run or a service (peaks, metrics) is the caller's.
//! docs/runtime-view.md in memfit's repository describes the view.

mod python;
mod report;

use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use python::{python_path, PythonReport, PYTHONPATH};
pub use report::Report;

/// The variable the preload is injected through.
pub const NODE_OPTIONS: &str = "NODE_OPTIONS";
/// Reports per Node thread: the sampler's default period, memfit's choice (100 ms is the
/// slowest period the sampler itself uses).
const DEFAULT_PERIOD: Duration = Duration::from_millis(100);
/// A report line is about 200 bytes; a longer one is not the preload's.
const MAX_LINE: usize = 1024;
/// Threads (isolates) followed at once; more are ignored.
const MAX_ISOLATES: usize = 4096;
/// Bytes read from the FIFO in one tick: a flood must not stall the sampler.
const MAX_READ_PER_TICK: usize = 4 << 20;
/// The FIFO's capacity asked of the kernel (F_SETPIPE_SZ), so that a burst of exits fits.
const PIPE_SIZE: libc::c_int = 1 << 20;
/// Python reports kept between two takes: more are dropped (and counted rejected).
const MAX_PYTHON_QUEUE: usize = 1 << 16;

/// Who may load the preload and write to the FIFO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// This user only (0700 directory): `memfit run`.
    Private,
    /// Any user too (0711 directory, 0644 preload, 0622 FIFO): the guard's child may drop
    /// privileges (`su-exec node …`), and Node refuses to start when a `--require` cannot be
    /// read. Lines from other users are bounded and parsed as every line is.
    AnyUser,
}

/// Sums over Node threads' latest reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapSum {
    pub heap_used_bytes: u64,
    pub heap_total_bytes: u64,
    pub heap_limit_bytes: u64,
    pub external_bytes: u64,
    pub array_buffers_bytes: u64,
    /// Threads (isolates) summed.
    pub threads: u32,
}

impl HeapSum {
    fn add(&mut self, r: &Report) {
        self.heap_used_bytes = self.heap_used_bytes.saturating_add(r.used);
        self.heap_total_bytes = self.heap_total_bytes.saturating_add(r.total);
        self.heap_limit_bytes = self.heap_limit_bytes.saturating_add(r.limit);
        self.external_bytes = self.external_bytes.saturating_add(r.external);
        self.array_buffers_bytes = self.array_buffers_bytes.saturating_add(r.array_buffers);
        self.threads = self.threads.saturating_add(1);
    }
}

/// The latest report of each live thread, by (pid, thread id).
#[derive(Debug, Default)]
pub struct Isolates(HashMap<(i32, u32), Report>);

impl Isolates {
    /// The latest reports of `pid`'s threads.
    pub fn of(&self, pid: i32) -> impl Iterator<Item = &Report> {
        self.0
            .iter()
            .filter(move |((p, _), _)| *p == pid)
            .map(|(_, r)| r)
    }

    /// The sums over the threads of the processes `live` accepts, `None` when none reported.
    pub fn sum(&self, live: impl Fn(i32) -> bool) -> Option<HeapSum> {
        let mut sum = HeapSum::default();
        for ((pid, _), r) in &self.0 {
            if live(*pid) {
                sum.add(r);
            }
        }
        (sum.threads > 0).then_some(sum)
    }
}

/// The preload's directory, its FIFO, and the latest reports.
pub struct NodeView {
    /// The lock on the preload that says this memfit is alive.
    _lock: File,
    /// Removed with its two files when the view is closed or dropped.
    dir: Option<PathBuf>,
    preload: PathBuf,
    fifo: File,
    partial: Vec<u8>,
    /// Within an over-long line: bytes are dropped up to its newline.
    skipping: bool,
    isolates: Isolates,
    /// The Python `sitecustomize`'s zip, when Python processes are asked to report.
    python_zip: Option<PathBuf>,
    /// Python reports not yet taken ([`NodeView::take_python_reports`]).
    python_reports: Vec<PythonReport>,
    /// Lines that were not a report (malformed, too long, too many threads).
    pub rejected: u64,
}

impl NodeView {
    /// Writes the preload and its FIFO into a fresh directory under the temporary directory
    /// (never the command's: a repository is not memfit's to write to). `period`: between
    /// two reports of a thread, 10 ms to 1 s [default: 100 ms].
    pub fn start(period: Option<Duration>, access: Access) -> io::Result<NodeView> {
        NodeView::start_with(period, access, false)
    }

    /// [`NodeView::start`], and with `python`, a `sitecustomize` for Python processes too
    /// (injected through PYTHONPATH): tracemalloc slows Python, so it is only on when asked.
    pub fn start_with(
        period: Option<Duration>,
        access: Access,
        python: bool,
    ) -> io::Result<NodeView> {
        sweep_stale();
        let dir = make_dir()?;
        let view = NodeView::populate(&dir, period, access, python);
        if view.is_err() {
            remove_dir(&dir);
        }
        view
    }

    fn populate(
        dir: &Path,
        period: Option<Duration>,
        access: Access,
        python: bool,
    ) -> io::Result<NodeView> {
        let (dir_mode, file_mode, fifo_mode) = match access {
            Access::Private => (0o700, 0o600, 0o600),
            Access::AnyUser => (0o711, 0o644, 0o622),
        };
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode))?;
        let fifo_path = dir.join(FIFO_NAME);
        let c_path = c_string(&fifo_path)?;
        // SAFETY: mkfifo with a valid C string.
        if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // Not through mkfifo's mode: the umask would narrow it.
        std::fs::set_permissions(&fifo_path, std::fs::Permissions::from_mode(fifo_mode))?;
        let fifo = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&fifo_path)?;
        // SAFETY: fcntl on an fd we own; a refusal leaves the default 64 KiB.
        unsafe {
            libc::fcntl(
                std::os::fd::AsRawFd::as_raw_fd(&fifo),
                libc::F_SETPIPE_SZ,
                PIPE_SIZE,
            );
        }
        let Some(fifo_text) = fifo_path.to_str() else {
            return Err(io::Error::other(
                "the temporary directory's path is not UTF-8",
            ));
        };
        let period = period
            .unwrap_or(DEFAULT_PERIOD)
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        let preload = dir.join(PRELOAD_NAME);
        let text = include_str!("preload.js")
            .replace(
                "__MEMFIT_FIFO__",
                &serde_json::to_string(fifo_text).map_err(io::Error::other)?,
            )
            .replace("__MEMFIT_INTERVAL_MS__", &period.as_millis().to_string());
        std::fs::write(&preload, text)?;
        std::fs::set_permissions(&preload, std::fs::Permissions::from_mode(file_mode))?;
        let python_zip = if python {
            let zip = dir.join(python::ZIP_NAME);
            let bytes = python::sitecustomize_zip(fifo_text, period).map_err(io::Error::other)?;
            std::fs::write(&zip, bytes)?;
            std::fs::set_permissions(&zip, std::fs::Permissions::from_mode(file_mode))?;
            Some(zip)
        } else {
            None
        };
        // Held while the view lives: the sweep of a later memfit leaves this directory alone.
        let lock = File::open(&preload)?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(NodeView {
            _lock: lock,
            dir: Some(dir.to_path_buf()),
            preload,
            fifo,
            partial: Vec::new(),
            skipping: false,
            isolates: Isolates::default(),
            python_zip,
            python_reports: Vec::new(),
            rejected: 0,
        })
    }

    /// The preload's path.
    pub fn preload(&self) -> &Path {
        &self.preload
    }

    /// NODE_OPTIONS with the preload added after what the command already has (its own
    /// flags, e.g. --max-old-space-size, still apply).
    pub fn node_options(&self, existing: Option<&OsStr>) -> OsString {
        let mut value = OsString::new();
        if let Some(existing) = existing.filter(|e| !e.is_empty()) {
            value.push(existing);
            value.push(" ");
        }
        value.push("--require ");
        value.push(quote_for_node_options(&self.preload));
        value
    }

    /// Adds the preload (and the Python `sitecustomize`, when asked for) to `NAME=value`
    /// environment entries.
    pub fn inject(&self, entries: &mut Vec<OsString>) {
        if let Some(zip) = &self.python_zip {
            let existing = entries.iter().position(|e| python::sets(e, PYTHONPATH));
            let current = existing.map(|i| {
                OsString::from_vec(entries[i].as_bytes()[PYTHONPATH.len() + 1..].to_vec())
            });
            let mut entry = OsString::from(format!("{PYTHONPATH}="));
            entry.push(python_path(zip, current.as_deref()));
            match existing {
                Some(i) => entries[i] = entry,
                None => entries.push(entry),
            }
        }
        let prefix = format!("{NODE_OPTIONS}=");
        let existing = entries
            .iter()
            .position(|e| e.as_bytes().starts_with(prefix.as_bytes()));
        let current =
            existing.map(|i| OsString::from_vec(entries[i].as_bytes()[prefix.len()..].to_vec()));
        let mut entry = OsString::from(&prefix);
        entry.push(self.node_options(current.as_deref()));
        match existing {
            Some(i) => entries[i] = entry,
            None => entries.push(entry),
        }
    }

    /// Reads what arrived since the last tick, without blocking; `seen` is called after each
    /// report is taken in (before a thread's last report removes it), with its pid.
    pub fn drain(&mut self, mut seen: impl FnMut(&Isolates, i32)) {
        let mut buf = [0u8; 64 * 1024];
        let mut read_total = 0;
        while read_total < MAX_READ_PER_TICK {
            match self.fifo.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    read_total += n;
                    self.take_bytes(&buf[..n], &mut seen);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    }

    /// Takes in bytes as if read from the FIFO.
    pub fn take_bytes(&mut self, mut bytes: &[u8], seen: &mut impl FnMut(&Isolates, i32)) {
        while let Some(newline) = bytes.iter().position(|&b| b == b'\n') {
            let (line, rest) = bytes.split_at(newline);
            bytes = &rest[1..];
            if self.skipping {
                self.skipping = false;
                continue;
            }
            if self.partial.len() + line.len() > MAX_LINE {
                self.partial.clear();
                self.rejected += 1;
                continue;
            }
            self.partial.extend_from_slice(line);
            let whole = std::mem::take(&mut self.partial);
            self.take_line(&whole, seen);
        }
        if self.skipping {
            return;
        }
        if self.partial.len() + bytes.len() > MAX_LINE {
            self.partial.clear();
            self.skipping = true;
            self.rejected += 1;
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    fn take_line(&mut self, line: &[u8], seen: &mut impl FnMut(&Isolates, i32)) {
        let Some(report) = Report::parse(line) else {
            let python = self
                .python_zip
                .as_ref()
                .and_then(|_| PythonReport::parse(line))
                .filter(|_| self.python_reports.len() < MAX_PYTHON_QUEUE);
            match python {
                Some(report) => self.python_reports.push(report),
                None => self.rejected += 1,
            }
            return;
        };
        let key = (report.pid, report.tid);
        let isolates = &mut self.isolates.0;
        if !isolates.contains_key(&key) && isolates.len() >= MAX_ISOLATES {
            self.rejected += 1;
            return;
        }
        isolates.insert(key, report);
        seen(&self.isolates, report.pid);
        let isolates = &mut self.isolates.0;
        if report.end {
            isolates.remove(&key);
            if report.main {
                // The process exits: its workers are gone with it.
                isolates.retain(|(p, _), _| *p != report.pid);
            }
        }
    }

    /// The Python reports that arrived since the last take, in order.
    pub fn take_python_reports(&mut self) -> Vec<PythonReport> {
        std::mem::take(&mut self.python_reports)
    }

    /// The latest reports of the live threads.
    pub fn isolates(&self) -> &Isolates {
        &self.isolates
    }

    /// Forgets the threads of processes `live` refuses (gone without a last report: killed).
    pub fn retain(&mut self, live: impl Fn(i32) -> bool) {
        self.isolates.0.retain(|(p, _), _| live(*p));
    }

    /// Removes the preload and the FIFO. Dropping the view does too.
    pub fn close(mut self) -> io::Result<()> {
        match self.dir.take() {
            Some(dir) => {
                for name in OWN_FILES {
                    match std::fs::remove_file(dir.join(name)) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                        _ => {}
                    }
                }
                std::fs::remove_dir(&dir)
            }
            None => Ok(()),
        }
    }
}

impl Drop for NodeView {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            remove_dir(&dir);
        }
    }
}

/// The directory's name: this prefix, memfit's pid, a random suffix.
const DIR_PREFIX: &str = "memfit-runtime-";
const PRELOAD_NAME: &str = "memfit-runtime-view.js";
const FIFO_NAME: &str = "reports";
/// Every file memfit puts in the directory, and the only ones it removes there.
const OWN_FILES: [&str; 3] = [PRELOAD_NAME, FIFO_NAME, python::ZIP_NAME];

fn c_string(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("a NUL in the temporary directory's path"))
}

/// A fresh 0700 directory `DIR_PREFIX<pid>-XXXXXX` in the temporary directory (mkdtemp(3)).
fn make_dir() -> io::Result<PathBuf> {
    let template = std::env::temp_dir().join(format!("{DIR_PREFIX}{}-XXXXXX", std::process::id()));
    let mut bytes = c_string(&template)?.into_bytes_with_nul();
    // SAFETY: mkdtemp rewrites the X's of a NUL-terminated buffer we own.
    let made = unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) };
    if made.is_null() {
        return Err(io::Error::last_os_error());
    }
    bytes.pop();
    Ok(PathBuf::from(OsString::from_vec(bytes)))
}

/// Removes the view's directory and only the files memfit puts there.
fn remove_dir(dir: &Path) {
    for name in OWN_FILES {
        let _ = std::fs::remove_file(dir.join(name));
    }
    let _ = std::fs::remove_dir(dir);
}

/// Removes what a SIGKILLed memfit left in the temporary directory: a directory of this
/// name whose memfit is gone, that is a real directory (not a link) owned by this user, and
/// only the files memfit puts there.
pub fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    for entry in entries.flatten().take(100_000) {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let path = entry.path();
        // A live memfit holds a lock on its preload (its pid may be another namespace's).
        if !lock_is_free(&path.join(PRELOAD_NAME)) {
            continue;
        }
        let owned_dir = std::fs::symlink_metadata(&path)
            .is_ok_and(|m| m.file_type().is_dir() && m.uid() == uid);
        if owned_dir {
            remove_dir(&path);
        }
    }
}

/// Whether no memfit holds the lock on `preload` (a missing file is free).
fn lock_is_free(preload: &Path) -> bool {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(preload)
    {
        Ok(file) => file,
        Err(e) => return e.kind() == io::ErrorKind::NotFound,
    };
    // SAFETY: flock on an fd we own; the lock goes with the file.
    unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            libc::LOCK_EX | libc::LOCK_NB,
        ) == 0
    }
}

/// A path as NODE_OPTIONS reads it: as is when plain, else in double quotes with `\` and `"`
/// escaped (Node parses NODE_OPTIONS as a shell would quote: nodejs/node#12971).
fn quote_for_node_options(path: &Path) -> OsString {
    let bytes = path.as_os_str().as_bytes();
    let plain = bytes
        .iter()
        .all(|&b| !b.is_ascii_whitespace() && b != b'"' && b != b'\\' && b != b'\'');
    if plain {
        return path.as_os_str().to_os_string();
    }
    let mut quoted = vec![b'"'];
    for &b in bytes {
        if b == b'"' || b == b'\\' {
            quoted.push(b'\\');
        }
        quoted.push(b);
    }
    quoted.push(b'"');
    OsString::from_vec(quoted)
}

#[cfg(test)]
mod tests;
