//! `memfit plan --prometheus` live: three `memfit guard`s on loopback, each under a real
//! cgroup limit (`memfit run --limit`) with a child of a different footprint — one of them a
//! 50 ms spike — scraped every second by a real Prometheus whose scrape config gives each
//! target the namespace/pod/container labels Kubernetes service discovery would.

mod common;
mod prom;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use prom::{free_port, start_prometheus};
use serde_json::Value;

/// `memfit run` of a guard, stopped (SIGTERM, forwarded to the guard and its child) and
/// reaped when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        // SAFETY: kill(2) on a child of the test.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn guard(port: u16, child: &[&str]) -> Guard {
    Guard(
        Command::new(env!("CARGO_BIN_EXE_memfit"))
            .args(["run", "-q", "--limit", "400M", "--"])
            .arg(env!("CARGO_BIN_EXE_memfit"))
            .args(["guard", "--on-critical", "log", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--")
            .args(child)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

#[test]
fn live_guards_scraped_by_prometheus_are_each_sized_from_their_watermark() {
    let test = "live_guards_scraped_by_prometheus_are_each_sized_from_their_watermark";
    if !cgroups_available(test) {
        return;
    }
    let w = workload();
    // (deployment, footprint in MiB, the child)
    let services: [(&str, u64, Vec<&str>); 3] = [
        ("small", 40, vec![w, "alloc", "40M", "600000"]),
        ("medium", 120, vec![w, "alloc", "120M", "600000"]),
        ("spiky", 200, vec![w, "spike", "200M", "50", "600000"]),
    ];
    let mut scrape = String::new();
    let mut guards = Vec::new();
    for (name, _, child) in &services {
        let port = free_port();
        guards.push(guard(port, child));
        scrape.push_str(&format!(
            "  - job_name: {name}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n        labels: {{namespace: live, pod: {name}-7d4b9c8f6-x2x5z, container: app}}\n"
        ));
    }
    // A Node service: its guard's runtime view exports V8's heap, so the plan knows it is Node
    // without --runtime.
    let node_port = free_port();
    guards.push(guard(
        node_port,
        &[
            "node",
            "-e",
            "const b = Buffer.alloc(160 << 20, 1); setInterval(() => b[0]++, 1000);",
        ],
    ));
    scrape.push_str(&format!(
        "  - job_name: web\n    static_configs:\n      - targets: ['127.0.0.1:{node_port}']\n        labels: {{namespace: live, pod: web-7d4b9c8f6-x2x5z, container: app}}\n"
    ));
    let Some(prom) = start_prometheus(test, None, &scrape) else {
        return;
    };
    // Until Prometheus has scraped every guard after its child reached its footprint; a bound
    // so a broken setup fails instead of hanging, not a timing assertion.
    let deadline = Instant::now() + Duration::from_secs(120);
    let report = loop {
        let out = memfit()
            .args(["plan", "--prometheus", &prom.url, "--namespace", "live"])
            .args([
                "--range",
                "1h",
                "--runtime",
                "small/app=go",
                "--format",
                "json",
            ])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let ready = services.iter().all(|(name, mib, _)| {
            report["workloads"].as_array().unwrap().iter().any(|w| {
                w["name"] == *name && w["observed_peak_bytes"].as_u64().unwrap_or(0) >= mib * MIB
            })
        }) && report["workloads"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["name"] == "web" && w["runtime"] == "node");
        if ready {
            break report;
        }
        assert!(Instant::now() < deadline, "never scraped: {report:#}");
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!("{report:#}");
    assert_eq!(report["queries"]["count"], 12);
    let mut previous = 0;
    for (name, mib, _) in &services {
        let w = report["workloads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == *name)
            .unwrap();
        assert_eq!(w["kind"], "Deployment", "{w:#}");
        assert_eq!(w["namespace"], "live");
        assert_eq!(w["container"], "app");
        assert_eq!(w["peak_source"], "watermark", "{w:#}");
        let peak = w["observed_peak_bytes"].as_u64().unwrap();
        // The child's footprint plus the guard, the workload binary and a shell's worth.
        assert!(peak < (mib + 64) * MIB, "{name}: peak {peak}");
        let limit = w["recommended_limit_bytes"].as_u64().unwrap();
        assert!(
            limit * 100 >= peak * 115,
            "{name}: {limit} < peak {peak} + 15%"
        );
        assert!(
            limit > previous,
            "{name}: {limit} not above the smaller service's"
        );
        previous = limit;
    }
    let small = report["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "small")
        .unwrap();
    assert!(small["runtime_env"]["GOMEMLIMIT"].is_string(), "{small:#}");
    assert_eq!(small["runtime_source"], "--runtime");
    let web = report["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "web")
        .unwrap();
    assert!(
        web["runtime_source"].as_str().unwrap().starts_with("guard"),
        "{web:#}"
    );
    assert!(
        web["runtime_env"]["NODE_OPTIONS"]
            .as_str()
            .unwrap()
            .starts_with("--max-old-space-size"),
        "{web:#}"
    );
    drop(prom);
    drop(guards);
}
