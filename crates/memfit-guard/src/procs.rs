//! The guard's process tree, for attribution (the top processes in a log line or
//! /health/memory) and for the tree source. The walks and reads are memfit-sys's.

use memfit_sys::procfs;

/// A process of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub rss: u64,
    /// The whole command line, bounded ([`command_and_name`]).
    pub command: String,
    /// The executable's name without the arguments.
    pub name: String,
}

/// The longest command line the guard shows (logs, /health/memory).
const MAX_COMMAND_CHARS: usize = 120;

/// The longest name the guard shows.
const MAX_NAME_CHARS: usize = 40;

/// A process's command line as the guard shows it, whole and redacted: `(command, name)`.
/// The command is the arguments joined, bounded; the name is the executable's name without
/// its arguments, which can hold secrets (`node …`). Both are `[comm]` for a process without a
/// command line (a zombie, a kernel thread).
pub fn command_and_name(pid: i32) -> (String, String) {
    match procfs::read_argv(pid) {
        Some(argv) => (bounded(&argv.join(" ")), redacted_name(&argv)),
        None => {
            let comm = procfs::read_comm(pid)
                .map(|c| format!("[{c}]"))
                .unwrap_or_default();
            (comm.clone(), comm)
        }
    }
}

fn bounded(joined: &str) -> String {
    if joined.chars().count() > MAX_COMMAND_CHARS {
        let kept: String = joined.chars().take(MAX_COMMAND_CHARS - 1).collect();
        format!("{kept}…")
    } else {
        joined.to_string()
    }
}

/// A process that rewrote its title into argv[0] (`postgres: user db …`, setproctitle) keeps
/// the first word of it.
fn redacted_name(argv: &[String]) -> String {
    let first = argv.first().map(String::as_str).unwrap_or("");
    let word = first.split_whitespace().next().unwrap_or("");
    let base = word.rsplit('/').next().unwrap_or(word);
    let mut name: String = base.chars().take(MAX_NAME_CHARS).collect();
    if argv.len() > 1 || word.len() < first.trim_end().len() || name.len() < base.len() {
        name.push_str(" …");
    }
    name
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
    let mut sized: Vec<(i32, u64)> = procfs::descendants(root)
        .into_iter()
        .filter_map(|pid| Some((pid, procfs::statm_rss(pid)?)))
        .collect();
    sized.sort_by_key(|&(_, rss)| std::cmp::Reverse(rss));
    sized.truncate(n);
    // Command lines only for the processes shown.
    sized
        .into_iter()
        .map(|(pid, rss)| {
            let (command, name) = command_and_name(pid);
            Proc {
                pid,
                rss,
                command,
                name,
            }
        })
        .collect()
}

/// The guard's own resident set (VmRSS), for its footprint metric.
pub fn own_rss() -> u64 {
    procfs::read_status(std::process::id() as i32).map_or(0, |s| s.rss)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn names_keep_no_arguments() {
        assert_eq!(
            redacted_name(&argv(&["/usr/bin/node", "server.js", "--token=x"])),
            "node …"
        );
        assert_eq!(redacted_name(&argv(&["sleep"])), "sleep");
        assert_eq!(
            redacted_name(&argv(&["postgres: app secretdb 10.0.0.1 idle"])),
            "postgres: …"
        );
        assert_eq!(
            redacted_name(&argv(&[&"x".repeat(100)])).chars().count(),
            42
        );
    }
}
