//! A deliberately small HTTP/1.1 endpoint on its own thread: `GET /health/memory` (JSON),
//! `GET /metrics` (Prometheus text through prometheus-client), and, only with
//! `--allow-actions` and its bearer token, `POST /actions/restart`, at most once per
//! `--action-interval`. Many connections at once on non-blocking sockets ([`server`]), each
//! with a deadline and a bounded request head ([`parse_request`]), `Connection: close`: a
//! malformed, slow or hostile client gets an error or a closed socket, never a probe's turn
//! or more of the guard's memory.

mod parse;
mod routes;
mod server;

use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use memfit_sys::runtime_view::HeapSum;
use prometheus_client::registry::Registry;

use crate::memory::Reading;
use crate::metrics::RestartCounts;
use crate::policy::Level;
use crate::procs::Proc;
use crate::trend::TrendStatus;

pub use parse::{parse_request, ParseError, Request, MAX_HEAD, MAX_HEADERS};
pub use routes::Actions;
pub use server::MAX_CONNECTIONS;

/// What /health/memory reports; written by the main loop.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub memory: MemoryStatus,
    /// Where the numbers come from (the cgroup, the machine, the process tree).
    pub source: String,
    pub child: ChildStatus,
    pub trend: TrendStatus,
    pub events: EventCounts,
    /// What the child's Node processes reported through the runtime view, summed.
    pub node: Option<HeapSum>,
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
    /// `POST /actions/restart`: `None` without `--allow-actions`.
    pub actions: Mutex<Option<Actions>>,
    /// Whole command lines on /health/memory (`--health-details`).
    pub health_details: bool,
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

/// The JSON of /health/memory. Command lines are whole with `details`, else the executable's
/// name only: arguments can hold secrets (`--password=…`), and the endpoint may be reachable
/// by more people than the container's logs.
pub fn health_json(s: &Status, details: bool) -> String {
    let memory = &s.memory;
    let percent = if memory.limit > 0 {
        memory.reading.working as f64 * 100.0 / memory.limit as f64
    } else {
        0.0
    };
    let node = match &s.node {
        Some(n) => format!(
            "{{\"heap_limit_bytes\":{},\"heap_used_bytes\":{},\"external_bytes\":{},\"array_buffers_bytes\":{},\"threads\":{}}}",
            n.heap_limit_bytes, n.heap_used_bytes, n.external_bytes, n.array_buffers_bytes, n.threads
        ),
        None => "null".to_string(),
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
                json_string(if details { &p.command } else { &p.name })
            )
        })
        .collect();
    format!(
        "{{\"usage_bytes\":{},\"charged_bytes\":{},\"limit_bytes\":{},\"percent\":{:.1},\"peak_bytes\":{},\"state\":{},\"source\":{},\"child_pid\":{},\"top_processes\":[{}],\"trend\":{{\"bytes_per_second\":{},\"seconds_to_limit\":{}}},\"restarts\":{{\"memory\":{},\"http\":{}}},\"oom_kills\":{},\"pressure_some_avg10\":{},\"node\":{node}}}\n",
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

/// Serves on a thread of its own (a small stack: it needs little).
pub fn serve(listener: TcpListener, shared: Arc<Shared>) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("memfit-guard-http".into())
        .stack_size(128 * 1024)
        .spawn(move || server::run(listener, &shared))?;
    Ok(())
}
