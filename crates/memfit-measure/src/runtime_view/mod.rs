//! The runtime view: what the runtimes inside the command say about their own memory, beside
//! what the kernel charges. For Node, a preload (`preload.js`) that memfit writes into a
//! private directory and injects with `NODE_OPTIONS=--require`: every Node process and worker
//! thread of the run reports V8's heap statistics, `process.memoryUsage()` and its GC pauses
//! into a FIFO in that directory. memfit reads it each tick. What comes through the FIFO is
//! the command's word, so it is bounded and parsed defensively, and only counted for
//! processes of the run.

mod jvm;
mod node;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::report::{JvmRecord, RuntimeSample, V8Record};

pub(crate) use node::Report;

/// The variable the preload is injected through.
pub(crate) const NODE_OPTIONS: &str = "NODE_OPTIONS";
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

/// The preload's directory, its FIFO, and what the processes reported.
pub(crate) struct RuntimeView {
    /// The lock on the preload that says this memfit is alive.
    _lock: File,
    dir: Option<tempfile::TempDir>,
    preload: PathBuf,
    fifo: File,
    partial: Vec<u8>,
    /// Within an over-long line: bytes are dropped up to its newline.
    skipping: bool,
    /// The latest report of each live thread, by (pid, thread id).
    isolates: HashMap<(i32, u32), Report>,
    /// Each process's peaks so far.
    processes: HashMap<i32, V8Record>,
    /// Lines that were not a report (malformed, too long, too many threads).
    pub(crate) rejected: u64,
    /// The JVMs of the run, from their own counters.
    jvm: jvm::JvmView,
}

impl RuntimeView {
    /// Writes the preload and its FIFO into a fresh 0700 directory under the temporary
    /// directory (never the command's: a repository is not memfit's to write to).
    pub(crate) fn start(period: Option<Duration>) -> io::Result<RuntimeView> {
        sweep_stale();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
            .tempdir()?;
        // Only memfit may read the preload's path or write to its FIFO.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
        let fifo_path = dir.path().join(FIFO_NAME);
        let c_path = std::ffi::CString::new(fifo_path.as_os_str().as_bytes())
            .map_err(|_| io::Error::other("a NUL in the temporary directory's path"))?;
        // SAFETY: mkfifo with a valid C string.
        if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } != 0 {
            return Err(io::Error::last_os_error());
        }
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
        let preload = dir.path().join(PRELOAD_NAME);
        let text = include_str!("preload.js")
            .replace(
                "__MEMFIT_FIFO__",
                &serde_json::to_string(fifo_text).map_err(io::Error::other)?,
            )
            .replace("__MEMFIT_INTERVAL_MS__", &period.as_millis().to_string());
        std::fs::write(&preload, text)?;
        // Held for the run: the sweep of a later memfit leaves this directory alone.
        let lock = File::open(&preload)?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(RuntimeView {
            _lock: lock,
            dir: Some(dir),
            preload,
            fifo,
            partial: Vec::new(),
            skipping: false,
            isolates: HashMap::new(),
            processes: HashMap::new(),
            rejected: 0,
            jvm: jvm::JvmView::default(),
        })
    }

    /// NODE_OPTIONS with the preload added after what the command already has (its own
    /// flags, e.g. --max-old-space-size, still apply).
    pub(crate) fn node_options(&self, existing: Option<&OsStr>) -> OsString {
        let mut value = OsString::new();
        if let Some(existing) = existing.filter(|e| !e.is_empty()) {
            value.push(existing);
            value.push(" ");
        }
        value.push("--require ");
        value.push(quote_for_node_options(&self.preload));
        value
    }

    /// Adds the preload to `NAME=value` environment entries.
    pub(crate) fn inject(&self, entries: &mut Vec<OsString>) {
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

    /// Reads the counters of the run's JVMs.
    pub(crate) fn sample_jvms(&mut self, pids: &[i32]) {
        self.jvm.sample(pids);
    }

    /// What a JVM's counters said, when the process was one.
    pub(crate) fn jvm_record(&self, pid: i32) -> Option<JvmRecord> {
        self.jvm.records.get(&pid).copied()
    }

    /// Reads what arrived since the last tick.
    pub(crate) fn drain(&mut self) {
        let mut buf = [0u8; 64 * 1024];
        let mut read_total = 0;
        while read_total < MAX_READ_PER_TICK {
            match self.fifo.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    read_total += n;
                    self.take_bytes(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    }

    fn take_bytes(&mut self, mut bytes: &[u8]) {
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
            self.take_line(&whole);
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

    fn take_line(&mut self, line: &[u8]) {
        let Some(report) = Report::parse(line) else {
            self.rejected += 1;
            return;
        };
        let key = (report.pid, report.tid);
        if !self.isolates.contains_key(&key) && self.isolates.len() >= MAX_ISOLATES {
            self.rejected += 1;
            return;
        }
        self.isolates.insert(key, report);
        let pid = report.pid;
        self.update_process(pid);
        if report.end {
            self.isolates.remove(&key);
            if report.main {
                // The process exits: its workers are gone with it.
                self.isolates.retain(|(p, _), _| *p != pid);
            }
        }
    }

    /// Folds a process's threads' latest reports into its peaks.
    fn update_process(&mut self, pid: i32) {
        let mut sum = RuntimeSample::default();
        let mut limit = None;
        let mut gc_ms = 0.0;
        let mut threads = 0;
        for ((_, _), r) in self.isolates.iter().filter(|((p, _), _)| *p == pid) {
            sum.heap_used_bytes = sum.heap_used_bytes.saturating_add(r.used);
            sum.heap_total_bytes = sum.heap_total_bytes.saturating_add(r.total);
            sum.external_bytes = sum.external_bytes.saturating_add(r.external);
            sum.array_buffers_bytes = sum.array_buffers_bytes.saturating_add(r.array_buffers);
            gc_ms += r.gc_ms;
            threads += 1;
            if r.main || limit.is_none() {
                limit = Some(r.limit);
            }
        }
        let record = self.processes.entry(pid).or_default();
        record.heap_limit_bytes = limit.unwrap_or(record.heap_limit_bytes);
        record.heap_used_peak_bytes = record.heap_used_peak_bytes.max(sum.heap_used_bytes);
        record.heap_total_peak_bytes = record.heap_total_peak_bytes.max(sum.heap_total_bytes);
        record.external_peak_bytes = record.external_peak_bytes.max(sum.external_bytes);
        record.array_buffers_peak_bytes =
            record.array_buffers_peak_bytes.max(sum.array_buffers_bytes);
        // Pauses only add up; a thread's total is kept when the thread is gone.
        record.gc_pause_total_ms = record.gc_pause_total_ms.max(gc_ms.round() as u64);
        let seen = self.isolates.keys().filter(|(p, _)| *p == pid).count() as u32;
        record.threads = record.threads.max(seen).max(threads);
    }

    /// The sums over the live processes' latest reports, `None` when none has reported.
    pub(crate) fn sample(&self, live: &[i32]) -> Option<RuntimeSample> {
        let mut sum = RuntimeSample::default();
        let mut any = false;
        for ((pid, _), r) in &self.isolates {
            if !live.contains(pid) {
                continue;
            }
            any = true;
            sum.heap_used_bytes = sum.heap_used_bytes.saturating_add(r.used);
            sum.heap_total_bytes = sum.heap_total_bytes.saturating_add(r.total);
            sum.external_bytes = sum.external_bytes.saturating_add(r.external);
            sum.array_buffers_bytes = sum.array_buffers_bytes.saturating_add(r.array_buffers);
        }
        any.then_some(sum)
    }

    /// What a process reported, when it did.
    pub(crate) fn record(&self, pid: i32) -> Option<V8Record> {
        self.processes.get(&pid).copied()
    }

    /// Removes the preload and the FIFO. Dropping the view does too.
    pub(crate) fn close(mut self) -> io::Result<()> {
        match self.dir.take() {
            Some(dir) => dir.close(),
            None => Ok(()),
        }
    }

    #[cfg(test)]
    fn path(&self) -> &Path {
        self.preload.as_path()
    }
}

/// The directory's name: this prefix, memfit's pid, a random suffix.
const DIR_PREFIX: &str = "memfit-runtime-";
const PRELOAD_NAME: &str = "memfit-runtime-view.js";
const FIFO_NAME: &str = "reports";

/// Removes what a SIGKILLed memfit left in the temporary directory: a directory of this
/// name whose memfit is gone, that is a real directory (not a link) owned by this user, and
/// only the two files memfit puts there.
fn sweep_stale() {
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
            let _ = std::fs::remove_file(path.join(PRELOAD_NAME));
            let _ = std::fs::remove_file(path.join(FIFO_NAME));
            let _ = std::fs::remove_dir(&path);
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
mod tests {
    use super::*;

    fn line(pid: i32, tid: u32, main: bool, used: u64, ext: u64, end: bool) -> String {
        format!(
            "{{\"pid\":{pid},\"tid\":{tid},\"main\":{main},\"used\":{used},\"total\":{used},\"limit\":1000,\"ext\":{ext},\"ab\":{ext},\"gc\":1.5,\"end\":{end}}}\n"
        )
    }

    #[test]
    fn threads_add_up_per_process_and_a_main_exit_ends_them_all() {
        let mut view = RuntimeView::start(None).unwrap();
        view.take_bytes(line(10, 0, true, 100, 5, false).as_bytes());
        view.take_bytes(line(10, 1, false, 50, 1, false).as_bytes());
        assert_eq!(view.sample(&[10]).unwrap().heap_used_bytes, 150);
        assert_eq!(view.sample(&[11]), None);
        view.take_bytes(line(10, 0, true, 20, 5, true).as_bytes());
        assert_eq!(view.sample(&[10]), None);
        let record = view.record(10).unwrap();
        assert_eq!(record.heap_used_peak_bytes, 150);
        assert_eq!(record.threads, 2);
        assert_eq!(record.heap_limit_bytes, 1000);
        assert_eq!(record.gc_pause_total_ms, 3);
    }

    #[test]
    fn the_directory_is_private_and_a_dead_memfits_is_swept() {
        let view = RuntimeView::start(None).unwrap();
        let dir = view.path().parent().unwrap().to_path_buf();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // A live memfit's directory is left alone.
        sweep_stale();
        assert!(view.path().exists());
        // A directory no memfit holds.
        let stale = std::env::temp_dir().join(format!("{DIR_PREFIX}4194305-test"));
        std::fs::create_dir_all(&stale).unwrap();
        std::fs::write(stale.join(PRELOAD_NAME), "x").unwrap();
        let kept = stale.join("not-memfits");
        std::fs::write(&kept, "x").unwrap();
        sweep_stale();
        assert!(!stale.join(PRELOAD_NAME).exists());
        assert!(kept.exists(), "only memfit's own files are removed");
        std::fs::remove_dir_all(&stale).unwrap();
        view.close().unwrap();
    }

    #[test]
    fn hostile_lines_are_bounded_and_rejected() {
        let mut view = RuntimeView::start(None).unwrap();
        let long = "x".repeat(5000);
        view.take_bytes(long.as_bytes());
        view.take_bytes(b"yyy\n");
        view.take_bytes(b"{\"pid\":-1}\nnot json\n{\"pid\":1e400}\n");
        view.take_bytes(line(7, 0, true, 9, 0, false).as_bytes());
        assert_eq!(view.rejected, 4);
        assert_eq!(view.record(7).unwrap().heap_used_peak_bytes, 9);
    }

    #[test]
    fn node_options_keep_the_users_and_quote_a_path_with_a_space() {
        let view = RuntimeView::start(None).unwrap();
        let plain = view.node_options(Some(OsStr::new("--max-old-space-size=96")));
        assert_eq!(
            plain,
            OsString::from(format!(
                "--max-old-space-size=96 --require {}",
                view.path().display()
            ))
        );
        assert_eq!(
            quote_for_node_options(Path::new("/tmp/a b/\"x\".js")),
            OsString::from("\"/tmp/a b/\\\"x\\\".js\"")
        );
        let mut entries = vec![OsString::from("PATH=/bin")];
        view.inject(&mut entries);
        assert!(entries[1]
            .to_str()
            .unwrap()
            .starts_with("NODE_OPTIONS=--require /"));
        let dir = view.path().parent().unwrap().to_path_buf();
        view.close().unwrap();
        assert!(!dir.exists());
    }
}
