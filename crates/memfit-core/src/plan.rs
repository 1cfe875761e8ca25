//! `memfit plan`: a memory budget for a runtime in a container, and the exact settings that
//! make the runtime keep to it.
//!
//! The budget splits the container limit the way the runtime will use it: the heap the
//! runtime is told to keep to, what it needs beside the heap (code, stacks, native
//! libraries), what the application keeps outside the heap (Buffers, C extensions), and the
//! headroom the kernel needs (page cache, the container's other processes). Every constant is
//! a measurement or a documented default, with its source beside it; where memfit makes a
//! choice of its own (a reserve, a rounding), the comment says so.

use serde::Serialize;

use crate::jvm::{self, NonHeap, NonHeapOptions};
use crate::node::{self, NodeVersion};
use crate::size::{ByteSize, MIB};
use crate::CgroupVersion;

/// The runtimes `memfit plan` sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Node,
    Jvm,
    Go,
    Python,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Node => "node",
            Runtime::Jvm => "jvm",
            Runtime::Go => "go",
            Runtime::Python => "python",
        }
    }
}

/// What the plan is computed from.
#[derive(Clone, Debug)]
pub struct PlanInput {
    pub limit: ByteSize,
    pub runtime: Runtime,
    /// The Node version the image runs (Node only).
    pub node_version: NodeVersion,
    /// The cgroup version of the machines the container runs on.
    pub cgroup: CgroupVersion,
    /// Processes of the runtime sharing the limit: cluster or PM2 workers, gunicorn workers.
    /// `None`: one for Node, the JVM and Go; as many as fit for Python.
    pub workers: Option<u32>,
    /// CPUs the plan gives (for Python's worker count).
    pub cpus: Option<f32>,
    /// The measured peak of one worker process (from `memfit run`), when known.
    pub worker_size: Option<ByteSize>,
}

/// One line of the budget.
#[derive(Clone, Debug, Serialize)]
pub struct BudgetLine {
    pub item: &'static str,
    pub bytes: u64,
    /// Whether the line is counted once per worker.
    pub per_worker: bool,
    /// Where the number comes from.
    pub basis: String,
}

/// A setting to apply: an environment variable and its value.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    pub value: String,
}

/// The plan: the budget, the settings and what they promise.
#[derive(Clone, Debug, Serialize)]
pub struct Budget {
    pub runtime: Runtime,
    pub limit_bytes: u64,
    pub workers: Option<u32>,
    pub lines: Vec<BudgetLine>,
    pub settings: Vec<Setting>,
    /// The heap limit the runtime will report with these settings: V8's `heap_size_limit`,
    /// the JVM's `MaxHeapSize`, Go's soft limit.
    pub promised_heap_bytes: Option<u64>,
    /// The heap limit the runtime picks in this container without any setting.
    pub default_heap_bytes: Option<u64>,
    /// Facts the user should know (defaults that waste or overflow, version caveats).
    pub notes: Vec<String>,
    /// Why the budget cannot be met, if it cannot; empty when it fits.
    pub problems: Vec<String>,
}

impl Budget {
    pub fn fits(&self) -> bool {
        self.problems.is_empty()
    }

    fn line(&mut self, item: &'static str, bytes: u64, per_worker: bool, basis: impl Into<String>) {
        self.lines.push(BudgetLine {
            item,
            bytes,
            per_worker,
            basis: basis.into(),
        });
    }
}

/// What the kernel and the container's other processes need beside the runtime: 32 MiB, the
/// "OS" line of a real 512 MB Node budget (vocdoni/vocdoni-app#1638: 384 old + 32 young + 64
/// native + 32 OS). Counted once per container.
pub const SYSTEM_RESERVE: ByteSize = ByteSize(32 * MIB);

/// The share of a worker's memory given to the old generation when it is roomy: 75%, the
/// common practice (Node's own docs: 1536 MiB on a 2 GiB machine; TryGhost/ActivityPub#2038),
/// leaving a quarter for everything off the heap.
pub const HEAP_SHARE_PERCENT: u64 = 75;

/// memfit's choice: at least this much per Node worker for Buffers and other memory outside
/// the V8 heap, which no flag caps (300 MiB of Buffers under a 64 MiB heap cap: RSS 340 MiB,
/// no V8 error; bench/node_flag_effects.sh).
pub const MIN_OFF_HEAP: ByteSize = ByteSize(16 * MIB);

/// memfit's choice: below this old generation a Node server spends its time collecting.
pub const MIN_USEFUL_OLD_SPACE: ByteSize = ByteSize(64 * MIB);

/// What the runtime view of a `memfit run` measured in the largest Node process: the V8
/// heap's and the off-heap memory's (external, Buffers included) peaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeMeasured {
    pub heap_used: ByteSize,
    pub off_heap: ByteSize,
}

/// memfit's choice: what a measured peak gets on top, in percent, as the heap cap or the
/// off-heap budget (the same margin as the limit's, [`recommended_limit`]).
pub const MEASURED_HEADROOM_PERCENT: u64 = 25;

impl NodeMeasured {
    /// The heap cap the measured heap needs: its peak + 25%, at least
    /// [`MIN_USEFUL_OLD_SPACE`], in whole 8 MiB.
    pub fn heap_cap(&self) -> u64 {
        scale(self.heap_used.bytes(), 100 + MEASURED_HEADROOM_PERCENT, 100)
            .max(MIN_USEFUL_OLD_SPACE.bytes())
            .div_ceil(8 * MIB)
            * (8 * MIB)
    }

    /// The off-heap budget: its peak + 25%, at least [`MIN_OFF_HEAP`].
    pub fn off_heap_budget(&self) -> u64 {
        scale(self.off_heap.bytes(), 100 + MEASURED_HEADROOM_PERCENT, 100).max(MIN_OFF_HEAP.bytes())
    }

    /// The limit one Node process needs for both: the heap cap, the young generation, native
    /// memory, the off-heap budget and the system reserve, in whole 64 MiB.
    pub fn limit(&self, version: NodeVersion) -> ByteSize {
        let fixed = self.heap_cap()
            + node::NATIVE_OVERHEAD.bytes()
            + self.off_heap_budget()
            + SYSTEM_RESERVE.bytes();
        // The young generation follows the limit: two rounds settle it.
        let mut limit = ByteSize(fixed).round_up(64 * MIB);
        for _ in 0..2 {
            let young = 3 * version.default_semi_space(limit).bytes();
            limit = ByteSize(fixed + young).round_up(64 * MIB);
        }
        limit
    }
}

/// Computes the plan.
pub fn plan(input: &PlanInput) -> Budget {
    plan_measured(input, None)
}

/// Computes the plan, for Node from what the runtime view measured where it is known: the
/// off-heap budget is reserved first, and the heap cap must hold the measured heap.
pub fn plan_measured(input: &PlanInput, measured: Option<NodeMeasured>) -> Budget {
    let mut budget = Budget {
        runtime: input.runtime,
        limit_bytes: input.limit.bytes(),
        workers: input.workers,
        lines: Vec::new(),
        settings: Vec::new(),
        promised_heap_bytes: None,
        default_heap_bytes: None,
        notes: Vec::new(),
        problems: Vec::new(),
    };
    match input.runtime {
        Runtime::Node => plan_node(input, measured, &mut budget),
        Runtime::Jvm => plan_jvm(input, &mut budget),
        Runtime::Go => plan_go(input, &mut budget),
        Runtime::Python => plan_python(input, &mut budget),
    }
    budget
}

/// `value × numerator ÷ denominator` without overflow (in 128 bits), saturating at
/// `u64::MAX`: limits go up to 4 EiB, where `limit × 60` no longer fits in 64 bits.
fn scale(value: u64, numerator: u64, denominator: u64) -> u64 {
    let scaled = u128::from(value) * u128::from(numerator) / u128::from(denominator.max(1));
    u64::try_from(scaled).unwrap_or(u64::MAX)
}

fn round_down(bytes: u64, step: u64) -> u64 {
    bytes / step * step
}

fn mib(bytes: u64) -> u64 {
    bytes / MIB
}

fn plan_node(input: &PlanInput, measured: Option<NodeMeasured>, budget: &mut Budget) {
    let version = input.node_version;
    let limit = input.limit.bytes();
    let workers = input.workers.unwrap_or(1).max(1);
    budget.workers = Some(workers);
    let sees_limit = version.sees_limit(input.cgroup);

    // The young generation follows the memory V8 believes it has, not --max-old-space-size
    // (measured, see node.rs). When Node cannot see the limit it sizes from the host; the plan
    // then pins the semi-space to what it would pick for the limit, so the budget holds on
    // any host.
    let semi = version.default_semi_space(input.limit);
    let young = 3 * semi.bytes();
    let pin_semi = !sees_limit;

    let primary = if workers > 1 {
        node::BASELINE_RSS.bytes()
    } else {
        0
    };
    let shared = limit.saturating_sub(primary + SYSTEM_RESERVE.bytes());
    let per_worker = shared / u64::from(workers);
    let share_cap = scale(
        limit.saturating_sub(primary) / u64::from(workers),
        HEAP_SHARE_PERCENT,
        100,
    );
    let off_heap_reserve = measured.map_or(MIN_OFF_HEAP.bytes(), |m| m.off_heap_budget());
    let room = per_worker.saturating_sub(young + node::NATIVE_OVERHEAD.bytes() + off_heap_reserve);
    // memfit's choice: whole multiples of 8 MiB, a readable flag.
    let old = round_down(share_cap.min(room), 8 * MIB);

    if sees_limit {
        budget.default_heap_bytes = Some(version.heap_size_limit(input.limit, None, None).bytes());
        let default = budget.default_heap_bytes.unwrap_or_default();
        if default > limit {
            budget.notes.push(format!(
                "Without a flag Node {version} gives the heap {} in this {} container: V8 never sizes the old generation below 256 MiB, so the kernel kills the process before V8 collects hard.",
                ByteSize(default),
                input.limit
            ));
        } else if u128::from(default) * 100 < u128::from(limit) * 60 {
            budget.notes.push(format!(
                "Without a flag Node {version} caps the heap at {} in this {} container (V8 gives the old generation half the memory, at least 256 MiB), leaving {} unused by the heap.",
                ByteSize(default),
                input.limit,
                ByteSize(limit - default)
            ));
        }
    } else {
        budget.notes.push(format!(
            "Node {version} does not read cgroup v2 limits (libuv < 1.45; nodejs/node#47259): without a flag it sizes the heap from the host's RAM (up to {} on a 16 GiB host), far above this limit. The settings below cap it explicitly.",
            ByteSize(version.heap_size_limit(ByteSize(16 * 1024 * MIB), None, None).bytes())
        ));
    }

    if old < MIN_USEFUL_OLD_SPACE.bytes() {
        let need_each =
            MIN_USEFUL_OLD_SPACE.bytes() + young + node::NATIVE_OVERHEAD.bytes() + off_heap_reserve;
        let fit =
            limit.saturating_sub(node::BASELINE_RSS.bytes() + SYSTEM_RESERVE.bytes()) / need_each;
        budget.problems.push(if workers > 1 {
            format!(
                "{workers} Node workers do not fit in {}: each would get {} of heap. At most {fit} worker(s) of at least {} each fit; use fewer workers or a larger plan.",
                input.limit,
                ByteSize(old),
                ByteSize(need_each)
            )
        } else {
            format!(
                "One Node process does not fit in {}: it needs at least {} (a {} heap, {} of young generation, {} native, {} off-heap{}) plus {} for the system.",
                input.limit,
                ByteSize(need_each),
                MIN_USEFUL_OLD_SPACE,
                ByteSize(young),
                node::NATIVE_OVERHEAD,
                ByteSize(off_heap_reserve),
                if measured.is_some() { ", as measured + 25%" } else { "" },
                SYSTEM_RESERVE
            )
        });
        return;
    }

    if let Some(m) = measured {
        if old < m.heap_cap() {
            budget.problems.push(format!(
                "The measured run's heap peaked at {} (a {} cap with {MEASURED_HEADROOM_PERCENT}% headroom), but {} leaves the heap only {} beside its measured {} off-heap: use a {} limit or larger.",
                m.heap_used,
                ByteSize(m.heap_cap()),
                input.limit,
                ByteSize(old),
                m.off_heap,
                m.limit(version)
            ));
        }
    }
    let off_heap = per_worker.saturating_sub(old + young + node::NATIVE_OVERHEAD.bytes());
    let heap_basis = match measured {
        Some(m) => format!("min({HEAP_SHARE_PERCENT}% of the worker's share, what is left after the lines below); the measured heap peaked at {}; the flag below", m.heap_used),
        None => format!("min({HEAP_SHARE_PERCENT}% of the worker's share, what is left after the lines below); the flag below"),
    };
    budget.line("old space (heap cap)", old, true, heap_basis);
    budget.line(
        "young generation",
        young,
        true,
        format!(
            "3 × semi-space of {} that Node {version} picks for {} (measured)",
            ByteSize(semi.bytes()),
            input.limit
        ),
    );
    budget.line(
        "native and code",
        node::NATIVE_OVERHEAD.bytes(),
        true,
        "RSS − heapTotal of a working process (30–99 MiB measured by bench/node_overhead.sh)",
    );
    budget.line(
        "off-heap (Buffers) and slack",
        off_heap,
        true,
        match measured {
            Some(m) => format!(
                "measured: external (Buffers included) peaked at {} + {MEASURED_HEADROOM_PERCENT}%, and what is left; no flag caps it",
                m.off_heap
            ),
            None => "what is left of the worker's share; no flag caps it".to_string(),
        },
    );
    if primary > 0 {
        budget.line(
            "cluster primary",
            primary,
            false,
            "an idle Node process, measured 39 MiB RSS (bench/node_overhead.sh)",
        );
    }
    budget.line(
        "system reserve",
        SYSTEM_RESERVE.bytes(),
        false,
        "page cache and the kernel (vocdoni/vocdoni-app#1638 budgets 32 MiB)",
    );

    // The flag: a percentage follows the limit if the plan changes, where Node has it.
    let mut options = Vec::new();
    let promised_old;
    if version.has_old_space_percentage() && sees_limit {
        // Node takes floor(limit in MiB × P / 100) MiB (measured: 62% of 256 → 158, 62.5% → 160).
        let hundredths = scale(old, 10_000, limit);
        let percent = format_percent(hundredths);
        promised_old = scale(mib(limit), hundredths, 10_000) * MIB;
        options.push(format!("--max-old-space-size-percentage={percent}"));
        budget.notes.push(format!(
            "--max-old-space-size-percentage={percent} is --max-old-space-size={} in this container and follows the limit if the plan changes (Node ≥ 22.21 / 24.6).",
            mib(promised_old)
        ));
    } else {
        promised_old = old;
        options.push(format!("--max-old-space-size={}", mib(old)));
    }
    if pin_semi {
        options.push(format!("--max-semi-space-size={}", mib(semi.bytes())));
    }
    budget.settings.push(Setting {
        name: "NODE_OPTIONS",
        value: options.join(" "),
    });
    if workers > 1 {
        budget.settings.push(Setting {
            name: "WEB_CONCURRENCY",
            value: workers.to_string(),
        });
    }
    budget.promised_heap_bytes = Some(promised_old + young);
}

/// Formats hundredths of a percent without trailing zeros: 7500 → "75", 6250 → "62.5".
fn format_percent(hundredths: u64) -> String {
    let whole = hundredths / 100;
    match hundredths % 100 {
        0 => whole.to_string(),
        f if f % 10 == 0 => format!("{whole}.{}", f / 10),
        f => format!("{whole}.{f:02}"),
    }
}

fn plan_jvm(input: &PlanInput, budget: &mut Budget) {
    let limit = input.limit.bytes();
    let workers = u64::from(input.workers.unwrap_or(1).max(1));
    budget.workers = Some(workers as u32);
    let share = limit / workers;
    // The options are not known here: the measured non-heap of a framework service.
    let non_heap = NonHeap::estimate(&NonHeapOptions::default());
    let heap = jvm::planned_heap(share, &non_heap);
    // The JVM's default since JDK 10 is MaxRAMPercentage=25 (JDK-8186248); measured on JDK
    // 17.0.15 under cgroup limits: 128 MiB heap at 512 MiB, 512 MiB at 2 GiB.
    if limit >= 512 * MIB {
        budget.default_heap_bytes = Some(limit / 4);
        budget.notes.push(format!(
            "Without a setting the JVM caps the heap at 25% of the limit ({}; MaxRAMPercentage=25 since JDK 10), leaving most of the container unused.",
            ByteSize(limit / 4)
        ));
    }
    if heap < 32 * MIB {
        budget.problems.push(format!(
            "{} per JVM leaves no room for a heap beside the {} the JVM needs outside it (metaspace, code cache, {} thread stacks, GC); use a larger plan.",
            ByteSize(share),
            ByteSize(non_heap.total()),
            non_heap.threads
        ));
        return;
    }
    // Whole percents of the limit, as MaxRAMPercentage is usually written, when the JVM gives
    // that percentage (measured: 75% of 512 MiB → 384 MiB); below its default MaxHeapSize
    // (124.8 MB) or in a small container it gives another heap, so -Xmx says the size.
    let percent = (scale(heap, 100, limit).max(1) as f64 * 100.0).floor() / 100.0;
    let by_percentage = jvm::heap_of_percentage(limit, percent);
    let (item, promised, basis, value) = if by_percentage <= heap {
        (
            "heap (MaxRAMPercentage)",
            by_percentage,
            format!("{percent}% of the limit"),
            format!("-XX:MaxRAMPercentage={percent:.1}"),
        )
    } else {
        let m = jvm::xmx_mib(heap);
        (
            "heap (-Xmx)",
            m * MIB,
            format!(
                "{percent}% of the limit would give {} (the JVM's floor): -Xmx instead",
                ByteSize(by_percentage)
            ),
            format!("-Xmx{m}m"),
        )
    };
    budget.line(item, promised, true, basis);
    let measured = "measured with NMT (bench/jvm_nonheap.sh)";
    budget.line(
        "metaspace",
        non_heap.metaspace,
        true,
        format!("{measured}: 15,000 classes; -XX:MaxMetaspaceSize caps it"),
    );
    budget.line(
        "code cache",
        non_heap.code_cache,
        true,
        format!("{measured}, after the JIT warmed up"),
    );
    budget.line(
        "thread stacks",
        non_heap.thread_stacks(),
        true,
        format!(
            "{} threads (Tomcat's default pool) x {} touched of each 1 MiB -Xss",
            non_heap.threads,
            ByteSize(non_heap.stack_per_thread)
        ),
    );
    budget.line(
        "GC and other",
        non_heap.gc_and_other,
        true,
        format!("{measured}: Serial GC, symbols, CDS archive, JIT arenas"),
    );
    let rest = share.saturating_sub(promised.saturating_add(non_heap.total()));
    if rest > 0 {
        budget.line(
            "headroom",
            rest,
            true,
            "the rest: the heap is at most 75% and MaxRAMPercentage a whole percent",
        );
    }
    budget.settings.push(Setting {
        name: "JAVA_TOOL_OPTIONS",
        value,
    });
    budget.promised_heap_bytes = Some(promised);
}

/// The Go GC guide: "leave an additional 5-10% of headroom" below the limit for memory the Go
/// runtime does not know about (https://go.dev/doc/gc-guide#Memory_limit). memfit takes 10%.
pub const GO_HEADROOM_PERCENT: u64 = 10;

fn plan_go(input: &PlanInput, budget: &mut Budget) {
    let limit = input.limit.bytes();
    let workers = u64::from(input.workers.unwrap_or(1).max(1));
    budget.workers = Some(workers as u32);
    let share = limit / workers;
    let soft = round_down(scale(share, 100 - GO_HEADROOM_PERCENT, 100), MIB);
    budget.notes.push(
        "Go does not read the container limit: without GOMEMLIMIT its GC grows the heap by GOGC (100%) over the live data whatever the limit."
            .to_string(),
    );
    budget.line(
        "GOMEMLIMIT (soft limit)",
        soft,
        true,
        format!("{}% of the share", 100 - GO_HEADROOM_PERCENT),
    );
    budget.line(
        "headroom",
        share - soft,
        true,
        "memory the Go runtime does not account (cgo, stacks it cannot see); go.dev/doc/gc-guide",
    );
    budget.settings.push(Setting {
        name: "GOMEMLIMIT",
        value: format!("{}MiB", mib(soft)),
    });
    budget.promised_heap_bytes = Some(soft);
}

/// An idle gunicorn arbiter with a Flask app loaded: 26 MiB RSS (measured here, gunicorn 27.0.1,
/// Flask 3.1.3, CPython 3.11). A Flask hello-world worker was 29 MiB; a real application's is
/// larger, so the worker size comes from a measurement.
pub const PYTHON_ARBITER_RSS: ByteSize = ByteSize(26 * MIB);

fn plan_python(input: &PlanInput, budget: &mut Budget) {
    let limit = input.limit.bytes();
    // gunicorn's documented starting point: (2 × cores) + 1 workers.
    let cpu_workers = input.cpus.map(|c| (2.0 * c.ceil().max(1.0)) as u32 + 1);
    let available = limit.saturating_sub(SYSTEM_RESERVE.bytes() + PYTHON_ARBITER_RSS.bytes());
    budget.line(
        "arbiter (master process)",
        PYTHON_ARBITER_RSS.bytes(),
        false,
        "gunicorn 27 + Flask arbiter, measured 26 MiB",
    );
    budget.line(
        "system reserve",
        SYSTEM_RESERVE.bytes(),
        false,
        "page cache and the kernel",
    );
    let Some(size) = input.worker_size else {
        budget.workers = input.workers;
        budget.problems.push(format!(
            "The size of one worker is unknown: measure it with `memfit run --json run.json -- gunicorn -w 1 app:app` under load, then `memfit plan --runtime python --from run.json`. {} is left for workers.",
            ByteSize(available)
        ));
        return;
    };
    // memfit's choice: a worker's measured peak + 15% (the VPA recommender's margin,
    // `recommendation-margin-fraction`, kubernetes/autoscaler), since workers grow with the
    // requests they serve.
    let per_worker = scale(size.bytes(), 115, 100);
    let fit = (available / per_worker.max(1)) as u32;
    let workers = match (input.workers, cpu_workers) {
        (Some(w), _) => w,
        (None, Some(c)) => c.min(fit),
        (None, None) => fit,
    };
    budget.workers = Some(workers);
    budget.line(
        "per worker",
        per_worker,
        true,
        format!("measured peak {} + 15%", size),
    );
    if workers == 0 || workers > fit {
        budget.problems.push(format!(
            "{} worker(s) of {} do not fit in {}: at most {fit} fit.",
            workers.max(1),
            ByteSize(per_worker),
            input.limit
        ));
        return;
    }
    if let Some(c) = cpu_workers {
        if c > fit {
            budget.notes.push(format!(
                "gunicorn's (2 × CPUs) + 1 rule gives {c} workers, but only {fit} fit in memory."
            ));
        }
    }
    budget.settings.push(Setting {
        name: "WEB_CONCURRENCY",
        value: workers.to_string(),
    });
}

/// The limit to buy for a measured peak, as Kubernetes' VPA recommender sizes it
/// (kubernetes/autoscaler vertical-pod-autoscaler: `recommendation-margin-fraction` 0.15;
/// `OOMBumpUpRatio` 1.2 and `OOMMinBumpUp` 100 MiB in model/container.go `RecordOOM`): the
/// peak + 15%; after an OOM kill the usage is first bumped to max(used + 100 MiB,
/// used × 1.2), where used is at least the limit that killed it.
pub fn recommended_limit(peak: ByteSize, oom_at_limit: Option<ByteSize>) -> ByteSize {
    let mut used = peak.bytes();
    if let Some(limit) = oom_at_limit {
        used = used.max(limit.bytes());
        used = used.saturating_add(100 * MIB).max(scale(used, 12, 10));
    }
    ByteSize(scale(used, 115, 100))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_input(limit_mib: u64, version: &str) -> PlanInput {
        PlanInput {
            limit: ByteSize::mib(limit_mib),
            runtime: Runtime::Node,
            node_version: version.parse().unwrap(),
            cgroup: CgroupVersion::V2,
            workers: None,
            cpus: None,
            worker_size: None,
        }
    }

    #[test]
    fn a_measured_off_heap_peak_is_budgeted_before_the_heap() {
        let measured = NodeMeasured {
            heap_used: ByteSize::mib(4),
            off_heap: ByteSize::mib(150),
        };
        let version: NodeVersion = "20.20.2".parse().unwrap();
        let limit = measured.limit(version);
        assert_eq!(limit, ByteSize::mib(384));
        let b = plan_measured(&node_input(384, "20.20.2"), Some(measured));
        assert!(b.fits(), "{:?}", b.problems);
        let off_heap = b
            .lines
            .iter()
            .find(|l| l.item.starts_with("off-heap"))
            .unwrap();
        assert!(off_heap.bytes >= measured.off_heap_budget());
        // Too small a limit for what was measured is a problem, not a smaller off-heap.
        let small = plan_measured(&node_input(256, "20.20.2"), Some(measured));
        assert!(!small.fits());
    }

    #[test]
    fn node_512_gets_the_common_practice_budget() {
        let b = plan(&node_input(512, "20.20.2"));
        assert!(b.fits());
        assert_eq!(b.settings[0].value, "--max-old-space-size=384");
        assert_eq!(b.promised_heap_bytes, Some(387 * MIB));
        assert_eq!(b.default_heap_bytes, Some(259 * MIB));
        let total: u64 = b.lines.iter().map(|l| l.bytes).sum();
        assert_eq!(total, 512 * MIB, "{b:#?}");
    }

    #[test]
    fn node_256_is_capped_below_the_floor_that_overflows() {
        let b = plan(&node_input(256, "20"));
        assert!(b.fits());
        assert_eq!(b.settings[0].value, "--max-old-space-size=144");
        assert!(b.notes[0].contains("259 MiB"), "{:?}", b.notes);
    }

    #[test]
    fn node_with_the_percentage_flag_uses_it() {
        let b = plan(&node_input(512, "22.21.0"));
        assert_eq!(b.settings[0].value, "--max-old-space-size-percentage=75");
        assert_eq!(b.promised_heap_bytes, Some(387 * MIB));
        let b = plan(&node_input(2048, "24"));
        assert_eq!(b.settings[0].value, "--max-old-space-size-percentage=75");
        assert_eq!(b.promised_heap_bytes, Some((1536 + 96) * MIB));
        assert_eq!(format_percent(6250), "62.5");
        assert_eq!(format_percent(6256), "62.56");
        assert_eq!(format_percent(6205), "62.05");
    }

    #[test]
    fn node_18_on_cgroup_v2_gets_its_semi_space_pinned() {
        let b = plan(&node_input(512, "18.20.8"));
        assert_eq!(
            b.settings[0].value,
            "--max-old-space-size=384 --max-semi-space-size=1"
        );
        assert!(b.notes[0].contains("host's RAM"));
        let mut v1 = node_input(512, "18.20.8");
        v1.cgroup = CgroupVersion::V1;
        assert_eq!(plan(&v1).settings[0].value, "--max-old-space-size=384");
    }

    #[test]
    fn too_many_node_workers_is_a_problem_with_the_count_that_fits() {
        let mut input = node_input(512, "20");
        input.workers = Some(4);
        let b = plan(&input);
        assert!(!b.fits());
        assert!(
            b.problems[0].contains("At most 3 worker"),
            "{:?}",
            b.problems
        );
        input.workers = Some(2);
        let b = plan(&input);
        assert!(b.fits(), "{:?}", b.problems);
        assert!(b
            .settings
            .iter()
            .any(|s| s.name == "WEB_CONCURRENCY" && s.value == "2"));
        let total: u64 = b
            .lines
            .iter()
            .map(|l| if l.per_worker { 2 * l.bytes } else { l.bytes })
            .sum();
        assert!(total <= 512 * MIB && total > 500 * MIB, "{total}");
    }

    #[test]
    fn jvm_go_python() {
        let mut input = node_input(512, "20");
        input.runtime = Runtime::Jvm;
        let b = plan(&input);
        // 512 MiB less the measured non-heap (83 metaspace + 16 code cache + 200 x 108 KiB
        // stacks + 50 GC and other = 170.1 MiB) leaves 341.9 MiB: 66% of the limit, which the
        // JVM aligns up to 338 MiB.
        assert_eq!(b.settings[0].value, "-XX:MaxRAMPercentage=66.0");
        assert_eq!(b.promised_heap_bytes, Some(338 * MIB));
        let items: Vec<&str> = b.lines.iter().map(|l| l.item).collect();
        assert_eq!(
            items,
            [
                "heap (MaxRAMPercentage)",
                "metaspace",
                "code cache",
                "thread stacks",
                "GC and other",
                "headroom"
            ]
        );
        let total: u64 = b.lines.iter().map(|l| l.bytes).sum();
        assert_eq!(total, 512 * MIB);
        input.limit = ByteSize::mib(256);
        // 256 - 170.1 = 85.9 MiB; 33% would give the JVM's floor, 126 MiB: -Xmx instead.
        let b = plan(&input);
        assert_eq!(b.settings[0].value, "-Xmx84m");
        assert_eq!(b.promised_heap_bytes, Some(84 * MIB));
        input.limit = ByteSize::mib(180);
        assert!(!plan(&input).fits());
        input.limit = ByteSize::mib(256);

        input.runtime = Runtime::Go;
        assert_eq!(plan(&input).settings[0].value, "230MiB");

        input.runtime = Runtime::Python;
        input.limit = ByteSize::mib(512);
        assert!(!plan(&input).fits());
        input.worker_size = Some(ByteSize::mib(100));
        input.cpus = Some(0.5);
        let b = plan(&input);
        assert_eq!(b.workers, Some(3));
        input.cpus = Some(4.0);
        let b = plan(&input);
        assert_eq!(b.workers, Some(3), "{b:#?}");
        assert!(b.notes[0].contains("9 workers"));
    }

    #[test]
    fn recommendation_follows_the_vpa() {
        assert_eq!(
            recommended_limit(ByteSize::mib(400), None),
            ByteSize::mib(460)
        );
        // OOM at 512: used = 512, bumped to max(612, 614.4) = 614.4, + 15%.
        let r = recommended_limit(ByteSize::mib(300), Some(ByteSize::mib(512)));
        assert_eq!(r.bytes(), (512 * MIB * 12 / 10) * 115 / 100);
        // A small limit: +100 MiB dominates.
        let r = recommended_limit(ByteSize::mib(100), Some(ByteSize::mib(200)));
        assert_eq!(r.bytes(), 300 * MIB * 115 / 100);
    }
}
