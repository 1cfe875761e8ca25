//! Transient systemd slices, for container engines that use the systemd cgroup driver
//! (dockerd's `native.cgroupdriver=systemd`, podman's `cgroup_manager = "systemd"`). With that
//! driver a container's `--cgroup-parent` must name a slice ("cgroup-parent for systemd cgroup
//! should be a valid slice named as \"xxx.slice\"", moby daemon/daemon_unix.go), and the
//! container becomes `docker-<id>.scope`, a unit systemd creates in that slice. So the run's
//! cgroup is itself a slice: memfit asks systemd (PID 1, over D-Bus, with `busctl`) to start a
//! transient slice holding the run's limits as unit properties, so that systemd, which rewrites
//! a unit's cgroup attributes from its properties whenever it realises the unit, writes the same
//! limits memfit writes (org.freedesktop.systemd1(5), `StartTransientUnit`;
//! systemd.resource-control(5), `MemoryMax=`, `MemorySwapMax=`, `CPUQuota=`).
//!
//! Slice names nest by their dashes (`a-b.slice` is a child of `a.slice`, systemd.slice(5)):
//! the run's name has none, so the slice sits directly under the root slice and nothing of it
//! is left once it is stopped.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a transient slice is started with.
#[derive(Debug, Clone, Copy, Default)]
pub struct SliceLimits {
    pub memory_max: Option<u64>,
    /// `MemorySwapMax=` (cgroup v2 only; systemd ignores it on v1).
    pub swap_max: Option<u64>,
    /// CPUs of time per second, as `docker run --cpus` gives (`CPUQuotaPerSecUSec`).
    pub cpus: Option<f64>,
}

/// The slice unit for a run's cgroup name (`memfit-…`): dashes become underscores, so the
/// slice is not nested.
pub fn slice_name(cgroup_name: &str) -> String {
    format!("{}.slice", cgroup_name.replace('-', "_"))
}

/// Whether `name` is a slice memfit starts: `memfit_` then only `[0-9a-z_]`, `.slice`.
pub fn is_memfit_slice(name: &str) -> bool {
    name.strip_prefix("memfit_")
        .and_then(|rest| rest.strip_suffix(".slice"))
        .is_some_and(|middle| {
            !middle.is_empty()
                && middle
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'_')
        })
}

/// systemd's `busctl`, from its fixed places (not from PATH: memfit runs as root).
fn busctl() -> io::Result<PathBuf> {
    ["/usr/bin/busctl", "/bin/busctl"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "systemd's busctl is not installed (/usr/bin/busctl)",
            )
        })
}

/// Calls a method of systemd's manager object; the reply is discarded.
fn call_manager(method: &str, signature: &str, args: &[String]) -> io::Result<()> {
    let output = Command::new(busctl()?)
        .args([
            "--system",
            "--timeout=20",
            "call",
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            method,
            signature,
        ])
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .output()?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr.lines().next().unwrap_or("").trim();
    Err(io::Error::other(format!(
        "systemd refused {method}: {}",
        if line.is_empty() {
            "no reason given"
        } else {
            line
        }
    )))
}

/// Starts transient slice `name` with `limits` and waits until its cgroup directory exists
/// below `mount` (the hierarchy's mount point: slices under the root slice sit at its top).
pub fn start_slice(name: &str, limits: SliceLimits, mount: &Path) -> io::Result<PathBuf> {
    if !is_memfit_slice(name) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a memfit slice name: {name}"),
        ));
    }
    let mut properties: Vec<String> = vec![
        "Description".into(),
        "s".into(),
        "memfit run: the containers of one run".into(),
        "MemoryAccounting".into(),
        "b".into(),
        "true".into(),
        "TasksAccounting".into(),
        "b".into(),
        "true".into(),
    ];
    let mut count = 3;
    if let Some(max) = limits.memory_max {
        properties.extend(["MemoryMax".into(), "t".into(), max.to_string()]);
        count += 1;
    }
    if let Some(swap) = limits.swap_max {
        properties.extend(["MemorySwapMax".into(), "t".into(), swap.to_string()]);
        count += 1;
    }
    if let Some(cpus) = limits.cpus {
        let per_sec = (cpus * 1_000_000.0).round() as u64;
        properties.extend([
            "CPUAccounting".into(),
            "b".into(),
            "true".into(),
            "CPUQuotaPerSecUSec".into(),
            "t".into(),
            per_sec.to_string(),
        ]);
        count += 2;
    }
    let mut args = vec![name.to_string(), "fail".to_string(), count.to_string()];
    args.extend(properties);
    args.push("0".into());
    call_manager("StartTransientUnit", "ssa(sv)a(sa(sv))", &args)?;
    let path = mount.join(name);
    // The call returns once the start job is queued; the slice's cgroup follows at once.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.is_dir() {
        if Instant::now() > deadline {
            let _ = stop_unit(name);
            return Err(io::Error::other(format!(
                "systemd started {name} but its cgroup {} did not appear",
                path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(path)
}

/// Stops unit `name` (a slice: what is left in it is stopped with it), and waits, a while,
/// until `path` is gone.
pub fn stop_unit_and_wait(name: &str, path: &Path) -> io::Result<()> {
    stop_unit(name)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while path.exists() {
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "systemd stopped {name} but left {}",
                path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn stop_unit(name: &str) -> io::Result<()> {
    call_manager("StopUnit", "ss", &[name.to_string(), "fail".to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_names_do_not_nest_and_are_recognised() {
        let name = slice_name("memfit-123-456-4026531836-0-0a1b2c3d");
        assert_eq!(name, "memfit_123_456_4026531836_0_0a1b2c3d.slice");
        assert!(is_memfit_slice(&name));
        assert!(!is_memfit_slice("memfit-1.slice"));
        assert!(!is_memfit_slice("memfit_.slice"));
        assert!(!is_memfit_slice("memfit_a/../b.slice"));
        assert!(!is_memfit_slice("system.slice"));
    }
}
