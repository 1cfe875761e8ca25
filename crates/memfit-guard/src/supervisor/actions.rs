//! What a sample decides and does: read the memory, keep the ring and the trend, publish
//! the state (metrics, /health/memory), and at a threshold act — log with the top processes,
//! signal, run a hook, restart or stop.

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use memfit_sys::{process, procfs};

use super::{mib, Guard, Then, RING};
use crate::logging::{Field, Level as LogLevel};
use crate::memory::{Reading, Source};
use crate::metrics::RestartReason;
use crate::options::{signal_name, Action, RestartLimit};
use crate::policy::Level;
use crate::procs;
use crate::trend::{describe_eta, describe_rate, TrendStatus};
use crate::{log, log_with};

impl Guard {
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

    pub(super) fn refresh_top(&mut self, now: Instant, force: bool) {
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

    pub(super) fn sample(&mut self, now: Instant) -> Duration {
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
        self.read_runtime_view();
        self.publish(reading, decision.level);
        self.policy.next_interval(usage, self.limit)
    }

    /// What the child's Node processes reported since the last sample, without blocking:
    /// the sums over those still alive in the guard's tree (a dead process leaves them).
    fn read_runtime_view(&mut self) {
        let Some(view) = self.node_view.as_mut() else {
            return;
        };
        view.drain(|_, _| {});
        if view.isolates().sum(|_| true).is_none() {
            self.metrics.node.set(None);
            return;
        }
        let tree: HashSet<i32> = procfs::descendants(self.own_pid).into_iter().collect();
        view.retain(|pid| tree.contains(&pid));
        self.metrics.node.set(view.isolates().sum(|_| true));
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
            log_with(
                LogLevel::Info,
                "trend",
                format!(
                    "growing {}, reaches the {} limit in {} ({of_what})",
                    describe_rate(slope),
                    mib(self.limit),
                    describe_eta(eta)
                ),
                &[
                    ("bytes_per_second", Field::F64(slope)),
                    ("seconds_to_limit", Field::F64(eta)),
                    ("limit_bytes", Field::U64(self.limit)),
                ],
            );
        }
    }

    fn publish(&mut self, reading: Reading, level: Level) {
        let own_rss = procs::own_rss();
        self.metrics.usage.set(reading.working as i64);
        self.metrics.charged.set(reading.charged as i64);
        self.metrics.peak.set(self.peak as i64);
        if let Some(watermark) = self.source.watermark() {
            self.metrics.watermark.set(watermark as i64);
        }
        self.metrics.state.set(level as i64);
        self.metrics.own_rss.set(own_rss as i64);
        if let Some(shared) = &self.shared {
            let mut s = shared.status.lock().unwrap_or_else(|e| e.into_inner());
            s.memory.reading = reading;
            s.memory.peak = self.peak;
            s.memory.state = level;
            s.child.pid = self.child.unwrap_or(0);
            s.child.top = self.top.clone();
            s.node = self.metrics.node.get();
            let slope = self.trend.slope();
            s.trend = TrendStatus {
                bytes_per_second: slope,
                seconds_to_limit: slope.map(|r| {
                    self.limit
                        .saturating_sub(self.trend.last_low().unwrap_or(0))
                        as f64
                        / r
                }),
            };
            s.memory.pressure_some_avg10 = self.source.pressure_some_avg10();
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
        self.metrics.acted(level);
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
        let top = self.top_text();
        log_with(
            if level == Level::Critical {
                LogLevel::Error
            } else {
                LogLevel::Warn
            },
            level.as_str(),
            format!(
                "{}: {} of {} ({percent:.0}%){why}; top: {top}",
                level.as_str(),
                mib(usage),
                mib(self.limit),
            ),
            &[
                ("usage_bytes", Field::U64(usage)),
                ("limit_bytes", Field::U64(self.limit)),
                ("percent", Field::F64((percent * 10.0).round() / 10.0)),
                ("imminent", Field::Str(if imminent { "yes" } else { "no" })),
                ("top", Field::Str(&top)),
            ],
        );
        log("samples", self.ring_text(now));
        let action = if level == Level::Critical {
            self.options.on_critical.clone()
        } else {
            self.options.on_warn.clone()
        };
        match action {
            Action::Log => {}
            Action::Restart => {
                let RestartLimit { count: max, window } = self.options.max_restarts;
                while self
                    .restarts
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > window)
                {
                    self.restarts.pop_front();
                }
                if self.restarts.len() as u32 >= max {
                    log_with(
                        LogLevel::Warn,
                        "restart_limit",
                        format!("restart limit reached ({max} in {window:?}): not restarting; the kernel may OOM-kill the service"),
                        &[("max_restarts", Field::U64(max.into()))],
                    );
                } else {
                    self.restarts.push_back(now);
                    log_with(
                        LogLevel::Warn,
                        "restarting",
                        format!(
                            "restarting: SIGTERM, SIGKILL after {:?}",
                            self.options.grace
                        ),
                        &[(
                            "grace_ms",
                            Field::U64(self.options.grace.as_millis() as u64),
                        )],
                    );
                    self.begin_stop(Then::Restart(RestartReason::Memory));
                }
            }
            Action::Stop => {
                log_with(
                    LogLevel::Warn,
                    "stopping",
                    format!("stopping: SIGTERM, SIGKILL after {:?}", self.options.grace),
                    &[(
                        "grace_ms",
                        Field::U64(self.options.grace.as_millis() as u64),
                    )],
                );
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
                        log_with(
                            LogLevel::Warn,
                            "heap_snapshot_skipped",
                            format!("not sending {} for a heap snapshot: it needs ~2× the heap ({}), {} is free", signal_name(signal), mib(2 * heap), mib(free)),
                            &[("needed_bytes", Field::U64(2 * heap)), ("free_bytes", Field::U64(free))],
                        );
                        return;
                    }
                }
                log_with(
                    LogLevel::Info,
                    "signal",
                    format!("sending {} to the child", signal_name(signal)),
                    &[("signal", Field::Str(&signal_name(signal)))],
                );
                self.send(signal);
            }
            Action::Exec(cmd) => {
                let mut hook = Command::new("/bin/sh");
                hook.env_remove(crate::options::ACTION_TOKEN_ENV)
                    .arg("-c")
                    .arg(&cmd)
                    .env("MEMFIT_GUARD_LEVEL", level.as_str())
                    .env("MEMFIT_GUARD_USAGE_BYTES", usage.to_string())
                    .env("MEMFIT_GUARD_LIMIT_BYTES", self.limit.to_string())
                    .env(
                        "MEMFIT_GUARD_CHILD_PID",
                        self.child.unwrap_or(0).to_string(),
                    );
                // Reaped by the loop with every other child.
                let result = process::spawn_detached(&mut hook, false);
                match result {
                    Ok(pid) => log_with(
                        LogLevel::Info,
                        "hook",
                        format!("ran `{cmd}` (pid {pid})"),
                        &[("cmd", Field::Str(&cmd)), ("pid", Field::I64(pid.into()))],
                    ),
                    Err(e) => log_with(
                        LogLevel::Error,
                        "hook_failed",
                        format!("cannot run `{cmd}`: {e}"),
                        &[("cmd", Field::Str(&cmd))],
                    ),
                }
            }
        }
    }
}
