//! The guard's HTTP endpoints against hostile and careless clients: idle and slow connections
//! that must not stall a liveness probe, more connections than the server keeps, command lines
//! (which can hold secrets) kept out of /health/memory, a warning when the endpoints are reachable
//! from other machines, and restarts over HTTP that need a token and are rate-limited.

mod common;
mod guard_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use guard_support::*;

/// What a Kubernetes probe with `timeoutSeconds: 1` does: connect, ask, and give up after 1 s.
/// The status code, or the error that made the probe fail.
fn probe(port: u16) -> Result<u16, String> {
    let limit = Duration::from_secs(1);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, limit).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(limit)).unwrap();
    s.set_write_timeout(Some(limit)).unwrap();
    s.write_all(
        b"GET /health/memory HTTP/1.1\r\nHost: probe\r\nUser-Agent: kube-probe/1.31\r\n\r\n",
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))
}

fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_probe_is_answered_while_idle_and_slow_clients_hold_connections() {
    let g = Guarded::start(
        None,
        &["--listen", "127.0.0.1:0", "--limit", "1G"],
        &["sleep", "60"],
        &[],
    );
    let port = g.port();
    // 20 clients that connect and send nothing, 5 that send half a request and stop.
    let mut held: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    for _ in 0..5 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /health/memory HTTP/1.1\r\nHo").unwrap();
        held.push(s);
    }
    for i in 0..10 {
        assert_eq!(probe(port), Ok(200), "probe {i} with 25 connections held");
    }
    drop(held);
    g.signal(libc::SIGTERM);
    let _ = g.finish(Duration::from_secs(20));
}

#[test]
fn beyond_the_connection_cap_the_oldest_idle_connection_is_dropped() {
    let g = Guarded::start(
        None,
        &["--listen", "127.0.0.1:0", "--limit", "1G"],
        &["sleep", "60"],
        &[],
    );
    let port = g.port();
    let mut first = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let held: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    for i in 0..5 {
        assert_eq!(probe(port), Ok(200), "probe {i} with 101 connections held");
    }
    // The oldest idle connection made room: it is closed (with a 503 if it can take one).
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut out = Vec::new();
    let read = first.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(
        read.is_ok() && (text.is_empty() || text.starts_with("HTTP/1.1 503")),
        "{read:?} {text:?}"
    );
    drop(held);
    g.signal(libc::SIGTERM);
    let _ = g.finish(Duration::from_secs(20));
}

/// /health/memory once the guarded shell shows in it: the endpoint answers from the start, the
/// child's tree once it runs and a sample saw it (seconds in the emulated guest of tests/vm/).
fn health_once_the_shell_shows(port: u16) -> (String, serde_json::Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, body) = get(port, "/health/memory");
        assert_eq!(code, 200);
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        let seen = health["top_processes"].as_array().is_some_and(|p| {
            p.iter()
                .any(|p| p["command"].as_str().is_some_and(|c| c.starts_with("sh")))
        });
        if seen || Instant::now() > deadline {
            return (body, health);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn command_lines_stay_out_of_health_unless_health_details() {
    let secret = "--db-password=hunter2-memfit-secret";
    // `sh -c SCRIPT NAME ARG`: the secret is an argument of the shell, a process of the tree.
    // Two commands: a shell that would exec a lone one (busybox sh does) stays in the tree.
    let command = ["sh", "-c", "sleep 60; :", "sh", secret];
    let g = Guarded::start(
        None,
        &["--listen", "127.0.0.1:0", "--limit", "1G"],
        &command,
        &[],
    );
    let port = g.port();
    let (body, health) = health_once_the_shell_shows(port);
    let commands: Vec<&str> = health["top_processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["command"].as_str())
        .collect();
    // The executable's name stays, so the list still says what runs.
    assert!(commands.iter().any(|c| c.starts_with("sh")), "{body}");
    assert!(!body.contains("hunter2"), "{body}");
    let (_, metrics) = get(port, "/metrics");
    assert!(!metrics.contains("hunter2"), "{metrics}");
    g.signal(libc::SIGTERM);
    let _ = g.finish(Duration::from_secs(20));

    let g = Guarded::start(
        None,
        &[
            "--listen",
            "127.0.0.1:0",
            "--limit",
            "1G",
            "--health-details",
        ],
        &command,
        &[],
    );
    let (body, _) = health_once_the_shell_shows(g.port());
    assert!(body.contains(secret), "{body}");
    g.signal(libc::SIGTERM);
    let _ = g.finish(Duration::from_secs(20));
}

#[test]
fn listening_beyond_loopback_is_warned_about_at_start() {
    let g = Guarded::start(
        None,
        &["--listen", "0.0.0.0:0", "--limit", "1G"],
        &["sleep", "60"],
        &[],
    );
    let port = g.port();
    g.signal(libc::SIGTERM);
    let (_, log, _) = g.finish(Duration::from_secs(20));
    let warning = log
        .iter()
        .find(|l| l.contains("reachable beyond this machine"))
        .unwrap_or_else(|| panic!("no warning for 0.0.0.0:{port}: {log:?}"));
    assert!(warning.starts_with("memfit guard: warning:"), "{warning}");
    assert!(warning.contains("--listen 127.0.0.1:"), "{warning}");

    let g = Guarded::start(
        None,
        &["--listen", "127.0.0.1:0", "--limit", "1G"],
        &["sleep", "60"],
        &[],
    );
    let _ = g.port();
    g.signal(libc::SIGTERM);
    let (_, log, _) = g.finish(Duration::from_secs(20));
    assert!(!log.iter().any(|l| l.contains("warning")), "{log:?}");
}

#[test]
fn allow_actions_without_a_token_exits_2_with_one_line() {
    let out = memfit()
        .args(["guard", "--allow-actions", "--", "true"])
        .env_remove("MEMFIT_GUARD_ACTION_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("MEMFIT_GUARD_ACTION_TOKEN"), "{stderr}");
    assert!(stderr.contains("--action-token"), "{stderr}");
}

#[test]
fn restart_over_http_needs_the_token_and_is_rate_limited() {
    let token = "s3cr3t-token-for-memfit-tests-0123";
    let g = Guarded::start(
        None,
        &[
            "--listen",
            "127.0.0.1:0",
            "--limit",
            "1G",
            "--allow-actions",
            "--action-interval",
            "2s",
        ],
        &["sleep", "60"],
        &[("MEMFIT_GUARD_ACTION_TOKEN", token)],
    );
    let port = g.port();
    let bearer = format!("Bearer {token}");
    for (authorization, why) in [
        (None, "no Authorization"),
        (
            Some("Bearer wrong-token-wrong-token-wrong"),
            "a wrong token",
        ),
        (Some(&bearer[..bearer.len() - 1]), "a token one byte short"),
        (Some(token), "the token without the Bearer scheme"),
    ] {
        let response = post_restart(port, authorization);
        assert_eq!(status_of(&response), 401, "{why}: {response}");
        assert!(
            response.contains("WWW-Authenticate: Bearer"),
            "{why}: {response}"
        );
    }
    let accepted = post_restart(port, Some(&bearer));
    assert_eq!(status_of(&accepted), 202, "{accepted}");
    // At once again: refused, with when to come back.
    let refused = post_restart(port, Some(&bearer));
    assert_eq!(status_of(&refused), 429, "{refused}");
    let retry_after: u64 = refused
        .lines()
        .find_map(|l| l.strip_prefix("Retry-After: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After in {refused}"));
    assert!((1..=2).contains(&retry_after), "{refused}");
    assert!(
        g.wait_for("restarted (http)", Duration::from_secs(15)),
        "{:?}",
        g.log()
    );
    // After the interval a restart is accepted again.
    let mut codes = Vec::new();
    for _ in 0..100 {
        let code = status_of(&post_restart(port, Some(&bearer)));
        codes.push(code);
        if code != 429 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(codes.last(), Some(&202), "{codes:?}");
    assert!(
        g.wait_for_count("restarted (http)", 2, Duration::from_secs(15)),
        "{:?}",
        g.log()
    );
    g.signal(libc::SIGTERM);
    let (_, log, _) = g.finish(Duration::from_secs(20));
    assert!(!log.iter().any(|l| l.contains(token)), "{log:?}");
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
    // A silent client does not hold up the next request, and is cut off at its deadline.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (code, _) = get(port, "/health/memory");
    assert_eq!(code, 200);
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut cut_off = String::new();
    let _ = silent.read_to_string(&mut cut_off);
    assert!(cut_off.starts_with("HTTP/1.1 408"), "{cut_off}");
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
        &[("MEMFIT_GUARD_ACTION_TOKEN", TEST_TOKEN)],
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
    let accepted = post_restart(port, Some(&format!("Bearer {TEST_TOKEN}")));
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
