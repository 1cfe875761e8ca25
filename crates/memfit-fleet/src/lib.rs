//! `memfit plan --prometheus`: a memory limit, a request and the runtime settings for every
//! container of every workload of a cluster, from what Prometheus recorded.
//!
//! The peak is the kernel's watermark where a `memfit guard` exported it
//! (`memfit_guard_memory_watermark_bytes`: a spike between scrapes is never missed), else the
//! highest sample of cAdvisor's working set or max usage (which a spike shorter than the scrape
//! interval escapes). The limit is sized as memfit-core's `plan --from` sizes one run (the
//! peak + 15%, after an OOM kill at limit L from at least max(L + 100 MiB, 1.2 × L), as the
//! VPA recommender does), and the runtime settings come from memfit-core's plan.

pub mod collect;
pub mod prom;
pub mod render;

use std::collections::BTreeMap;
use std::time::Duration;

use memfit_core::node::NodeVersion;
use memfit_core::plan::{self, PlanInput, Runtime};
use memfit_core::{ByteSize, CgroupVersion, MIB};
use serde::Serialize;

pub use collect::{Matchers, Observed};
pub use prom::{Access, Auth, Client, PromError};

/// The JSON schema name of the report.
pub const FLEET_SCHEMA: &str = "memfit.fleet/1";

/// What to read and how to size.
#[derive(Clone, Debug)]
pub struct FleetOptions {
    pub url: String,
    pub selector: Option<String>,
    pub namespace: Option<String>,
    /// A Prometheus duration, e.g. 14d.
    pub range: String,
    /// Runtimes by container name, `workload/container` or workload name.
    pub runtimes: Vec<(String, Runtime)>,
    pub node_version: NodeVersion,
    /// Evaluation time (Unix seconds); the server's now when `None`.
    pub time: Option<f64>,
    /// TLS roots and credentials.
    pub access: prom::Access,
}

/// Where a peak comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeakSource {
    /// The kernel's watermark, exported by memfit guard.
    Watermark,
    /// The highest sample of cAdvisor's working set / max usage.
    Sampled,
}

/// One container of one workload and what memfit recommends for it.
#[derive(Clone, Debug, Serialize)]
pub struct Workload {
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub container: String,
    /// Whether kube-state-metrics named the owner (else the pod name without its hash).
    pub owner_from_kube_state_metrics: bool,
    pub pods: usize,
    pub observed_peak_bytes: Option<u64>,
    pub peak_source: Option<PeakSource>,
    /// The highest sampled value, for comparison with the watermark.
    pub sampled_peak_bytes: Option<u64>,
    pub oom_kills: u64,
    pub restarts: u64,
    /// The limit the OOM-killed pods had.
    pub oom_killed_at_limit_bytes: Option<u64>,
    pub current_limit_bytes: Option<u64>,
    pub current_request_bytes: Option<u64>,
    pub recommended_limit_bytes: Option<u64>,
    pub recommended_request_bytes: Option<u64>,
    pub runtime: Option<Runtime>,
    /// Where the runtime came from: `--runtime`, or the guard's Node metrics.
    pub runtime_source: Option<&'static str>,
    pub runtime_env: BTreeMap<String, String>,
    /// How the recommendation was reached, in words.
    pub basis: String,
}

/// The report: `memfit.fleet/1`.
#[derive(Clone, Debug, Serialize)]
pub struct FleetReport {
    pub schema: &'static str,
    pub memfit_version: &'static str,
    pub prometheus: String,
    pub range: String,
    pub selector: Option<String>,
    pub namespace: Option<String>,
    pub queries: QueryStats,
    pub workloads: Vec<Workload>,
    pub caveats: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct QueryStats {
    pub count: u32,
    pub seconds: f64,
}

/// Checks a Prometheus duration: digits and a unit (ms, s, m, h, d, w, y), e.g. 14d.
pub fn check_range(range: &str) -> Result<(), String> {
    let digits = range.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &range[digits.len()..];
    let ok = !digits.is_empty()
        && digits.len() <= 6
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.parse::<u64>().is_ok_and(|n| n > 0)
        && ["ms", "s", "m", "h", "d", "w", "y"].contains(&unit);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "--range {}: not a duration; use a number and a unit (s, m, h, d, w), e.g. --range 14d",
            prom::clean(range)
        ))
    }
}

/// Checks a namespace: a Kubernetes DNS label (RFC 1123).
pub fn check_namespace(ns: &str) -> Result<(), String> {
    if is_dns_label(ns) {
        Ok(())
    } else {
        Err(format!(
            "--namespace {}: not a Kubernetes namespace name (lower-case letters, digits and -, at most 63)",
            prom::clean(ns)
        ))
    }
}

/// Checks a selector: PromQL label matchers without braces, e.g. `team="payments",job=~"api.*"`.
pub fn check_selector(selector: &str) -> Result<(), String> {
    let bad = selector.contains(['{', '}', '[', ']', '\n', '\r']) || selector.len() > 2000;
    let shaped = selector.trim().is_empty()
        || selector.split(',').all(|m| {
            m.trim().contains(['=', '~'])
                && m.trim()
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        });
    if bad || !shaped {
        return Err(format!(
            "--selector {}: give label matchers without braces, e.g. --selector 'team=\"payments\"'",
            prom::clean(selector)
        ));
    }
    Ok(())
}

/// RFC 1123 label: what Kubernetes accepts for namespaces and container names.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: what Kubernetes accepts for object names.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Reads Prometheus and sizes every workload; `progress` hears of each query before it is
/// sent (index from 1, count, name).
pub fn plan_fleet(
    options: &FleetOptions,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<FleetReport, PromError> {
    let mut client = Client::new(&options.url, &options.access)?;
    let matchers = Matchers::new(options.selector.as_deref(), options.namespace.as_deref());
    let observed = collect::observe(
        &mut client,
        &matchers,
        &options.range,
        options.time,
        progress,
    )?;
    let workloads = size(&observed, options);
    let mut caveats = Vec::new();
    let sampled = workloads
        .iter()
        .filter(|w| w.peak_source == Some(PeakSource::Sampled))
        .count();
    if sampled > 0 {
        caveats.push(format!(
            "{sampled} container(s) sized from sampled memory (cAdvisor, one value per scrape): a spike shorter than the scrape interval is missed; run them under memfit guard for the kernel's watermark (docs/fleet.md)."
        ));
    }
    if workloads.iter().any(|w| !w.owner_from_kube_state_metrics) {
        caveats.push(
            "Some owners were guessed from pod names (no kube_pod_owner from kube-state-metrics)."
                .to_string(),
        );
    }
    Ok(FleetReport {
        schema: FLEET_SCHEMA,
        memfit_version: env!("CARGO_PKG_VERSION"),
        prometheus: client.base().to_string(),
        range: options.range.clone(),
        selector: options.selector.clone(),
        namespace: options.namespace.clone(),
        queries: QueryStats {
            count: client.queries,
            seconds: round_ms(client.elapsed),
        },
        workloads,
        caveats,
    })
}

fn round_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// Kubernetes quantities in whole MiB: the recommendation is rounded up to 1 MiB (memfit's
/// choice: `Mi` is the unit manifests use).
const ROUND: u64 = MIB;

/// Groups pods by owner and sizes each (owner, container).
pub fn size(observed: &Observed, options: &FleetOptions) -> Vec<Workload> {
    // (namespace, kind, name, container) → (workload, highest sample, highest watermark)
    type Group = (Workload, f64, f64);
    let mut groups: BTreeMap<(String, String, String, String), Group> = BTreeMap::new();
    for ((ns, pod, container), c) in &observed.containers {
        let (kind, name, from_ksm) = observed.owner_of(ns, pod);
        let key = (ns.clone(), kind.clone(), name.clone(), container.clone());
        let (w, sampled, watermark) = groups.entry(key).or_insert_with(|| {
            (
                Workload {
                    namespace: ns.clone(),
                    kind,
                    name,
                    container: container.clone(),
                    owner_from_kube_state_metrics: from_ksm,
                    pods: 0,
                    observed_peak_bytes: None,
                    peak_source: None,
                    sampled_peak_bytes: None,
                    oom_kills: 0,
                    restarts: 0,
                    oom_killed_at_limit_bytes: None,
                    current_limit_bytes: None,
                    current_request_bytes: None,
                    recommended_limit_bytes: None,
                    recommended_request_bytes: None,
                    runtime: None,
                    runtime_source: None,
                    runtime_env: BTreeMap::new(),
                    basis: String::new(),
                },
                -1.0,
                -1.0,
            )
        });
        let had_usage = c.watermark.is_some() || c.working_set.is_some() || c.max_usage.is_some();
        if had_usage || c.limit.is_some() {
            w.pods += 1;
        }
        let max_opt = |a: Option<u64>, b: Option<f64>| match (a, b) {
            (a, None) => a,
            (None, Some(b)) => Some(b as u64),
            (Some(a), Some(b)) => Some(a.max(b as u64)),
        };
        if let Some(wm) = c.watermark {
            *watermark = watermark.max(wm);
        }
        for s in c.working_set.into_iter().chain(c.max_usage) {
            *sampled = sampled.max(s);
        }
        let ooms = c.oom_kills_kube.max(c.oom_kills_guard).round() as u64;
        w.oom_kills += ooms;
        w.restarts += c.restarts.round() as u64;
        if ooms > 0 {
            w.oom_killed_at_limit_bytes = max_opt(w.oom_killed_at_limit_bytes, c.limit);
        }
        if c.node_heap_limit.is_some() {
            w.runtime_source = Some(FROM_GUARD);
        }
        w.current_limit_bytes = max_opt(w.current_limit_bytes, c.limit);
        w.current_request_bytes = max_opt(w.current_request_bytes, c.request);
    }
    groups
        .into_values()
        .map(|(mut w, sampled, watermark)| {
            w.sampled_peak_bytes = (sampled >= 0.0).then_some(sampled as u64);
            if watermark >= 0.0 {
                // A watermark counts page cache and the working set does not, but a guard
                // restarted inside a pod starts again from its own start: keep the higher.
                w.observed_peak_bytes = Some((watermark.max(sampled)) as u64);
                w.peak_source = Some(PeakSource::Watermark);
            } else if sampled >= 0.0 {
                w.observed_peak_bytes = Some(sampled as u64);
                w.peak_source = Some(PeakSource::Sampled);
            }
            recommend(&mut w, options);
            w
        })
        .collect()
}

/// The runtime source of a container whose guard exported Node's heap metrics.
const FROM_GUARD: &str = "guard (memfit_guard_node_heap_limit_bytes)";

/// No recommendation goes below this: KRR's `memory_min_value` default, 100 (robusta-dev/krr
/// `robusta_krr/core/models/config.py`). Kubernetes' VPA floors a pod at 250 MiB
/// (`--pod-recommendation-min-memory-mb`).
pub const MIN_LIMIT: u64 = 100 * 1024 * 1024;

fn recommend(w: &mut Workload, options: &FleetOptions) {
    let oom_limit = if w.oom_kills > 0 {
        // The limit that killed it; without kube-state-metrics' limit, the peak seen.
        w.oom_killed_at_limit_bytes.or(w.observed_peak_bytes)
    } else {
        None
    };
    let Some(peak) = w.observed_peak_bytes.or(oom_limit) else {
        w.basis = "no memory data for this container in the range".to_string();
        return;
    };
    let computed = plan::recommended_limit(ByteSize(peak), oom_limit.map(ByteSize)).round_up(ROUND);
    let limit = ByteSize(computed.bytes().max(MIN_LIMIT));
    w.recommended_limit_bytes = Some(limit.bytes());
    // Memory is not compressible: the request is the limit (Guaranteed QoS for memory), as
    // KRR's simple strategy also sets both from the same peak.
    w.recommended_request_bytes = Some(limit.bytes());
    let source = match w.peak_source {
        Some(PeakSource::Watermark) => "watermark",
        Some(PeakSource::Sampled) => "sampled maximum",
        None => "no usage data",
    };
    w.basis = match oom_limit {
        Some(l) => format!(
            "{} OOM kill(s) at {}: max({} + 100 MiB, 1.2 × {}) + 15% (peak {}, {source})",
            w.oom_kills,
            ByteSize(l),
            ByteSize(l),
            ByteSize(l),
            ByteSize(peak)
        ),
        None => format!("peak {} ({source}) + 15%", ByteSize(peak)),
    };
    if computed.bytes() < MIN_LIMIT {
        w.basis.push_str(&format!(
            ", raised to the {} floor (a container's startup, page cache and a quiet fortnight are not its needs)",
            ByteSize(MIN_LIMIT)
        ));
    }
    // --runtime wins; else a guard that saw Node says so.
    match runtime_for(w, &options.runtimes) {
        Some(runtime) => {
            w.runtime = Some(runtime);
            w.runtime_source = Some("--runtime");
        }
        None if w.runtime_source == Some(FROM_GUARD) => w.runtime = Some(Runtime::Node),
        None => w.runtime_source = None,
    }
    if let Some(runtime) = w.runtime {
        let budget = plan::plan(&PlanInput {
            limit,
            runtime,
            node_version: options.node_version,
            cgroup: CgroupVersion::V2,
            workers: None,
            cpus: None,
            worker_size: None,
        });
        for s in budget.settings {
            w.runtime_env.insert(s.name.to_string(), s.value);
        }
    }
}

/// `--runtime` entries match `namespace/workload/container`, `workload/container`, the
/// container or the workload name.
fn runtime_for(w: &Workload, runtimes: &[(String, Runtime)]) -> Option<Runtime> {
    let full = format!("{}/{}/{}", w.namespace, w.name, w.container);
    let short = format!("{}/{}", w.name, w.container);
    for candidate in [&full, &short, &w.container, &w.name] {
        if let Some((_, r)) = runtimes.iter().rev().find(|(k, _)| k == candidate) {
            return Some(*r);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_namespaces_and_selectors_are_checked() {
        for ok in ["14d", "2h", "30m", "1w"] {
            assert!(check_range(ok).is_ok(), "{ok}");
        }
        for bad in ["", "14", "d", "0d", "14days", "1d]", "-1d", "1.5d"] {
            assert!(check_range(bad).is_err(), "{bad}");
        }
        assert!(check_namespace("team-a").is_ok());
        assert!(check_namespace("Team").is_err());
        assert!(check_namespace("a\"}").is_err());
        assert!(check_selector("team=\"a\", job=~\"api.*\"").is_ok());
        assert!(check_selector("team=\"a\"}[1d]) or vector(1) #").is_err());
        assert!(check_selector("{team=\"a\"}").is_err());
    }

    fn sized(watermark: f64) -> Workload {
        sized_with(collect::PodContainer {
            watermark: Some(watermark),
            ..Default::default()
        })
    }

    fn sized_with(container: collect::PodContainer) -> Workload {
        let mut observed = collect::Observed::default();
        observed.containers.insert(
            ("shop".into(), "api-7d9f8b6c5-x2x4z".into(), "api".into()),
            container,
        );
        let options = FleetOptions {
            url: String::new(),
            selector: None,
            namespace: None,
            range: "14d".into(),
            runtimes: Vec::new(),
            node_version: "20.0.0".parse().unwrap(),
            time: None,
            access: Access::default(),
        };
        size(&observed, &options).remove(0)
    }

    #[test]
    fn no_recommendation_goes_below_the_floor_and_says_so() {
        let tiny = sized(10.0 * 1024.0 * 1024.0);
        assert_eq!(tiny.recommended_limit_bytes, Some(MIN_LIMIT));
        assert!(tiny.basis.contains("floor"), "{}", tiny.basis);
        let big = sized(400.0 * 1024.0 * 1024.0);
        assert_eq!(big.recommended_limit_bytes, Some(460 * 1024 * 1024));
        assert!(!big.basis.contains("floor"), "{}", big.basis);
    }

    #[test]
    fn a_guard_that_saw_node_makes_the_runtime_known() {
        let node = sized_with(collect::PodContainer {
            watermark: Some(300.0 * 1024.0 * 1024.0),
            node_heap_limit: Some(2048.0 * 1024.0 * 1024.0),
            ..Default::default()
        });
        assert_eq!(node.runtime, Some(Runtime::Node));
        assert_eq!(node.runtime_source, Some(FROM_GUARD));
        assert!(
            node.runtime_env["NODE_OPTIONS"].starts_with("--max-old-space-size="),
            "{:?}",
            node.runtime_env
        );
        let unknown = sized(300.0 * 1024.0 * 1024.0);
        assert_eq!((unknown.runtime, unknown.runtime_source), (None, None));
    }
}
