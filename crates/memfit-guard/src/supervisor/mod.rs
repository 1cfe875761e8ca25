//! The supervising loop: the child's lifecycle (start, signals forwarded, stop with a grace
//! period, restart, what it leaves behind at shutdown) around one blocking wait
//! (`sigtimedwait`) between samples. What a sample decides and does is in [`actions`].

mod actions;

use std::collections::VecDeque;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memfit_core::ByteSize;
use memfit_sys::process::{self, ExitStatus};
use memfit_sys::procfs;
use memfit_sys::runtime_view::{self, Access, NodeView};

use crate::http;
use crate::logging::{Field, Level as LogLevel};
use crate::memory::{self, Source};
use crate::metrics::{Metrics, RestartCounts, RestartReason};
use crate::options::{self, signal_name, Action, Options};
use crate::policy::Policy;
use crate::procs;
use crate::startup;
use crate::trend::Trend;
use crate::{log, log_with};

/// Samples kept for the log line an action writes.
const RING: usize = 32;

/// Why the child is being stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    Restart(RestartReason),
    Exit,
}

struct Stopping {
    deadline: Instant,
    killed: bool,
    then: Then,
    since: Instant,
}

pub(crate) struct Guard {
    options: Options,
    source: Source,
    limit: u64,
    own_pid: i32,
    signals: libc::sigset_t,
    child: Option<i32>,
    stopping: Option<Stopping>,
    shutdown: bool,
    policy: Policy,
    trend: Trend,
    trend_reported: Option<f64>,
    ring: VecDeque<(Instant, u64)>,
    peak: u64,
    restarts: VecDeque<Instant>,
    oom_baseline: u64,
    metrics: Metrics,
    shared: Option<Arc<http::Shared>>,
    last_top: Instant,
    top: Vec<procs::Proc>,
    heap_snapshot_signal: Option<i32>,
    restart_count: RestartCounts,
    /// The Node runtime view injected into each child (`--no-runtime-view`: none).
    node_view: Option<NodeView>,
}

fn mib(bytes: u64) -> String {
    ByteSize(bytes).to_string()
}

impl Guard {
    pub(crate) fn start(options: Options) -> Result<Guard, String> {
        let own_pid = std::process::id() as i32;
        let signals = process::block_forwarded_signals();
        if own_pid != 1 {
            process::become_subreaper();
        }
        // The memory source and the limit.
        let cgroup = memory::own_cgroup();
        let cgroup_limit = cgroup.as_ref().and_then(Source::limit);
        let (source, limit, limit_from) = match (cgroup, cgroup_limit, options.limit) {
            (Some(cg), Some(cl), user) => {
                let limit = user.map_or(cl, |u| u.min(cl));
                let from = if user.is_some_and(|u| u < cl) { options.names.limit.clone() } else { "the cgroup".to_string() };
                (cg, limit, from)
            }
            (_, _, Some(user)) => (Source::Tree, user, options.names.limit.clone()),
            _ => match procfs::meminfo("MemTotal") {
                Some(total) => (Source::Meminfo, total, "the machine's RAM".to_string()),
                None => return Err("no memory limit found (no cgroup limit, no /proc/meminfo): pass --limit, e.g. --limit 512M".to_string()),
            },
        };
        let (warn_bytes, critical_bytes) = options.thresholds(limit, &limit_from)?;
        let cgroup_version = source.cgroup_version();
        let on_critical = match &options.on_critical {
            Action::Restart => "restart".to_string(),
            Action::Stop => "stop".to_string(),
            Action::Log => "log".to_string(),
            Action::Signal(s) => format!("signal {}", signal_name(*s)),
            Action::Exec(c) => format!("exec {c}"),
        };
        let watching = format!(
            "watching {}: limit {} (from {limit_from}); warn at {}, critical at {} (on critical: {on_critical})",
            source.describe(),
            mib(limit),
            mib(warn_bytes),
            mib(critical_bytes),
        );
        // Logged once the child started: (level, event, message).
        let mut startup_log: Vec<(LogLevel, &str, String)> = Vec::new();
        let node_options = std::env::var("NODE_OPTIONS").ok();
        let node_flags = startup::node_flags(&options.command, node_options.as_deref());
        if let Some(node) = &node_flags {
            for warning in startup::check(node, limit, cgroup_version) {
                startup_log.push((
                    LogLevel::Warn,
                    "startup_check",
                    format!("startup check: {warning}"),
                ));
            }
        }
        if source.oom_group() {
            let (level, advice) = match options.on_critical {
                Action::Log => (
                    LogLevel::Warn,
                    ": with --on-critical log it only logs; use --on-critical restart",
                ),
                _ => (LogLevel::Info, ""),
            };
            startup_log.push((
                level,
                "oom_group",
                format!("memory.oom.group is 1 here (Kubernetes ≥ 1.28 sets it on cgroup v2, kubernetes/kubernetes#117793): a kernel OOM kill ends every process of the container, the guard included, and none is left to restart the service or report the kill; only the guard's action at the critical threshold keeps the service up{advice}"),
            ));
        }
        let heap_snapshot_signal = node_flags
            .as_ref()
            .and_then(|node| node.flags.value("heapsnapshot-signal"))
            .and_then(options::signal_number);

        let (metrics, mut registry) = Metrics::register();
        if source.watermark().is_some() {
            metrics.register_watermark(&mut registry);
        }
        metrics.limit.set(limit as i64);
        let shared = match options.listen {
            Some(addr) => {
                let listener = std::net::TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}; choose another address with --listen, or --no-listen"))?;
                let bound = listener.local_addr().unwrap_or(addr);
                let shared = Arc::new(http::Shared {
                    status: Mutex::new(http::Status {
                        memory: http::MemoryStatus {
                            limit,
                            ..Default::default()
                        },
                        source: source.describe(),
                        ..Default::default()
                    }),
                    registry,
                    restart_requested: AtomicBool::new(false),
                    actions: Mutex::new(options.action_token.clone().map(|token| http::Actions {
                        token,
                        interval: options.action_interval,
                        last_accepted: None,
                    })),
                    health_details: options.health_details,
                });
                http::serve(listener, Arc::clone(&shared))
                    .map_err(|e| format!("cannot start the HTTP thread: {e}"))?;
                if !bound.ip().is_loopback() {
                    startup_log.push((
                        LogLevel::Warn,
                        "listen_warning",
                        beyond_loopback_warning(bound, &options),
                    ));
                }
                startup_log.push((
                    LogLevel::Info,
                    "listening",
                    format!("serving /health/memory and /metrics on http://{bound}"),
                ));
                Some(shared)
            }
            None => None,
        };
        let node_view = if options.runtime_view {
            // Reports no slower than the guard's slowest sample (the view caps it at 1 s).
            match NodeView::start(Some(options.max_interval), Access::AnyUser) {
                Ok(view) => Some(view),
                Err(e) => {
                    // A warning only where the command is Node: a Go service in a scratch
                    // image without /tmp has no use for the view.
                    let level = if node_flags.is_some() {
                        LogLevel::Warn
                    } else {
                        LogLevel::Info
                    };
                    startup_log.push((
                        level,
                        "runtime_view_unavailable",
                        format!("no Node runtime view (cannot prepare its preload in {}: {e}; set TMPDIR to a writable directory, or --no-runtime-view): no node_* metrics", std::env::temp_dir().display()),
                    ));
                    None
                }
            }
        } else {
            None
        };
        let now = Instant::now();
        let oom_baseline = source.oom_kills().unwrap_or(0);
        let mut guard = Guard {
            policy: Policy::new(
                options.warn,
                options.critical,
                options.sustain,
                options.startup_grace,
                options.cooldown,
                options.max_interval,
                now,
            ),
            trend: Trend::new(trend_bucket(), now),
            options,
            source,
            limit,
            own_pid,
            signals,
            child: None,
            stopping: None,
            shutdown: false,
            trend_reported: None,
            ring: VecDeque::with_capacity(RING),
            peak: 0,
            restarts: VecDeque::new(),
            oom_baseline,
            metrics,
            shared,
            // Long enough ago that the first sample lists the top processes (checked: the
            // monotonic clock starts near boot, and a VM can start the guard within a minute).
            last_top: now.checked_sub(Duration::from_secs(60)).unwrap_or(now),
            top: Vec::new(),
            heap_snapshot_signal,
            restart_count: RestartCounts::default(),
            node_view,
        };
        guard.spawn().map_err(|e| {
            let program = guard.options.command[0].to_string_lossy().into_owned();
            match e.kind() {
                io::ErrorKind::NotFound => {
                    format!("command not found: `{program}`; check its spelling and PATH")
                }
                io::ErrorKind::PermissionDenied => {
                    format!("cannot execute `{program}`: permission denied")
                }
                _ => format!("cannot start `{program}`: {e}"),
            }
        })?;
        let source_name = guard.source.describe();
        log_with(
            LogLevel::Info,
            "start",
            watching,
            &[
                ("source", Field::Str(&source_name)),
                ("limit_bytes", Field::U64(limit)),
                ("limit_from", Field::Str(&limit_from)),
                ("warn_bytes", Field::U64(warn_bytes)),
                ("critical_bytes", Field::U64(critical_bytes)),
                ("on_critical", Field::Str(&on_critical)),
                ("pid", Field::I64(guard.child.unwrap_or(0).into())),
            ],
        );
        for (level, event, line) in startup_log {
            log_with(level, event, line, &[]);
        }
        Ok(guard)
    }

    fn spawn(&mut self) -> io::Result<()> {
        let mut command = Command::new(&self.options.command[0]);
        command.args(&self.options.command[1..]);
        // The token is the guard's, not the service's.
        command.env_remove(options::ACTION_TOKEN_ENV);
        // Each child, the first and every restarted one, gets the preload after its own flags.
        if let Some(view) = &self.node_view {
            let existing = std::env::var_os(runtime_view::NODE_OPTIONS);
            command.env(
                runtime_view::NODE_OPTIONS,
                view.node_options(existing.as_deref()),
            );
        }
        // The child dies with the guard even when the guard cannot stop it (SIGKILL, a crash):
        // a guard that is gone can no longer keep it under its limit, and as PID 1 of a
        // container it would have taken the child with it anyway.
        let guard_pid = self.own_pid;
        // SAFETY: prctl(2) and getppid(2) are async-signal-safe; this runs between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The guard died before the prctl: the signal will not come.
                if libc::getppid() != guard_pid {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        // Reaped with waitpid(-1) with every adopted orphan.
        self.child = Some(process::spawn_detached(
            &mut command,
            self.options.signal_group,
        )?);
        Ok(())
    }

    fn target(&self) -> Option<i32> {
        self.child
            .map(|pid| if self.options.signal_group { -pid } else { pid })
    }

    fn send(&self, signal: i32) {
        if let Some(target) = self.target() {
            process::kill(target, signal);
        }
    }

    /// The loop: wait for a signal or the next sample, whichever comes first.
    pub(crate) fn run(&mut self) -> i32 {
        let mut next_sample = Instant::now();
        let mut final_status: Option<i32> = None;
        loop {
            let now = Instant::now();
            let mut wait = next_sample.saturating_duration_since(now);
            if let Some(s) = &self.stopping {
                if !s.killed {
                    wait = wait.min(s.deadline.saturating_duration_since(now));
                }
            }
            if let Some(signal) = self.wait_signal(wait) {
                self.on_signal(signal);
            }
            for reaped in process::reap_exited() {
                if Some(reaped.pid) == self.child {
                    self.child = None;
                    if let Some(code) = self.on_child_exit(reaped.status) {
                        final_status = Some(code);
                    }
                }
            }
            if let Some(code) = final_status {
                return self.drain(code);
            }
            if self.child.is_none() && self.shutdown {
                return self.drain(143);
            }
            let now = Instant::now();
            if let Some(s) = &mut self.stopping {
                if !s.killed && now >= s.deadline {
                    s.killed = true;
                    log_with(
                        LogLevel::Warn,
                        "kill",
                        format!(
                            "the child did not stop within {:?} of SIGTERM: SIGKILL",
                            self.options.grace
                        ),
                        &[(
                            "grace_ms",
                            Field::U64(self.options.grace.as_millis() as u64),
                        )],
                    );
                    self.send(libc::SIGKILL);
                }
            }
            if let Some(shared) = &self.shared {
                if shared.restart_requested.swap(false, Ordering::SeqCst) && self.stopping.is_none()
                {
                    log("restart_requested", "restart requested over HTTP");
                    self.begin_stop(Then::Restart(RestartReason::Http));
                }
            }
            if now >= next_sample {
                let interval = self.sample(now);
                next_sample = Instant::now() + interval;
            }
        }
    }

    fn wait_signal(&self, wait: Duration) -> Option<i32> {
        let timeout = libc::timespec {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_nsec: wait.subsec_nanos() as libc::c_long,
        };
        // SAFETY: sigtimedwait with a valid set and timeout.
        let signal = unsafe { libc::sigtimedwait(&self.signals, std::ptr::null_mut(), &timeout) };
        (signal > 0).then_some(signal)
    }

    fn on_signal(&mut self, signal: i32) {
        if signal == libc::SIGCHLD {
            return;
        }
        self.send(signal);
        if matches!(signal, libc::SIGTERM | libc::SIGINT | libc::SIGQUIT) {
            self.shutdown = true;
            match &mut self.stopping {
                // A restart in progress becomes a stop.
                Some(s) => s.then = Then::Exit,
                // The child gets the grace period to stop, then SIGKILL.
                None if self.child.is_some() => {
                    let now = Instant::now();
                    self.stopping = Some(Stopping {
                        deadline: later(now, self.options.grace),
                        killed: false,
                        then: Then::Exit,
                        since: now,
                    });
                }
                None => {}
            }
        }
    }

    /// The child ended; returns the guard's exit status when the guard should end too.
    fn on_child_exit(&mut self, status: ExitStatus) -> Option<i32> {
        let code = status.shell_status();
        let oom_now = self.source.oom_kills().unwrap_or(0);
        let new_ooms = oom_now.saturating_sub(self.oom_baseline);
        if new_ooms > 0 {
            self.oom_baseline = oom_now;
            self.metrics.oom_kills.inc_by(new_ooms);
            if let Some(shared) = &self.shared {
                shared
                    .status
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .events
                    .oom_kills += new_ooms;
            }
        }
        let stopping = self.stopping.take();
        match stopping {
            Some(Stopping {
                then: Then::Restart(reason),
                since,
                ..
            }) if !self.shutdown => match self.spawn() {
                Ok(()) => {
                    let now = Instant::now();
                    self.policy.restarted(now);
                    self.trend.reset(now);
                    self.trend_reported = None;
                    self.metrics.restarted(reason);
                    self.restart_count.count(reason);
                    if let Some(shared) = &self.shared {
                        let mut s = shared.status.lock().unwrap_or_else(|e| e.into_inner());
                        s.events.restarts = self.restart_count;
                    }
                    let stopped_ms = since.elapsed().as_millis() as u64;
                    let pid = self.child.unwrap_or(0);
                    log_with(
                        LogLevel::Info,
                        "restarted",
                        format!(
                            "restarted ({}): the old child ended in {stopped_ms} ms with {}; new pid {pid}",
                            reason.as_str(),
                            describe_status(status),
                        ),
                        &[
                            ("reason", Field::Str(reason.as_str())),
                            ("stopped_ms", Field::U64(stopped_ms)),
                            ("exit_code", Field::I64(code.into())),
                            ("pid", Field::I64(pid.into())),
                        ],
                    );
                    None
                }
                Err(e) => {
                    log_with(
                        LogLevel::Error,
                        "restart_failed",
                        format!("cannot start the command again: {e}"),
                        &[],
                    );
                    Some(code)
                }
            },
            Some(_) => {
                log_with(
                    LogLevel::Info,
                    "child_stopped",
                    format!("the child stopped: {}", describe_status(status)),
                    &[("exit_code", Field::I64(code.into()))],
                );
                Some(code)
            }
            None => {
                if new_ooms > 0 && code == 137 {
                    log_with(
                        LogLevel::Error,
                        "oom_kill",
                        format!("the child was OOM-killed by the kernel (exit 137): {new_ooms} OOM kill(s) in the cgroup"),
                        &[("exit_code", Field::I64(code.into())), ("oom_kills", Field::U64(new_ooms))],
                    );
                } else if self.shutdown {
                    log_with(
                        LogLevel::Info,
                        "child_stopped",
                        format!(
                            "the child stopped after the forwarded signal: {}",
                            describe_status(status)
                        ),
                        &[("exit_code", Field::I64(code.into()))],
                    );
                } else {
                    log_with(
                        LogLevel::Info,
                        "child_exit",
                        format!("the child exited: {}", describe_status(status)),
                        &[("exit_code", Field::I64(code.into()))],
                    );
                }
                Some(code)
            }
        }
    }

    /// After the child: ask what it left behind to stop, wait the grace period, then kill.
    fn drain(&mut self, code: i32) -> i32 {
        let left = procfs::descendants(self.own_pid);
        if !left.is_empty() {
            log_with(
                LogLevel::Warn,
                "leftovers",
                format!(
                    "{} process(es) left behind: SIGTERM, then SIGKILL after {:?}",
                    left.len(),
                    self.options.grace
                ),
                &[("processes", Field::U64(left.len() as u64))],
            );
            for pid in &left {
                process::kill(*pid, libc::SIGTERM);
            }
            let deadline = later(Instant::now(), self.options.grace);
            loop {
                process::reap_exited();
                let alive = procfs::descendants(self.own_pid);
                if alive.is_empty() {
                    break;
                }
                if Instant::now() >= deadline {
                    for pid in alive {
                        process::kill(pid, libc::SIGKILL);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                    process::reap_exited();
                    break;
                }
                let _ = self.wait_signal(Duration::from_millis(50));
            }
        }
        code
    }

    fn begin_stop(&mut self, then: Then) {
        if self.child.is_none() {
            return;
        }
        let now = Instant::now();
        self.send(libc::SIGTERM);
        self.stopping = Some(Stopping {
            deadline: later(now, self.options.grace),
            killed: false,
            then,
            since: now,
        });
    }
}

/// `now + after`, saturating: options are bounded ([`options::MAX_DURATION`]), and a clock
/// near its end must not panic the process that keeps the child alive.
fn later(now: Instant, after: Duration) -> Instant {
    now.checked_add(after)
        .or_else(|| now.checked_add(options::MAX_DURATION))
        .unwrap_or(now)
}

/// The endpoints are open to the network: say so once, at start.
fn beyond_loopback_warning(bound: std::net::SocketAddr, options: &Options) -> String {
    let endpoints = if options.action_token.is_some() {
        "/health/memory, /metrics and POST /actions/restart (with its token)"
    } else {
        "/health/memory and /metrics"
    };
    let details = if options.health_details {
        "with whole command lines (--health-details)"
    } else {
        "command lines redacted"
    };
    format!(
        "warning: listening on {bound}: {endpoints} are reachable beyond this machine ({details}); use --listen 127.0.0.1:{} to keep them local",
        bound.port()
    )
}

fn describe_status(status: ExitStatus) -> String {
    match status {
        ExitStatus::Exited(code) => format!("exit {code}"),
        ExitStatus::Signaled(s) => format!("killed by {} (exit {})", signal_name(s), 128 + s),
    }
}

/// The trend's bucket: 10 s, or MEMFIT_GUARD_TREND_BUCKET (tests and demos use seconds).
fn trend_bucket() -> Duration {
    std::env::var("MEMFIT_GUARD_TREND_BUCKET")
        .ok()
        .and_then(|v| options::parse_duration(&v))
        .filter(|d| *d >= Duration::from_millis(50) && *d <= options::MAX_DURATION)
        .unwrap_or(Duration::from_secs(10))
}
