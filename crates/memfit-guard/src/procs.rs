//! The guard's process tree, for attribution (the top processes in a log line or
//! /health/memory) and for the tree source. The walks and reads are memfit-sys's.

use memfit_sys::procfs;

/// A process of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub rss: u64,
    pub command: String,
}

/// The longest command line the guard shows (logs, /health/memory).
const MAX_COMMAND_CHARS: usize = 120;

/// The command line as the guard shows it: arguments joined, bounded, or `[comm]` for a
/// process without one (a zombie, a kernel thread).
pub fn command(pid: i32) -> String {
    match procfs::read_cmdline(pid) {
        Some(joined) if joined.chars().count() > MAX_COMMAND_CHARS => format!(
            "{}…",
            joined
                .chars()
                .take(MAX_COMMAND_CHARS - 1)
                .collect::<String>()
        ),
        Some(joined) => joined,
        None => procfs::read_comm(pid)
            .map(|c| format!("[{c}]"))
            .unwrap_or_default(),
    }
}

/// Σ RSS of the descendants of `root`.
pub fn tree_rss(root: i32) -> u64 {
    procfs::descendants(root)
        .iter()
        .filter_map(|&p| procfs::statm_rss(p))
        .sum()
}

/// The largest descendants of `root` by RSS.
pub fn top(root: i32, n: usize) -> Vec<Proc> {
    let mut procs: Vec<Proc> = procfs::descendants(root)
        .into_iter()
        .filter_map(|pid| {
            Some(Proc {
                pid,
                rss: procfs::statm_rss(pid)?,
                command: command(pid),
            })
        })
        .collect();
    procs.sort_by_key(|p| std::cmp::Reverse(p.rss));
    procs.truncate(n);
    procs
}

/// The guard's own resident set (VmRSS), for its footprint metric.
pub fn own_rss() -> u64 {
    procfs::read_status(std::process::id() as i32).map_or(0, |s| s.rss)
}
