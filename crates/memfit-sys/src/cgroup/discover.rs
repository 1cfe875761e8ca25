//! Where the memory controller is mounted (v1 or v2) and where this process sits in it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::cgroup::CgroupFiles;
use crate::mountinfo;
use crate::CgroupVersion;

/// A memory controller found in `/proc/self/mountinfo`, and this process's place in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundHierarchy {
    pub version: CgroupVersion,
    pub mount: PathBuf,
    /// The process's cgroup relative to the mount (`/` for the root).
    pub own_path: String,
    /// The mount's super options, e.g. `rw,memory` or `rw,nsdelegate`.
    pub mount_options: String,
}

impl FoundHierarchy {
    /// The directory of this process's own cgroup. Without a cgroup namespace a container
    /// sees its host path in /proc/self/cgroup, which does not exist in its own mount; its
    /// mount root is then its own cgroup.
    pub fn own_dir(&self, exists: impl Fn(&Path) -> bool) -> PathBuf {
        let own = self.mount.join(self.own_path.trim_start_matches('/'));
        if exists(&own) {
            own
        } else {
            self.mount.clone()
        }
    }
}

/// Finds the memory controller; see [`find_hierarchy`].
pub fn find_memory_hierarchy(
    mountinfo: &str,
    proc_self_cgroup: &str,
    controllers_of: impl Fn(&Path) -> Option<String>,
) -> Option<FoundHierarchy> {
    find_hierarchy(mountinfo, proc_self_cgroup, "memory", controllers_of)
}

/// Finds a controller (`memory`, `cpu`): a v1 `cgroup` mount with the controller's option
/// (on a hybrid host it is the one that acts), else a `cgroup2` mount whose root lists the
/// controller in `cgroup.controllers` (read through `controllers_of`, so tests can replay a
/// recorded tree).
pub fn find_hierarchy(
    mountinfo: &str,
    proc_self_cgroup: &str,
    controller: &str,
    controllers_of: impl Fn(&Path) -> Option<String>,
) -> Option<FoundHierarchy> {
    let mounts = mountinfo::parse(mountinfo);
    if let Some(mount) = mounts
        .iter()
        .find(|m| m.fstype == "cgroup" && m.has_option(controller))
    {
        let own = proc_self_cgroup.lines().find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            controllers
                .split(',')
                .any(|c| c == controller)
                .then(|| path.to_string())
        })?;
        return Some(FoundHierarchy {
            version: CgroupVersion::V1,
            mount: mount.mount_point.clone(),
            own_path: relative_to_root(&own, &mount.root),
            mount_options: mount.super_options.clone(),
        });
    }
    let mount = mounts.iter().find(|m| {
        m.fstype == "cgroup2"
            && controllers_of(&m.mount_point)
                .is_some_and(|c| c.split_whitespace().any(|c| c == controller))
    })?;
    let own = proc_self_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))?;
    Some(FoundHierarchy {
        version: CgroupVersion::V2,
        mount: mount.mount_point.clone(),
        own_path: relative_to_root(own.trim(), &mount.root),
        mount_options: mount.super_options.clone(),
    })
}

/// This process's hierarchy of a controller, from its own /proc files.
pub fn find_own_hierarchy(controller: &str) -> Result<FoundHierarchy, String> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let own = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    find_hierarchy(&mountinfo, &own, controller, |mount| {
        fs::read_to_string(mount.join("cgroup.controllers")).ok()
    })
    .ok_or_else(|| format!("no cgroup {controller} controller is mounted"))
}

/// The memory cgroup this process is in (a container's, a systemd unit's), to read.
pub fn own_cgroup() -> Option<CgroupFiles> {
    let found = find_own_hierarchy("memory").ok()?;
    let dir = found.own_dir(Path::is_dir);
    Some(CgroupFiles::open(found.version, dir))
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

/// A controller's hierarchy this process can create cgroups under.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    pub version: CgroupVersion,
    /// Directory under which cgroups are created.
    pub parent: PathBuf,
    /// Where the hierarchy is mounted, and the mount's super options: what a container's
    /// own cgroup mount looks like.
    pub mount: PathBuf,
    pub mount_options: String,
}

impl Hierarchy {
    /// Finds a memory controller this process can create cgroups under, or says why not.
    pub fn detect() -> Result<Hierarchy, String> {
        Hierarchy::detect_controller("memory")
    }

    /// Finds a controller (`memory`, `cpu`) this process can create cgroups under: its own
    /// cgroup where that works, else the root; on v2 the controller is enabled for children.
    pub fn detect_controller(controller: &str) -> Result<Hierarchy, String> {
        let found = find_own_hierarchy(controller)?;
        let parent = pick_parent(&found, controller)?;
        probe_writable(&parent)?;
        Ok(Hierarchy {
            version: found.version,
            parent,
            mount: found.mount,
            mount_options: found.mount_options,
        })
    }
}

/// The directory to create cgroups in: this process's own cgroup where that works (a
/// container's or a delegated subtree's limits then still apply above ours), else the nearest
/// ancestor that can hold them.
fn pick_parent(found: &FoundHierarchy, controller: &str) -> Result<PathBuf, String> {
    let mut own = found.own_dir(Path::is_dir);
    match found.version {
        CgroupVersion::V1 => Ok(own),
        CgroupVersion::V2 => {
            // Already moved into a leaf of our own (an earlier controller): its parent is ours.
            if own.file_name() == Some(self_leaf_name().as_ref()) {
                own.pop();
            }
            // cgroup v2's "no internal process" rule: a non-root cgroup that holds processes
            // cannot enable controllers for its children
            // (https://docs.kernel.org/admin-guide/cgroup-v2.html#no-internal-process-constraint).
            if enable_for_children(&own, controller).is_ok() {
                return Ok(own);
            }
            // Alone in our cgroup (`systemd-run --scope memfit …`, memfit as a container's
            // command, memfit under memfit): move into a leaf of our own, as container
            // runtimes' init does, so the runs stay inside this cgroup and under its limits.
            if holds_only_this_process(&own)
                && move_self_into_leaf(&own).is_ok()
                && enable_for_children(&own, controller).is_ok()
            {
                return Ok(own);
            }
            // Shared with other processes (a CI runner's shell, a service's siblings): the
            // nearest ancestor that can hold our cgroups, beside our own; the enclosing
            // limits above it still apply.
            let mut dir = own.clone();
            while dir.pop() && dir.starts_with(&found.mount) {
                if enable_for_children(&dir, controller).is_ok() {
                    return Ok(dir);
                }
            }
            Err(format!(
                "cgroup v2: the {controller} controller cannot be enabled for children of {} (it holds processes) nor of any cgroup above it; run memfit as root, or inside a delegated scope: systemd-run --user --scope -p Delegate=yes memfit …",
                own.display()
            ))
        }
    }
}

/// The leaf memfit moves itself into on cgroup v2 when it is alone in its cgroup.
pub(super) fn self_leaf_name() -> String {
    format!("memfit-self-{}", std::process::id())
}

/// The cgroup memfit moved out of into its leaf, which [`leave_self_leaf`] moves it back to.
static SELF_LEAF_OF: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

fn holds_only_this_process(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.procs"))
        .map(|procs| {
            let me = std::process::id().to_string();
            procs.lines().all(|pid| pid.trim() == me)
        })
        .unwrap_or(false)
}

fn move_self_into_leaf(own: &Path) -> io::Result<()> {
    let mut moved = SELF_LEAF_OF.lock().unwrap_or_else(|e| e.into_inner());
    if moved.is_some() {
        return Ok(());
    }
    let leaf = own.join(self_leaf_name());
    match fs::create_dir(&leaf) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    if let Err(e) = fs::write(leaf.join("cgroup.procs"), std::process::id().to_string()) {
        let _ = fs::remove_dir(&leaf);
        return Err(e);
    }
    *moved = Some(own.to_path_buf());
    Ok(())
}

/// Moves memfit back into the cgroup it started in and removes its leaf (see
/// [`Hierarchy::detect`]): call it once the cgroups made under that cgroup are gone. The
/// cgroup held memfit before, so it enabled no controller for children then: every one
/// enabled now was enabled by memfit and goes off again (one still used by a cgroup someone
/// else made meanwhile stays, and so does memfit). Says what could not be undone.
pub fn leave_self_leaf() -> Result<(), String> {
    let Some(own) = SELF_LEAF_OF
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    else {
        return Ok(());
    };
    let enabled = fs::read_to_string(own.join("cgroup.subtree_control")).unwrap_or_default();
    for controller in enabled.split_whitespace() {
        let _ = fs::write(own.join("cgroup.subtree_control"), format!("-{controller}"));
    }
    let leaf = own.join(self_leaf_name());
    fs::write(own.join("cgroup.procs"), std::process::id().to_string())
        .and_then(|()| fs::remove_dir(&leaf))
        .map_err(|e| format!("could not move back out of {}: {e}", leaf.display()))
}

/// Makes `controller` available to the children of a v2 cgroup (a no-op where it is).
pub fn enable_for_children(dir: &Path, controller: &str) -> io::Result<()> {
    let enabled = fs::read_to_string(dir.join("cgroup.subtree_control"))
        .map(|s| s.split_whitespace().any(|c| c == controller))
        .unwrap_or(false);
    if enabled {
        return Ok(());
    }
    fs::write(dir.join("cgroup.subtree_control"), format!("+{controller}"))
}

fn probe_writable(parent: &Path) -> Result<(), String> {
    let probe = parent.join(format!("memfit-probe-{}", std::process::id()));
    match fs::create_dir(&probe) {
        Ok(()) => {
            let _ = fs::remove_dir(&probe);
            Ok(())
        }
        Err(e) => Err(format!(
            "cannot create a cgroup under {}: {e}; run as root or in a delegated cgroup (systemd-run --user --scope -p Delegate=yes)",
            parent.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v2_mount_below_a_path_with_spaces() {
        let mountinfo = "30 23 0:26 / /sys/fs/my\\040cgroup rw - cgroup2 cgroup2 rw";
        let found = find_memory_hierarchy(mountinfo, "0::/a\n", |_| Some("memory".into())).unwrap();
        assert_eq!(found.mount, PathBuf::from("/sys/fs/my cgroup"));
        assert_eq!(found.own_path, "/a");
    }

    #[test]
    fn v2_in_a_container_namespace_and_on_a_host() {
        let mountinfo = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        let memory = |_: &Path| Some("cpu memory pids".to_string());
        let own_dir = |cgroup: &str, exists: bool| {
            find_memory_hierarchy(mountinfo, cgroup, memory)
                .unwrap()
                .own_dir(|_| exists)
        };
        assert_eq!(own_dir("0::/\n", true), PathBuf::from("/sys/fs/cgroup/"));
        assert_eq!(
            own_dir("0::/kubepods/pod1/c1\n", true),
            PathBuf::from("/sys/fs/cgroup/kubepods/pod1/c1")
        );
        // Host path not visible in the container's mount: the mount root is its cgroup.
        assert_eq!(
            own_dir("0::/docker/abc\n", false),
            PathBuf::from("/sys/fs/cgroup")
        );
    }

    #[test]
    fn v1_memory_controller_below_its_mount_root() {
        let mountinfo = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n36 31 0:33 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        let found =
            find_memory_hierarchy(mountinfo, "5:cpu:/a\n4:memory:/memfit-1\n", |_| None).unwrap();
        assert_eq!(found.version, CgroupVersion::V1);
        assert_eq!(
            found.own_dir(|_| true),
            PathBuf::from("/sys/fs/cgroup/memory/memfit-1")
        );
        assert_eq!(
            find_memory_hierarchy("", "1:name=systemd:/\n", |_| None),
            None
        );
    }
}
