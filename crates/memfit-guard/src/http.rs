//! A deliberately small HTTP/1.1 endpoint on its own thread: `GET /health/memory` (JSON),
//! `GET /metrics` (Prometheus/OpenMetrics text through prometheus-client), and, only with
//! `--allow-actions`, `POST /actions/restart`. One connection at a time, `Connection:
//! close`, a fixed 8 KiB request buffer and a 3 s deadline per connection: a malformed, slow
//! or hostile client gets an error or a closed socket, never more of the guard's memory.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

use crate::memory::Reading;
use crate::metrics::RestartCounts;
use crate::policy::Level;
use crate::procs::Proc;
use crate::trend::TrendStatus;

const MAX_REQUEST: usize = 8 * 1024;
const DEADLINE: Duration = Duration::from_secs(3);

/// What /health/memory reports; written by the main loop.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub memory: MemoryStatus,
    /// Where the numbers come from (the cgroup, the machine, the process tree).
    pub source: String,
    pub child: ChildStatus,
    pub trend: TrendStatus,
    pub events: EventCounts,
}

/// The container's memory as last read.
#[derive(Debug, Clone, Default)]
pub struct MemoryStatus {
    pub reading: Reading,
    pub limit: u64,
    pub peak: u64,
    pub state: Level,
    pub pressure_some_avg10: Option<f64>,
}

/// The child and the largest processes of its tree.
#[derive(Debug, Clone, Default)]
pub struct ChildStatus {
    pub pid: i32,
    pub top: Vec<Proc>,
}

/// What happened since the guard started.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventCounts {
    pub restarts: RestartCounts,
    pub oom_kills: u64,
}

pub struct Shared {
    pub status: Mutex<Status>,
    pub registry: Registry,
    pub restart_requested: AtomicBool,
    pub allow_actions: bool,
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn number(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.3}"),
        _ => "null".to_string(),
    }
}

pub fn health_json(s: &Status) -> String {
    let memory = &s.memory;
    let percent = if memory.limit > 0 {
        memory.reading.working as f64 * 100.0 / memory.limit as f64
    } else {
        0.0
    };
    let top: Vec<String> = s
        .child
        .top
        .iter()
        .map(|p| {
            format!(
                "{{\"pid\":{},\"rss_bytes\":{},\"command\":{}}}",
                p.pid,
                p.rss,
                json_string(&p.command)
            )
        })
        .collect();
    format!(
        "{{\"usage_bytes\":{},\"charged_bytes\":{},\"limit_bytes\":{},\"percent\":{:.1},\"peak_bytes\":{},\"state\":{},\"source\":{},\"child_pid\":{},\"top_processes\":[{}],\"trend\":{{\"bytes_per_second\":{},\"seconds_to_limit\":{}}},\"restarts\":{{\"memory\":{},\"http\":{}}},\"oom_kills\":{},\"pressure_some_avg10\":{}}}\n",
        memory.reading.working,
        memory.reading.charged,
        memory.limit,
        percent,
        memory.peak,
        json_string(memory.state.as_str()),
        json_string(&s.source),
        s.child.pid,
        top.join(","),
        number(s.trend.bytes_per_second),
        number(s.trend.seconds_to_limit),
        s.events.restarts.memory,
        s.events.restarts.http,
        s.events.oom_kills,
        number(memory.pressure_some_avg10),
    )
}

fn respond(stream: &mut TcpStream, code: u16, reason: &str, content_type: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
    let _ = stream.flush();
}

fn handle(mut stream: TcpStream, shared: &Shared) {
    let started = Instant::now();
    let _ = stream.set_write_timeout(Some(DEADLINE));
    let mut buf = [0u8; MAX_REQUEST];
    let mut len = 0;
    loop {
        let left = DEADLINE.saturating_sub(started.elapsed());
        if left.is_zero() {
            timed_out(&mut stream);
            return;
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut buf[len..]) {
            Ok(0) => return,
            Ok(n) => {
                len += n;
                if buf[..len].windows(4).any(|w| w == b"\r\n\r\n")
                    || buf[..len].windows(2).any(|w| w == b"\n\n")
                {
                    break;
                }
                if len == buf.len() {
                    respond(
                        &mut stream,
                        431,
                        "Request Header Fields Too Large",
                        "text/plain",
                        "request too large\n",
                    );
                    return;
                }
            }
            Err(_) => {
                timed_out(&mut stream);
                return;
            }
        }
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, path, version) = (parts.next(), parts.next(), parts.next());
    let (Some(method), Some(path), Some(version)) = (method, path, version) else {
        respond(
            &mut stream,
            400,
            "Bad Request",
            "text/plain",
            "bad request\n",
        );
        return;
    };
    if !version.starts_with("HTTP/1.") {
        respond(
            &mut stream,
            400,
            "Bad Request",
            "text/plain",
            "HTTP/1.x only\n",
        );
        return;
    }
    let path = path.split('?').next().unwrap_or(path);
    match (method, path) {
        ("GET" | "HEAD", "/health/memory") => {
            let body = health_json(&shared.status.lock().unwrap_or_else(|e| e.into_inner()));
            respond(
                &mut stream,
                200,
                "OK",
                "application/json",
                if method == "HEAD" { "" } else { &body },
            );
        }
        ("GET" | "HEAD", "/metrics") => {
            let mut body = String::new();
            if encode(&mut body, &shared.registry).is_err() {
                respond(
                    &mut stream,
                    500,
                    "Internal Server Error",
                    "text/plain",
                    "encoding failed\n",
                );
                return;
            }
            let body = prometheus_text(&body);
            respond(
                &mut stream,
                200,
                "OK",
                "text/plain; version=0.0.4; charset=utf-8",
                if method == "HEAD" { "" } else { &body },
            );
        }
        ("POST", "/actions/restart") => {
            if shared.allow_actions {
                shared.restart_requested.store(true, Ordering::SeqCst);
                respond(
                    &mut stream,
                    202,
                    "Accepted",
                    "text/plain",
                    "restart requested\n",
                );
            } else {
                respond(
                    &mut stream,
                    403,
                    "Forbidden",
                    "text/plain",
                    "actions over HTTP are off; start the guard with --allow-actions\n",
                );
            }
        }
        (_, "/health/memory" | "/metrics" | "/actions/restart") => {
            respond(
                &mut stream,
                405,
                "Method Not Allowed",
                "text/plain",
                "method not allowed\n",
            );
        }
        _ => respond(
            &mut stream,
            404,
            "Not Found",
            "text/plain",
            "endpoints: GET /health/memory, GET /metrics, POST /actions/restart\n",
        ),
    }
}

/// prometheus-client writes OpenMetrics; Prometheus's own text format (what `promtool check
/// metrics` and every scraper read) differs in three details: counter families are named with
/// their `_total` suffix, there are no `# UNIT` / `# EOF` lines, and infinity is `+Inf`.
pub fn prometheus_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let mut text = line.to_string();
        for prefix in ["# HELP ", "# TYPE "] {
            if let Some(rest) = line.strip_prefix(prefix) {
                let name = rest.split(' ').next().unwrap_or("");
                if counters.contains(&name) {
                    text = format!("{prefix}{name}_total{}", &rest[name.len()..]);
                }
            }
        }
        if let Some(value) = text.strip_suffix(" inf") {
            text = format!("{value} +Inf");
        } else if let Some(value) = text.strip_suffix(" -inf") {
            text = format!("{value} -Inf");
        }
        out.push_str(&text);
        out.push('\n');
    }
    out
}

/// Binds and serves on a thread of its own (a small stack: it needs little).
pub fn serve(listener: TcpListener, shared: Arc<Shared>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("memfit-guard-http".into())
        .stack_size(128 * 1024)
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(s) => handle(s, &shared),
                    // EMFILE and friends: back off instead of spinning.
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })?;
    Ok(())
}

/// 408: the request did not arrive whole within the deadline.
fn timed_out(stream: &mut TcpStream) {
    respond(
        stream,
        408,
        "Request Timeout",
        "text/plain",
        "request timeout\n",
    );
}
