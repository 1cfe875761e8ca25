//! `memfit guard` with real children: a leaking node service under a real cgroup limit
//! (`memfit run --limit`, which shows the guard its cgroup as a container does), forking
//! trees, a child that ignores SIGTERM, a grandchild that outlives its parent, the kernel's
//! OOM kill, restart limits, spikes against sustained breaches, signal forwarding and exit
//! codes as tini's own tests check them, PID 1 in a PID namespace, and the HTTP endpoints.

mod common;
mod guard_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use guard_support::*;

#[test]
fn a_leaking_node_service_is_restarted_before_the_kernel_kills_it() {
    if !cgroups_available("a_leaking_node_service_is_restarted_before_the_kernel_kills_it")
        || !node_available()
    {
        return;
    }
    let leak = leak_js();
    let g = Guarded::start(
        Some(&["--limit", "150M"]),
        &["--listen", "127.0.0.1:0"],
        &["node", leak.to_str().unwrap()],
        &[("MB_PER_S", "20")],
    );
    let port = g.port();
    assert!(
        g.wait_for("restarted (memory)", Duration::from_secs(40)),
        "{:?}",
        g.log()
    );
    // The startup check saw a Node with no heap cap in 150 MiB.
    assert!(
        g.count("startup check: no heap cap: Node") == 1,
        "{:?}",
        g.log()
    );
    let critical = g
        .log()
        .into_iter()
        .find(|l| l.starts_with("memfit guard: critical:"))
        .unwrap();
    assert!(critical.contains("of 150 MiB"), "{critical}");
    // Counted, by reason, on /metrics and /health/memory.
    let (code, metrics) = get(port, "/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("memfit_guard_restarts_total{reason=\"memory\"} 1"),
        "{metrics}"
    );
    let (_, health) = get(port, "/health/memory");
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["restarts"]["memory"], 1);
    assert_eq!(health["limit_bytes"], 150 * MIB);
    // Shut down: SIGTERM to memfit run reaches the guard, the guard forwards it.
    g.signal(libc::SIGTERM);
    let (_, log, report) = g.finish(Duration::from_secs(30));
    let report = report.unwrap();
    // The kernel never had to kill anything.
    assert_eq!(report["oom"]["kill_count"], 0, "{log:?}");
    assert!(report["peak"]["charged_bytes"].as_u64().unwrap() <= 150 * MIB);
}

#[test]
fn a_kernel_oom_kill_is_named_from_the_oom_kill_counter() {
    if !cgroups_available("a_kernel_oom_kill_is_named_from_the_oom_kill_counter") {
        return;
    }
    // The guard only logs, so the kernel acts.
    let g = Guarded::start(
        Some(&["--limit", "100M"]),
        &["--no-listen", "--on-critical", "log"],
        &[workload(), "alloc", "300M", "2000"],
        &[],
    );
    let (code, log, _) = g.finish(Duration::from_secs(30));
    assert_eq!(code, 137, "{log:?}");
    assert!(
        log.iter()
            .any(|l| l.contains("OOM-killed by the kernel (exit 137)")),
        "{log:?}"
    );
}

#[test]
fn a_short_spike_is_left_alone_and_a_sustained_breach_is_not() {
    if !cgroups_available("a_short_spike_is_left_alone_and_a_sustained_breach_is_not") {
        return;
    }
    let args = [
        "--no-listen",
        "--critical",
        "40%",
        "--warn",
        "30%",
        "--sustain",
        "1s",
        "--startup-grace",
        "0s",
        "--on-critical",
        "log",
    ];
    // 150 MiB for 300 ms in a 300 MiB container: above 40%, shorter than the sustain.
    let spike = Guarded::start(
        Some(&["--limit", "300M"]),
        &args,
        &[workload(), "spike", "150M", "300", "1500"],
        &[],
    );
    let (code, log, _) = spike.finish(Duration::from_secs(20));
    assert_eq!(code, 0);
    assert!(
        !log.iter().any(|l| l.contains("memfit guard: critical:")),
        "{log:?}"
    );
    // The same for 3 s: acted on once the breach has lasted 1 s.
    let held = Guarded::start(
        Some(&["--limit", "300M"]),
        &args,
        &[workload(), "alloc", "150M", "3000"],
        &[],
    );
    let (code, log, _) = held.finish(Duration::from_secs(20));
    assert_eq!(code, 0);
    assert_eq!(
        log.iter()
            .filter(|l| l.contains("memfit guard: critical:"))
            .count(),
        1,
        "{log:?}"
    );
}

#[test]
fn restarts_stop_at_the_restart_limit() {
    if !cgroups_available("restarts_stop_at_the_restart_limit") || !node_available() {
        return;
    }
    let leak = leak_js();
    let g = Guarded::start(
        Some(&["--limit", "150M"]),
        &[
            "--no-listen",
            "--max-restarts",
            "2/10m",
            "--on-warn",
            "log",
            "--cooldown",
            "0s",
        ],
        &["node", leak.to_str().unwrap()],
        &[("MB_PER_S", "40")],
    );
    assert!(
        g.wait_for("restart limit reached (2 in", Duration::from_secs(60)),
        "{:?}",
        g.log()
    );
    assert_eq!(g.count("restarted (memory)"), 2);
    g.signal(libc::SIGTERM);
    let _ = g.finish(Duration::from_secs(30));
}

#[test]
fn a_child_that_ignores_sigterm_is_killed_after_the_grace_period() {
    // `trap '' TERM` is inherited by sleep: neither process stops on SIGTERM.
    let g = Guarded::start(
        None,
        &[
            "--listen",
            "127.0.0.1:0",
            "--limit",
            "1G",
            "--grace",
            "1s",
            "--allow-actions",
        ],
        &["sh", "-c", "trap '' TERM; sleep 60"],
        &[],
    );
    let port = g.port();
    let accepted = http(
        port,
        "POST /actions/restart HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(accepted.starts_with("HTTP/1.1 202"), "{accepted}");
    assert!(
        g.wait_for("restarted (http)", Duration::from_secs(15)),
        "{:?}",
        g.log()
    );
    let log = g.log();
    assert!(
        log.iter()
            .any(|l| l.contains("did not stop within 1s of SIGTERM: SIGKILL")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("restarted (http)") && l.contains("killed by SIGKILL")),
        "{log:?}"
    );
    // Shutdown escalates the same way.
    let started = Instant::now();
    g.signal(libc::SIGTERM);
    let (code, _, _) = g.finish(Duration::from_secs(30));
    assert_eq!(code, 137);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn exit_codes_pass_through_as_tini_does() {
    for (script, expected) in [
        ("exit 0", 0),
        ("exit 3", 3),
        ("exit 255", 255),
        ("kill -TERM $$", 143),
        ("kill -KILL $$", 137),
    ] {
        let g = Guarded::start(None, &["--no-listen"], &["sh", "-c", script], &[]);
        let (code, log, _) = g.finish(Duration::from_secs(20));
        assert_eq!(code, expected, "{script}: {log:?}");
    }
}

#[test]
fn signals_are_forwarded_to_the_child_or_its_group() {
    // USR1 reaches the child, which exits 42.
    let g = Guarded::start(
        None,
        &["--no-listen"],
        &[
            "sh",
            "-c",
            "trap 'exit 42' USR1; while true; do sleep 0.05; done",
        ],
        &[],
    );
    assert!(g.wait_for("watching", Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(300));
    g.signal(libc::SIGUSR1);
    let (code, log, _) = g.finish(Duration::from_secs(10));
    assert_eq!(code, 42, "{log:?}");
    // --signal-group: the whole group gets SIGTERM, so the shell's own child dies with it and
    // the shell's `wait` returns at once.
    let g = Guarded::start(
        None,
        &["--no-listen", "--signal-group"],
        &["sh", "-c", "sleep 30 & wait; exit 7"],
        &[],
    );
    assert!(g.wait_for("watching", Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    g.signal(libc::SIGTERM);
    let (code, _, _) = g.finish(Duration::from_secs(10));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(code == 143 || code == 7, "{code}");
}

#[test]
fn a_grandchild_that_outlives_its_parent_is_stopped_and_reaped_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("daemon.pid");
    let g = Guarded::start(
        None,
        &["--no-listen", "--grace", "2s"],
        &[
            workload(),
            "daemon",
            "10M",
            "60000",
            pidfile.to_str().unwrap(),
        ],
        &[],
    );
    let (code, log, _) = g.finish(Duration::from_secs(20));
    assert_eq!(code, 0, "{log:?}");
    assert!(
        log.iter().any(|l| l.contains("1 process(es) left behind")),
        "{log:?}"
    );
    let pid: i64 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!process_alive(pid), "the daemon {pid} survived the guard");
}

#[test]
fn as_pid_1_it_reaps_orphaned_zombies() {
    let unshare = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status();
    if !unshare.is_ok_and(|s| s.success()) {
        eprintln!(
            "skipping as_pid_1_it_reaps_orphaned_zombies: unshare --pid is not permitted here"
        );
        return;
    }
    // The child orphans 5 short-lived grandchildren, then counts zombies in the namespace.
    let script = "for i in 1 2 3 4 5; do (sleep 0.1 &) ; done; sleep 1; echo pid1=$(cat /proc/1/comm); zombies=$(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l); echo zombies=$zombies; exit $zombies";
    let output = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            env!("CARGO_BIN_EXE_memfit"),
            "guard",
            "--no-listen",
            "--",
            "sh",
            "-c",
            script,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("pid1=memfit"), "{stdout}");
    assert!(
        stdout.contains("zombies=0"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn the_http_endpoints_survive_hostile_clients_and_change_nothing_without_allow_actions() {
    let g = Guarded::start(
        None,
        &["--listen", "127.0.0.1:0", "--limit", "1G"],
        &["sleep", "30"],
        &[],
    );
    let port = g.port();
    let (code, body) = get(port, "/health/memory");
    assert_eq!(code, 200);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    for key in [
        "usage_bytes",
        "limit_bytes",
        "percent",
        "state",
        "top_processes",
        "trend",
        "restarts",
        "oom_kills",
    ] {
        assert!(health.get(key).is_some(), "{key} in {body}");
    }
    assert_eq!(health["state"], "ok");
    assert_eq!(get(port, "/nowhere").0, 404);
    assert_eq!(
        http(port, "DELETE /metrics HTTP/1.1\r\n\r\n")
            .split_whitespace()
            .nth(1),
        Some("405")
    );
    let denied = http(
        port,
        "POST /actions/restart HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(denied.starts_with("HTTP/1.1 403"), "{denied}");

    let rss_before = metric(port, "memfit_guard_own_resident_bytes");
    for i in 0..100 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let hostile: Vec<u8> = match i % 4 {
            0 => b"\x00\xff\xfe garbage \r\n\r\n".to_vec(),
            1 => format!("GET /{} HTTP/1.1\r\n", "a".repeat(100_000)).into_bytes(),
            2 => b"GET /health/memory HTTP/9.9\r\n\r\n".to_vec(),
            _ => b"GET".to_vec(),
        };
        let _ = s.write_all(&hostile);
        if i % 4 == 3 {
            // Half a request, then close.
            drop(s);
            continue;
        }
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 4"), "{i}: {text}");
    }
    // A silent client is cut off after the deadline; the next request is served.
    let silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let started = Instant::now();
    let (code, _) = get(port, "/health/memory");
    assert_eq!(code, 200);
    assert!(started.elapsed() < Duration::from_secs(6));
    drop(silent);
    let rss_after = metric(port, "memfit_guard_own_resident_bytes");
    assert!(
        rss_after < rss_before + 1024 * 1024,
        "{rss_before} → {rss_after}"
    );
    g.signal(libc::SIGTERM);
    let _ = g.finish(Duration::from_secs(20));
}

#[test]
fn metrics_pass_promtool_and_allowed_actions_restart() {
    let g = Guarded::start(
        None,
        &[
            "--listen",
            "127.0.0.1:0",
            "--limit",
            "1G",
            "--allow-actions",
        ],
        &["sleep", "30"],
        &[],
    );
    let port = g.port();
    let (code, body) = get(port, "/metrics");
    assert_eq!(code, 200);
    for series in [
        "memfit_guard_memory_usage_bytes",
        "memfit_guard_memory_limit_bytes 1073741824",
        "memfit_guard_memory_peak_bytes",
        "memfit_guard_restarts_total{reason=\"memory\"} 0",
        "memfit_guard_oom_kills_total 0",
        "memfit_guard_leak_trend_bytes_per_second",
    ] {
        assert!(body.contains(series), "{series} in {body}");
    }
    match Command::new("promtool").args(["check", "metrics"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
        Ok(mut promtool) => {
            promtool.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
            let out = promtool.wait_with_output().unwrap();
            assert!(out.status.success(), "promtool: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        }
        Err(_) => eprintln!("promtool not installed (Debian package prometheus; .ci/run installs it): format check skipped"),
    }
    let accepted = http(
        port,
        "POST /actions/restart HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(accepted.starts_with("HTTP/1.1 202"), "{accepted}");
    assert!(
        g.wait_for("restarted (http)", Duration::from_secs(15)),
        "{:?}",
        g.log()
    );
    assert!(metric(port, "memfit_guard_restarts_total{reason=\"http\"}") == 1);
    g.signal(libc::SIGTERM);
    let _ = g.finish(Duration::from_secs(20));
}

#[test]
fn a_slow_leak_is_reported_as_a_trend_with_time_to_the_limit() {
    if !node_available() {
        return;
    }
    let leak = leak_js();
    let g = Guarded::start(
        None,
        &["--listen", "127.0.0.1:0", "--limit", "2G"],
        &["node", leak.to_str().unwrap()],
        &[("MB_PER_S", "4"), ("MEMFIT_GUARD_TREND_BUCKET", "300ms")],
    );
    let port = g.port();
    let line = g.line_with("reaches the 2 GiB limit in", Duration::from_secs(30));
    assert!(
        line.contains("memfit guard: growing ") && line.contains("MiB/"),
        "{line}"
    );
    let (_, body) = get(port, "/health/memory");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    let rate = health["trend"]["bytes_per_second"].as_f64().unwrap();
    // 4 MB/s leaked; the tree source counts RSS, so within a factor of 2.
    assert!((2e6..8e6).contains(&rate), "{rate}");
    assert!(health["trend"]["seconds_to_limit"].as_f64().unwrap() > 0.0);
    g.signal(libc::SIGTERM);
    let _ = g.finish(Duration::from_secs(20));
}

#[test]
fn bad_input_exits_2_with_one_line() {
    for (args, needle) in [
        (vec!["guard"], "no command given"),
        (
            vec!["guard", "--warn", "120%", "--", "true"],
            "from 1% to 100%",
        ),
        (
            vec!["guard", "--no-listen", "--", "no-such-command-memfit"],
            "command not found",
        ),
        (
            vec!["guard", "--listen", "256.0.0.1:1", "--", "true"],
            "HOST:PORT",
        ),
    ] {
        let out = memfit().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    let help = memfit().args(["guard", "--help"]).output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--on-critical"));
}

#[test]
fn a_forking_tree_is_counted_whole_and_its_largest_processes_named() {
    if !cgroups_available("a_forking_tree_is_counted_whole_and_its_largest_processes_named") {
        return;
    }
    // Three children of 60 MiB each: 180 MiB of a 400 MiB limit, above a 30% warning.
    let g = Guarded::start(
        Some(&["--limit", "400M"]),
        &[
            "--no-listen",
            "--warn",
            "30%",
            "--critical",
            "90%",
            "--sustain",
            "300ms",
            "--startup-grace",
            "0s",
        ],
        &[workload(), "children", "3", "60M", "2500"],
        &[],
    );
    let (code, log, _) = g.finish(Duration::from_secs(30));
    assert_eq!(code, 0, "{log:?}");
    let warn = log
        .iter()
        .find(|l| l.starts_with("memfit guard: warn:"))
        .unwrap_or_else(|| panic!("{log:?}"));
    // The cgroup counts the whole tree; the top list names the children.
    assert!(warn.matches("alloc 60M").count() >= 2, "{warn}");
}

#[test]
fn warn_hooks_run_and_a_heap_snapshot_is_only_asked_for_when_it_fits() {
    if !cgroups_available("warn_hooks_run_and_a_heap_snapshot_is_only_asked_for_when_it_fits") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hook.txt");
    let hook = format!(
        "exec:echo \"$MEMFIT_GUARD_LEVEL $MEMFIT_GUARD_LIMIT_BYTES\" > {}",
        out.display()
    );
    let g = Guarded::start(
        Some(&["--limit", "400M"]),
        &[
            "--no-listen",
            "--warn",
            "30%",
            "--critical",
            "95%",
            "--sustain",
            "200ms",
            "--startup-grace",
            "0s",
            "--on-warn",
            &hook,
        ],
        &[workload(), "alloc", "200M", "1500"],
        &[],
    );
    let (code, log, _) = g.finish(Duration::from_secs(30));
    assert_eq!(code, 0, "{log:?}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().trim(),
        format!("warn {}", 400 * MIB)
    );

    if !node_available() {
        return;
    }
    // A Node service that takes heap snapshots on SIGUSR2: at the warning, 2 × its size does not
    // fit in what is left of 200 MiB, so the guard does not ask.
    let leak = leak_js();
    let g = Guarded::start(
        Some(&["--limit", "200M"]),
        &[
            "--no-listen",
            "--warn",
            "50%",
            "--on-warn",
            "signal:USR2",
            "--on-critical",
            "log",
        ],
        &[
            "node",
            "--heapsnapshot-signal=SIGUSR2",
            leak.to_str().unwrap(),
        ],
        &[("MB_PER_S", "20")],
    );
    assert!(
        g.wait_for(
            "not sending SIGUSR2 for a heap snapshot",
            Duration::from_secs(30)
        ),
        "{:?}",
        g.log()
    );
    g.signal(libc::SIGTERM);
    let _ = g.finish(Duration::from_secs(30));
}
