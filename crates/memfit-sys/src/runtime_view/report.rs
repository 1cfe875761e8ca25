//! One report line of the Node preload, parsed defensively: it comes from the command.

use serde::Deserialize;

/// What one Node thread (isolate) said at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Report {
    /// In memfit's PID namespace (the preload reads `/proc/self`).
    pub pid: i32,
    /// `worker_threads.threadId`: 0 for the main thread.
    pub tid: u32,
    pub main: bool,
    /// `v8.getHeapStatistics()`: `used_heap_size`, `total_heap_size`, `heap_size_limit`.
    pub used: u64,
    pub total: u64,
    pub limit: u64,
    /// `process.memoryUsage()`: `external` (which includes `arrayBuffers`), `arrayBuffers`.
    pub external: u64,
    pub array_buffers: u64,
    /// The sum of the `gc` performance entries' durations so far.
    pub gc_ms: f64,
    /// The thread's last report, at its `exit` event.
    pub end: bool,
}

#[derive(Deserialize)]
struct Line {
    pid: i32,
    tid: u32,
    main: bool,
    used: u64,
    total: u64,
    limit: u64,
    ext: u64,
    ab: u64,
    gc: f64,
    end: bool,
}

/// No V8 heap or buffer total is near this (1 PiB): a larger number is not a measurement.
const MAX_PLAUSIBLE: u64 = 1 << 50;

impl Report {
    pub fn parse(line: &[u8]) -> Option<Report> {
        let l: Line = serde_json::from_slice(line).ok()?;
        let sizes = [l.used, l.total, l.limit, l.ext, l.ab];
        if l.pid <= 0 || sizes.iter().any(|&s| s > MAX_PLAUSIBLE) {
            return None;
        }
        if !l.gc.is_finite() || l.gc < 0.0 {
            return None;
        }
        Some(Report {
            pid: l.pid,
            tid: l.tid,
            main: l.main,
            used: l.used,
            total: l.total,
            limit: l.limit,
            external: l.ext,
            array_buffers: l.ab,
            // A year of pauses is more than any run.
            gc_ms: l.gc.min(3.2e10),
            end: l.end,
        })
    }
}
