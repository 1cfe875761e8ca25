//! The guard's Prometheus metrics (prometheus-client), served on `/metrics`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::policy::Level;

/// Why the guard restarted its child. Crashes are not restarts: the guard exits with them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartReason {
    /// The critical threshold was breached.
    Memory,
    /// `POST /actions/restart`.
    Http,
}

impl RestartReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RestartReason::Memory => "memory",
            RestartReason::Http => "http",
        }
    }
}

/// Restarts so far, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestartCounts {
    pub memory: u64,
    pub http: u64,
}

impl RestartCounts {
    pub fn count(&mut self, reason: RestartReason) {
        match reason {
            RestartReason::Memory => self.memory += 1,
            RestartReason::Http => self.http += 1,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LevelLabel {
    level: &'static str,
}

pub struct Metrics {
    pub usage: Gauge,
    pub charged: Gauge,
    pub limit: Gauge,
    pub peak: Gauge,
    pub watermark: Gauge,
    pub state: Gauge,
    pub own_rss: Gauge,
    pub trend: Gauge<f64, AtomicU64>,
    pub seconds_to_limit: Gauge<f64, AtomicU64>,
    restarts: Family<ReasonLabel, Counter>,
    actions: Family<LevelLabel, Counter>,
    pub oom_kills: Counter,
}

impl Metrics {
    pub fn register() -> (Metrics, Registry) {
        let mut registry = Registry::with_prefix("memfit_guard");
        let m = Metrics {
            usage: Gauge::default(),
            charged: Gauge::default(),
            limit: Gauge::default(),
            peak: Gauge::default(),
            watermark: Gauge::default(),
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
        for reason in [RestartReason::Memory, RestartReason::Http] {
            let _ = m.restarts.get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            });
        }
        for level in [Level::Warn, Level::Critical] {
            let _ = m.actions.get_or_create(&LevelLabel {
                level: level.as_str(),
            });
        }
        (m, registry)
    }

    /// `memfit_guard_memory_watermark_bytes`, registered only where the kernel keeps a
    /// watermark (a cgroup: v2 `memory.peak` since Linux 5.19, v1 `memory.max_usage_in_bytes`),
    /// so a machine or a process tree never exports a sampled maximum under that name.
    pub fn register_watermark(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "memory_watermark",
            "The kernel's high-water mark of the container's cgroup (v2 memory.peak, v1 memory.max_usage_in_bytes; page cache included): a spike between samples is never missed",
            Unit::Bytes,
            self.watermark.clone(),
        );
    }

    pub fn restarted(&self, reason: RestartReason) {
        self.restarts
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .inc();
    }

    pub fn acted(&self, level: Level) {
        self.actions
            .get_or_create(&LevelLabel {
                level: level.as_str(),
            })
            .inc();
    }
}
