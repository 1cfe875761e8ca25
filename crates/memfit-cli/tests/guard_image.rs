//! The guard image in a real container: docker/guard.Dockerfile built around the static
//! memfit-guard (`$MEMFIT_DIST_DIR/memfit-guard`, from scripts/dist.sh), copied with
//! `COPY --from` into an app image made from the Node test image, configured only through
//! `MEMFIT_GUARD_*` variables as a PaaS sets them, and run with `docker run -m 200m
//! --memory-swap 200m`: a leaking Node service is restarted before the kernel kills anything
//! (`docker inspect` State.OOMKilled false, the container still running), and `docker stop`
//! reaches the service through the guard (the exit status is the service's own answer to
//! SIGTERM, not docker's SIGKILL).
//!
//! Skipped with a printed reason when MEMFIT_DIST_DIR is unset or no dockerd answers, unless
//! MEMFIT_DIST_TESTS=required or MEMFIT_DOCKER_TESTS=required (then it fails). Every container
//! and image it makes is removed, also when it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::docker::{node_image_exists, prepare_engine, NODE_IMAGE};
use common::MIB;
use serde_json::Value;

/// Skips (or fails, when `var` is `required`) with the reason.
fn unavailable(var: &str, reason: &str) -> bool {
    if std::env::var(var).as_deref() == Ok("required") {
        panic!("the guard image test must run here ({var}=required) and cannot: {reason}");
    }
    eprintln!("\n*** GUARD IMAGE TEST NOT RUN: {reason} ***\n");
    false
}

/// The static guard scripts/dist.sh made.
fn dist_guard() -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("MEMFIT_DIST_DIR") else {
        unavailable(
            "MEMFIT_DIST_TESTS",
            "MEMFIT_DIST_DIR is not set (run scripts/dist.sh and point it at dist/)",
        );
        return None;
    };
    let guard = Path::new(&dir).join("memfit-guard");
    if !guard.is_file() {
        unavailable(
            "MEMFIT_DIST_TESTS",
            &format!("no static guard at {}", guard.display()),
        );
        return None;
    }
    Some(guard)
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("the docker CLI runs")
}

/// `docker ARGS` that must succeed; its stdout.
fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What the test made, removed when it ends, however it ends.
#[derive(Default)]
struct Made {
    containers: Vec<String>,
    images: Vec<String>,
}

impl Drop for Made {
    fn drop(&mut self) {
        for container in &self.containers {
            let _ = docker(&["rm", "-f", container]);
        }
        // Newest first: the app image is built on the guard image and the Node image.
        for image in self.images.iter().rev() {
            let _ = docker(&["rmi", image]);
        }
    }
}

/// A Node service that leaks MB_PER_S megabytes a second and answers SIGTERM with exit 43.
const SERVICE_JS: &str = r#"
const rate = Number(process.env.MB_PER_S || 20);
const kept = [];
setInterval(() => kept.push(Buffer.alloc(Math.round((rate * 1e6) / 20), 1)), 50);
process.on("SIGTERM", () => {
  console.log("service: SIGTERM, exiting 43");
  process.exit(43);
});
console.log("service: started, pid " + process.pid);
"#;

/// The guard's JSON events and the service's stdout so far.
fn logs(container: &str) -> (Vec<Value>, String) {
    let out = docker(&["logs", container]);
    let events = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    (events, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn inspect(container: &str, field: &str) -> String {
    docker_ok(&[
        "inspect",
        "--format",
        &format!("{{{{{field}}}}}"),
        container,
    ])
    .trim()
    .to_string()
}

fn find<'a>(events: &'a [Value], event: &str) -> Option<&'a Value> {
    events.iter().find(|e| e["event"] == event)
}

#[test]
fn the_guard_image_restarts_a_leaking_node_service_before_the_kernel_and_stops_on_docker_stop() {
    let Some(guard) = dist_guard() else { return };
    if let Err(reason) = Command::new("docker")
        .arg("info")
        .output()
        .map_err(|e| format!("no docker CLI ({e})"))
        .and_then(|o| {
            o.status
                .success()
                .then_some(())
                .ok_or_else(|| "no Docker Engine answers".to_string())
        })
    {
        unavailable("MEMFIT_DOCKER_TESTS", &reason);
        return;
    }
    let mut made = Made::default();
    let had_node_image = node_image_exists();
    if let Err(reason) = prepare_engine() {
        unavailable("MEMFIT_DOCKER_TESTS", &reason);
        return;
    }
    if !had_node_image {
        made.images.push(NODE_IMAGE.to_string());
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let id = format!("{}-{nanos}", std::process::id());
    let guard_image = format!("memfit-guard-test/guard:{id}");
    let app_image = format!("memfit-guard-test/app:{id}");
    let container = format!("memfit-conformance-guard-{id}");
    made.images.push(guard_image.clone());
    made.images.push(app_image.clone());

    // The guard image, as the README builds it: docker/guard.Dockerfile, dist/ as the context.
    let dist = tempfile::tempdir().unwrap();
    std::fs::copy(&guard, dist.path().join("memfit-guard")).unwrap();
    let dockerfile =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docker/guard.Dockerfile");
    docker_ok(&[
        "build",
        "--force-rm",
        "-q",
        "-f",
        dockerfile.to_str().unwrap(),
        "-t",
        &guard_image,
        dist.path().to_str().unwrap(),
    ]);

    // Alone in its empty image (no libc, no shell), the static guard runs.
    let alone = format!("{container}-alone");
    made.containers.push(alone.clone());
    let version = docker_ok(&[
        "run",
        "--name",
        &alone,
        "--network",
        "none",
        &guard_image,
        "--version",
    ]);
    assert_eq!(
        version.trim(),
        format!("memfit-guard {}", env!("CARGO_PKG_VERSION"))
    );

    // The app image: the guard copied in, configured through the environment alone.
    let app = tempfile::tempdir().unwrap();
    std::fs::write(app.path().join("service.js"), SERVICE_JS).unwrap();
    std::fs::write(
        app.path().join("Dockerfile"),
        format!(
            "FROM {NODE_IMAGE}
COPY --from={guard_image} /memfit-guard /memfit-guard
COPY service.js /app/service.js
ENV MEMFIT_GUARD_WARN=50% \\
    MEMFIT_GUARD_CRITICAL=70% \\
    MEMFIT_GUARD_SUSTAIN=500ms \\
    MEMFIT_GUARD_STARTUP_GRACE=1s \\
    MEMFIT_GUARD_MAX_INTERVAL=250ms \\
    MEMFIT_GUARD_GRACE=8s \\
    MEMFIT_GUARD_LOG_FORMAT=json \\
    MB_PER_S=20
ENTRYPOINT [\"/memfit-guard\", \"--\"]
CMD [\"node\", \"/app/service.js\"]
"
        ),
    )
    .unwrap();
    docker_ok(&[
        "build",
        "--force-rm",
        "-q",
        "-t",
        &app_image,
        app.path().to_str().unwrap(),
    ]);

    made.containers.push(container.clone());
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &container,
        "-m",
        "200m",
        "--memory-swap",
        "200m",
        "--network",
        "none",
        &app_image,
    ]);

    // Wait for a memory restart and for the new service to be up (its SIGTERM handler set).
    let deadline = Instant::now() + Duration::from_secs(120);
    let (events, _) = loop {
        let (events, stdout) = logs(&container);
        if find(&events, "restarted").is_some() && stdout.matches("service: started").count() >= 2 {
            break (events, stdout);
        }
        let running = inspect(&container, ".State.Running") == "true";
        assert!(
            running && Instant::now() < deadline,
            "no restart (running: {running}): {events:#?}\n{stdout}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // The guard saw the container's limit in its cgroup, and acted below it.
    let start = find(&events, "start").unwrap();
    assert_eq!(start["limit_bytes"], 200 * MIB, "{start}");
    assert_eq!(start["limit_from"], "the cgroup", "{start}");
    assert_eq!(start["critical_bytes"], 140 * MIB, "{start}");
    let critical = find(&events, "critical").unwrap();
    let at = critical["usage_bytes"].as_u64().unwrap();
    assert!((140 * MIB..200 * MIB).contains(&at), "{critical}");
    let restarted = find(&events, "restarted").unwrap();
    assert_eq!(restarted["reason"], "memory", "{restarted}");
    assert_eq!(restarted["exit_code"], 43, "{restarted}");
    assert!(find(&events, "oom_kill").is_none(), "{events:#?}");
    // Nothing was killed by the kernel, and the service is still there.
    assert_eq!(inspect(&container, ".State.OOMKilled"), "false");
    assert_eq!(inspect(&container, ".State.Running"), "true");

    // docker stop: SIGTERM to the guard (PID 1), forwarded to the service, which exits 43.
    let stop = Instant::now();
    docker_ok(&["stop", "-t", "10", &container]);
    let stop_took = stop.elapsed();
    let (events, stdout) = logs(&container);
    let code = inspect(&container, ".State.ExitCode");
    assert_eq!(code, "43", "docker stop: {events:#?}\n{stdout}");
    assert!(stdout.contains("service: SIGTERM, exiting 43"), "{stdout}");
    let stopped = events.last().unwrap();
    assert_eq!(stopped["event"], "child_stopped", "{events:#?}");
    assert_eq!(stopped["exit_code"], 43, "{stopped}");
    // The guard did not have to SIGKILL the service, nor the kernel anything.
    assert!(find(&events, "kill").is_none(), "{events:#?}");
    assert_eq!(inspect(&container, ".State.OOMKilled"), "false");
    eprintln!(
        "guard image: critical at {:.1} MiB of 200 MiB, the old service ended {} ms after the restart's \
         SIGTERM, {} restart(s) before docker stop; docker stop -t 10 returned in {} ms with \
         the service's exit 43",
        at as f64 / MIB as f64,
        restarted["stopped_ms"],
        events.iter().filter(|e| e["event"] == "restarted").count(),
        stop_took.as_millis()
    );
}
