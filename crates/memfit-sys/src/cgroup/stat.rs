//! Pure parsers of the cgroup memory files, tested on recorded file contents. Formats from the
//! kernel's Documentation/admin-guide/cgroup-v2.rst ("Memory Interface Files") and
//! Documentation/admin-guide/cgroup-v1/memory.rst.

use std::collections::HashMap;

/// Byte counts from `memory.stat` that memfit reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStat {
    pub anon: u64,
    /// Page cache, including shmem/tmpfs.
    pub file: u64,
    pub shmem: u64,
    /// Kernel memory (slab, stacks, page tables, sockets) where the kernel reports it.
    pub kernel: u64,
    pub inactive_file: u64,
    pub active_file: u64,
}

impl MemoryStat {
    /// Working memory as docker stats and cAdvisor define it: usage − inactive_file, floored
    /// at 0 (google/cadvisor `setMemoryStats`).
    pub fn working(&self, usage: u64) -> u64 {
        usage.saturating_sub(self.inactive_file)
    }
}

/// `key value` lines (memory.events, memory.oom_control, memory.stat) into a map; lines that
/// do not parse are skipped, because "new entries can show up in the middle" (cgroup-v2.rst).
pub fn parse_flat_keyed(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let key = parts.next()?;
            let value = parts.next()?.parse().ok()?;
            Some((key.to_string(), value))
        })
        .collect()
}

/// One value of a flat-keyed file, without building the map (the guard's fast path).
pub fn flat_keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        (parts.next()? == key).then(|| parts.next()?.parse().ok())?
    })
}

/// cgroup v2 `memory.stat` (bytes).
pub fn parse_v2_stat(text: &str) -> MemoryStat {
    let map = parse_flat_keyed(text);
    let get = |k: &str| map.get(k).copied().unwrap_or(0);
    let kernel = if map.contains_key("kernel") {
        get("kernel")
    } else {
        // Before Linux 5.18 there is no `kernel` total; add its parts.
        get("kernel_stack") + get("pagetables") + get("slab") + get("sock") + get("percpu")
    };
    MemoryStat {
        anon: get("anon"),
        file: get("file"),
        shmem: get("shmem"),
        kernel,
        inactive_file: get("inactive_file"),
        active_file: get("active_file"),
    }
}

/// cgroup v1 `memory.stat`, hierarchical `total_*` keys (bytes).
pub fn parse_v1_stat(text: &str) -> MemoryStat {
    let map = parse_flat_keyed(text);
    let get = |k: &str| {
        map.get(&format!("total_{k}"))
            .or_else(|| map.get(k))
            .copied()
            .unwrap_or(0)
    };
    MemoryStat {
        anon: get("rss"),
        file: get("cache"),
        shmem: get("shmem"),
        // v1 reports kernel memory in memory.kmem.usage_in_bytes, not in memory.stat.
        kernel: 0,
        inactive_file: get("inactive_file"),
        active_file: get("active_file"),
    }
}

/// A limit file's value: a number of bytes, `max` (v2: none), or v1's "no limit", a huge
/// page-aligned number (PAGE_COUNTER_MAX × page size, 0x7FFFFFFFFFFFF000 on x86-64).
pub fn parse_limit(text: &str) -> Option<Limit> {
    let t = text.trim();
    if t == "max" {
        return Some(Limit::Unlimited);
    }
    let bytes: u64 = t.parse().ok()?;
    Some(if bytes >= V1_UNLIMITED {
        Limit::Unlimited
    } else {
        Limit::Bytes(bytes)
    })
}

/// Anything at or above 2^60 bytes is "no limit": no machine has an exbibyte of memory, and
/// v1 writes its unlimited value as a number.
const V1_UNLIMITED: u64 = 1 << 60;

/// A memory limit as a cgroup file states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Unlimited,
    Bytes(u64),
}

impl Limit {
    pub fn bytes(self) -> Option<u64> {
        match self {
            Limit::Unlimited => None,
            Limit::Bytes(b) => Some(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_of_both_versions() {
        assert_eq!(parse_limit("max\n"), Some(Limit::Unlimited));
        assert_eq!(parse_limit("9223372036854771712\n"), Some(Limit::Unlimited));
        assert_eq!(parse_limit("536870912\n"), Some(Limit::Bytes(536_870_912)));
        assert_eq!(parse_limit("garbage"), None);
    }

    #[test]
    fn one_flat_keyed_value() {
        let events = "low 0\nhigh 0\nmax 57\noom 3\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(flat_keyed_value(events, "oom_kill"), Some(1));
        assert_eq!(flat_keyed_value(events, "oom"), Some(3));
        assert_eq!(flat_keyed_value(events, "missing"), None);
    }
}
