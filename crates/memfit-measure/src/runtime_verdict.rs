//! What the runtime view says about a run: which part of a Node process grew to its limit —
//! the V8 heap, which `--max-old-space-size` caps, or memory outside it (Buffers, other
//! external memory), which no heap flag caps.

use memfit_core::ByteSize;

use crate::report::{short_command, ProcessRecord, RunReport, V8Record};

/// The heap is at its cap from this share of `heap_size_limit` (in percent): V8 aborts
/// before `used` reaches the limit, as the young generation's reserve counts in it.
const NEAR_CAP_PERCENT: u64 = 85;
/// Off-heap memory that counts in a verdict: below it, it is a Node process's normal
/// (a few MiB of external memory is Node's own).
const OFF_HEAP_THAT_COUNTS: u64 = 32 << 20;

impl RunReport {
    /// The Node processes that reported, with their V8 records, largest first (heap used +
    /// external).
    pub fn node_processes(&self) -> Vec<(&ProcessRecord, V8Record)> {
        let mut nodes: Vec<(&ProcessRecord, V8Record)> = self
            .processes
            .iter()
            .filter_map(|p| p.v8.map(|v| (p, v)))
            .collect();
        nodes.sort_by_key(|(_, v)| {
            std::cmp::Reverse(v.heap_used_peak_bytes.saturating_add(v.external_peak_bytes))
        });
        nodes
    }

    /// Which part of Node's memory grew to a limit, e.g. "V8 heap 64 of 67 MiB in `node
    /// build.js`: raise --max-old-space-size or fix the leak"; `None` without a runtime view,
    /// or when the run neither failed nor came near the heap's cap. Else the JVM's heap, else
    /// (with `--python-tracemalloc`) what tracemalloc saw.
    pub fn runtime_finding(&self) -> Option<String> {
        self.node_or_jvm_finding().or_else(|| self.python_finding())
    }

    fn node_or_jvm_finding(&self) -> Option<String> {
        let nodes = self.node_processes();
        let failed = self.oom_killed == Some(true) || self.exit.status != 0;
        // The process that matters: the OOM victim, one V8 aborted, else the largest.
        let victim = self
            .oom
            .victims
            .iter()
            .find_map(|v| nodes.iter().find(|(p, _)| p.pid == v.pid));
        let aborted = nodes.iter().find(|(p, _)| {
            p.exit
                .as_ref()
                .is_some_and(|e| e.signal == Some(libc::SIGABRT) || e.code == Some(134))
        });
        let Some((process, v8)) = victim.or(aborted).or(nodes.first()) else {
            return self.jvm_finding(failed);
        };
        let used = v8.heap_used_peak_bytes;
        let cap = v8.heap_limit_bytes;
        let off_heap = v8.external_peak_bytes;
        let command = shorten(&short_command(&process.command), 50);
        let near_cap = cap > 0 && used.saturating_mul(100) >= cap.saturating_mul(NEAR_CAP_PERCENT);
        if near_cap {
            return Some(format!(
                "V8 heap {} of {} in `{command}`: raise --max-old-space-size (within the limit: memfit plan) or fix the leak",
                mib(used),
                ByteSize(cap)
            ));
        }
        if !failed {
            return None;
        }
        if off_heap >= OFF_HEAP_THAT_COUNTS && off_heap >= used {
            return Some(format!(
                "Buffers/external {} off-heap in `{command}` (V8 heap only {} of {}): no heap flag helps; hold fewer Buffers at once, or raise the limit",
                ByteSize(off_heap),
                mib(used),
                ByteSize(cap)
            ));
        }
        if self.oom_killed == Some(true) && used >= OFF_HEAP_THAT_COUNTS {
            return Some(format!(
                "V8 heap {} (its cap {} is above what the limit leaves it) in `{command}`: set --max-old-space-size below the limit (memfit plan), so V8 collects before the kernel kills",
                ByteSize(used),
                ByteSize(cap)
            ));
        }
        Some(format!(
            "V8 heap {} of {}, {} off-heap in `{command}`: neither grew to a limit",
            mib(used),
            ByteSize(cap),
            ByteSize(off_heap)
        ))
    }
}

impl RunReport {
    /// For a JVM: its heap at its maximum when the run failed (an OutOfMemoryError, or the
    /// kernel's kill).
    fn jvm_finding(&self, failed: bool) -> Option<String> {
        if !failed {
            return None;
        }
        let victim = self.oom.victims.first().map(|v| v.pid);
        let (process, jvm) = self
            .processes
            .iter()
            .filter_map(|p| p.jvm.map(|j| (p, j)))
            .max_by_key(|(p, j)| (Some(p.pid) == victim, j.heap_used_peak_bytes))?;
        let command = shorten(&short_command(&process.command), 50);
        let (used, max) = (jvm.heap_used_peak_bytes, jvm.heap_max_bytes);
        if max > 0 && used.saturating_mul(100) >= max.saturating_mul(90) {
            return Some(format!(
                "Java heap {} of {} in `{command}`: raise -Xmx (or -XX:MaxRAMPercentage) within the limit, or fix the leak",
                mib(used),
                ByteSize(max)
            ));
        }
        Some(format!(
            "Java heap {} of {} in `{command}`: the heap did not reach its maximum, the rest is metaspace, threads and native memory",
            mib(used),
            ByteSize(max)
        ))
    }
}

/// `64.2` (MiB, without the unit: "64.2 of 67 MiB").
pub(crate) fn mib(bytes: u64) -> String {
    let value = bytes as f64 / (1u64 << 20) as f64;
    format!("{value:.1}").trim_end_matches(".0").to_string()
}

pub(crate) fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{kept}…")
}
