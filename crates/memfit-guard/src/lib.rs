//! `memfit guard`: a tiny PID 1 that keeps a service alive under its memory limit.
//!
//! As tini does, it starts one child, forwards signals to it (or to its process group),
//! reaps every zombie, and exits with the child's status (128 + signal when it was killed);
//! when it is not PID 1 it becomes a subreaper. Beside that it watches the container's memory
//! (its cgroup, else the machine, else the process tree), samples faster as the limit nears,
//! and acts before the kernel's OOM killer: a log line with the top processes at the warning
//! threshold (and an optional hook), a graceful restart at the critical one. It reports a
//! leak trend from the post-GC lows and serves `/health/memory` and `/metrics`.
//!
//! One thread does the supervising, blocked in `sigtimedwait` between samples (no signal
//! handlers); one small thread serves HTTP. Nothing here parses project files: the guard
//! ships inside containers and its own footprint is a feature.

pub mod http;
pub mod memory;
pub mod options;
pub mod policy;
pub mod procs;
pub mod startup;
pub mod trend;

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memfit_core::node::CgroupVersion;
use memfit_core::ByteSize;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::memory::Source;
use crate::options::{signal_name, Action, Options, USAGE};
use crate::policy::{Level, Policy};
use crate::trend::{describe_eta, describe_rate, Trend};

/// Samples kept for the log line an action writes.
const RING: usize = 32;

fn log(message: impl AsRef<str>) {
    eprintln!("memfit guard: {}", message.as_ref());
}

/// Entry point for both `memfit guard ARGS` and the `memfit-guard` binary.
pub fn main_with(args: &[OsString]) -> i32 {
    let options = match Options::parse(args) {
        Ok(o) => o,
        Err(None) => {
            println!("{USAGE}");
            return 0;
        }
        Err(Some(message)) => {
            eprintln!("memfit guard: error: {message}");
            return 2;
        }
    };
    match Guard::start(options) {
        Ok(mut guard) => guard.run(),
        Err(message) => {
            eprintln!("memfit guard: error: {message}");
            2
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LevelLabel {
    level: String,
}

struct Metrics {
    usage: Gauge,
    charged: Gauge,
    limit: Gauge,
    peak: Gauge,
    state: Gauge,
    own_rss: Gauge,
    trend: Gauge<f64, AtomicU64>,
    seconds_to_limit: Gauge<f64, AtomicU64>,
    restarts: Family<ReasonLabel, Counter>,
    actions: Family<LevelLabel, Counter>,
    oom_kills: Counter,
}

impl Metrics {
    fn register() -> (Metrics, Registry) {
        let mut registry = Registry::with_prefix("memfit_guard");
        let m = Metrics {
            usage: Gauge::default(),
            charged: Gauge::default(),
            limit: Gauge::default(),
            peak: Gauge::default(),
            state: Gauge::default(),
            own_rss: Gauge::default(),
            trend: Gauge::default(),
            seconds_to_limit: Gauge::default(),
            restarts: Family::default(),
            actions: Family::default(),
            oom_kills: Counter::default(),
        };
        registry.register_with_unit(
            "memory_usage",
            "Working-set memory of the container (charged minus inactive file cache)",
            Unit::Bytes,
            m.usage.clone(),
        );
        registry.register_with_unit(
            "memory_charged",
            "Memory charged to the container, page cache included",
            Unit::Bytes,
            m.charged.clone(),
        );
        registry.register_with_unit(
            "memory_limit",
            "The memory limit the guard enforces",
            Unit::Bytes,
            m.limit.clone(),
        );
        registry.register_with_unit(
            "memory_peak",
            "Highest working-set memory seen",
            Unit::Bytes,
            m.peak.clone(),
        );
        registry.register("state", "0 = ok, 1 = warn, 2 = critical", m.state.clone());
        registry.register_with_unit(
            "own_resident",
            "The guard's own resident memory",
            Unit::Bytes,
            m.own_rss.clone(),
        );
        registry.register(
            "leak_trend_bytes_per_second",
            "Growth of the post-GC lows (0 when no trend)",
            m.trend.clone(),
        );
        registry.register_with_unit(
            "time_to_limit",
            "Time until the limit at the leak trend (+Inf when none)",
            Unit::Seconds,
            m.seconds_to_limit.clone(),
        );
        registry.register(
            "restarts",
            "Restarts of the child by the guard, by reason (crashes are not restarts)",
            m.restarts.clone(),
        );
        registry.register("actions", "Actions taken, by threshold", m.actions.clone());
        registry.register(
            "oom_kills",
            "Processes the kernel OOM-killed in the container",
            m.oom_kills.clone(),
        );
        m.seconds_to_limit.set(f64::INFINITY);
        // Series that exist from the start, at 0, so rates and alerts work before the first event.
        for reason in ["memory", "http"] {
            let _ = m.restarts.get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            });
        }
        for level in ["warn", "critical"] {
            let _ = m.actions.get_or_create(&LevelLabel {
                level: level.to_string(),
            });
        }
        (m, registry)
    }
}

/// Why the child is being stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    Restart(&'static str),
    Exit,
}

struct Stopping {
    deadline: Instant,
    killed: bool,
    then: Then,
    since: Instant,
}

struct Guard {
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
    restart_count: (u64, u64),
}

fn block_signals() -> libc::sigset_t {
    // SAFETY: plain sigset manipulation on a local.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        // Synchronous signals stay with whoever caused them, as tini does.
        for s in [
            libc::SIGFPE,
            libc::SIGILL,
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGABRT,
            libc::SIGTRAP,
            libc::SIGSYS,
            libc::SIGTTIN,
            libc::SIGTTOU,
        ] {
            libc::sigdelset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn exit_status(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

fn mib(bytes: u64) -> String {
    ByteSize(bytes).to_string()
}

impl Guard {
    fn start(options: Options) -> Result<Guard, String> {
        let own_pid = std::process::id() as i32;
        let signals = block_signals();
        if own_pid != 1 {
            // SAFETY: prctl with integer arguments.
            unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        }
        // The memory source and the limit.
        let cgroup = memory::own_cgroup();
        let cgroup_limit = cgroup.as_ref().and_then(Source::limit);
        let (source, limit, limit_from) = match (cgroup, cgroup_limit, options.limit) {
            (Some(cg), Some(cl), user) => {
                let limit = user.map_or(cl, |u| u.min(cl));
                let from = if user.is_some_and(|u| u < cl) { "--limit".to_string() } else { "the cgroup".to_string() };
                (cg, limit, from)
            }
            (_, _, Some(user)) => (Source::Tree, user, "--limit".to_string()),
            _ => match memory::meminfo("MemTotal") {
                Some(total) => (Source::Meminfo, total, "the machine's RAM".to_string()),
                None => return Err("no memory limit found (no cgroup limit, no /proc/meminfo): pass --limit, e.g. --limit 512M".to_string()),
            },
        };
        let cgroup_version = match &source {
            Source::CgroupV1(_) => Some(CgroupVersion::V1),
            Source::CgroupV2(_) => Some(CgroupVersion::V2),
            _ => None,
        };
        let mut startup_log = Vec::new();
        startup_log.push(format!(
            "watching {}: limit {} (from {limit_from}); warn at {}, critical at {} (on critical: {})",
            source.describe(),
            mib(limit),
            mib(options.warn.bytes(limit)),
            mib(options.critical.bytes(limit)),
            match &options.on_critical {
                Action::Restart => "restart".to_string(),
                Action::Stop => "stop".to_string(),
                Action::Log => "log".to_string(),
                Action::Signal(s) => format!("signal {}", signal_name(*s)),
                Action::Exec(c) => format!("exec {c}"),
            }
        ));
        let node_options = std::env::var("NODE_OPTIONS").ok();
        for warning in startup::check(
            &options.command,
            node_options.as_deref(),
            limit,
            cgroup_version,
        ) {
            startup_log.push(format!("startup check: {warning}"));
        }
        let heap_snapshot_signal = node_options
            .iter()
            .flat_map(|o| o.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .chain(
                options
                    .command
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned()),
            )
            .find_map(|f| {
                f.strip_prefix("--heapsnapshot-signal=")
                    .and_then(options::signal_number)
            });

        let (metrics, registry) = Metrics::register();
        metrics.limit.set(limit as i64);
        let shared = match options.listen {
            Some(addr) => {
                let listener = std::net::TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}; choose another address with --listen, or --no-listen"))?;
                let bound = listener.local_addr().unwrap_or(addr);
                let shared = Arc::new(http::Shared {
                    status: Mutex::new(http::Status {
                        limit,
                        state: "ok",
                        source: source.describe(),
                        ..Default::default()
                    }),
                    registry,
                    restart_requested: AtomicBool::new(false),
                    allow_actions: options.allow_actions,
                });
                http::serve(listener, Arc::clone(&shared))
                    .map_err(|e| format!("cannot start the HTTP thread: {e}"))?;
                startup_log.push(format!(
                    "serving /health/memory and /metrics on http://{bound}"
                ));
                Some(shared)
            }
            None => None,
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
            last_top: now - Duration::from_secs(60),
            top: Vec::new(),
            heap_snapshot_signal,
            restart_count: (0, 0),
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
        for line in startup_log {
            log(line);
        }
        Ok(guard)
    }

    fn spawn(&mut self) -> io::Result<()> {
        let mut command = Command::new(&self.options.command[0]);
        command.args(&self.options.command[1..]);
        let group = self.options.signal_group;
        // SAFETY: between fork and exec only async-signal-safe calls on prepared data.
        unsafe {
            command.pre_exec(move || {
                let mut empty: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut empty);
                libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
                if group {
                    libc::setpgid(0, 0);
                }
                Ok(())
            });
        }
        let child = command.spawn()?;
        self.child = Some(child.id() as i32);
        // Reaped with waitpid(-1) with every adopted orphan: std's handle is not used again.
        std::mem::forget(child);
        Ok(())
    }

    fn target(&self) -> Option<i32> {
        self.child
            .map(|pid| if self.options.signal_group { -pid } else { pid })
    }

    fn send(&self, signal: i32) {
        if let Some(target) = self.target() {
            // SAFETY: kill(2) with a pid we started.
            unsafe { libc::kill(target, signal) };
        }
    }

    /// The loop: wait for a signal or the next sample, whichever comes first.
    fn run(&mut self) -> i32 {
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
            for (pid, status) in reap() {
                if Some(pid) == self.child {
                    self.child = None;
                    if let Some(code) = self.on_child_exit(status) {
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
                    log(format!(
                        "the child did not stop within {:?} of SIGTERM: SIGKILL",
                        self.options.grace
                    ));
                    self.send(libc::SIGKILL);
                }
            }
            if let Some(shared) = &self.shared {
                if shared.restart_requested.swap(false, Ordering::SeqCst) && self.stopping.is_none()
                {
                    log("restart requested over HTTP");
                    self.begin_stop(Then::Restart("http"));
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
                        deadline: now + self.options.grace,
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
    fn on_child_exit(&mut self, status: i32) -> Option<i32> {
        let code = exit_status(status);
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
                    self.metrics
                        .restarts
                        .get_or_create(&ReasonLabel {
                            reason: reason.to_string(),
                        })
                        .inc();
                    if reason == "memory" {
                        self.restart_count.0 += 1;
                    } else {
                        self.restart_count.1 += 1;
                    }
                    if let Some(shared) = &self.shared {
                        let mut s = shared.status.lock().unwrap_or_else(|e| e.into_inner());
                        s.restarts_memory = self.restart_count.0;
                        s.restarts_http = self.restart_count.1;
                    }
                    log(format!(
                        "restarted ({reason}): the old child ended in {} ms with {}; new pid {}",
                        since.elapsed().as_millis(),
                        describe_status(status),
                        self.child.unwrap_or(0)
                    ));
                    None
                }
                Err(e) => {
                    log(format!("cannot start the command again: {e}"));
                    Some(code)
                }
            },
            Some(_) => {
                log(format!("the child stopped: {}", describe_status(status)));
                Some(code)
            }
            None => {
                if new_ooms > 0 && code == 137 {
                    log(format!("the child was OOM-killed by the kernel (exit 137): {new_ooms} OOM kill(s) in the cgroup"));
                } else if self.shutdown {
                    log(format!(
                        "the child stopped after the forwarded signal: {}",
                        describe_status(status)
                    ));
                } else {
                    log(format!("the child exited: {}", describe_status(status)));
                }
                Some(code)
            }
        }
    }

    /// After the child: ask what it left behind to stop, wait the grace period, then kill.
    fn drain(&mut self, code: i32) -> i32 {
        let left = procs::descendants(self.own_pid);
        if !left.is_empty() {
            log(format!(
                "{} process(es) left behind: SIGTERM, then SIGKILL after {:?}",
                left.len(),
                self.options.grace
            ));
            for pid in &left {
                // SAFETY: kill(2) on our own descendants.
                unsafe { libc::kill(*pid, libc::SIGTERM) };
            }
            let deadline = Instant::now() + self.options.grace;
            loop {
                reap();
                let alive = procs::descendants(self.own_pid);
                if alive.is_empty() {
                    break;
                }
                if Instant::now() >= deadline {
                    for pid in alive {
                        // SAFETY: as above.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                    std::thread::sleep(Duration::from_millis(20));
                    reap();
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
            deadline: now + self.options.grace,
            killed: false,
            then,
            since: now,
        });
    }

    fn ring_text(&self, now: Instant) -> String {
        let parts: Vec<String> = self
            .ring
            .iter()
            .map(|(t, u)| {
                format!(
                    "-{:.2}s {}",
                    now.duration_since(*t).as_secs_f64(),
                    u / (1024 * 1024)
                )
            })
            .collect();
        format!(
            "last {} samples (age, MiB): {}",
            parts.len(),
            parts.join(", ")
        )
    }

    fn refresh_top(&mut self, now: Instant, force: bool) {
        if force || now.duration_since(self.last_top) >= Duration::from_secs(5) {
            self.top = procs::top(self.own_pid, 3);
            self.last_top = now;
        }
    }

    fn top_text(&self) -> String {
        self.top
            .iter()
            .map(|p| format!("{} (pid {}) {}", p.command, p.pid, mib(p.rss)))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn sample(&mut self, now: Instant) -> Duration {
        let own = self.own_pid;
        let reading = self.source.read(|| procs::tree_rss(own));
        let usage = reading.working;
        self.peak = self.peak.max(usage);
        if self.ring.len() == RING {
            self.ring.pop_front();
        }
        self.ring.push_back((now, usage));
        self.trend.add(now, usage);
        let decision = self.policy.evaluate(now, usage, self.limit);
        self.refresh_top(now, decision.act.is_some());
        if let Some(level) = decision.act {
            if self.stopping.is_none() && self.child.is_some() {
                self.act(
                    level,
                    usage,
                    decision.imminent,
                    decision.seconds_to_limit,
                    now,
                );
            }
        }
        self.report_trend();
        self.publish(reading, decision.level);
        self.policy.next_interval(usage, self.limit)
    }

    fn report_trend(&mut self) {
        let Some(slope) = self.trend.slope() else {
            self.metrics.trend.set(0.0);
            self.metrics.seconds_to_limit.set(f64::INFINITY);
            return;
        };
        let low = self.trend.last_low().unwrap_or(0);
        let eta = self.limit.saturating_sub(low) as f64 / slope;
        self.metrics.trend.set(slope);
        self.metrics.seconds_to_limit.set(eta);
        let changed = self
            .trend_reported
            .is_none_or(|r| (slope - r).abs() > r * 0.25);
        if changed {
            self.trend_reported = Some(slope);
            // On a VM without a cgroup the lows are the whole machine's: say so, since any
            // process can move them.
            let of_what = match self.source {
                Source::Meminfo => "post-GC lows of the machine's memory",
                _ => "post-GC lows",
            };
            log(format!(
                "growing {}, reaches the {} limit in {} ({of_what})",
                describe_rate(slope),
                mib(self.limit),
                describe_eta(eta)
            ));
        }
    }

    fn publish(&mut self, reading: memory::Reading, level: Level) {
        let (own_rss, _) = procs::own_rss();
        self.metrics.usage.set(reading.working as i64);
        self.metrics.charged.set(reading.charged as i64);
        self.metrics.peak.set(self.peak as i64);
        self.metrics.state.set(level as i64);
        self.metrics.own_rss.set(own_rss as i64);
        if let Some(shared) = &self.shared {
            let mut s = shared.status.lock().unwrap_or_else(|e| e.into_inner());
            s.usage = reading.working;
            s.charged = reading.charged;
            s.peak = self.peak;
            s.state = level.as_str();
            s.child_pid = self.child.unwrap_or(0);
            s.top = self.top.clone();
            s.trend_bytes_per_second = self.trend.slope();
            s.seconds_to_limit = s.trend_bytes_per_second.map(|r| {
                self.limit
                    .saturating_sub(self.trend.last_low().unwrap_or(0)) as f64
                    / r
            });
            s.pressure_some_avg10 = self.source.pressure_some_avg10();
        }
    }

    fn act(
        &mut self,
        level: Level,
        usage: u64,
        imminent: bool,
        seconds_to_limit: Option<f64>,
        now: Instant,
    ) {
        self.metrics
            .actions
            .get_or_create(&LevelLabel {
                level: level.as_str().to_string(),
            })
            .inc();
        let percent = usage as f64 * 100.0 / self.limit as f64;
        let why = if imminent {
            format!(
                " (growing {}, the limit in {}: acting before the sustain period)",
                describe_rate(self.policy.rate().max(0.0)),
                seconds_to_limit.map(describe_eta).unwrap_or_default()
            )
        } else {
            String::new()
        };
        log(format!(
            "{}: {} of {} ({percent:.0}%){why}; top: {}",
            level.as_str(),
            mib(usage),
            mib(self.limit),
            self.top_text()
        ));
        log(self.ring_text(now));
        let action = if level == Level::Critical {
            self.options.on_critical.clone()
        } else {
            self.options.on_warn.clone()
        };
        match action {
            Action::Log => {}
            Action::Restart => {
                let (max, window) = self.options.max_restarts;
                while self
                    .restarts
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > window)
                {
                    self.restarts.pop_front();
                }
                if self.restarts.len() as u32 >= max {
                    log(format!("restart limit reached ({max} in {window:?}): not restarting; the kernel may OOM-kill the service"));
                } else {
                    self.restarts.push_back(now);
                    log(format!(
                        "restarting: SIGTERM, SIGKILL after {:?}",
                        self.options.grace
                    ));
                    self.begin_stop(Then::Restart("memory"));
                }
            }
            Action::Stop => {
                log(format!(
                    "stopping: SIGTERM, SIGKILL after {:?}",
                    self.options.grace
                ));
                self.shutdown = true;
                self.begin_stop(Then::Exit);
            }
            Action::Signal(signal) => {
                if Some(signal) == self.heap_snapshot_signal {
                    // A heap snapshot needs about twice the heap (Node's v8 docs); the largest
                    // process's RSS stands for the heap.
                    let heap = self.top.first().map_or(0, |p| p.rss);
                    let free = self.limit.saturating_sub(usage);
                    if free < 2 * heap {
                        log(format!("not sending {} for a heap snapshot: it needs ~2× the heap ({}), {} is free", signal_name(signal), mib(2 * heap), mib(free)));
                        return;
                    }
                }
                log(format!("sending {} to the child", signal_name(signal)));
                self.send(signal);
            }
            Action::Exec(cmd) => {
                let result = Command::new("/bin/sh")
                    .arg("-c")
                    .arg(&cmd)
                    .env("MEMFIT_GUARD_LEVEL", level.as_str())
                    .env("MEMFIT_GUARD_USAGE_BYTES", usage.to_string())
                    .env("MEMFIT_GUARD_LIMIT_BYTES", self.limit.to_string())
                    .env(
                        "MEMFIT_GUARD_CHILD_PID",
                        self.child.unwrap_or(0).to_string(),
                    )
                    .spawn_unblocked();
                match result {
                    Ok(pid) => log(format!("ran `{cmd}` (pid {pid})")),
                    Err(e) => log(format!("cannot run `{cmd}`: {e}")),
                }
            }
        }
    }
}

/// Spawning a hook with the default signal mask (the guard blocks every signal).
trait SpawnUnblocked {
    fn spawn_unblocked(&mut self) -> io::Result<i32>;
}

impl SpawnUnblocked for Command {
    fn spawn_unblocked(&mut self) -> io::Result<i32> {
        // SAFETY: between fork and exec only async-signal-safe calls.
        unsafe {
            self.pre_exec(|| {
                let mut empty: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut empty);
                libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
                Ok(())
            });
        }
        let child = self.spawn()?;
        let pid = child.id() as i32;
        std::mem::forget(child);
        Ok(pid)
    }
}

fn describe_status(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exit {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        let s = libc::WTERMSIG(status);
        format!("killed by {} (exit {})", signal_name(s), 128 + s)
    } else {
        format!("status {status}")
    }
}

/// Every child that ended, reaped.
fn reap() -> Vec<(i32, i32)> {
    let mut out = Vec::new();
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            break;
        }
        out.push((pid, status));
    }
    out
}

/// The trend's bucket: 10 s, or MEMFIT_GUARD_TREND_BUCKET (tests and demos use seconds).
fn trend_bucket() -> Duration {
    std::env::var("MEMFIT_GUARD_TREND_BUCKET")
        .ok()
        .and_then(|v| options::parse_duration(&v))
        .filter(|d| *d >= Duration::from_millis(50))
        .unwrap_or(Duration::from_secs(10))
}
