//! `memfit plan` through the binary: the budget's promises checked against real runtimes
//! under real cgroup limits (`memfit run`), the measured-run path, formats and bad input.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use serde_json::Value;

fn plan_json(args: &[&str]) -> (i32, Value) {
    let output = memfit()
        .arg("plan")
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    exit_and_json(&output)
}

fn setting(plan: &Value, name: &str) -> String {
    plan["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {plan}"))["value"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `heap_size_limit` of `node` run by `memfit run --limit LIMIT` with NODE_OPTIONS.
fn measured_heap(node: &str, limit: &str, node_options: &str) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let output = memfit()
        .env("NODE_OPTIONS", node_options)
        .args(["run", "-q", "--limit", limit, "--json"])
        .arg(&json)
        .args([
            "--",
            node,
            "-e",
            "console.log(require('v8').getHeapStatistics().heap_size_limit)",
        ])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{node} {node_options}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap()
}

/// The cgroup version memfit runs on here, as `--cgroup` spells it.
fn host_cgroup() -> &'static str {
    let probe = run(&[], &[workload(), "exit", "0"]);
    match probe.report["mode"].as_str() {
        Some("cgroup-v1") => "v1",
        _ => "v2",
    }
}

/// The Node binaries to check: the `node` on PATH, and those listed in MEMFIT_TEST_NODES
/// (colon-separated paths; `.ci/run` fetches Node 18, 22, 24 and 26 from the npm registry).
fn node_binaries() -> Vec<(String, String)> {
    let mut paths: Vec<String> = vec!["node".to_string()];
    if let Ok(list) = std::env::var("MEMFIT_TEST_NODES") {
        paths.extend(
            list.split(':')
                .filter(|p| !p.is_empty())
                .map(str::to_string),
        );
    }
    paths
        .into_iter()
        .filter_map(|path| {
            let output = Command::new(&path).arg("--version").output().ok()?;
            let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
            output.status.success().then_some((path, version))
        })
        .collect()
}

#[test]
fn render_starter_budget_gives_the_heap_it_promised_under_512m() {
    if !cgroups_available("render_starter_budget_gives_the_heap_it_promised_under_512m") {
        return;
    }
    if node_binaries().is_empty() {
        eprintln!("skipping: no node on PATH");
        return;
    }
    let (code, plan) = plan_json(&["--platform", "render:starter", "--runtime", "node"]);
    assert_eq!(code, 0, "{plan}");
    assert_eq!(plan["schema"], "memfit.plan/1");
    assert_eq!(plan["limit"]["bytes"], 512 * MIB);
    assert_eq!(plan["limit"]["source"], "--platform render:starter");
    let options = setting(&plan, "NODE_OPTIONS");
    let promised = plan["promised_heap_bytes"].as_u64().unwrap();
    assert_eq!(measured_heap("node", "512M", &options), promised);
    // And the default it warns about is what Node really picks there.
    let default = plan["default_heap_bytes"].as_u64().unwrap();
    assert_eq!(measured_heap("node", "512M", ""), default);
}

#[test]
fn the_heap_model_matches_every_node_binary_at_hand() {
    if !cgroups_available("the_heap_model_matches_every_node_binary_at_hand") {
        return;
    }
    let nodes = node_binaries();
    if nodes.is_empty() {
        eprintln!("skipping: no node binary");
        return;
    }
    let cgroup = host_cgroup();
    for (node, version) in &nodes {
        for limit in ["256M", "512M", "768M", "2G"] {
            let (_, plan) = plan_json(&[
                "--limit",
                limit,
                "--node-version",
                version,
                "--cgroup",
                cgroup,
            ]);
            let default = plan["default_heap_bytes"].as_u64().unwrap();
            assert_eq!(
                measured_heap(node, limit, ""),
                default,
                "default heap of node {version} at {limit}"
            );
            let options = setting(&plan, "NODE_OPTIONS");
            let promised = plan["promised_heap_bytes"].as_u64().unwrap();
            assert_eq!(
                measured_heap(node, limit, &options),
                promised,
                "node {version} at {limit} with {options}"
            );
        }
        eprintln!("node {version}: default and planned heap limits as modelled");
    }
}

#[test]
fn the_jvm_budget_gives_the_heap_it_promised() {
    if !cgroups_available("the_jvm_budget_gives_the_heap_it_promised") {
        return;
    }
    if Command::new("java").arg("-version").output().is_err() {
        eprintln!("skipping: no java on PATH");
        return;
    }
    // 224M: MaxRAMPercentage cannot give the heap that fits (the JVM takes MinRAMPercentage,
    // 50%, of a container that small), so the plan writes -Xmx.
    for limit in ["224M", "256M", "1G"] {
        let (code, plan) = plan_json(&["--limit", limit, "--runtime", "jvm"]);
        assert_eq!(code, 0);
        let options = setting(&plan, "JAVA_TOOL_OPTIONS");
        let output = memfit()
            .env("JAVA_TOOL_OPTIONS", &options)
            .args(["run", "-q", "--limit", limit, "--"])
            .args(["java", "-XX:+PrintFlagsFinal", "-version"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        let max_heap: u64 = text
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some("MaxHeapSize"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no MaxHeapSize in {text}"));
        assert_eq!(
            Some(max_heap),
            plan["promised_heap_bytes"].as_u64(),
            "{limit} {options}"
        );
    }
}

fn run_report(args: &[&str], command: &[&str]) -> (tempfile::TempDir, PathBuf, Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let output = memfit()
        .args(["run", "-q"])
        .args(args)
        .arg("--json")
        .arg(&json)
        .arg("--")
        .args(command)
        .output()
        .unwrap();
    assert!(json.exists(), "{}", String::from_utf8_lossy(&output.stderr));
    let report = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (dir, json, report)
}

#[test]
fn from_a_measured_run_it_recommends_the_peak_plus_15_percent_and_plans() {
    if !cgroups_available("from_a_measured_run_it_recommends_the_peak_plus_15_percent_and_plans") {
        return;
    }
    let (_dir, json, report) = run_report(&[], &[workload(), "alloc", "300M", "300"]);
    let working = report["peak"]["working_bytes"].as_u64().unwrap();
    let (code, plan) = plan_json(&["--from", json.to_str().unwrap()]);
    assert_eq!(code, 0, "{plan}");
    let from = &plan["from_run"];
    assert_eq!(from["peak_bytes"].as_u64().unwrap(), working);
    assert_eq!(
        from["recommended_bytes"].as_u64().unwrap(),
        working * 115 / 100
    );
    assert_eq!(from["oom_killed_at_bytes"], Value::Null);
    // ~345 MiB needed: the budget is for that rounded up to 64 MiB, and 512 MiB plans fit.
    let limit = plan["limit"]["bytes"].as_u64().unwrap();
    assert_eq!(limit % (64 * MIB), 0);
    assert!(limit >= working * 115 / 100 && limit < working * 115 / 100 + 64 * MIB);
    let plans = from["plans"].as_array().unwrap();
    let render = plans
        .iter()
        .find(|p| p["name"].as_str().unwrap().starts_with("render:"))
        .unwrap_or_else(|| panic!("no Render plan in {plans:?}"));
    assert_eq!(render["memory_bytes"], 512 * MIB);
    assert!(
        plans.iter().any(|p| p["name"] == "fly:shared-cpu-1x-512"),
        "{plans:?}"
    );

    // The same run against a plan too small for it: exit 1 and say so.
    let (code, plan) = plan_json(&["--from", json.to_str().unwrap(), "--limit", "256M"]);
    assert_eq!(code, 1);
    assert!(plan["problems"][0]
        .as_str()
        .unwrap()
        .contains("more than the 256 MiB limit"));
}

#[test]
fn after_an_oom_kill_the_recommendation_is_bumped_as_the_vpa_does() {
    if !cgroups_available("after_an_oom_kill_the_recommendation_is_bumped_as_the_vpa_does") {
        return;
    }
    let (_dir, json, report) =
        run_report(&["--limit", "128M"], &[workload(), "alloc", "400M", "300"]);
    assert_eq!(report["oom_killed"], true);
    let (_, plan) = plan_json(&["--from", json.to_str().unwrap()]);
    let from = &plan["from_run"];
    assert_eq!(from["oom_killed_at_bytes"], 128 * MIB);
    // used = max(limit, peak) = 128 MiB; bumped to max(+100 MiB, ×1.2) = 228 MiB; + 15%.
    assert_eq!(
        from["recommended_bytes"].as_u64().unwrap(),
        228 * MIB * 115 / 100
    );
}

#[test]
fn formats_print_exact_settings() {
    let output = memfit()
        .args([
            "plan",
            "--limit",
            "256M",
            "--node-version",
            "18",
            "--format",
            "dockerfile",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "ENV NODE_OPTIONS=\"--max-old-space-size=144 --max-semi-space-size=1\"\n"
    );
    let output = memfit()
        .args([
            "plan",
            "--platform",
            "render:starter",
            "--node-version",
            "22.21",
            "--format",
            "env",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "NODE_OPTIONS=--max-old-space-size-percentage=75\n"
    );
    let output = memfit()
        .args([
            "plan",
            "--limit",
            "1G",
            "--runtime",
            "go",
            "--format",
            "env",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "GOMEMLIMIT=921MiB\n"
    );
    let output = memfit()
        .args([
            "plan",
            "--platform",
            "render:starter",
            "--node-version",
            "20",
        ])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "old space (heap cap)",
        "384 MiB",
        "young generation",
        "system reserve",
        "NODE_OPTIONS=--max-old-space-size=384",
        "heap_size_limit = 387 MiB",
    ] {
        assert!(table.contains(needle), "{needle} missing in\n{table}");
    }
}

#[test]
fn too_many_workers_exit_1_with_the_count_that_fits() {
    let (code, plan) = plan_json(&["--limit", "512M", "--workers", "4", "--node-version", "20"]);
    assert_eq!(code, 1);
    assert_eq!(plan["fits"], false);
    assert!(plan["problems"][0].as_str().unwrap().contains("At most 3"));
}

#[test]
fn bad_input_exits_2_with_one_line_that_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let not_json = dir.path().join("x.json");
    std::fs::write(&not_json, "hello").unwrap();
    let other_json = dir.path().join("y.json");
    std::fs::write(&other_json, "{\"schema\":\"memfit.bisect/1\"}").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![], "no limit to plan for"),
        (vec!["--limit", "lots"], "invalid size"),
        (vec!["--limit", "1M"], "too small"),
        (vec!["--platform", "render:huge"], "unknown platform"),
        (
            vec!["--limit", "512M", "--node-version", "lts/iron"],
            "invalid Node.js version",
        ),
        (vec!["--from", "/nonexistent/run.json"], "cannot read"),
        (vec!["--from", not_json.to_str().unwrap()], "is not JSON"),
        (
            vec!["--from", other_json.to_str().unwrap()],
            "not a memfit run report",
        ),
    ];
    for (args, needle) in cases {
        let output = memfit().arg("plan").args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn from_a_run_that_needed_swap_it_counts_the_swap_as_memory() {
    // A run's report as `memfit run --swap` writes it when 40 MiB went to swap: the plan is
    // for a platform without swap, where those pages stay in memory.
    let (_dir, json, mut report) = run_report(&[], &[workload(), "alloc", "20M", "50"]);
    let working = report["peak"]["working_bytes"].as_u64().unwrap();
    report["peak"]["swap_used_bytes"] = serde_json::json!(40 * MIB);
    std::fs::write(&json, serde_json::to_string(&report).unwrap()).unwrap();
    // Exit 1 is a budget finding (a default heap that does not fit), not a failure.
    let (code, plan) = plan_json(&["--from", json.to_str().unwrap()]);
    assert!(code == 0 || code == 1, "{plan}");
    assert_eq!(
        plan["from_run"]["peak_bytes"].as_u64().unwrap(),
        working + 40 * MIB
    );
}
