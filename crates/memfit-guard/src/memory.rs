//! Where the memory numbers come from: the container's cgroup (v2 or v1), else the machine
//! (`/proc/meminfo`, as on a Fly.io VM), else the process tree. Reads are a few small files.

use std::fs;
use std::path::{Path, PathBuf};

/// cgroup v1 reports "no limit" as a huge page-aligned number.
const UNLIMITED: u64 = 1 << 60;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    CgroupV2(PathBuf),
    CgroupV1(PathBuf),
    /// The machine: usage = MemTotal − MemAvailable.
    Meminfo,
    /// Σ RSS of the guard's process tree.
    Tree,
}

/// One reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    /// What the limit is compared with: the working set (usage − inactive file cache), as
    /// Kubernetes and cAdvisor count it: the kernel reclaims that cache before it kills.
    pub working: u64,
    /// Charged usage, page cache included.
    pub charged: u64,
}

fn read_u64(path: &Path) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    let t = text.trim();
    if t == "max" {
        return Some(u64::MAX);
    }
    t.parse().ok()
}

fn keyed(path: &Path, key: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// The memory cgroup this process is in, from /proc/self/cgroup and /proc/self/mountinfo.
pub fn own_cgroup() -> Option<Source> {
    let cgroups = fs::read_to_string("/proc/self/cgroup").ok()?;
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    find_cgroup(&cgroups, &mountinfo, |p| p.is_dir())
}

/// The parsing behind [`own_cgroup`], on given file contents (tested on recorded trees).
pub fn find_cgroup(
    cgroups: &str,
    mountinfo: &str,
    exists: impl Fn(&Path) -> bool,
) -> Option<Source> {
    // mountinfo: "36 35 0:30 /root /mount rw - cgroup2 cgroup2 rw"
    let mounts: Vec<(String, String, String, String)> = mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let f: Vec<&str> = pre.split_whitespace().collect();
            let mut p = post.split_whitespace();
            let fstype = p.next()?.to_string();
            let _source = p.next();
            let opts = p.next().unwrap_or("").to_string();
            Some((
                f.get(3)?.to_string(),
                f.get(4)?.replace("\\040", " "),
                fstype,
                opts,
            ))
        })
        .collect();
    let locate = |mount_root: &str, mount_point: &str, path: &str| -> PathBuf {
        let rel = if mount_root != "/" {
            path.strip_prefix(mount_root).unwrap_or(path)
        } else {
            path
        };
        let dir = Path::new(mount_point).join(rel.trim_start_matches('/'));
        // Without a cgroup namespace a container sees its host path; its mount root is then
        // its own cgroup.
        if exists(&dir) {
            dir
        } else {
            PathBuf::from(mount_point)
        }
    };
    // v1 memory controller first: on hybrid hosts it is the one that limits.
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == "memory") {
            if let Some((root, point, _, _)) = mounts
                .iter()
                .find(|m| m.2 == "cgroup" && m.3.split(',').any(|o| o == "memory"))
            {
                return Some(Source::CgroupV1(locate(root, point, path)));
            }
        }
    }
    let path = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
    let (root, point, _, _) = mounts.iter().find(|m| m.2 == "cgroup2")?;
    let dir = locate(root, point, path);
    Some(Source::CgroupV2(dir))
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::CgroupV2(d) => format!("cgroup v2 {}", d.display()),
            Source::CgroupV1(d) => format!("cgroup v1 {}", d.display()),
            Source::Meminfo => {
                "the machine's memory (/proc/meminfo: no cgroup limit, a VM)".to_string()
            }
            Source::Tree => "the process tree (Σ RSS; no cgroup)".to_string(),
        }
    }

    /// The limit the source enforces: the smallest of the cgroup and its ancestors (a pod's
    /// limit above a container's), or the machine's RAM.
    pub fn limit(&self) -> Option<u64> {
        match self {
            Source::CgroupV2(dir) | Source::CgroupV1(dir) => {
                let v2 = matches!(self, Source::CgroupV2(_));
                let mut best = u64::MAX;
                let mut d = Some(dir.as_path());
                // Up to the mount point (a directory without the memory files ends it).
                while let Some(cur) = d {
                    let values: Vec<Option<u64>> = if v2 {
                        vec![
                            read_u64(&cur.join("memory.max")),
                            read_u64(&cur.join("memory.high")),
                        ]
                    } else {
                        vec![read_u64(&cur.join("memory.limit_in_bytes"))]
                    };
                    if values.iter().all(Option::is_none) {
                        break;
                    }
                    for v in values.into_iter().flatten() {
                        best = best.min(v);
                    }
                    d = cur.parent();
                }
                (best < UNLIMITED).then_some(best)
            }
            Source::Meminfo | Source::Tree => meminfo("MemTotal"),
        }
    }

    pub fn read(&self, tree: impl FnOnce() -> u64) -> Reading {
        match self {
            Source::CgroupV2(dir) => {
                let charged = read_u64(&dir.join("memory.current")).unwrap_or(0);
                let inactive = keyed(&dir.join("memory.stat"), "inactive_file").unwrap_or(0);
                Reading {
                    working: charged.saturating_sub(inactive),
                    charged,
                }
            }
            Source::CgroupV1(dir) => {
                let charged = read_u64(&dir.join("memory.usage_in_bytes")).unwrap_or(0);
                let inactive = keyed(&dir.join("memory.stat"), "total_inactive_file").unwrap_or(0);
                Reading {
                    working: charged.saturating_sub(inactive),
                    charged,
                }
            }
            Source::Meminfo => {
                let total = meminfo("MemTotal").unwrap_or(0);
                let available = meminfo("MemAvailable").unwrap_or(total);
                let used = total.saturating_sub(available);
                Reading {
                    working: used,
                    charged: used,
                }
            }
            Source::Tree => {
                let sum = tree();
                Reading {
                    working: sum,
                    charged: sum,
                }
            }
        }
    }

    /// The kernel's OOM kills in this cgroup so far (v2 memory.events, v1 memory.oom_control).
    pub fn oom_kills(&self) -> Option<u64> {
        match self {
            Source::CgroupV2(dir) => keyed(&dir.join("memory.events"), "oom_kill"),
            Source::CgroupV1(dir) => keyed(&dir.join("memory.oom_control"), "oom_kill"),
            _ => None,
        }
    }

    /// The kernel's own peak (v2 memory.peak, v1 max_usage_in_bytes), when it has one.
    pub fn kernel_peak(&self) -> Option<u64> {
        match self {
            Source::CgroupV2(dir) => read_u64(&dir.join("memory.peak")),
            Source::CgroupV1(dir) => read_u64(&dir.join("memory.max_usage_in_bytes")),
            _ => None,
        }
    }

    /// Memory pressure: the share of the last 10 s some task stalled on memory (v2 PSI).
    pub fn pressure_some_avg10(&self) -> Option<f64> {
        let Source::CgroupV2(dir) = self else {
            return None;
        };
        let text = fs::read_to_string(dir.join("memory.pressure")).ok()?;
        let line = text.lines().find(|l| l.starts_with("some"))?;
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("avg10="))
            .and_then(|v| v.parse().ok())
    }
}

/// A /proc/meminfo value in bytes.
pub fn meminfo(key: &str) -> Option<u64> {
    let text = fs::read_to_string("/proc/meminfo").ok()?;
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
        Some(kb * 1024)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_in_a_container_namespace_and_on_a_host() {
        let mountinfo = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            find_cgroup("0::/\n", mountinfo, |_| true),
            Some(Source::CgroupV2("/sys/fs/cgroup/".into()))
        );
        assert_eq!(
            find_cgroup("0::/kubepods/pod1/c1\n", mountinfo, |_| true),
            Some(Source::CgroupV2("/sys/fs/cgroup/kubepods/pod1/c1".into()))
        );
        // Host path not visible in the container's mount: the mount root is its cgroup.
        assert_eq!(
            find_cgroup("0::/docker/abc\n", mountinfo, |_| false),
            Some(Source::CgroupV2("/sys/fs/cgroup".into()))
        );
    }

    #[test]
    fn v1_memory_controller() {
        let mountinfo = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n36 31 0:33 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        let cgroups = "5:cpu:/a\n4:memory:/memfit-1\n";
        assert_eq!(
            find_cgroup(cgroups, mountinfo, |_| true),
            Some(Source::CgroupV1("/sys/fs/cgroup/memory/memfit-1".into()))
        );
        assert_eq!(find_cgroup("1:name=systemd:/\n", "", |_| true), None);
    }
}
