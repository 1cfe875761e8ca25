//! The summary's lines of the runtime view: each Node process's V8 heap and off-heap peaks,
//! each JVM's heap, each Python process's traced memory (`--python-tracemalloc`).

use std::fmt::Write as _;

use memfit_core::ByteSize;
use memfit_measure::{short_command, RunReport};

/// Node processes shown; the others are counted.
const SHOWN: usize = 5;

/// `  node      PID `cmd` heap 64.2 MiB of 67 MiB · external 1.4 MiB (buffers 10 KiB) · gc 2.7 s`.
pub fn render(out: &mut String, report: &RunReport) {
    let Some(view) = &report.runtime_view else {
        return;
    };
    let nodes = report.node_processes();
    for (process, v8) in nodes.iter().take(SHOWN) {
        let threads = if v8.threads > 1 {
            format!(" ({} threads)", v8.threads)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{}{threads}: heap {} of {} · external {} (buffers {}) · gc {:.1} s",
            head("node", process),
            ByteSize(v8.heap_used_peak_bytes),
            ByteSize(v8.heap_limit_bytes),
            ByteSize(v8.external_peak_bytes),
            ByteSize(v8.array_buffers_peak_bytes),
            v8.gc_pause_total_ms as f64 / 1000.0
        );
    }
    for process in report
        .processes
        .iter()
        .filter(|p| p.jvm.is_some())
        .take(SHOWN)
    {
        let Some(jvm) = process.jvm else { continue };
        let _ = writeln!(
            out,
            "{}: heap {} of {} (old gen {}) · {} GCs, {:.1} s",
            head("jvm", process),
            ByteSize(jvm.heap_used_peak_bytes),
            ByteSize(jvm.heap_max_bytes),
            ByteSize(jvm.old_gen_used_peak_bytes),
            jvm.gc_count,
            jvm.gc_pause_total_ms as f64 / 1000.0
        );
    }
    let pythons = report.python_processes();
    for (process, python) in pythons.iter().take(SHOWN) {
        let last = if python.exit_reported {
            "at exit"
        } else {
            "last seen"
        };
        let _ = writeln!(
            out,
            "{}: traced peak {} ({last} {}) of RSS {} · tracemalloc's own {}",
            head("python", process),
            ByteSize(python.traced_peak_bytes),
            ByteSize(python.traced_current_bytes),
            ByteSize(process.peak_rss_bytes),
            ByteSize(python.tracemalloc_overhead_peak_bytes)
        );
    }
    if pythons.len() > SHOWN {
        let _ = writeln!(
            out,
            "            … and {} more Python processes (all in the JSON report's processes[].python)",
            pythons.len() - SHOWN
        );
    }
    if nodes.len() > SHOWN {
        let _ = writeln!(
            out,
            "            … and {} more Node processes (all in the JSON report's processes[].v8)",
            nodes.len() - SHOWN
        );
    }
    if view.rejected_lines > 0 {
        let _ = writeln!(
            out,
            "  note      {} line(s) written to the runtime view's pipe were not reports and were ignored",
            view.rejected_lines
        );
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max - 1).collect::<String>())
    }
}

/// The start of a runtime's line: the runtime, the process and its command.
fn head(runtime: &str, process: &memfit_measure::ProcessRecord) -> String {
    format!(
        "  {runtime:<10}{} `{}`",
        process.pid,
        truncate(&short_command(&process.command), 40)
    )
}
