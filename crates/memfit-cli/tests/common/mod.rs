//! Helpers shared by the integration tests: they drive the real `memfit` binary against real
//! processes (`memfit-workload`) and real cgroups.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub mod audit;
pub mod docker;
pub mod waiting_steps;

pub const MIB: u64 = 1024 * 1024;

pub fn memfit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_memfit"))
}

/// The CPUs this process may use (memfit's own view, which a command inherits).
pub fn host_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn workload() -> &'static str {
    env!("CARGO_BIN_EXE_memfit-workload")
}

pub struct Run {
    pub output: Output,
    pub report: Value,
    _dir: tempfile::TempDir,
}

impl Run {
    pub fn status(&self) -> i32 {
        self.output
            .status
            .code()
            .expect("memfit was killed by a signal")
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn u64(&self, pointer: &str) -> u64 {
        self.report
            .pointer(pointer)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("{pointer} missing in {}", self.report))
    }
}

/// `memfit run ARGS -- CMD` with a JSON report, parsed.
pub fn run(args: &[&str], command: &[&str]) -> Run {
    run_env(args, command, &[])
}

/// `run` with variables set for memfit (and so for the command).
pub fn run_env(args: &[&str], command: &[&str], env: &[(&str, &str)]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let output = memfit()
        .envs(env.iter().copied())
        .arg("run")
        .args(args)
        .arg("--json")
        .arg(&json)
        .arg("--")
        .args(command)
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    Run {
        output,
        report: serde_json::from_str(&text).unwrap(),
        _dir: dir,
    }
}

/// Whether memfit can create cgroups here; prints why a test is skipped when it cannot.
pub fn cgroups_available(test: &str) -> bool {
    let probe = run(&[], &[workload(), "exit", "0"]);
    let mode = probe.report["mode"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if mode == "measure-only" {
        eprintln!(
            "skipping {test}: no cgroup memory controller is writable here ({}); these tests run on the development VM as root",
            probe.report["mode_reason"]
        );
        return false;
    }
    true
}

/// A cgroup path from a report must be gone after the run.
pub fn assert_cgroup_removed(run: &Run) {
    if let Some(path) = run.report["cgroup_path"].as_str() {
        assert!(!Path::new(path).exists(), "cgroup {path} was left behind");
    }
}

pub fn process_alive(pid: i64) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"));
    match status {
        // A zombie is dead for our purpose (its parent may not have reaped it yet).
        Ok(text) => !text.contains("State:\tZ"),
        Err(_) => false,
    }
}

pub fn tempdir_path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// Cgroups a memfit process (by pid) created and did not remove, anywhere under the memory
/// controller's mount (v1) or the unified hierarchy (v2).
pub fn leftover_cgroups(memfit_pid: u32) -> Vec<PathBuf> {
    let prefix = format!("memfit-{memfit_pid}-");
    let mut found = Vec::new();
    let mut stack: Vec<(PathBuf, usize)> = ["/sys/fs/cgroup/memory", "/sys/fs/cgroup"]
        .iter()
        .map(|p| (PathBuf::from(p), 0))
        .collect();
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() || path.is_symlink() {
                continue;
            }
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                found.push(path);
            } else if depth < 4 {
                stack.push((path, depth + 1));
            }
        }
    }
    found
}

/// Waits until a descendant of `ancestor` whose `comm` is `comm` exists, and returns its PID:
/// a signal test starts signalling only once the command it signals runs (memfit installs its
/// signal handling before it starts the command), however slow the machine (the cgroup-v2
/// guest of tests/vm/ emulates its CPUs).
pub fn wait_for_descendant(ancestor: u32, comm: &str) -> i64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if let Some(pid) = find_descendant(ancestor as i64, comm) {
            return pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no process '{comm}' under {ancestor} after 120 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn find_descendant(ancestor: i64, comm: &str) -> Option<i64> {
    let parent_of = |pid: i64| -> Option<(i64, String)> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        let name = stat[open + 1..close].to_string();
        let ppid = stat[close + 2..].split_whitespace().nth(1)?.parse().ok()?;
        Some((ppid, name))
    };
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i64>().ok())
        else {
            continue;
        };
        let Some((mut ppid, name)) = parent_of(pid) else {
            continue;
        };
        if name != comm {
            continue;
        }
        while ppid > 1 {
            if ppid == ancestor {
                return Some(pid);
            }
            ppid = parent_of(ppid)?.0;
        }
    }
    None
}

/// Writes a small project: (relative path, contents).
pub fn project<B: AsRef<[u8]>>(files: &[(&str, B)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, bytes) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    dir
}

/// A headless Chromium on this machine (CI installs Debian's `chromium`), if any.
pub fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// The DOM of `url` after its scripts ran, in headless Chromium with a fresh profile and no
/// network.
pub fn chromium_dom(browser: &str, profile: &Path, url: &str) -> String {
    let dom = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=2000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .unwrap();
    String::from_utf8_lossy(&dom.stdout).into_owned()
}

/// Waits for a file the command writes once it runs, until its last line is whole (never a
/// blind sleep).
#[allow(dead_code)] // not every suite waits for a file
pub fn wait_for_file(path: &Path) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if text.ends_with('\n') {
                return text;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A command's exit code and its standard output as JSON (a panic shows both streams when it is
/// not JSON).
#[allow(dead_code)] // not every suite reads JSON this way
pub fn exit_and_json(output: &Output) -> (i32, Value) {
    let text = String::from_utf8_lossy(&output.stdout);
    let value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {text}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap(), value)
}
