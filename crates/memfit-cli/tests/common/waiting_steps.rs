//! BuildKit RUN steps that wait to be let go (docker_concurrent.rs, compose.rs): two builds
//! are made to overlap on one dockerd deterministically, without sleeps. Each step waits for
//! a file in its own root filesystem, which the test writes through `/proc/<pid>/root`.

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

/// A RUN line whose node holds `before` MiB, waits until `/go-<token>` exists in its
/// container, then touches `after` MiB more and exits 0.
pub fn step(token: &str, before: u32, after: u32) -> String {
    format!(
        "RUN node -e 'const fs = require(\"fs\"); const held = []; for (let i = 0; i < {before}; i++) held.push(Buffer.alloc(1 << 20, 1)); const go = () => {{ if (!fs.existsSync(\"/go-{token}\")) return setTimeout(go, 20); for (let i = 0; i < {after}; i++) held.push(Buffer.alloc(1 << 20, 1)); }}; go()'\n"
    )
}

/// A build context holding this Dockerfile.
pub fn context(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    dir
}

/// The pid of the running process whose command line holds `token` (a step's node).
pub fn wait_for_step(token: &str, builds: &mut [&mut Child]) -> i64 {
    wait_for_another_step(token, None, builds)
}

/// As [`wait_for_step`], other than `seen`.
pub fn wait_for_another_step(token: &str, seen: Option<i64>, builds: &mut [&mut Child]) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i64>() else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            if Some(pid) != seen
                && String::from_utf8_lossy(&cmdline).contains(token)
                && super::process_alive(pid)
            {
                return pid;
            }
        }
        for build in builds.iter_mut() {
            if let Ok(Some(status)) = build.try_wait() {
                panic!("a build ended ({status}) before the step {token} was seen running");
            }
        }
        assert!(Instant::now() < deadline, "the step {token} never started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The BuildKit id of a running step: its memory cgroup's name (`…/buildkit/<id>`).
pub fn buildkit_id(pid: i64) -> String {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let memory = cgroups
        .lines()
        .find(|l| l.contains(":memory:") || l.starts_with("0::"))
        .unwrap();
    // `<id>` with the cgroupfs driver; `system.slice:docker:<id>` with systemd's.
    memory.rsplit(['/', ':']).next().unwrap().to_string()
}

/// Lets a waiting step go on.
pub fn release(pid: i64, token: &str) {
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    std::fs::write(root.join(format!("go-{token}")), b"go").unwrap();
}
