//! `memfit run` starts the command as a container runtime would: CPU time as a quota that
//! leaves every CPU visible (`docker run --cpus`), a cpuset that narrows what it sees
//! (`--cpuset-cpus`), PID 1 of its own namespace (`docker run`) or behind an init (`--init`),
//! and the environment a container gives. Real processes, real cgroups, a real PID namespace.

mod common;

use common::*;

/// Parses `cpu_ms=… wall_ms=… online_cpus=… available_parallelism=…` from `memfit-workload spin`.
fn spin_numbers(stdout: &str) -> std::collections::HashMap<String, u64> {
    stdout
        .split_whitespace()
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

#[test]
fn cpus_is_a_quota_that_leaves_every_cpu_visible() {
    if host_cpus() < 2 {
        eprintln!("skipping: needs 2 CPUs to tell a quota from an affinity");
        return;
    }
    let run = run(&["--cpus", "0.5"], &[workload(), "spin", "2", "1000"]);
    assert_eq!(run.status(), 0, "{}", run.stderr());
    assert_eq!(run.report["cpu_quota"], 0.5);
    assert_eq!(run.u64("/cpus"), host_cpus() as u64);
    let numbers = spin_numbers(&run.stdout());
    // Two busy threads get 0.5 CPU of time (the kernel's CFS bandwidth control), not the 2
    // CPUs they could use: the CPU time they got fits in half of each 100 ms period in which
    // they ran, 25% allowed for the periods' edges. Measured against the kernel's own period
    // count (`cpu.stat`), not the wall clock: in the emulated guest of tests/vm/ the two
    // disagree, and on a busy host the threads may get less than the quota anyway.
    let throttling = &run.report["cpu_throttling"];
    let periods = throttling["periods"].as_u64().unwrap();
    assert!(periods >= 5, "{throttling}");
    assert!(
        numbers["cpu_ms"] <= periods * 100 * 5 / 10 * 125 / 100,
        "{numbers:?} in {throttling}"
    );
    // Every CPU is online to it, as in `docker run --cpus`; Rust's available_parallelism
    // reads the quota from the cgroup the command sees as its own, as in a container.
    assert_eq!(numbers["online_cpus"], host_cpus() as u64);
    assert_eq!(numbers["available_parallelism"], 1);
}

#[test]
fn cpuset_narrows_the_cpus_the_command_sees() {
    let run = run(&["--cpuset", "0"], &["nproc"]);
    assert_eq!(run.status(), 0, "{}", run.stderr());
    assert_eq!(run.stdout().trim(), "1");
    assert_eq!(run.report["cpus"], 1);
    assert_eq!(run.report["cpu_quota"], serde_json::Value::Null);
}

#[test]
fn a_v8_heap_abort_exits_139_as_pid_1_and_134_behind_an_init() {
    let heap_abort = [
        "node",
        "--max-old-space-size=32",
        "-e",
        "const a = []; for (;;) a.push(new Array(100000).fill(a.length));",
    ];
    let child = run(&["--limit", "512M"], &heap_abort);
    let pid1 = run(&["--limit", "512M", "--pid1"], &heap_abort);
    let init = run(&["--limit", "512M", "--init"], &heap_abort);
    // The kernel does not deliver to PID 1 a signal it has no handler for: abort()'s
    // SIGABRT is ignored and glibc ends the process with SIGSEGV (139), as in docker run.
    assert_eq!(child.status(), 134, "{}", child.stderr());
    assert_eq!(pid1.status(), 139, "{}", pid1.stderr());
    assert_eq!(init.status(), 134, "{}", init.stderr());
    assert_eq!(pid1.report["pid"], "pid1");
    assert_eq!(init.report["pid"], "init");
    assert_eq!(pid1.report["oom_killed"], false);
}

#[test]
fn the_command_is_pid_1_of_its_own_namespace_with_its_own_proc() {
    let run = run(
        &["--pid1"],
        &["sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'"],
    );
    assert_eq!(run.status(), 0, "{}", run.stderr());
    let stdout = run.stdout();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "1");
    // The shell and the ls/grep it started: nothing of the host's processes.
    assert!(lines[1].parse::<u32>().unwrap() <= 3, "{lines:?}");
}

#[test]
fn a_pid_1_without_a_handler_ignores_a_forwarded_sigterm() {
    // memfit forwards a SIGTERM a process sends it, as `docker stop` sends one to PID 1.
    let stop_after = |args: &[&str]| {
        let mut child = memfit()
            .arg("run")
            .arg("-q")
            .args(args)
            .args(["--", "sleep", "2"])
            .spawn()
            .unwrap();
        wait_for_descendant(child.id(), "sleep");
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().unwrap().code()
    };
    assert_eq!(stop_after(&[]), Some(143));
    assert_eq!(stop_after(&["--pid1"]), Some(0));
}

#[test]
fn a_cleared_environment_holds_only_what_the_run_sets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.env");
    std::fs::write(&file, "# the image's\nNODE_ENV=production\n").unwrap();
    let run = run(
        &[
            "--env-clear",
            "--env-file",
            file.to_str().unwrap(),
            "--env",
            "PORT=8080",
        ],
        &["env"],
    );
    assert_eq!(run.status(), 0, "{}", run.stderr());
    let stdout = run.stdout();
    let mut names: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_once('=').map(|(n, _)| n))
        .collect();
    names.sort_unstable();
    // memfit's runtime view adds its preload, and nothing else (docs/runtime-view.md).
    assert_eq!(names, ["HOME", "NODE_ENV", "NODE_OPTIONS", "PATH", "PORT"]);
    let node_options = stdout
        .lines()
        .find_map(|l| l.strip_prefix("NODE_OPTIONS="))
        .unwrap();
    assert!(
        node_options.starts_with("--require ") && node_options.ends_with("memfit-runtime-view.js"),
        "{node_options}"
    );
    let without = run_args_env_clear(&file);
    assert_eq!(without, ["HOME", "NODE_ENV", "PATH", "PORT"]);
}

/// The variable names `env` sees under --env-clear and --no-runtime-view.
fn run_args_env_clear(file: &std::path::Path) -> Vec<String> {
    let run = run(
        &[
            "--env-clear",
            "--no-runtime-view",
            "--env-file",
            file.to_str().unwrap(),
            "--env",
            "PORT=8080",
        ],
        &["env"],
    );
    let mut names: Vec<String> = run
        .stdout()
        .lines()
        .filter_map(|l| l.split_once('=').map(|(n, _)| n.to_string()))
        .collect();
    names.sort_unstable();
    names
}

#[test]
fn a_hosts_node_options_that_reaches_the_command_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let output = memfit()
        .env("NODE_OPTIONS", "--max-old-space-size=4096")
        .args(["run", "--json"])
        .arg(&json)
        .args(["--", "true"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("NODE_OPTIONS=--max-old-space-size=4096 reaches the command"),
        "{stderr}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(report["inherited_env"]
        .as_array()
        .unwrap()
        .contains(&"NODE_OPTIONS=--max-old-space-size=4096".into()));
    // Given for the run, it is the run's, not the host's.
    let given = run(
        &["--env", "NODE_OPTIONS=--max-old-space-size=384"],
        &["true"],
    );
    assert!(!given.report["inherited_env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v.as_str().unwrap().starts_with("NODE_OPTIONS")));
}

#[test]
fn platforms_start_the_command_as_they_document() {
    let fly = run(
        &["--platform", "fly:shared-cpu-1x"],
        &["sh", "-c", "echo $$"],
    );
    assert_eq!(fly.report["pid"], "init", "{}", fly.stderr());
    assert_ne!(
        fly.stdout().trim(),
        "1",
        "behind Fly's init the command is not PID 1"
    );
    let northflank = run(
        &["--platform", "northflank:nf-compute-20"],
        &["sh", "-c", "echo $$"],
    );
    assert_eq!(northflank.report["pid"], "pid1", "{}", northflank.stderr());
    assert_eq!(northflank.stdout().trim(), "1");
}

/// memfit takes itself out of the OOM killer's choice (oom_score_adj -1000, with
/// CAP_SYS_RESOURCE) and gives
/// the command, and what it starts, the value memfit was started with, as a container's
/// processes keep theirs: under the limit the kernel kills the command, never memfit. In the
/// cgroup-v2 guest the kernel killed memfit after its command when both were alone in a
/// limited cgroup (tests/cgroup_v2.rs), and the report was lost.
#[test]
fn the_command_keeps_its_oom_score_adj_and_memfit_is_out_of_the_oom_killers_choice() {
    if !cgroups_available("the_command_keeps_its_oom_score_adj") {
        return;
    }
    // Lowering oom_score_adj takes CAP_SYS_RESOURCE (which, for one, a default `docker run`
    // and this project's development host do not give; capability 24, linux/capability.h):
    // without it memfit keeps its value.
    let privileged = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 24) != 0);
    for pid_mode in [None, Some("--pid1"), Some("--init")] {
        let mut script = format!(
            "echo 300 > /proc/self/oom_score_adj && exec '{}' run --limit 64M",
            env!("CARGO_BIN_EXE_memfit")
        );
        if let Some(flag) = pid_mode {
            script.push_str(&format!(" {flag}"));
        }
        // The command (sh) and its child (cat) report theirs; without a PID namespace the
        // command's parent is memfit.
        script.push_str(
            " -- sh -c 'cat /proc/self/oom_score_adj; [ $PPID = 0 ] || cat /proc/$PPID/oom_score_adj'",
        );
        let output = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{pid_mode:?}: {stderr}");
        let values: Vec<&str> = stdout.lines().collect();
        assert_eq!(values[0], "300", "{pid_mode:?}: {stdout}");
        match (pid_mode, privileged) {
            (None, true) => assert_eq!(values[1..], ["-1000"], "{stdout}"),
            (None, false) => assert_eq!(values[1..], ["300"], "{stdout}"),
            // --init: memfit's init stands between them, with the command's value.
            (Some("--init"), _) => assert_eq!(values[1..], ["300"], "{stdout}"),
            (Some(_), _) => assert_eq!(values.len(), 1, "{stdout}"),
        }
    }
}
