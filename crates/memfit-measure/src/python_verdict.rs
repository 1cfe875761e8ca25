//! What the Python view (`--python-tracemalloc`) says about a run: whether the memory of the
//! Python process that mattered was its own objects — what tracemalloc traces: every block
//! Python's allocators hand out, and what extensions report to it (numpy's array data) — or
//! memory outside Python's allocator, which no Python-level fix finds.

use memfit_core::ByteSize;

use crate::report::{short_command, ProcessRecord, PythonRecord, RunReport};
use crate::runtime_verdict::{mib, shorten};

/// Traced memory from this share of the process's RSS (in percent, tracemalloc's reported
/// tables left out) is "the program's own allocations"; below `OUTSIDE_SHARE_PERCENT`, the
/// memory is outside Python's allocator; between, it is both. Not a half: the tables
/// tracemalloc reports undercount what it costs (malloc's own overhead on each trace): on
/// bench/python_tracemalloc.py's small objects the RSS rose 64 MiB for 34 MiB of reported
/// tables, and a script whose memory is all Python objects shows a traced share near 50%.
const OWN_SHARE_PERCENT: u64 = 40;
const OUTSIDE_SHARE_PERCENT: u64 = 20;
/// tracemalloc's tables are named in the verdict from this size.
const OVERHEAD_THAT_COUNTS: u64 = 1 << 20;
/// Python processes named as not reporting, at most.
const UNREPORTED_NAMED: usize = 3;

impl RunReport {
    /// The Python processes that reported, with their records, largest peak RSS first.
    pub fn python_processes(&self) -> Vec<(&ProcessRecord, PythonRecord)> {
        let mut pythons: Vec<(&ProcessRecord, PythonRecord)> = self
            .processes
            .iter()
            .filter_map(|p| p.python.map(|r| (p, r)))
            .collect();
        pythons.sort_by_key(|(p, _)| std::cmp::Reverse(p.peak_rss_bytes));
        pythons
    }

    /// For the OOM victim if it is Python, else the Python process with the largest RSS:
    /// "Python objects 180 MiB traced at the peak of 250 MiB in `python3 etl.py`: the
    /// program's own allocations …", or "tracemalloc saw 12 MiB of 250 MiB …: the memory is
    /// outside Python's allocator …". `None` when no Python process reported.
    pub(crate) fn python_finding(&self) -> Option<String> {
        let pythons = self.python_processes();
        let victim = self.oom.victims.iter().find_map(|v| {
            pythons
                .iter()
                .find(|(p, _)| p.pid == v.pid)
                .map(|(p, r)| (*p, *r, v.rss_bytes))
        });
        let (process, record, victim_rss) =
            victim.or_else(|| pythons.first().map(|(p, r)| (*p, *r, 0)))?;
        let rss = process.peak_rss_bytes.max(victim_rss);
        if rss == 0 {
            return None;
        }
        let traced = record.traced_peak_bytes;
        let overhead = record.tracemalloc_overhead_peak_bytes;
        // tracemalloc's tables are in the RSS only because of the flag.
        let without_tables = rss.saturating_sub(overhead).max(1);
        let command = shorten(&short_command(&process.command), 50);
        let tables = if overhead >= OVERHEAD_THAT_COUNTS {
            format!(" (tracemalloc's own tables {} of it)", ByteSize(overhead))
        } else {
            String::new()
        };
        let share =
            |percent: u64| traced.saturating_mul(100) >= without_tables.saturating_mul(percent);
        Some(if share(OWN_SHARE_PERCENT) {
            format!(
                "Python objects {} MiB traced at the peak of {}{tables} in `{command}`: the program's own allocations (tracemalloc.take_snapshot() names the lines that made them)",
                mib(traced),
                ByteSize(rss)
            )
        } else if share(OUTSIDE_SHARE_PERCENT) {
            format!(
                "Python objects {} MiB traced at the peak of {}{tables} in `{command}`: part of it the program's own allocations, the rest outside Python's allocator (native extensions' own allocations, mmap, the interpreter and its libraries)",
                mib(traced),
                ByteSize(rss)
            )
        } else {
            format!(
                "tracemalloc saw {} of {}{tables} in `{command}`: the memory is outside Python's allocator (native extensions' own allocations, mmap, the interpreter and its libraries)",
                ByteSize(traced),
                ByteSize(rss)
            )
        })
    }
}

/// What a reader of a run with `--python-tracemalloc` must know: that the flag itself cost
/// memory and time, and which Python processes did not report.
pub(crate) fn caveats(processes: &[ProcessRecord], asked: bool) -> Vec<String> {
    let mut caveats = Vec::new();
    if !asked {
        return caveats;
    }
    let largest_tables = processes
        .iter()
        .filter_map(|p| p.python.map(|r| (p, r.tracemalloc_overhead_peak_bytes)))
        .max_by_key(|(_, overhead)| *overhead);
    if let Some((process, overhead)) = largest_tables {
        caveats.push(format!(
            "--python-tracemalloc: Python ran slower, and tracemalloc's own tables (up to {} in `{}`) count in this run's memory; take a limit from a run without the flag",
            ByteSize(overhead),
            shorten(&short_command(&process.command), 40)
        ));
    }
    let unreported: Vec<String> = processes
        .iter()
        .filter(|p| p.python.is_none() && is_python(&p.command))
        .map(|p| format!("`{}`", shorten(&short_command(&p.command), 40)))
        .collect();
    if !unreported.is_empty() {
        let more = unreported.len().saturating_sub(UNREPORTED_NAMED);
        caveats.push(format!(
            "--python-tracemalloc: {}{} did not report: Python's -I and -E ignore PYTHONPATH and -S skips sitecustomize (or the process ended before its first report)",
            unreported[..unreported.len().min(UNREPORTED_NAMED)].join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        ));
    }
    caveats
}

/// Whether a command line runs a Python interpreter itself: `python`, `python3`,
/// `/usr/bin/python3.11 …`.
fn is_python(command: &str) -> bool {
    let program = command.split(' ').next().unwrap_or_default();
    let name = program.rsplit('/').next().unwrap_or(program);
    name.strip_prefix("python")
        .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An OOM-killed run (its victim pid 4312, 421 MiB), its victim made a Python process
    /// that traced `traced` MiB with `tables` MiB of tracemalloc's own.
    fn victim_traced(traced: u64, tables: u64) -> RunReport {
        let mut report: RunReport =
            serde_json::from_str(include_str!("../tests/fixtures/oom-build-report.json")).unwrap();
        for process in &mut report.processes {
            process.python = (process.pid == 4312).then_some(PythonRecord {
                traced_peak_bytes: traced << 20,
                traced_current_bytes: traced << 20,
                tracemalloc_overhead_peak_bytes: tables << 20,
                exit_reported: false,
            });
        }
        report
    }

    #[test]
    fn the_victims_traced_share_decides_whose_memory_it_was() {
        let own = victim_traced(180, 40).python_finding().unwrap();
        assert!(
            own.starts_with("Python objects 180 MiB traced at the peak of 421 MiB (tracemalloc's own tables 40 MiB of it)"),
            "{own}"
        );
        assert!(own.contains("the program's own allocations"), "{own}");
        let both = victim_traced(100, 0).python_finding().unwrap();
        assert!(both.contains("part of it the program's own"), "{both}");
        let outside = victim_traced(12, 0).python_finding().unwrap();
        assert!(
            outside.starts_with("tracemalloc saw 12 MiB of 421 MiB"),
            "{outside}"
        );
        assert!(outside.contains("outside Python's allocator"), "{outside}");
        // The kernel's verdict comes first, the finding after it.
        let verdict = victim_traced(12, 0).verdict();
        assert!(verdict.contains("OOM-killed") && verdict.contains("tracemalloc saw"));
    }

    #[test]
    fn without_python_records_there_is_no_finding_or_caveat() {
        let mut report = victim_traced(0, 0);
        for process in &mut report.processes {
            process.python = None;
        }
        assert_eq!(report.python_finding(), None);
        assert!(caveats(&report.processes, true).is_empty());
        assert!(caveats(&victim_traced(5, 3).processes, false).is_empty());
        let noted = caveats(&victim_traced(5, 3).processes, true);
        assert!(noted[0].contains("up to 3 MiB"), "{noted:?}");
    }

    #[test]
    fn python_interpreters_are_recognised_by_name() {
        assert!(is_python("/usr/bin/python3.11 -I x.py"));
        assert!(is_python("python -S"));
        assert!(!is_python("bash /root/.pyenv/shims/python3 x.py"));
        assert!(!is_python("python-config --libs"));
        assert!(!is_python("pythonista"));
    }
}
