//! The runtime view of `memfit run`: a preload injected through NODE_OPTIONS reports V8's
//! own counters (heap, external, array buffers, GC pauses) to memfit. Real node processes,
//! real cgroups; `plan --from` sizes from what they reported.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

/// `node` on PATH, or why a test is skipped.
fn node() -> Option<&'static str> {
    let found = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipping: no node on PATH (the runtime view is for Node)");
    }
    found.then_some("node")
}

/// A heap that grows by small objects, yielding to the event loop between chunks, until V8
/// gives up ("JavaScript heap out of memory").
const HEAP_LEAK: &str = r#"
const keep = [];
function step() {
  for (let i = 0; i < 4000; i++) keep.push({ i, s: 'x'.repeat(32) + i });
  setImmediate(step);
}
step();
"#;

/// Buffers retained outside the V8 heap, 1 MiB every 5 ms, up to `MIB` MiB, then a pause
/// and a clean exit (under a small enough limit the kernel kills it first).
fn buffer_hog(mib: u32) -> String {
    format!(
        r#"
const keep = [];
let n = 0;
function step() {{
  keep.push(Buffer.alloc(1 << 20, 1));
  if (++n < {mib}) setTimeout(step, 5); else setTimeout(() => {{}}, 300);
}}
step();
"#
    )
}

/// The `processes[]` entries with a `v8` record.
fn node_processes(run: &Run) -> Vec<Value> {
    run.report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p.get("v8").is_some_and(|v| !v.is_null()))
        .cloned()
        .collect()
}

fn v8_field(process: &Value, field: &str) -> u64 {
    process["v8"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("v8.{field} missing in {process}"))
}

fn script(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn a_heap_leak_is_named_as_the_v8_heap_with_its_flag() {
    let Some(node) = node() else { return };
    if !cgroups_available("a_heap_leak_is_named_as_the_v8_heap_with_its_flag") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let leak = script(dir.path(), "leak.js", HEAP_LEAK);
    let run = run(
        &["--limit", "512M"],
        &[node, "--max-old-space-size=64", &leak],
    );
    assert_eq!(run.status(), 134, "V8 aborts: {}", run.stderr());
    assert_eq!(run.report["runtime_view"]["node"], true, "{}", run.report);
    let nodes = node_processes(&run);
    assert_eq!(nodes.len(), 1, "{}", run.report["processes"]);
    let limit = v8_field(&nodes[0], "heap_limit_bytes");
    // --max-old-space-size=64 plus the young generation.
    assert!((64 * MIB..=128 * MIB).contains(&limit), "limit {limit}");
    let used = v8_field(&nodes[0], "heap_used_peak_bytes");
    assert!(used >= 40 * MIB, "heap used peak {used}");
    assert!(v8_field(&nodes[0], "gc_pause_total_ms") > 0);
    let samples = run.report["samples"].as_array().unwrap();
    assert!(samples
        .iter()
        .any(|s| s["runtime"]["heap_used_bytes"].as_u64() >= Some(20 * MIB)));
    let stderr = run.stderr();
    let verdict = stderr.lines().find(|l| l.contains("verdict")).unwrap();
    assert!(verdict.contains("V8 heap"), "{verdict}");
    assert!(verdict.contains("--max-old-space-size"), "{verdict}");
    assert!(stderr.contains("  node "), "per-process line: {stderr}");
    assert_cgroup_removed(&run);
}

#[test]
fn buffers_that_fill_the_limit_are_named_off_heap_where_no_heap_flag_helps() {
    let Some(node) = node() else { return };
    if !cgroups_available("buffers_that_fill_the_limit_are_named_off_heap") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hog = script(dir.path(), "hog.js", &buffer_hog(400));
    let run = run(&["--limit", "192M"], &[node, &hog]);
    assert_eq!(run.status(), 137, "{}", run.stderr());
    let nodes = node_processes(&run);
    assert_eq!(nodes.len(), 1, "{}", run.report["processes"]);
    let external = v8_field(&nodes[0], "external_peak_bytes");
    let buffers = v8_field(&nodes[0], "array_buffers_peak_bytes");
    assert!(external >= 64 * MIB && buffers >= 64 * MIB, "{}", nodes[0]);
    assert!(v8_field(&nodes[0], "heap_used_peak_bytes") < 32 * MIB);
    let stderr = run.stderr();
    let verdict = stderr.lines().find(|l| l.contains("verdict")).unwrap();
    assert!(verdict.contains("off-heap"), "{verdict}");
    assert!(verdict.contains("no heap flag helps"), "{verdict}");
    assert!(!verdict.contains("--max-old-space-size"), "{verdict}");
}

#[test]
fn worker_threads_report_through_the_same_preload() {
    let Some(node) = node() else { return };
    let dir = tempfile::tempdir().unwrap();
    let main = script(
        dir.path(),
        "main.js",
        r#"
const { Worker } = require('worker_threads');
const w = new Worker(`
  const { parentPort } = require('worker_threads');
  const keep = [];
  for (let i = 0; i < 300000; i++) keep.push({ i, s: 'w'.repeat(40) + i });
  parentPort.postMessage(keep.length);
`, { eval: true });
w.on('message', (n) => console.log('worker kept', n));
w.on('exit', () => console.log('worker done'));
"#,
    );
    let run = run(&[], &[node, &main]);
    assert_eq!(run.status(), 0, "{}", run.stderr());
    assert_eq!(run.stdout(), "worker kept 300000\nworker done\n");
    let nodes = node_processes(&run);
    assert_eq!(nodes.len(), 1, "{}", run.report["processes"]);
    assert!(v8_field(&nodes[0], "threads") >= 2, "{}", nodes[0]);
    assert!(
        v8_field(&nodes[0], "heap_used_peak_bytes") >= 20 * MIB,
        "{}",
        nodes[0]
    );
}

#[test]
fn child_node_processes_report_and_a_command_that_is_not_node_has_no_view() {
    let Some(node) = node() else { return };
    let dir = tempfile::tempdir().unwrap();
    let child = script(
        dir.path(),
        "child.js",
        "const keep = Buffer.alloc(8 << 20, 1); console.log('child', keep.length);\n",
    );
    let parent = script(
        dir.path(),
        "parent.js",
        &format!(
            "const {{ execFileSync }} = require('child_process');\nprocess.stdout.write(execFileSync(process.execPath, [{child:?}]));\n"
        ),
    );
    let run = run(&[], &[node, &parent]);
    assert_eq!(run.status(), 0, "{}", run.stderr());
    assert_eq!(run.stdout(), format!("child {}\n", 8 << 20));
    assert_eq!(node_processes(&run).len(), 2, "{}", run.report["processes"]);

    let other = common::run(&[], &[workload(), "alloc", "32M", "50"]);
    assert_eq!(other.status(), 0, "{}", other.stderr());
    assert!(node_processes(&other).is_empty());
    assert!(other.report["samples"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s.get("runtime").is_none()));
}

/// A command that drops privileges before it starts Node (`su-exec`, `gosu`, `setpriv`, as
/// images do): Node refuses to start when a `--require` file cannot be read, so the preload
/// must be readable by any user, and the FIFO writable.
#[test]
fn a_node_process_of_another_user_starts_and_reports() {
    let Some(node) = node() else { return };
    let run = run(
        &[],
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            node,
            "-e",
            "const keep = Buffer.alloc(8 << 20, 1); console.log('nobody', keep.length);",
        ],
    );
    assert_eq!(run.status(), 0, "{}", run.stderr());
    assert_eq!(run.stdout(), format!("nobody {}\n", 8 << 20));
    let nodes = node_processes(&run);
    assert_eq!(nodes.len(), 1, "{}", run.report["processes"]);
    assert!(v8_field(&nodes[0], "external_peak_bytes") >= 8 << 20);
}

#[test]
fn no_runtime_view_injects_nothing_and_the_commands_output_is_the_same_either_way() {
    let Some(node) = node() else { return };
    let dir = tempfile::tempdir().unwrap();
    let talk = script(
        dir.path(),
        "talk.js",
        r#"
for (let i = 0; i < 2000; i++) console.log('line', i, 'x'.repeat(i % 50));
console.error('to stderr');
console.log('NODE_OPTIONS', JSON.stringify(process.env.NODE_OPTIONS));
"#,
    );
    let with = run(&[], &[node, &talk]);
    let without = run(&["--no-runtime-view"], &[node, &talk]);
    assert_eq!(with.status(), 0, "{}", with.stderr());
    assert_eq!(without.status(), 0, "{}", without.stderr());
    assert!(without.stdout().ends_with("NODE_OPTIONS undefined\n"));
    let body = |s: String| s.rsplit_once("NODE_OPTIONS").unwrap().0.to_string();
    assert_eq!(body(with.stdout()), body(without.stdout()));
    assert!(
        with.stderr().starts_with("to stderr\n"),
        "{}",
        with.stderr()
    );
    assert!(node_processes(&without).is_empty());
    assert!(without
        .report
        .get("runtime_view")
        .is_none_or(Value::is_null));
    assert_eq!(node_processes(&with).len(), 1);
    // memfit's own addition is not the host's NODE_OPTIONS.
    assert!(!with.stderr().contains("NODE_OPTIONS"), "{}", with.stderr());
}

#[test]
fn the_users_node_options_are_kept_and_a_temp_dir_with_a_space_works_and_is_removed() {
    let Some(node) = node() else { return };
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("a tmp dir");
    std::fs::create_dir(&tmp).unwrap();
    let probe = script(
        dir.path(),
        "probe.js",
        "console.log(require('v8').getHeapStatistics().heap_size_limit > 0);\n",
    );
    let run = run_env(
        &[],
        &[node, &probe],
        &[
            ("NODE_OPTIONS", "--max-old-space-size=96"),
            ("TMPDIR", tmp.to_str().unwrap()),
        ],
    );
    assert_eq!(run.status(), 0, "{}", run.stderr());
    assert_eq!(run.stdout(), "true\n");
    let nodes = node_processes(&run);
    assert_eq!(nodes.len(), 1, "{}", run.report["processes"]);
    let limit = v8_field(&nodes[0], "heap_limit_bytes");
    assert!((96 * MIB..=160 * MIB).contains(&limit), "limit {limit}");
    // The host's own NODE_OPTIONS is still named, as it reaches the command.
    assert!(run
        .stderr()
        .contains("NODE_OPTIONS=--max-old-space-size=96 reaches"));
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "memfit left its preload behind"
    );
}

#[test]
fn plan_from_a_run_of_buffers_budgets_them_off_heap() {
    let Some(node) = node() else { return };
    if !cgroups_available("plan_from_a_run_of_buffers_budgets_them_off_heap") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hog = script(dir.path(), "hog.js", &buffer_hog(150));
    let run = run(&[], &[node, &hog]);
    assert_eq!(run.status(), 0, "{}", run.stderr());
    let json = dir.path().join("run.json");
    std::fs::write(&json, serde_json::to_vec(&run.report).unwrap()).unwrap();
    let output = memfit()
        .args([
            "plan",
            "--node-version",
            "20.20.2",
            "--format",
            "json",
            "--from",
        ])
        .arg(&json)
        .output()
        .unwrap();
    let plan: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    let line = |item: &str| {
        plan["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["item"].as_str().unwrap().starts_with(item))
            .unwrap_or_else(|| panic!("no {item} line in {plan}"))["bytes"]
            .as_u64()
            .unwrap()
    };
    let off_heap = line("off-heap");
    assert!(
        off_heap >= 150 * MIB,
        "off-heap {} MiB: {plan}",
        off_heap / MIB
    );
    let limit = plan["limit"]["bytes"].as_u64().unwrap();
    assert!(limit >= 150 * MIB + line("old space"), "{plan}");
    assert!(plan["from_run"]["runtime_view"].is_object(), "{plan}");

    // Without a runtime view the plan says what it assumed.
    let without = common::run(&["--no-runtime-view"], &[node, &hog]);
    std::fs::write(&json, serde_json::to_vec(&without.report).unwrap()).unwrap();
    let output = memfit()
        .args(["plan", "--node-version", "20.20.2", "--from"])
        .arg(&json)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("no runtime view"), "{text}");
}

/// `javac` and `java`, or why the JVM test is skipped.
fn jdk() -> bool {
    let found = ["javac", "java"].iter().all(|tool| {
        Command::new(tool)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !found {
        eprintln!(
            "skipping: no javac/java on PATH (the JVM view is tested with a compiled program)"
        );
    }
    found
}

#[test]
fn a_jvm_heap_that_fills_its_xmx_is_named_from_the_jvms_own_counters() {
    if !jdk() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Fill.java"),
        r#"
import java.util.*;
public class Fill {
  public static void main(String[] args) throws Exception {
    List<byte[]> keep = new ArrayList<>();
    System.out.println("filling");
    while (true) { keep.add(new byte[1 << 20]); Thread.sleep(10); }
  }
}
"#,
    )
    .unwrap();
    let javac = Command::new("javac")
        .arg("Fill.java")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(javac.status.success(), "{javac:?}");
    let classes = dir.path().display().to_string();
    let run = run(&[], &["java", "-Xmx64m", "-cp", &classes, "Fill"]);
    assert_eq!(run.status(), 1, "OutOfMemoryError: {}", run.stderr());
    assert_eq!(run.stdout(), "filling\n");
    assert!(run
        .stderr()
        .starts_with("Exception in thread \"main\" java.lang.OutOfMemoryError"));
    let jvm = run.report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|p| p.get("jvm").filter(|j| !j.is_null()))
        .unwrap_or_else(|| panic!("no processes[].jvm: {}", run.report["processes"]))
        .clone();
    // HotSpot's counters carry a few bytes of alignment over -Xmx.
    let max = jvm["heap_max_bytes"].as_u64().unwrap();
    assert!((64 * MIB..65 * MIB).contains(&max), "{jvm}");
    assert!(
        jvm["heap_used_peak_bytes"].as_u64().unwrap() >= 32 * MIB,
        "{jvm}"
    );
    assert!(jvm["gc_count"].as_u64().unwrap() > 0, "{jvm}");
    let stderr = run.stderr();
    let verdict = stderr.lines().find(|l| l.contains("verdict")).unwrap();
    assert!(verdict.contains("Java heap"), "{verdict}");
    assert!(stderr.contains("  jvm "), "{stderr}");
}
