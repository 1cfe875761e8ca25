//! What the container-engine suites share (docker.rs, compose.rs, podman.rs, guard_image.rs):
//! the Node test image, made without a registry from this machine's node, the libraries it
//! links and a static busybox; a reachable dockerd with the cgroupfs or systemd driver; and the
//! skip-or-fail rule (`MEMFIT_DOCKER_TESTS=required` / `MEMFIT_PODMAN_TESTS=required` make a
//! missing engine a failure, as CI sets them).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The image every suite runs: node and busybox.
pub const IMAGE: &str = "memfit-test/node:20";

/// The same image, by the name guard_image.rs uses.
pub const NODE_IMAGE: &str = IMAGE;

/// Whether a suite whose engine is `ready` may run: panics when `variable` is `required`
/// (CI) and it cannot, else says loudly that it did not run.
pub fn gate(ready: &Result<(), String>, suite: &str, variable: &str) -> bool {
    match ready {
        Ok(()) => true,
        Err(reason) if std::env::var(variable).as_deref() == Ok("required") => {
            panic!("the {suite} suite must run here ({variable}=required) and cannot: {reason}")
        }
        Err(reason) => {
            eprintln!("\n*** {} NOT RUN: {reason} ***\n", suite.to_uppercase());
            false
        }
    }
}

/// Imports the test image into `engine` (`docker` or `podman`) unless it has it.
pub fn ensure_image(engine: &str) -> Result<(), String> {
    let exists = Command::new(engine)
        .args(["image", "inspect", IMAGE])
        .output()
        .is_ok_and(|o| o.status.success());
    if exists {
        return Ok(());
    }
    let root = rootfs()?;
    let tar = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C {} -c . | {engine} import - {IMAGE}",
            root.path().display()
        ))
        .output()
        .map_err(|e| e.to_string())?;
    if !tar.status.success() {
        return Err(format!(
            "{engine} import failed: {}",
            String::from_utf8_lossy(&tar.stderr)
        ));
    }
    Ok(())
}

/// A root filesystem holding /usr/bin/node, the libraries `ldd` lists and busybox.
fn rootfs() -> Result<tempfile::TempDir, String> {
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
    Ok(root)
}

pub fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Whether docker has the Node test image already.
pub fn node_image_exists() -> bool {
    Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// dockerd's cgroup driver (`cgroupfs`, `systemd`), asked once.
#[allow(dead_code)] // not every suite that includes this module asks
pub fn cgroup_driver() -> &'static str {
    static DRIVER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DRIVER.get_or_init(|| {
        Command::new("docker")
            .args(["info", "--format", "{{.CgroupDriver}}"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    })
}

/// A reachable dockerd with the cgroupfs or systemd driver, and the test image.
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
    if driver != "cgroupfs" && driver != "systemd" {
        return Err(format!(
            "dockerd uses the {driver} cgroup driver; the suite needs cgroupfs or systemd"
        ));
    }
    ensure_image("docker")
}
