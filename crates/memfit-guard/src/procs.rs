//! The guard's process tree from /proc: for attribution (the top processes in a log line or
//! /health/memory), for the tree source, and for waiting on grandchildren at shutdown.

use std::collections::HashMap;
use std::fs;

/// A process of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub rss: u64,
    pub command: String,
}

fn page_size() -> u64 {
    // SAFETY: sysconf with a valid name.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as u64
    } else {
        4096
    }
}

/// The parent of every live process.
fn parents() -> HashMap<i32, i32> {
    let mut map = HashMap::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return map;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The command may contain spaces and parentheses: fields follow the last ')'.
            if let Some(rest) = stat.rfind(')').map(|p| &stat[p + 2..]) {
                if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|v| v.parse().ok()) {
                    map.insert(pid, ppid);
                }
            }
        }
    }
    map
}

/// The direct children of `pid` from every thread's `task/TID/children` file
/// (CONFIG_PROC_CHILDREN); `None` when the kernel lacks it.
fn children(pid: i32) -> Option<Vec<i32>> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut found = Vec::new();
    let mut any = false;
    for task in tasks.flatten() {
        if let Ok(text) = fs::read_to_string(task.path().join("children")) {
            any = true;
            found.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    any.then_some(found)
}

/// Every descendant of `root`, excluding it. Walks only the subtree where the kernel lists
/// children; scans /proc otherwise.
pub fn descendants(root: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut frontier = vec![root];
    let mut scanned: Option<HashMap<i32, i32>> = None;
    while let Some(p) = frontier.pop() {
        let kids = match children(p) {
            Some(kids) => kids,
            None => {
                let map = scanned.get_or_insert_with(parents);
                map.iter()
                    .filter(|(_, &pp)| pp == p)
                    .map(|(&c, _)| c)
                    .collect()
            }
        };
        for child in kids {
            if child != root && !out.contains(&child) {
                out.push(child);
                frontier.push(child);
            }
        }
    }
    out
}

/// RSS of a process from statm (two numbers: one small read).
pub fn rss(pid: i32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

pub fn command(pid: i32) -> String {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let text: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if text.is_empty() {
        fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| format!("[{}]", c.trim()))
            .unwrap_or_default()
    } else {
        let joined = text.join(" ");
        if joined.chars().count() > 120 {
            format!("{}…", joined.chars().take(119).collect::<String>())
        } else {
            joined
        }
    }
}

/// Σ RSS of the descendants of `root`.
pub fn tree_rss(root: i32) -> u64 {
    descendants(root).iter().filter_map(|&p| rss(p)).sum()
}

/// The largest descendants of `root` by RSS.
pub fn top(root: i32, n: usize) -> Vec<Proc> {
    let mut procs: Vec<Proc> = descendants(root)
        .into_iter()
        .filter_map(|pid| {
            Some(Proc {
                pid,
                rss: rss(pid)?,
                command: command(pid),
            })
        })
        .collect();
    procs.sort_by_key(|p| std::cmp::Reverse(p.rss));
    procs.truncate(n);
    procs
}

/// The process's own resident set (VmRSS) and peak (VmHWM), for the guard's own footprint.
pub fn own_rss() -> (u64, u64) {
    let text = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (get("VmRSS:"), get("VmHWM:"))
}
