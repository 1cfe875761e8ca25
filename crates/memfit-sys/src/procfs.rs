//! Minimal readers of `/proc/PID/{status,stat,statm,cmdline}` and `/proc/meminfo`, and
//! process-tree walks, for samplers that run every few milliseconds.
//!
//! They read the files directly rather than through a general crate: `status` is O(1) in the
//! process's size, while `smaps_rollup` walks its page tables and grows with it (proc(5);
//! bench/README.md measures memfit's own sampling cost).

use std::fs;
use std::path::PathBuf;

/// The fields of `/proc/PID/status` memfit uses, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcStatus {
    pub name: String,
    pub ppid: i32,
    /// `VmRSS`.
    pub rss: u64,
    /// `VmHWM`: the process's own peak RSS, kept by the kernel.
    pub hwm: u64,
    pub rss_anon: u64,
    pub rss_file: u64,
    pub rss_shmem: u64,
}

/// Parses `/proc/PID/status`. Kernel threads and zombies have no `Vm*` lines: zeros.
pub fn parse_status(text: &str) -> ProcStatus {
    let mut status = ProcStatus::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let kib = || -> u64 {
            value
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        match key {
            "Name" => status.name = value.to_string(),
            "PPid" => status.ppid = value.parse().unwrap_or(0),
            "VmRSS" => status.rss = kib(),
            "VmHWM" => status.hwm = kib(),
            "RssAnon" => status.rss_anon = kib(),
            "RssFile" => status.rss_file = kib(),
            "RssShmem" => status.rss_shmem = kib(),
            _ => {}
        }
    }
    status
}

pub fn read_status(pid: i32) -> Option<ProcStatus> {
    fs::read_to_string(proc_path(pid, "status"))
        .ok()
        .map(|t| parse_status(&t))
}

/// Field 22 of `/proc/PID/stat`: start time in clock ticks after boot. Together with the pid
/// it identifies a process across pid reuse. The comm field may hold spaces and parentheses,
/// so fields are counted after the last `)`.
pub fn parse_stat_starttime(text: &str) -> Option<u64> {
    let after = &text[text.rfind(')')? + 1..];
    // after ")": state(3) ppid(4) … starttime(22) → index 19 in the remainder.
    after.split_whitespace().nth(19)?.parse().ok()
}

pub fn read_starttime(pid: i32) -> Option<u64> {
    fs::read_to_string(proc_path(pid, "stat"))
        .ok()
        .and_then(|t| parse_stat_starttime(&t))
}

/// The command line, arguments joined by spaces; `None` for zombies and kernel threads.
pub fn read_cmdline(pid: i32) -> Option<String> {
    read_argv(pid).map(|argv| argv.join(" "))
}

/// The arguments, each whole; `None` for zombies and kernel threads.
pub fn read_argv(pid: i32) -> Option<Vec<String>> {
    let raw = fs::read(proc_path(pid, "cmdline")).ok()?;
    let argv: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (!argv.is_empty()).then_some(argv)
}

/// The direct children of `pid`, from every thread's `task/TID/children` file.
/// `None` when the kernel lacks `CONFIG_PROC_CHILDREN`.
pub fn children(pid: i32) -> Option<Vec<i32>> {
    let tasks = fs::read_dir(proc_path(pid, "task")).ok()?;
    let mut found = Vec::new();
    let mut any_file = false;
    for task in tasks.flatten() {
        if let Ok(text) = fs::read_to_string(task.path().join("children")) {
            any_file = true;
            found.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    any_file.then_some(found)
}

/// Every descendant of `root` (not `root` itself). Walks the `children` files; where the
/// kernel has none, falls back once to a scan of /proc with a parent map.
pub fn descendants(root: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut frontier = vec![root];
    let mut parents: Option<Vec<(i32, i32)>> = None;
    while let Some(pid) = frontier.pop() {
        let kids = children(pid).unwrap_or_else(|| {
            parents
                .get_or_insert_with(parent_map)
                .iter()
                .filter(|(_, ppid)| *ppid == pid)
                .map(|(child, _)| *child)
                .collect()
        });
        for child in kids {
            if child != root && !out.contains(&child) {
                out.push(child);
                frontier.push(child);
            }
        }
    }
    out
}

/// (pid, ppid) of every live process.
fn parent_map() -> Vec<(i32, i32)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, read_status(pid)?.ppid)))
        .collect()
}

/// Resident memory from `/proc/PID/statm` (two numbers: the cheapest read of a process's
/// size, for a sampler on its fast path).
pub fn statm_rss(pid: i32) -> Option<u64> {
    let text = fs::read_to_string(proc_path(pid, "statm")).ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

/// The kernel's short name of a process (`comm`, at most 15 bytes).
pub fn read_comm(pid: i32) -> Option<String> {
    fs::read_to_string(proc_path(pid, "comm"))
        .ok()
        .map(|c| c.trim_end_matches('\n').to_string())
}

/// A `/proc/meminfo` value in bytes, e.g. `MemTotal`, `MemAvailable`, `SwapTotal`.
pub fn meminfo(key: &str) -> Option<u64> {
    let text = fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&text, key)
}

fn parse_meminfo(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
        Some(kib * 1024)
    })
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as u64
    } else {
        4096
    }
}

fn proc_path(pid: i32, file: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{file}"))
}

/// Clock ticks per second for `/proc/PID/stat` times.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

/// Milliseconds since boot on the clock `/proc/PID/stat` start times count from.
pub fn boot_time_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the local timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tnode\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t0\nPid:\t4242\nPPid:\t4200\nVmPeak:\t 1234567 kB\nVmSize:\t 1200000 kB\nVmHWM:\t  410000 kB\nVmRSS:\t  300000 kB\nRssAnon:\t  280000 kB\nRssFile:\t   19000 kB\nRssShmem:\t    1000 kB\nVmSwap:\t       0 kB\nThreads:\t11\n";

    #[test]
    fn status_fields_are_read_in_bytes() {
        let s = parse_status(STATUS);
        assert_eq!(s.name, "node");
        assert_eq!(s.ppid, 4200);
        assert_eq!(s.hwm, 410_000 * 1024);
        assert_eq!(s.rss, 300_000 * 1024);
        assert_eq!(s.rss_anon + s.rss_file + s.rss_shmem, s.rss);
    }

    #[test]
    fn zombie_status_has_no_memory() {
        let s = parse_status("Name:\tsh\nState:\tZ (zombie)\nPPid:\t1\n");
        assert_eq!((s.rss, s.hwm), (0, 0));
    }

    #[test]
    fn stat_starttime_survives_spaces_and_parens_in_comm() {
        let stat = "77 (my (odd) proc) S 1 77 77 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 200 18446744073709551615";
        assert_eq!(parse_stat_starttime(stat), Some(123456));
    }

    #[test]
    fn meminfo_values_are_bytes() {
        let text = "MemTotal:       24534016 kB\nMemFree:        23000000 kB\nSwapTotal:             0 kB\n";
        assert_eq!(parse_meminfo(text, "MemTotal"), Some(24_534_016 * 1024));
        assert_eq!(parse_meminfo(text, "SwapTotal"), Some(0));
        assert_eq!(parse_meminfo(text, "Mem"), None);
    }

    #[test]
    fn a_child_is_a_descendant() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let found = descendants(std::process::id() as i32).contains(&pid);
        let rss = statm_rss(pid);
        child.kill().unwrap();
        let _ = child.wait();
        assert!(found);
        assert!(rss.is_some_and(|r| r > 0));
    }

    #[test]
    fn own_process_is_readable() {
        let me = std::process::id() as i32;
        let status = read_status(me).unwrap();
        assert!(status.rss > 0 && status.hwm >= status.rss);
        assert!(read_starttime(me).is_some());
        assert!(read_cmdline(me).is_some());
    }
}
