//! `memfit run -- docker-compose up|run|build` against a real Docker Engine and Debian's
//! docker-compose 1.29: the containers compose starts count against the run's limit, each
//! measured and named by its service; the user's compose files are left as they were.
//!
//! Same convention as docker.rs: `MEMFIT_DOCKER_TESTS=required` (CI) makes a missing engine
//! or a missing docker-compose a failure; elsewhere the suite says loudly that it did not run.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use common::docker::IMAGE;
use common::*;
use serde_json::Value;

fn compose_suite(test: &str) -> Option<MutexGuard<'static, ()>> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let ready = READY.get_or_init(|| {
        let version = Command::new("docker-compose")
            .arg("version")
            .output()
            .map_err(|e| {
                format!("no docker-compose ({e}); Debian: apt-get install docker-compose")
            })?;
        if !version.status.success() {
            return Err("docker-compose does not run".to_string());
        }
        let info = Command::new("docker")
            .args(["info", "--format", "{{.CgroupDriver}}"])
            .output()
            .map_err(|e| format!("no docker CLI ({e})"))?;
        if String::from_utf8_lossy(&info.stdout).trim() != "cgroupfs" {
            return Err("no Docker Engine with the cgroupfs driver answers".to_string());
        }
        common::docker::ensure_image("docker")
    });
    (common::docker::gate(ready, "docker compose", "MEMFIT_DOCKER_TESTS")
        && cgroups_available(test))
    .then_some(guard)
}

/// A compose project in a directory of its own, taken down (containers, images it built)
/// when dropped.
struct Project {
    dir: tempfile::TempDir,
    name: String,
}

impl Project {
    fn new(compose: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("docker-compose.yml"), compose).unwrap();
        Project {
            dir,
            name: format!("memfittest{}x{}", std::process::id(), unique()),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `memfit run --limit L --json … -- docker-compose -p NAME ARGS` in the project's
    /// directory (compose finds docker-compose.yml itself).
    fn memfit(&self, limit: &str, args: &[&str]) -> (std::process::Output, Value) {
        let json = self.dir.path().join("run.json");
        let output = memfit()
            .current_dir(self.dir.path())
            .args(["run", "--limit", limit, "--json"])
            .arg(&json)
            .args(["--", "docker-compose", "-p", &self.name])
            .args(args)
            .output()
            .unwrap();
        let report = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        std::fs::remove_file(&json).unwrap();
        (output, report)
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = Command::new("docker-compose")
            .current_dir(self.dir.path())
            .args(["-p", &self.name, "down", "--rmi", "local", "-v"])
            .output();
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

const HOLD_40M: &str = "const b = []; for (let i = 0; i < 40; i++) b.push(Buffer.alloc(1 << 20, 1)); setTimeout(() => {}, 500)";
const TOUCH_300M: &str =
    "const b = []; for (let i = 0; i < 300; i++) b.push(Buffer.alloc(1 << 20, 1))";

/// Two services: `small` holds 40 MiB, `big` touches 300 MiB.
fn two_services() -> String {
    format!(
        "version: \"3.8\"\nservices:\n  small:\n    image: {IMAGE}\n    network_mode: none\n    command: [\"node\", \"-e\", {small:?}]\n  big:\n    image: {IMAGE}\n    network_mode: none\n    command: [\"node\", \"-e\", {big:?}]\n",
        small = HOLD_40M,
        big = TOUCH_300M
    )
}

fn containers(report: &Value) -> Vec<Value> {
    report["containers"].as_array().cloned().unwrap_or_default()
}

fn by_service<'a>(containers: &'a [Value], service: &str) -> &'a Value {
    containers
        .iter()
        .find(|c| c["name"] == service)
        .unwrap_or_else(|| panic!("no container of service {service} in {containers:?}"))
}

#[test]
fn compose_up_counts_every_service_and_names_the_one_killed() {
    let Some(_one) = compose_suite("docker-compose up") else {
        return;
    };
    let project = Project::new(&two_services());
    // Both services count against one 256 MiB: `small` (node and 40 MiB, under half of it)
    // fits whatever `big` holds, and `big`, the largest when the limit is hit, is the one the
    // kernel kills.
    let (output, report) = project.memfit("256M", &["up"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(report["oom_killed"], true, "{stderr}");
    let containers = containers(&report);
    assert_eq!(containers.len(), 2, "{containers:?}");
    let big = by_service(&containers, "big");
    assert!(big["oom_kills"].as_u64().unwrap() >= 1, "{big}");
    let small = by_service(&containers, "small");
    assert_eq!(small["oom_kills"], 0, "{small}");
    assert!(small["peak_bytes"].as_u64().unwrap() >= 40 * MIB, "{small}");
    assert!(
        stderr.contains("big") && stderr.contains("OOM-killed"),
        "{stderr}"
    );
    // The user's project is as it was: no file added beside theirs.
    let files: Vec<_> = std::fs::read_dir(project.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, ["docker-compose.yml"], "{files:?}");
    if let Some(path) = report["cgroup_path"].as_str() {
        assert!(!Path::new(path).exists(), "cgroup {path} was left behind");
    }
}

#[test]
fn compose_run_of_a_service_that_fits_is_counted_in_the_peak() {
    let Some(_one) = compose_suite("docker-compose run") else {
        return;
    };
    let project = Project::new(&two_services());
    let (output, report) = project.memfit("256M", &["run", "--rm", "small"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(report["oom_killed"], false, "{stderr}");
    assert!(
        report["peak"]["charged_bytes"].as_u64().unwrap() >= 40 * MIB,
        "{stderr}"
    );
    let containers = containers(&report);
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert!(containers[0]["peak_bytes"].as_u64().unwrap() >= 40 * MIB);
}

#[test]
fn compose_build_measures_the_run_step_that_exceeds_the_limit() {
    let Some(_one) = compose_suite("docker-compose build") else {
        return;
    };
    let project = Project::new(
        "version: \"3.8\"\nservices:\n  app:\n    build: ./app\n    network_mode: none\n",
    );
    std::fs::create_dir(project.path().join("app")).unwrap();
    std::fs::write(
        project.path().join("app/Dockerfile"),
        format!("FROM {IMAGE}\nRUN echo first\nRUN node -e '{TOUCH_300M}'\nRUN echo never\n"),
    )
    .unwrap();
    let (output, report) = project.memfit("100M", &["build", "--no-cache"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(report["oom_killed"], true, "{stderr}");
    let steps = containers(&report);
    assert!(
        steps
            .iter()
            .any(|s| s["kind"] == "build-step" && s["oom_kills"].as_u64() >= Some(1)),
        "{steps:?}"
    );
}
