//! Docker test helpers shared by docker.rs and guard_image.rs: a reachable dockerd with the
//! cgroupfs driver, and the Node test image, assembled from this machine's node, the libraries
//! it links and a static busybox with `docker import` (no registry, no network).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Node test image: node at /usr/bin/node, a busybox shell, nothing else.
pub const NODE_IMAGE: &str = "memfit-test/node:20";

/// Whether the Node test image is there already.
pub fn node_image_exists() -> bool {
    Command::new("docker")
        .args(["image", "inspect", NODE_IMAGE])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A reachable dockerd with the cgroupfs driver, and the test image (made from this machine's
/// node, the libraries it links and a static busybox, with `docker import`: no registry).
pub fn prepare_engine() -> Result<(), String> {
    let info = Command::new("docker")
        .args(["info", "--format", "{{.CgroupDriver}}"])
        .output()
        .map_err(|e| format!("no docker CLI ({e})"))?;
    if !info.status.success() {
        return Err(format!(
            "no Docker Engine answers: {}",
            String::from_utf8_lossy(&info.stderr).trim()
        ));
    }
    let driver = String::from_utf8_lossy(&info.stdout).trim().to_string();
    if driver != "cgroupfs" {
        return Err(format!(
            "dockerd uses the {driver} cgroup driver; the suite needs cgroupfs"
        ));
    }
    if !node_image_exists() {
        build_image()?;
    }
    Ok(())
}

pub fn build_image() -> Result<(), String> {
    let root = tempfile::tempdir().map_err(|e| e.to_string())?;
    let node = which("node").ok_or("no node on PATH")?;
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        return Err("no static busybox at /bin/busybox (Debian: busybox-static)".into());
    }
    let copy = |from: &Path, to: &str| -> Result<(), String> {
        let target = root.path().join(to.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().unwrap()).map_err(|e| e.to_string())?;
        std::fs::copy(from, &target).map_err(|e| format!("{}: {e}", from.display()))?;
        Ok(())
    };
    copy(busybox, "/bin/busybox")?;
    for tool in ["sh", "cat", "echo", "sleep", "ls", "nproc", "env", "true"] {
        std::os::unix::fs::symlink("busybox", root.path().join("bin").join(tool))
            .map_err(|e| e.to_string())?;
    }
    copy(
        &std::fs::canonicalize(&node).map_err(|e| e.to_string())?,
        "/usr/bin/node",
    )?;
    let ldd = Command::new("ldd")
        .arg(&node)
        .output()
        .map_err(|e| e.to_string())?;
    for lib in String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        copy(&std::fs::canonicalize(lib).map_err(|e| e.to_string())?, lib)?;
    }
    for dir in ["tmp", "proc", "sys", "dev", "etc"] {
        std::fs::create_dir_all(root.path().join(dir)).map_err(|e| e.to_string())?;
    }
    let tar = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C {} -c . | docker import - {NODE_IMAGE}",
            root.path().display()
        ))
        .output()
        .map_err(|e| e.to_string())?;
    if !tar.status.success() {
        return Err(format!(
            "docker import failed: {}",
            String::from_utf8_lossy(&tar.stderr)
        ));
    }
    Ok(())
}

pub fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
