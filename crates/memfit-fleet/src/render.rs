//! The fleet report as a table, JSON (`memfit.fleet/1`), YAML, or `kubectl patch` commands
//! (printed, never run). Every name came from a Prometheus server and is treated as hostile:
//! control characters are dropped on the terminal, and a patch is only printed for names
//! Kubernetes itself would accept, each argument single-quoted for the shell.

use std::fmt::Write as _;

use memfit_core::ByteSize;
use serde_json::{json, Value};

use crate::prom::clean;
use crate::{is_dns_label, is_dns_subdomain, FleetReport, Workload};

fn size(b: Option<u64>) -> String {
    b.map(|b| ByteSize(b).to_string())
        .unwrap_or_else(|| "-".to_string())
}

/// The summary line: workloads, queries and their time.
pub fn summary(r: &FleetReport) -> String {
    format!(
        "{} container(s) of {} workload(s) over {} from {}: {} queries in {:.2} s",
        r.workloads.len(),
        r.workloads
            .iter()
            .map(|w| (&w.namespace, &w.kind, &w.name))
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        clean(&r.range),
        clean(&r.prometheus),
        r.queries.count,
        r.queries.seconds
    )
}

pub fn table(r: &FleetReport) -> String {
    let mut rows = vec![[
        "WORKLOAD".to_string(),
        "CONTAINER".to_string(),
        "PEAK".to_string(),
        "OOM".to_string(),
        "RESTARTS".to_string(),
        "LIMIT NOW".to_string(),
        "RECOMMENDED".to_string(),
    ]];
    for w in &r.workloads {
        let peak = match (w.observed_peak_bytes, w.peak_source) {
            (Some(p), Some(crate::PeakSource::Watermark)) => format!("{} watermark", ByteSize(p)),
            (Some(p), _) => format!("{} sampled", ByteSize(p)),
            (None, _) => "-".to_string(),
        };
        rows.push([
            clean(&format!("{}/{}/{}", w.namespace, w.kind, w.name)),
            clean(&w.container),
            peak,
            w.oom_kills.to_string(),
            w.restarts.to_string(),
            size(w.current_limit_bytes),
            size(w.recommended_limit_bytes),
        ]);
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let with_env: Vec<&Workload> = r
        .workloads
        .iter()
        .filter(|w| !w.runtime_env.is_empty())
        .collect();
    if !with_env.is_empty() {
        out.push_str("\nRuntime settings for the recommended limits:\n");
        for w in with_env {
            let env = w
                .runtime_env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(
                out,
                "  {}/{}/{} ({}, limit {}): {}",
                clean(&w.namespace),
                clean(&w.name),
                clean(&w.container),
                w.runtime.map(|r| r.name()).unwrap_or(""),
                size(w.recommended_limit_bytes),
                clean(&env)
            );
        }
    }
    let bumped: Vec<&Workload> = r.workloads.iter().filter(|w| w.oom_kills > 0).collect();
    if !bumped.is_empty() {
        out.push_str("\nOOM-killed, bumped as Kubernetes' VPA does:\n");
        for w in bumped {
            let _ = writeln!(
                out,
                "  {}/{}/{}: {}",
                clean(&w.namespace),
                clean(&w.name),
                clean(&w.container),
                clean(&w.basis)
            );
        }
    }
    for caveat in &r.caveats {
        let _ = writeln!(out, "\nNote: {caveat}");
    }
    let _ = writeln!(out, "\n{}", summary(r));
    out
}

pub fn json_value(r: &FleetReport) -> Value {
    serde_json::to_value(r).unwrap_or_else(|_| json!({}))
}

pub fn json(r: &FleetReport) -> String {
    serde_json::to_string_pretty(&json_value(r)).unwrap_or_default() + "\n"
}

/// YAML 1.2 from the JSON value: strings double-quoted with JSON escapes (valid YAML),
/// numbers, booleans and nulls as JSON writes them.
pub fn yaml(r: &FleetReport) -> String {
    let mut out = String::from("---\n");
    yaml_value(&json_value(r), 0, &mut out);
    out
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {
            Some(serde_json::to_string(v).unwrap_or_default())
        }
        Value::Array(a) if a.is_empty() => Some("[]".into()),
        Value::Object(o) if o.is_empty() => Some("{}".into()),
        _ => None,
    }
}

fn yaml_value(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let key = serde_json::to_string(k).unwrap_or_default();
                match scalar(v) {
                    Some(s) => {
                        let _ = writeln!(out, "{pad}{key}: {s}");
                    }
                    None => {
                        let _ = writeln!(out, "{pad}{key}:");
                        yaml_value(v, indent + 2, out);
                    }
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match scalar(item) {
                    Some(s) => {
                        let _ = writeln!(out, "{pad}- {s}");
                    }
                    None => {
                        let _ = writeln!(out, "{pad}-");
                        yaml_value(item, indent + 2, out);
                    }
                }
            }
        }
        other => {
            let _ = writeln!(out, "{pad}{}", scalar(other).unwrap_or_default());
        }
    }
}

/// A shell word: single-quoted, `'` written as `'\''`.
fn sh(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// A Kubernetes quantity in whole MiB.
fn mi(bytes: u64) -> String {
    format!("{}Mi", bytes.div_ceil(1024 * 1024))
}

/// `kubectl patch` commands, one per workload (its containers together), strategic merge:
/// containers merge by name, env entries by name. Printed, never run.
pub fn patch(r: &FleetReport) -> String {
    let mut out = String::from(
        "# memfit plan --prometheus: kubectl strategic-merge patches (review, then run them yourself).\n# An env entry replaces the variable of the same name in the container (merge key: name).\n",
    );
    let mut workloads: std::collections::BTreeMap<(&str, &str, &str), Vec<&Workload>> =
        std::collections::BTreeMap::new();
    for w in &r.workloads {
        workloads
            .entry((&w.namespace, &w.kind, &w.name))
            .or_default()
            .push(w);
    }
    for ((ns, kind, name), containers) in workloads {
        let resource = match kind {
            "Deployment" => "deployment",
            "StatefulSet" => "statefulset",
            "DaemonSet" => "daemonset",
            "CronJob" => "cronjob",
            _ => {
                let _ = writeln!(
                    out,
                    "# {}/{} ({}): not patchable (no pod template to patch); set the limits where it is created",
                    clean(ns),
                    clean(name),
                    clean(kind)
                );
                continue;
            }
        };
        if !is_dns_label(ns)
            || !is_dns_subdomain(name)
            || containers.iter().any(|c| !is_dns_label(&c.container))
        {
            let _ = writeln!(
                out,
                "# {}/{}: skipped, a name Kubernetes would not accept",
                clean(ns),
                clean(name)
            );
            continue;
        }
        let specs: Vec<Value> = containers
            .iter()
            .filter_map(|w| {
                let limit = w.recommended_limit_bytes?;
                let request = w.recommended_request_bytes.unwrap_or(limit);
                let mut c = json!({
                    "name": w.container,
                    "resources": {
                        "limits": {"memory": mi(limit)},
                        "requests": {"memory": mi(request)},
                    }
                });
                if !w.runtime_env.is_empty() {
                    c["env"] = Value::Array(
                        w.runtime_env
                            .iter()
                            .map(|(k, v)| json!({"name": k, "value": v}))
                            .collect(),
                    );
                }
                Some(c)
            })
            .collect();
        if specs.is_empty() {
            continue;
        }
        let pod_spec = json!({"template": {"spec": {"containers": specs}}});
        let body = if kind == "CronJob" {
            json!({"spec": {"jobTemplate": {"spec": pod_spec}}})
        } else {
            json!({"spec": pod_spec})
        };
        let _ = writeln!(
            out,
            "kubectl -n {} patch {resource} {} --type strategic -p {}",
            sh(ns),
            sh(name),
            sh(&body.to_string())
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted() {
        assert_eq!(sh("a'b"), "'a'\\''b'");
        assert_eq!(mi(1), "1Mi");
        assert_eq!(mi(256 * 1024 * 1024), "256Mi");
    }
}
