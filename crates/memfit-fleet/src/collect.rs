//! What Prometheus knows about every container, in a fixed number of queries whatever the
//! cluster's size: one instant query per metric over the whole range, grouped by namespace,
//! pod and container, then pods grouped by their owner.
//!
//! Sources: the guard's own `memfit_guard_memory_watermark_bytes` (the kernel's watermark);
//! cAdvisor's `container_memory_working_set_bytes` and `container_memory_max_usage_bytes`
//! (<https://github.com/google/cadvisor/blob/master/docs/storage/prometheus.md>);
//! kube-state-metrics' pod metrics (`kube_pod_owner`, `kube_pod_container_status_restarts_total`,
//! `kube_pod_container_status_last_terminated_reason`, `kube_pod_container_resource_limits`,
//! `kube_pod_container_resource_requests`:
//! <https://github.com/kubernetes/kube-state-metrics/blob/main/docs/metrics/workload/pod-metrics.md>),
//! `kube_replicaset_owner` and `kube_job_owner`.

use std::collections::BTreeMap;

use crate::prom::{Client, PromError, Sample};

/// Series of one container of one pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodContainer {
    pub watermark: Option<f64>,
    pub working_set: Option<f64>,
    pub max_usage: Option<f64>,
    pub oom_kills_kube: f64,
    pub oom_kills_guard: f64,
    pub restarts: f64,
    pub limit: Option<f64>,
    pub request: Option<f64>,
    /// V8's heap limit, as the guard's runtime view exported it: the child is Node.
    pub node_heap_limit: Option<f64>,
}

/// (namespace, pod, container)
pub type Key = (String, String, String);

/// Everything the queries returned, by container of a pod, and the owners of pods.
#[derive(Debug, Default)]
pub struct Observed {
    pub containers: BTreeMap<Key, PodContainer>,
    /// (namespace, pod) → (kind, name) from kube_pod_owner.
    pub pod_owner: BTreeMap<(String, String), (String, String)>,
    /// (namespace, replicaset) → (kind, name) from kube_replicaset_owner.
    pub replicaset_owner: BTreeMap<(String, String), (String, String)>,
    /// (namespace, job) → (kind, name) from kube_job_owner.
    pub job_owner: BTreeMap<(String, String), (String, String)>,
}

/// The label matchers every query gets: the user's `--selector` and `--namespace`.
pub struct Matchers {
    /// For metrics with namespace, pod and container labels.
    pub all: String,
    /// For owner metrics (no container label): `--namespace` only.
    pub namespace: String,
}

impl Matchers {
    pub fn new(selector: Option<&str>, namespace: Option<&str>) -> Matchers {
        let ns = namespace
            .map(|n| format!("namespace=\"{}\"", escape(n)))
            .unwrap_or_default();
        let all = [selector.unwrap_or("").trim(), ns.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(",");
        Matchers { all, namespace: ns }
    }
}

/// A PromQL string literal's content.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn with(extra: &str, matchers: &str) -> String {
    [extra, matchers]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(",")
}

const BY: &str = "namespace, pod, container";

/// The queries, named for error messages and tests.
pub fn queries(m: &Matchers, range: &str) -> Vec<(&'static str, String)> {
    let all = m.all.as_str();
    let cadvisor = with("container!=\"\",container!=\"POD\"", all);
    let mem = |extra: &str| with(&format!("resource=\"memory\"{extra}"), all);
    vec![
        ("watermark", format!("max by ({BY}) (max_over_time(memfit_guard_memory_watermark_bytes{{{all}}}[{range}]))")),
        ("working_set", format!("max by ({BY}) (max_over_time(container_memory_working_set_bytes{{{cadvisor}}}[{range}]))")),
        ("max_usage", format!("max by ({BY}) (max_over_time(container_memory_max_usage_bytes{{{cadvisor}}}[{range}]))")),
        // Restarts counted in disjoint 5-minute steps while the last termination was an OOM kill.
        ("oom_kills", format!(
            "sum by ({BY}) (sum_over_time(((kube_pod_container_status_restarts_total{{{all}}} - kube_pod_container_status_restarts_total{{{all}}} offset 5m) > 0 and on ({BY}) (kube_pod_container_status_last_terminated_reason{{{}}} == 1))[{range}:5m]))",
            with("reason=\"OOMKilled\"", all)
        )),
        // A guard whose child is Node exports V8's heap limit (its runtime view): the
        // container's runtime is known without --runtime.
        ("node_heap_limit", format!("max by ({BY}) (max_over_time(memfit_guard_node_heap_limit_bytes{{{all}}}[{range}]))")),
        // The guard's counter starts at 0 with the container (the guard is its PID 1).
        ("guard_oom_kills", format!("max by ({BY}) (max_over_time(memfit_guard_oom_kills_total{{{all}}}[{range}]))")),
        ("restarts", format!(
            "max by ({BY}) (max_over_time(kube_pod_container_status_restarts_total{{{all}}}[{range}]) - min_over_time(kube_pod_container_status_restarts_total{{{all}}}[{range}]))"
        )),
        ("limit", format!("max by ({BY}) (last_over_time(kube_pod_container_resource_limits{{{}}}[{range}]))", mem(""))),
        ("request", format!("max by ({BY}) (last_over_time(kube_pod_container_resource_requests{{{}}}[{range}]))", mem(""))),
        ("pod_owner", format!(
            "max by (namespace, pod, owner_kind, owner_name) (last_over_time(kube_pod_owner{{{}}}[{range}]))",
            m.namespace
        )),
        ("replicaset_owner", format!(
            "max by (namespace, replicaset, owner_kind, owner_name) (last_over_time(kube_replicaset_owner{{{}}}[{range}]))",
            m.namespace
        )),
        ("job_owner", format!(
            "max by (namespace, job_name, owner_kind, owner_name) (last_over_time(kube_job_owner{{{}}}[{range}]))",
            m.namespace
        )),
    ]
}

/// Runs the queries at `time` (the server's now when `None`); `progress` hears of each query
/// before it is sent (index from 1, count, name).
pub fn observe(
    client: &mut Client,
    matchers: &Matchers,
    range: &str,
    time: Option<f64>,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<Observed, PromError> {
    let mut observed = Observed::default();
    let all = queries(matchers, range);
    let count = all.len();
    for (i, (name, promql)) in all.into_iter().enumerate() {
        progress(i + 1, count, name);
        let samples = client.query(&promql, time)?;
        observed.add(name, &samples);
    }
    Ok(observed)
}

impl Observed {
    pub fn add(&mut self, name: &str, samples: &[Sample]) {
        for s in samples {
            let owner = || {
                let kind = s.label("owner_kind");
                let name = s.label("owner_name");
                (kind.to_string(), name.to_string())
            };
            match name {
                "pod_owner" => {
                    self.pod_owner.insert(
                        (s.label("namespace").into(), s.label("pod").into()),
                        owner(),
                    );
                }
                "replicaset_owner" => {
                    self.replicaset_owner.insert(
                        (s.label("namespace").into(), s.label("replicaset").into()),
                        owner(),
                    );
                }
                "job_owner" => {
                    self.job_owner.insert(
                        (s.label("namespace").into(), s.label("job_name").into()),
                        owner(),
                    );
                }
                _ => {
                    let key = (
                        s.label("namespace").to_string(),
                        s.label("pod").to_string(),
                        s.label("container").to_string(),
                    );
                    if key.1.is_empty() || key.2.is_empty() {
                        continue;
                    }
                    let v = s.value.max(0.0);
                    let c = self.containers.entry(key).or_default();
                    match name {
                        "watermark" => c.watermark = Some(v),
                        "working_set" => c.working_set = Some(v),
                        "max_usage" => c.max_usage = Some(v),
                        "oom_kills" => c.oom_kills_kube = v,
                        "guard_oom_kills" => c.oom_kills_guard = v,
                        "restarts" => c.restarts = v,
                        "limit" => c.limit = Some(v),
                        "request" => c.request = Some(v),
                        "node_heap_limit" => c.node_heap_limit = Some(v),
                        _ => {}
                    }
                }
            }
        }
    }

    /// The workload a pod belongs to: (kind, name), and whether kube-state-metrics said so
    /// (else the pod's name without its hash).
    pub fn owner_of(&self, namespace: &str, pod: &str) -> (String, String, bool) {
        let ns = namespace.to_string();
        if let Some((kind, name)) = self.pod_owner.get(&(ns.clone(), pod.to_string())) {
            if kind.is_empty() || kind == "<none>" || name.is_empty() || name == "<none>" {
                return ("Pod".into(), pod.into(), true);
            }
            let up = match kind.as_str() {
                "ReplicaSet" => self.replicaset_owner.get(&(ns, name.clone())),
                "Job" => self.job_owner.get(&(ns, name.clone())),
                _ => None,
            };
            if let Some((up_kind, up_name)) = up {
                if !up_kind.is_empty() && up_kind != "<none>" && !up_name.is_empty() {
                    return (up_kind.clone(), up_name.clone(), true);
                }
            }
            if kind == "ReplicaSet" {
                if let Some(deployment) = strip_hash(name) {
                    return ("Deployment".into(), deployment.into(), true);
                }
            }
            return (kind.clone(), name.clone(), true);
        }
        let (kind, name) = guess_owner(pod);
        (kind.into(), name, false)
    }
}

/// `api-7d4b9c8f6` → `api`: a ReplicaSet's name is its Deployment's plus a hash of the pod
/// template (kubernetes/kubernetes pkg/controller/deployment: `rand.SafeEncodeString` of the
/// hash, letters from "bcdfghjklmnpqrstvwxz2456789").
fn strip_hash(name: &str) -> Option<&str> {
    let (base, hash) = name.rsplit_once('-')?;
    let safe = |c: char| "bcdfghjklmnpqrstvwxz2456789".contains(c);
    (!base.is_empty() && (5..=10).contains(&hash.len()) && hash.chars().all(safe)).then_some(base)
}

/// Without kube-state-metrics: `api-7d4b9c8f6-x2x5z` → Deployment `api`, `db-0` → StatefulSet
/// `db`, `agent-x2x5z` → DaemonSet/Job `agent` (kind unknown), else the pod itself.
pub fn guess_owner(pod: &str) -> (&'static str, String) {
    if let Some((rest, suffix)) = pod.rsplit_once('-') {
        let safe = |c: char| "bcdfghjklmnpqrstvwxz2456789".contains(c);
        if suffix.len() == 5 && suffix.chars().all(safe) {
            if let Some(deployment) = strip_hash(rest) {
                return ("Deployment", deployment.to_string());
            }
            if !rest.is_empty() {
                return ("unknown", rest.to_string());
            }
        }
        if !rest.is_empty() && !suffix.is_empty() && suffix.chars().all(|c| c.is_ascii_digit()) {
            return ("StatefulSet", rest.to_string());
        }
    }
    ("Pod", pod.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_guessed_from_pod_names() {
        assert_eq!(
            guess_owner("api-7d4b9c8f6-x2x5z"),
            ("Deployment", "api".to_string())
        );
        assert_eq!(
            guess_owner("my-api-7d4b9c8f6-x2x5z"),
            ("Deployment", "my-api".to_string())
        );
        assert_eq!(guess_owner("db-0"), ("StatefulSet", "db".to_string()));
        assert_eq!(guess_owner("agent-x2x5z"), ("unknown", "agent".to_string()));
        assert_eq!(guess_owner("standalone"), ("Pod", "standalone".to_string()));
        assert_eq!(guess_owner("-"), ("Pod", "-".to_string()));
    }

    #[test]
    fn selector_and_namespace_reach_every_query() {
        let m = Matchers::new(Some("team=\"a\""), Some("we\"ird"));
        for (name, q) in queries(&m, "14d") {
            assert!(q.contains("namespace=\"we\\\"ird\""), "{name}: {q}");
            assert!(q.contains("[14d"), "{name}: {q}");
        }
        let m = Matchers::new(None, None);
        assert!(queries(&m, "1d")[0]
            .1
            .contains("memfit_guard_memory_watermark_bytes{}[1d]"));
    }
}
