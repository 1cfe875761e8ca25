//! Pure parsers for cgroup and /proc files, tested on recorded file contents.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::Version;

/// Byte counts from `memory.stat` that memfit reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
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
/// do not parse are skipped, because "new entries can show up in the middle".
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

/// A memory controller found in `/proc/self/mountinfo`, and this process's place in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundHierarchy {
    pub version: Version,
    pub mount: PathBuf,
    /// The process's cgroup relative to the mount (`/` for the root).
    pub own_path: String,
    /// The mount's super options, e.g. `rw,memory` or `rw,nsdelegate`.
    pub mount_options: String,
}

/// Finds the memory controller: a v1 `cgroup` mount with the `memory` option, else a
/// `cgroup2` mount whose root lists `memory` in `cgroup.controllers` (read through
/// `controllers_of`, so tests can replay a recorded tree).
pub fn find_memory_hierarchy(
    mountinfo: &str,
    proc_self_cgroup: &str,
    controllers_of: impl Fn(&Path) -> Option<String>,
) -> Option<FoundHierarchy> {
    let mounts: Vec<MountEntry> = mountinfo.lines().filter_map(MountEntry::parse).collect();
    if let Some(mount) = mounts
        .iter()
        .find(|m| m.fstype == "cgroup" && m.super_options.split(',').any(|o| o == "memory"))
    {
        let own = proc_self_cgroup.lines().find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            controllers
                .split(',')
                .any(|c| c == "memory")
                .then(|| path.to_string())
        })?;
        return Some(FoundHierarchy {
            version: Version::V1,
            mount: PathBuf::from(&mount.mount_point),
            own_path: relative_to_root(&own, &mount.root),
            mount_options: mount.super_options.clone(),
        });
    }
    let mount = mounts.iter().find(|m| {
        m.fstype == "cgroup2"
            && controllers_of(Path::new(&m.mount_point))
                .is_some_and(|c| c.split_whitespace().any(|c| c == "memory"))
    })?;
    let own = proc_self_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))?;
    Some(FoundHierarchy {
        version: Version::V2,
        mount: PathBuf::from(&mount.mount_point),
        own_path: relative_to_root(own.trim(), &mount.root),
        mount_options: mount.super_options.clone(),
    })
}

fn relative_to_root(path: &str, root: &str) -> String {
    if root == "/" {
        return path.to_string();
    }
    match path.strip_prefix(root) {
        Some("") => "/".to_string(),
        Some(rest) if rest.starts_with('/') => rest.to_string(),
        _ => path.to_string(),
    }
}

struct MountEntry {
    root: String,
    mount_point: String,
    fstype: String,
    super_options: String,
}

impl MountEntry {
    /// `36 35 98:0 /root /mnt rw,noatime master:1 - cgroup2 cgroup2 rw,nsdelegate`
    fn parse(line: &str) -> Option<MountEntry> {
        let (before, after) = line.split_once(" - ")?;
        let fields: Vec<&str> = before.split_whitespace().collect();
        let mut after = after.split_whitespace();
        Some(MountEntry {
            root: unescape_mount(fields.get(3)?),
            mount_point: unescape_mount(fields.get(4)?),
            fstype: after.next()?.to_string(),
            super_options: after.nth(1).unwrap_or_default().to_string(),
        })
    }
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape_mount(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let octal = std::str::from_utf8(&bytes[i + 1..i + 4]).ok();
            if let Some(v) = octal.and_then(|o| u8::from_str_radix(o, 8).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_octal_escapes_are_decoded() {
        assert_eq!(unescape_mount("/mnt/with\\040space"), "/mnt/with space");
        assert_eq!(unescape_mount("/plain"), "/plain");
        assert_eq!(unescape_mount("/trailing\\04"), "/trailing\\04");
    }

    #[test]
    fn a_v2_mount_below_a_path_with_spaces() {
        let mountinfo = "30 23 0:26 / /sys/fs/my\\040cgroup rw - cgroup2 cgroup2 rw";
        let found = find_memory_hierarchy(mountinfo, "0::/a\n", |_| Some("memory".into())).unwrap();
        assert_eq!(found.mount, PathBuf::from("/sys/fs/my cgroup"));
        assert_eq!(found.own_path, "/a");
    }
}
