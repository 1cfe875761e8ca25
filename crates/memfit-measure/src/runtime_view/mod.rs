//! The runtime view: what the runtimes inside the command say about their own memory, beside
//! what the kernel charges. For Node, memfit-sys's [`NodeView`] (a preload injected with
//! `NODE_OPTIONS=--require` that reports V8's heap statistics, `process.memoryUsage()` and GC
//! pauses of every Node process and worker thread through a FIFO; shared with the guard);
//! here, what a run keeps of it: each process's peaks. For JVMs, their own counters. For
//! Python, with `--python-tracemalloc`, tracemalloc's traced memory through the same FIFO.
//! What comes through the FIFO is the command's word, so it is bounded and parsed
//! defensively, and only counted for processes of the run.

mod jvm;

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::time::Duration;

use memfit_sys::runtime_view::{Access, Isolates, NodeView, PythonReport};

use crate::report::{JvmRecord, PythonRecord, RuntimeSample, V8Record};

/// Python processes followed in a run; reports of more are rejected.
const MAX_PYTHON_PROCESSES: usize = 4096;

/// The Node view and what the processes reported.
pub(crate) struct RuntimeView {
    node: NodeView,
    /// Each process's peaks so far.
    processes: HashMap<i32, V8Record>,
    /// Lines that were not a report (malformed, too long, too many threads).
    pub(crate) rejected: u64,
    /// The JVMs of the run, from their own counters.
    jvm: jvm::JvmView,
    /// Each Python process's record, with `--python-tracemalloc`.
    pythons: HashMap<i32, PythonRecord>,
    /// Python reports that did not fit ([`MAX_PYTHON_PROCESSES`]).
    python_rejected: u64,
}

impl RuntimeView {
    /// Writes the preload and its FIFO into a fresh directory under the temporary directory
    /// (never the command's: a repository is not memfit's to write to). Any user may load the
    /// preload and write to the FIFO (0711, 0644, 0622): a command that drops privileges
    /// before Node (`su-exec`, `gosu`, `setpriv`) would otherwise not start at all, since
    /// Node refuses a `--require` it cannot read. With `python`, Python processes report
    /// tracemalloc's counters too.
    pub(crate) fn start(period: Option<Duration>, python: bool) -> io::Result<RuntimeView> {
        Ok(RuntimeView {
            node: NodeView::start_with(period, Access::AnyUser, python)?,
            processes: HashMap::new(),
            rejected: 0,
            jvm: jvm::JvmView::default(),
            pythons: HashMap::new(),
            python_rejected: 0,
        })
    }

    /// What a Python process reported, when it did.
    pub(crate) fn python_record(&self, pid: i32) -> Option<PythonRecord> {
        self.pythons.get(&pid).copied()
    }

    /// Adds the preload to `NAME=value` environment entries.
    pub(crate) fn inject(&self, entries: &mut Vec<OsString>) {
        self.node.inject(entries);
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
        let processes = &mut self.processes;
        self.node
            .drain(|isolates, pid| update_process(processes, isolates, pid));
        for report in self.node.take_python_reports() {
            self.python_rejected += u64::from(!update_python(&mut self.pythons, &report));
        }
        self.rejected = self.node.rejected + self.python_rejected;
    }

    /// The sums over the live processes' latest reports, `None` when none has reported.
    pub(crate) fn sample(&self, live: &[i32]) -> Option<RuntimeSample> {
        let sum = self.node.isolates().sum(|pid| live.contains(&pid))?;
        Some(RuntimeSample {
            heap_used_bytes: sum.heap_used_bytes,
            heap_total_bytes: sum.heap_total_bytes,
            external_bytes: sum.external_bytes,
            array_buffers_bytes: sum.array_buffers_bytes,
        })
    }

    /// What a process reported, when it did.
    pub(crate) fn record(&self, pid: i32) -> Option<V8Record> {
        self.processes.get(&pid).copied()
    }

    /// Removes the preload and the FIFO. Dropping the view does too.
    pub(crate) fn close(self) -> io::Result<()> {
        self.node.close()
    }
}

/// Folds a Python report into its process's record; `false` when there are too many.
fn update_python(pythons: &mut HashMap<i32, PythonRecord>, report: &PythonReport) -> bool {
    if !pythons.contains_key(&report.pid) && pythons.len() >= MAX_PYTHON_PROCESSES {
        return false;
    }
    let record = pythons.entry(report.pid).or_default();
    record.traced_peak_bytes = record.traced_peak_bytes.max(report.peak);
    record.traced_current_bytes = report.current;
    record.tracemalloc_overhead_peak_bytes =
        record.tracemalloc_overhead_peak_bytes.max(report.overhead);
    record.exit_reported |= report.end;
    true
}

/// Folds a process's threads' latest reports into its peaks.
fn update_process(processes: &mut HashMap<i32, V8Record>, isolates: &Isolates, pid: i32) {
    let mut sum = RuntimeSample::default();
    let mut limit = None;
    let mut gc_ms = 0.0;
    let mut threads = 0;
    for r in isolates.of(pid) {
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
    let record = processes.entry(pid).or_default();
    record.heap_limit_bytes = limit.unwrap_or(record.heap_limit_bytes);
    record.heap_used_peak_bytes = record.heap_used_peak_bytes.max(sum.heap_used_bytes);
    record.heap_total_peak_bytes = record.heap_total_peak_bytes.max(sum.heap_total_bytes);
    record.external_peak_bytes = record.external_peak_bytes.max(sum.external_bytes);
    record.array_buffers_peak_bytes = record.array_buffers_peak_bytes.max(sum.array_buffers_bytes);
    // Pauses only add up; a thread's total is kept when the thread is gone.
    record.gc_pause_total_ms = record.gc_pause_total_ms.max(gc_ms.round() as u64);
    record.threads = record.threads.max(threads);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(pid: i32, tid: u32, main: bool, used: u64, ext: u64, end: bool) -> String {
        format!(
            "{{\"pid\":{pid},\"tid\":{tid},\"main\":{main},\"used\":{used},\"total\":{used},\"limit\":1000,\"ext\":{ext},\"ab\":{ext},\"gc\":1.5,\"end\":{end}}}\n"
        )
    }

    fn take(view: &mut RuntimeView, text: &str) {
        let processes = &mut view.processes;
        view.node.take_bytes(text.as_bytes(), &mut |isolates, pid| {
            update_process(processes, isolates, pid)
        });
    }

    #[test]
    fn threads_add_up_per_process_and_a_main_exit_ends_them_all() {
        let mut view = RuntimeView::start(None, false).unwrap();
        take(&mut view, &line(10, 0, true, 100, 5, false));
        take(&mut view, &line(10, 1, false, 50, 1, false));
        assert_eq!(view.sample(&[10]).unwrap().heap_used_bytes, 150);
        assert_eq!(view.sample(&[11]), None);
        take(&mut view, &line(10, 0, true, 20, 5, true));
        assert_eq!(view.sample(&[10]), None);
        let record = view.record(10).unwrap();
        assert_eq!(record.heap_used_peak_bytes, 150);
        assert_eq!(record.threads, 2);
        assert_eq!(record.heap_limit_bytes, 1000);
        assert_eq!(record.gc_pause_total_ms, 3);
        view.close().unwrap();
    }
}
