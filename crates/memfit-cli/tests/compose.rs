//! `memfit run -- docker-compose up|run|build` and `memfit run -- docker compose …` against a
//! real Docker Engine: the containers compose starts count against the run's limit, each
//! measured and named by its service; the user's compose files are left as they were. Every
//! case runs twice: with Debian's docker-compose 1.29 (Python) and with the `docker compose`
//! v2 plugin (Go; scripts/compose-v2.sh installs Debian trixie's).
//!
//! Same convention as docker.rs: `MEMFIT_DOCKER_TESTS=required` (CI) makes a missing engine a
//! failure, `MEMFIT_COMPOSE_V1_TESTS=required` a missing docker-compose 1.x and
//! `MEMFIT_COMPOSE_V2_TESTS=required` a missing v2 plugin; elsewhere the suite says loudly
//! that it did not run. The cgroup-v2 guest of tests/vm/run.sh has the v2 plugin only.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};

use common::docker::IMAGE;
use common::waiting_steps::{buildkit_id, context, release, step, wait_for_step};
use common::*;
use serde_json::Value;

/// Which compose runs the case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compose {
    /// `docker-compose` 1.x (Python).
    V1,
    /// `docker compose`, the v2 CLI plugin (Go).
    V2,
}

impl Compose {
    fn argv(self) -> &'static [&'static str] {
        match self {
            Compose::V1 => &["docker-compose"],
            Compose::V2 => &["docker", "compose"],
        }
    }

    fn command(self) -> Command {
        let argv = self.argv();
        let mut command = Command::new(argv[0]);
        command.args(&argv[1..]);
        command
    }

    /// Whether this compose answers, and the variable that makes its absence a failure.
    fn check(self) -> (Result<(), String>, &'static str) {
        let version = self.command().arg("version").output();
        let ready = match (self, version) {
            (_, Ok(o)) if o.status.success() => Ok(()),
            (Compose::V1, _) => {
                Err("no docker-compose 1.x; Debian: apt-get install docker-compose".to_string())
            }
            (Compose::V2, _) => Err(
                "no `docker compose` v2 plugin; install it with scripts/compose-v2.sh".to_string(),
            ),
        };
        let variable = match self {
            Compose::V1 => "MEMFIT_COMPOSE_V1_TESTS",
            Compose::V2 => "MEMFIT_COMPOSE_V2_TESTS",
        };
        (ready, variable)
    }
}

/// Each case as a module with a test per compose: `CASE::v1` and `CASE::v2`.
macro_rules! with_each_compose {
    ($(fn $name:ident($compose:ident: Compose) $body:block)*) => {$(
        mod $name {
            use super::*;

            fn case($compose: Compose) $body

            #[test]
            fn v1() {
                case(Compose::V1)
            }

            #[test]
            fn v2() {
                case(Compose::V2)
            }
        }
    )*};
}

fn compose_suite(compose: Compose, test: &str) -> Option<MutexGuard<'static, ()>> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    static ENGINE: OnceLock<Result<(), String>> = OnceLock::new();
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let engine = ENGINE.get_or_init(|| {
        let info = Command::new("docker")
            .args(["info", "--format", "{{.CgroupDriver}}"])
            .output()
            .map_err(|e| format!("no docker CLI ({e})"))?;
        if String::from_utf8_lossy(&info.stdout).trim() != "cgroupfs" {
            return Err("no Docker Engine with the cgroupfs driver answers".to_string());
        }
        common::docker::ensure_image("docker")
    });
    if !common::docker::gate(engine, "docker compose", "MEMFIT_DOCKER_TESTS") {
        return None;
    }
    let (ready, variable) = compose.check();
    let suite = format!("{} ({compose:?})", compose.argv().join(" "));
    (common::docker::gate(&ready, &suite, variable) && cgroups_available(test)).then_some(guard)
}

/// A compose project in a directory of its own, taken down (containers, images it built)
/// when dropped.
struct Project {
    dir: tempfile::TempDir,
    name: String,
    compose: Compose,
}

impl Project {
    fn new(compose: Compose, file: &str) -> Project {
        Project::with_files(compose, &[("docker-compose.yml", file)])
    }

    /// A project of these files (name, text).
    fn with_files(compose: Compose, files: &[(&str, &str)]) -> Project {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        Project {
            dir,
            name: format!("memfittest{}x{}", std::process::id(), unique()),
            compose,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `memfit run --limit L --json … -- docker-compose -p NAME ARGS` (or `docker compose`) in
    /// the project's directory (compose finds docker-compose.yml itself).
    fn memfit(&self, limit: &str, args: &[&str]) -> (std::process::Output, Value) {
        let json = self.dir.path().join("run.json");
        let output = memfit()
            .current_dir(self.dir.path())
            .args(["run", "--limit", limit, "--json"])
            .arg(&json)
            .arg("--")
            .args(self.compose.argv())
            .args(["-p", &self.name])
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
        let _ = self
            .compose
            .command()
            .current_dir(self.dir.path())
            .args(["-p", &self.name, "down", "--rmi", "local", "-v"])
            .output();
        // Compose v2's `down` removes no image when the project has no container left (a
        // `build` alone): its images carry the project's label.
        let images = Command::new("docker")
            .args(["images", "-q", "--filter"])
            .arg(format!("label=com.docker.compose.project={}", self.name))
            .output();
        // The classic builder (compose 1.x) keeps the steps before a failed one as untagged
        // images: the cases' first steps name the project.
        let dangling = Command::new("docker")
            .args(["images", "-q", "--filter", "dangling=true"])
            .output();
        let history = |id: &str| {
            Command::new("docker")
                .args(["history", "--no-trunc", "--format", "{{.CreatedBy}}", id])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains(&self.name))
                .unwrap_or(false)
        };
        let ids = |output: std::io::Result<std::process::Output>| {
            output
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .split_whitespace()
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        let ours = ids(images)
            .into_iter()
            .chain(ids(dangling).into_iter().filter(|id| history(id)));
        for id in ours {
            let _ = Command::new("docker").args(["rmi", "-f", &id]).output();
        }
    }
}

/// Lets a waiting step (pid, token) go on when dropped.
struct ReleaseOnDrop(i64, String);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| release(self.0, &self.1));
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

/// The containers, running or stopped, whose command holds `token`.
fn containers_running(token: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args(["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Command}}"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.contains(token))
        .map(str::to_string)
        .collect()
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

with_each_compose! {
    fn compose_up_counts_every_service_and_names_the_one_killed(compose: Compose) {
        let Some(_one) = compose_suite(compose, "compose up") else {
            return;
        };
        let project = Project::new(compose, &two_services());
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

    fn compose_run_of_a_service_that_fits_is_counted_in_the_peak(compose: Compose) {
        let Some(_one) = compose_suite(compose, "compose run") else {
            return;
        };
        let project = Project::new(compose, &two_services());
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

    fn compose_build_measures_the_run_step_that_exceeds_the_limit(compose: Compose) {
        let Some(_one) = compose_suite(compose, "compose build") else {
            return;
        };
        let project = Project::new(
            compose,
            "version: \"3.8\"\nservices:\n  app:\n    build:\n      context: ./app\n      network: none\n    network_mode: none\n",
        );
        std::fs::create_dir(project.path().join("app")).unwrap();
        std::fs::write(
            project.path().join("app/Dockerfile"),
            format!(
                "FROM {IMAGE}\nRUN echo first {name}\nRUN node -e '{TOUCH_300M}' {name}\nRUN echo never\n",
                name = project.name
            ),
        )
        .unwrap();
        let (output, report) = project.memfit("100M", &["build", "--no-cache"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        // The step the run's limit killed leaves no container behind.
        assert_eq!(containers_running(&project.name), Vec::<String>::new());
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

    fn compose_run_of_a_service_in_an_inactive_profile_is_counted(compose: Compose) {
        let Some(_one) = compose_suite(compose, "compose run PROFILED") else {
            return;
        };
        // `run` starts a service whose profile is not enabled (compose enables it for the
        // service named): compose v2's `config` leaves such services out unless asked for
        // every profile.
        let file = format!(
            "{}  tool:\n    image: {IMAGE}\n    network_mode: none\n    profiles: [\"tools\"]\n    command: [\"node\", \"-e\", {HOLD_40M:?}]\n",
            two_services()
        );
        let project = Project::new(compose, &file);
        let (output, report) = project.memfit("256M", &["run", "--rm", "tool"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        let started = containers(&report);
        assert_eq!(started.len(), 1, "{stderr}");
        assert!(started[0]["peak_bytes"].as_u64().unwrap() >= 40 * MIB, "{stderr}");
        // `up` leaves the profiled service out still: memfit's file does not enable it.
        let (output, report) = project.memfit("256M", &["up"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let names: Vec<_> = containers(&report).iter().map(|c| c["name"].clone()).collect();
        assert!(!names.iter().any(|n| n == "tool"), "{names:?} {stderr}");
    }

    fn compose_files_named_by_compose_file_in_dot_env_are_the_ones_used(compose: Compose) {
        let Some(_one) = compose_suite(compose, "compose with .env") else {
            return;
        };
        // compose reads COMPOSE_FILE from the project's .env too; no docker-compose.yml here.
        let project = Project::with_files(
            compose,
            &[
                (".env", "COMPOSE_FILE=services.yml\n"),
                ("services.yml", &two_services()),
            ],
        );
        let (output, report) = project.memfit("256M", &["run", "--rm", "small"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        let containers = containers(&report);
        assert_eq!(containers.len(), 1, "{stderr}");
        assert!(containers[0]["peak_bytes"].as_u64().unwrap() >= 40 * MIB, "{stderr}");
    }

    fn compose_up_build_measures_the_build_step_that_exceeds_the_limit(compose: Compose) {
        let Some(_one) = compose_suite(compose, "compose up --build") else {
            return;
        };
        let project = Project::new(
            compose,
            "services:\n  app:\n    build:\n      context: ./app\n      network: none\n    network_mode: none\n    command: [\"node\", \"-e\", \"1\"]\n",
        );
        std::fs::create_dir(project.path().join("app")).unwrap();
        std::fs::write(
            project.path().join("app/Dockerfile"),
            // `up --build` has no --no-cache: a step of this project's own keeps BuildKit's
            // cache of an earlier run from answering for the steps after it.
            format!(
                "FROM {IMAGE}\nRUN echo {name}\nRUN node -e '{TOUCH_300M}' {name}\n",
                name = project.name
            ),
        )
        .unwrap();
        let (output, report) = project.memfit("100M", &["up", "--build"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(containers_running(&project.name), Vec::<String>::new());
        assert_ne!(output.status.code(), Some(0), "{stderr}");
        assert_eq!(report["oom_killed"], true, "{stderr}");
        let steps = containers(&report);
        assert!(
            steps
                .iter()
                .any(|s| s["kind"] == "build-step" && s["oom_kills"].as_u64() >= Some(1)),
            "{steps:?} {stderr}"
        );
        // The summary says it was a build step, not a service's container.
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("  step ") && l.ends_with("OOM-killed")),
            "{stderr}"
        );
    }

    fn compose_up_build_leaves_another_clients_build_alone(compose: Compose) {
        let Some(_one) = compose_suite(compose, "compose up --build beside another build") else {
            return;
        };
        let project = Project::new(
            compose,
            "services:\n  app:\n    build:\n      context: ./app\n      network: none\n    network_mode: none\n    command: [\"node\", \"-e\", \"1\"]\n",
        );
        let mine = format!("{}mine", project.name);
        let theirs = format!("{}theirs", project.name);
        // This project's step holds 30 MiB under a 100 MiB limit; the other client's build,
        // started while memfit watches, touches 200 MiB.
        std::fs::create_dir(project.path().join("app")).unwrap();
        std::fs::write(
            project.path().join("app/Dockerfile"),
            format!("FROM {IMAGE}\n{}", step(&mine, 30, 0)),
        )
        .unwrap();
        let their_dir = context(&format!("FROM {IMAGE}\n{}", step(&theirs, 0, 200)));
        let json = project.path().join("run.json");
        let mut memfit_up = memfit()
            .current_dir(project.path())
            .args(["run", "--limit", "100M", "--json"])
            .arg(&json)
            .arg("--")
            .args(compose.argv())
            .args(["-p", &project.name, "up", "--build"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let my_step = wait_for_step(&mine, &mut [&mut memfit_up]);
        // Should the test fail from here, its own build still ends.
        let _release_mine = ReleaseOnDrop(my_step, mine.clone());
        // Debian's docker CLI builds with BuildKit without the buildx plugin (as
        // docker_concurrent.rs).
        let mut their_build = Command::new("/usr/bin/docker")
            .env("DOCKER_BUILDKIT", "1")
            .args(["build", "--no-cache", "--network", "none", "-q"])
            .arg(their_dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let their_step = wait_for_step(&theirs, &mut [&mut memfit_up, &mut their_build]);
        let their_id = buildkit_id(their_step);
        release(their_step, &theirs);
        let theirs_out = their_build.wait_with_output().unwrap();
        drop(_release_mine);
        let memfit_out = memfit_up.wait_with_output().unwrap();
        let their_image = String::from_utf8_lossy(&theirs_out.stdout).trim().to_string();
        if !their_image.is_empty() {
            let _ = Command::new("docker").args(["rmi", "-f", &their_image]).output();
        }
        let stderr = String::from_utf8_lossy(&memfit_out.stderr);
        assert!(
            theirs_out.status.success(),
            "the other build's 200 MiB step was killed under memfit's 100 MiB limit: {}\nmemfit: {stderr}",
            String::from_utf8_lossy(&theirs_out.stderr)
        );
        let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(memfit_out.status.code(), Some(0), "{stderr}");
        assert_eq!(report["oom_killed"], false, "{stderr}");
        assert!(
            report["peak"]["charged_bytes"].as_u64().unwrap() < 100 * MIB,
            "{stderr}"
        );
        // Its own step is measured as a build step; the other build's is not listed.
        let started = containers(&report);
        let own = started
            .iter()
            .find(|c| c["command"].to_string().contains(&mine))
            .unwrap_or_else(|| panic!("its own step is not measured: {started:?} {stderr}"));
        assert_eq!(own["kind"], "build-step", "{own}");
        assert!(own["peak_bytes"].as_u64().unwrap() >= 30 * MIB, "{own}");
        assert!(!report["containers"].to_string().contains(&theirs), "{started:?}");
        if compose == Compose::V2 {
            // Seen, and left where dockerd put it.
            let caveats = report["caveats"].to_string();
            assert!(
                caveats.contains("of another build on the same dockerd")
                    && caveats.contains(&format!("buildkit/{their_id}")),
                "{their_id}: {caveats}"
            );
        }
    }
}
