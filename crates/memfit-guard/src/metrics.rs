//! The guard's Prometheus metrics (prometheus-client), served on `/metrics`.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use memfit_sys::runtime_view::HeapSum;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};

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
    /// What the child's Node processes reported, summed; `None` until one has.
    pub node: NodeHeap,
}

/// The Node heap metrics: a collector, so that no series exists until a Node process of the
/// child has reported (as the watermark exists only where the kernel keeps one).
#[derive(Clone, Debug, Default)]
pub struct NodeHeap(Arc<Mutex<Option<HeapSum>>>);

impl NodeHeap {
    pub fn set(&self, sum: Option<HeapSum>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = sum;
    }

    pub fn get(&self) -> Option<HeapSum> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Collector for NodeHeap {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(sum) = self.get() else {
            return Ok(());
        };
        let series: [(&str, &str, u64); 4] = [
            (
                "node_heap_limit",
                "V8's heap size limit (heap_size_limit), summed over the child's Node processes and threads that reported",
                sum.heap_limit_bytes,
            ),
            (
                "node_heap_used",
                "V8's used heap (used_heap_size), summed over the child's Node processes and threads",
                sum.heap_used_bytes,
            ),
            (
                "node_external",
                "Memory outside V8's heap held by JavaScript objects (process.memoryUsage().external, array buffers included), summed",
                sum.external_bytes,
            ),
            (
                "node_array_buffers",
                "ArrayBuffers and Buffers (process.memoryUsage().arrayBuffers), summed",
                sum.array_buffers_bytes,
            ),
        ];
        for (name, help, value) in series {
            let gauge: Gauge = Gauge::default();
            gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
            let metric =
                encoder.encode_descriptor(name, help, Some(&Unit::Bytes), gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
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
            node: NodeHeap::default(),
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
        registry.register_collector(Box::new(m.node.clone()));
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
