//! `memfit plan --prometheus` against a real Prometheus (Debian's `prometheus` package): two
//! days of series written by the test in OpenMetrics text, loaded with `promtool tsdb
//! create-blocks-from openmetrics`, served by a `prometheus` the test starts on 127.0.0.1 with
//! a temporary storage directory and kills at the end (even when the test fails). And hostile
//! servers and bad arguments, which need no Prometheus.

mod common;
mod prom;

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Output;
use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use prom::{free_port, start_prometheus};
use serde_json::Value;

fn plan(args: &[&str]) -> Output {
    memfit().arg("plan").args(args).output().unwrap()
}

/// Two days of series, one sample every 2 minutes, ending 2 minutes ago:
/// - shop/api (Deployment via kube_pod_owner → ReplicaSet → kube_replicaset_owner), two pods:
///   cAdvisor's working set sampled near 300 MiB, while the guard's watermark of one pod
///   rises to 620 MiB at a spike no scrape saw; limit 1 GiB.
/// - shop/worker (no kube_pod_owner: the owner is guessed from the pod names), two pods
///   OOM-killed at a 256 MiB limit, three times and once.
/// - shop/db-0 (a StatefulSet by its name), restarted twice for errors, not OOM.
fn recorded_series(end: u64) -> String {
    const STEP: u64 = 120;
    let points = 2 * 24 * 3600 / STEP;
    let start = end - points * STEP;
    let mib = |m: u64| m * MIB;
    let mut out = String::new();
    let mut series = |name: &str, labels: &str, value: &dyn Fn(u64) -> Option<u64>| {
        for i in 0..=points {
            if let Some(v) = value(i) {
                let _ = writeln!(out, "{name}{{{labels}}} {v} {}", start + i * STEP);
            }
        }
    };
    let api = ["api-7d4b9c8f6-x2x5z", "api-7d4b9c8f6-b7k2m"];
    let worker = ["worker-6c5d8b9f4-qzrw2", "worker-6c5d8b9f4-t9xkz"];
    // Working sets: near 300 MiB for api, 200–240 MiB for worker, 150 for db.
    for (n, pod) in api.iter().enumerate() {
        let labels = format!("namespace=\"shop\",pod=\"{pod}\",container=\"api\"");
        series("container_memory_working_set_bytes", &labels, &|i| {
            Some(mib(290) + ((i * 37 + n as u64 * 11) % 21) * MIB)
        });
    }
    for pod in worker {
        let labels = format!("namespace=\"shop\",pod=\"{pod}\",container=\"worker\"");
        series("container_memory_working_set_bytes", &labels, &|i| {
            Some(mib(200) + (i % 41) * MIB)
        });
    }
    series(
        "container_memory_working_set_bytes",
        "namespace=\"shop\",pod=\"db-0\",container=\"postgres\"",
        &|_| Some(mib(150)),
    );
    // The guard's watermark in the first api pod: 312 MiB, then 620 MiB from a spike at the
    // middle of the range, which lasted less than a scrape interval.
    series(
        "memfit_guard_memory_watermark_bytes",
        &format!("namespace=\"shop\",pod=\"{}\",container=\"api\"", api[0]),
        &|i| Some(if i < points / 2 { mib(312) } else { mib(620) }),
    );
    // kube-state-metrics.
    for pod in api {
        series(
            "kube_pod_owner",
            &format!("namespace=\"shop\",pod=\"{pod}\",owner_kind=\"ReplicaSet\",owner_name=\"api-7d4b9c8f6\",owner_is_controller=\"true\""),
            &|_| Some(1),
        );
        let labels = format!(
            "namespace=\"shop\",pod=\"{pod}\",container=\"api\",resource=\"memory\",unit=\"byte\""
        );
        series("kube_pod_container_resource_limits", &labels, &|_| {
            Some(1024 * MIB)
        });
        series("kube_pod_container_resource_requests", &labels, &|_| {
            Some(512 * MIB)
        });
        series(
            "kube_pod_container_status_restarts_total",
            &format!("namespace=\"shop\",pod=\"{pod}\",container=\"api\""),
            &|_| Some(0),
        );
    }
    series(
        "kube_replicaset_owner",
        "namespace=\"shop\",replicaset=\"api-7d4b9c8f6\",owner_kind=\"Deployment\",owner_name=\"api\",owner_is_controller=\"true\"",
        &|_| Some(1),
    );
    // worker: pod 0 OOM-killed three times, pod 1 once; the last termination is an OOM kill.
    for (pod, kills) in [
        (worker[0], &[300u64, 700, 1100][..]),
        (worker[1], &[900u64][..]),
    ] {
        let labels = format!("namespace=\"shop\",pod=\"{pod}\",container=\"worker\"");
        series("kube_pod_container_status_restarts_total", &labels, &|i| {
            Some(kills.iter().filter(|&&k| i >= k).count() as u64)
        });
        let first = kills[0];
        series(
            "kube_pod_container_status_last_terminated_reason",
            &format!("{labels},reason=\"OOMKilled\""),
            &|i| (i >= first).then_some(1),
        );
        let labels = format!("{labels},resource=\"memory\",unit=\"byte\"");
        series("kube_pod_container_resource_limits", &labels, &|_| {
            Some(256 * MIB)
        });
        series("kube_pod_container_resource_requests", &labels, &|_| {
            Some(256 * MIB)
        });
    }
    // A pod whose owner's name is a shell injection, as a hostile exporter could send.
    let evil = "namespace=\"shop\",pod=\"evil-0\"";
    series(
        "kube_pod_owner",
        &format!("{evil},owner_kind=\"ReplicaSet\",owner_name=\"x';touch pwn;'-7d4b9c8f6\""),
        &|_| Some(1),
    );
    series(
        "container_memory_working_set_bytes",
        &format!("{evil},container=\"app\""),
        &|_| Some(mib(10)),
    );
    // db-0: two restarts for errors.
    let labels = "namespace=\"shop\",pod=\"db-0\",container=\"postgres\"";
    series("kube_pod_container_status_restarts_total", labels, &|i| {
        Some(u64::from(i >= 100) + u64::from(i >= 200))
    });
    series(
        "kube_pod_container_status_last_terminated_reason",
        &format!("{labels},reason=\"Error\""),
        &|i| (i >= 100).then_some(1),
    );
    // Samples of one series must be together and in time order: sort by series, then time.
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_by_key(|l| {
        let mut parts = l.rsplitn(3, ' ');
        let t: u64 = parts.next().unwrap().parse().unwrap();
        let series = parts.nth(1).unwrap();
        (series.to_string(), t)
    });
    let mut text = lines.join("\n");
    text.push_str("\n# EOF\n");
    text
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn find<'a>(report: &'a Value, name: &str, container: &str) -> &'a Value {
    report["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == name && w["container"] == container)
        .unwrap_or_else(|| panic!("{name}/{container} not in {report:#}"))
}

#[test]
fn recorded_data_watermark_spikes_are_covered_and_oom_kills_bumped() {
    let test = "recorded_data_watermark_spikes_are_covered_and_oom_kills_bumped";
    let end = (now() - 120) / 120 * 120;
    let Some(prom) = start_prometheus(test, Some(&recorded_series(end)), "  []\n") else {
        return;
    };
    let out = plan(&[
        "--prometheus",
        &prom.url,
        "--range",
        "3d",
        "--runtime",
        "api=node",
        "--runtime",
        "shop/worker/worker=jvm",
        "--format",
        "json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["schema"], "memfit.fleet/1");
    assert_eq!(report["queries"]["count"], 12, "{report:#}");
    assert!(report["queries"]["seconds"].as_f64().unwrap() >= 0.0);

    // api: the sampled maximum (≤ 310 MiB) missed the spike; the watermark did not.
    let api = find(&report, "api", "api");
    assert_eq!(api["kind"], "Deployment");
    assert_eq!(api["namespace"], "shop");
    assert_eq!(api["owner_from_kube_state_metrics"], true);
    assert_eq!(api["pods"], 2);
    assert_eq!(api["peak_source"], "watermark");
    assert_eq!(api["observed_peak_bytes"], 620 * MIB);
    assert!(
        api["sampled_peak_bytes"].as_u64().unwrap() <= 310 * MIB,
        "{api:#}"
    );
    let limit = api["recommended_limit_bytes"].as_u64().unwrap();
    assert!(limit * 10 >= 11 * 620 * MIB, "{limit} < 1.1 × 620 MiB");
    assert_eq!(limit, (620 * MIB * 115 / 100).div_ceil(MIB) * MIB);
    assert_eq!(api["recommended_request_bytes"], limit);
    assert_eq!(api["current_limit_bytes"], 1024 * MIB);
    assert_eq!(api["current_request_bytes"], 512 * MIB);
    assert_eq!(api["oom_kills"], 0);
    // KRR's simple strategy on the same data (sampled maximum + 15%) stays under the spike.
    let krr = api["sampled_peak_bytes"].as_u64().unwrap() * 115 / 100;
    assert!(krr < 620 * MIB, "{krr}");
    let node = api["runtime_env"]["NODE_OPTIONS"].as_str().unwrap();
    assert!(node.starts_with("--max-old-space-size"), "{node}");

    // worker: 4 OOM kills at 256 MiB; bumped to at least max(256 + 100, 1.2 × 256) MiB.
    let worker = find(&report, "worker", "worker");
    assert_eq!(worker["kind"], "Deployment");
    assert_eq!(worker["owner_from_kube_state_metrics"], false);
    assert_eq!(worker["oom_kills"], 4, "{worker:#}");
    assert_eq!(worker["restarts"], 4);
    assert_eq!(worker["peak_source"], "sampled");
    assert_eq!(worker["oom_killed_at_limit_bytes"], 256 * MIB);
    let limit = worker["recommended_limit_bytes"].as_u64().unwrap();
    assert!(limit >= 356 * MIB, "{limit}");
    assert_eq!(limit, (356 * MIB * 115 / 100).div_ceil(MIB) * MIB);
    let java = worker["runtime_env"]["JAVA_TOOL_OPTIONS"].as_str().unwrap();
    assert!(java.contains("-XX:MaxRAMPercentage="), "{java}");

    // db-0: restarts without OOM kills, no runtime given, no settings.
    let db = find(&report, "db", "postgres");
    assert_eq!(db["kind"], "StatefulSet");
    assert_eq!(db["oom_kills"], 0);
    assert_eq!(db["restarts"], 2);
    assert_eq!(db["runtime_env"], serde_json::json!({}));
    assert!(report["caveats"][0].as_str().unwrap().contains("sampled"));

    // The table: each limit with its runtime settings, the OOM bump, queries and time.
    let out = plan(&[
        "--prometheus",
        &prom.url,
        "--range",
        "3d",
        "--runtime",
        "api=node",
        "--runtime",
        "worker=jvm",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8_lossy(&out.stdout);
    eprintln!("{table}");
    assert!(table.contains("620 MiB watermark"), "{table}");
    assert!(
        table.contains("shop/api/api (node, limit 713 MiB): NODE_OPTIONS=--max-old-space-size"),
        "{table}"
    );
    assert!(table.contains("4 OOM kill(s) at 256 MiB"), "{table}");
    assert!(table.contains("12 queries in"), "{table}");

    // Patches: printed for the Deployments, never applied; the StatefulSet too.
    let out = plan(&[
        "--prometheus",
        &prom.url,
        "--range",
        "3d",
        "--runtime",
        "api=node",
        "--format",
        "patch",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let patch = String::from_utf8_lossy(&out.stdout);
    eprintln!("{patch}");
    // A name Kubernetes would not accept (from a hostile or broken exporter) gets no command.
    assert!(patch.contains("# shop/x';touch pwn;': skipped"), "{patch}");
    assert!(
        !patch
            .lines()
            .any(|l| l.starts_with("kubectl") && l.contains("pwn")),
        "{patch}"
    );
    let api_line = patch
        .lines()
        .find(|l| l.contains("patch deployment 'api'"))
        .unwrap_or_else(|| panic!("{patch}"));
    assert!(
        api_line.starts_with("kubectl -n 'shop' patch deployment 'api' --type strategic -p '"),
        "{api_line}"
    );
    let body: Value = serde_json::from_str(
        api_line
            .split(" -p '")
            .nth(1)
            .unwrap()
            .trim_end_matches('\''),
    )
    .unwrap();
    let container = &body["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "api");
    assert_eq!(container["resources"]["limits"]["memory"], "713Mi");
    assert_eq!(container["env"][0]["name"], "NODE_OPTIONS");
    assert!(patch.contains("patch statefulset 'db'"), "{patch}");

    // YAML carries the same report.
    let out = plan(&[
        "--prometheus",
        &prom.url,
        "--range",
        "3d",
        "--format",
        "yaml",
        "--namespace",
        "shop",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(yaml.contains("\"schema\": \"memfit.fleet/1\""), "{yaml}");
    assert!(yaml.contains("\"oom_kills\": 4"), "{yaml}");

    // Another namespace: nothing, said once, exit 0.
    let out = plan(&[
        "--prometheus",
        &prom.url,
        "--namespace",
        "other",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["workloads"], serde_json::json!([]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no container memory series matched"));

    // A selector Prometheus refuses: exit 2, its reason on one line.
    let out = plan(&["--prometheus", &prom.url, "--selector", "team=~\"(\""]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("Prometheus refused the query"), "{stderr}");
}

/// A server that answers every request with `response`, for `count` requests.
fn hostile_server(response: &'static [u8], count: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(count) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(response);
        }
    });
    port
}

#[test]
fn bad_urls_unreachable_and_hostile_servers_exit_2_with_one_line() {
    let closed = free_port();
    let garbage = hostile_server(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{not json", 1);
    let wrong = hostile_server(
        b"HTTP/1.1 200 OK\r\nContent-Length: 44\r\n\r\n{\"status\":\"success\",\"data\":{\"result\":17}}\x1b[2J",
        1,
    );
    let lying = hostile_server(
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n{",
        1,
    );
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--prometheus".into(), "ftp://x".into()],
            "not an http:// or https:// URL",
        ),
        (
            vec!["--prometheus".into(), "https://u:p@prom:9090".into()],
            "credentials in it",
        ),
        (
            vec!["--prometheus".into(), format!("http://127.0.0.1:{closed}")],
            "cannot reach Prometheus",
        ),
        (
            vec!["--prometheus".into(), format!("http://127.0.0.1:{garbage}")],
            "did not answer as Prometheus",
        ),
        (
            vec!["--prometheus".into(), format!("http://127.0.0.1:{wrong}")],
            "did not answer as Prometheus",
        ),
        (
            vec!["--prometheus".into(), format!("http://127.0.0.1:{lying}")],
            "unreadable answer",
        ),
        (
            vec![
                "--prometheus".into(),
                "http://h".into(),
                "--range".into(),
                "14days".into(),
            ],
            "--range 14days",
        ),
        (
            vec![
                "--prometheus".into(),
                "http://h".into(),
                "--namespace".into(),
                "A\"}".into(),
            ],
            "not a Kubernetes namespace",
        ),
        (
            vec![
                "--prometheus".into(),
                "http://h".into(),
                "--selector".into(),
                "x\"}[1d]) or vector(1".into(),
            ],
            "label matchers without braces",
        ),
        (
            vec![
                "--prometheus".into(),
                "http://h".into(),
                "--runtime".into(),
                "node".into(),
            ],
            "names its container",
        ),
        (
            vec![
                "--prometheus".into(),
                "http://h".into(),
                "--format".into(),
                "env".into(),
            ],
            "--format env",
        ),
        (
            vec![
                "--limit".into(),
                "512M".into(),
                "--runtime".into(),
                "api=node".into(),
            ],
            "a runtime per container is for --prometheus",
        ),
        (
            vec![
                "--limit".into(),
                "512M".into(),
                "--format".into(),
                "patch".into(),
            ],
            "are for --prometheus",
        ),
        (
            vec![
                "--limit".into(),
                "512M".into(),
                "--range".into(),
                "3d".into(),
            ],
            "give --prometheus URL too",
        ),
    ];
    for (args, expected) in cases {
        let out = plan(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains('\u{1b}'), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert!(!Path::new("prometheus.yml").exists());
}
