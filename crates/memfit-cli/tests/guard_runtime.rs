//! The guard's runtime view: a Node child reports V8's heap and its buffers through the
//! preload the guard injects, and /metrics exports the sums (issue 16), or nothing when the
//! view is off.

mod common;
mod guard_support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use guard_support::*;

const MIB: u64 = 1 << 20;

/// Retains a 48 MiB Buffer (8 MiB when `marker` exists: a restarted child) and ~20 MiB of
/// heap, writes its NODE_OPTIONS to `marker` once both are held, and stays alive.
fn grower(marker: &Path) -> String {
    format!(
        r#"const fs = require('fs');
const mib = fs.existsSync({marker:?}) ? 8 : 48;
const kept = [Buffer.alloc(mib * 1024 * 1024, 1)];
const heap = [];
for (let i = 0; i < 200; i++) heap.push(new Array(12500).fill(i + 0.5));
fs.writeFileSync({marker:?}, String(process.env.NODE_OPTIONS));
setInterval(() => {{ kept.length; heap.length; }}, 1000);"#,
        marker = marker.to_str().unwrap()
    )
}

fn wait_for_file(path: &Path, g: &Guarded) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.is_empty() {
                return text;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the child never wrote {}: {:?}", path.display(), g.log());
}

/// The value of `name` in a scrape, when it is there.
fn value(body: &str, name: &str) -> Option<u64> {
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

fn promtool_check(body: &str) {
    match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(mut promtool) => {
            promtool
                .stdin
                .take()
                .unwrap()
                .write_all(body.as_bytes())
                .unwrap();
            let out = promtool.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "promtool: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(_) => eprintln!(
            "promtool not installed (Debian package prometheus; .ci/run installs it): format check skipped"
        ),
    }
}

#[test]
fn a_node_childs_heap_and_buffers_are_exported() {
    if !node_available() {
        eprintln!("node not installed: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("node-options");
    let g = Guarded::start(
        None,
        &["--listen", "127.0.0.1:0", "--limit", "2G"],
        &["node", "-e", &grower(&marker)],
        &[("NODE_OPTIONS", "--max-old-space-size=96")],
    );
    let options = wait_for_file(&marker, &g);
    assert!(
        options.starts_with("--max-old-space-size=96 --require "),
        "the user's NODE_OPTIONS first, then the preload: {options}"
    );
    let port = g.port();
    // The report that follows the allocation arrives within a tick or two.
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        let (code, body) = get(port, "/metrics");
        assert_eq!(code, 200);
        if value(&body, "memfit_guard_node_external_bytes").is_some_and(|e| e >= 48 * MIB) {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "no node metrics with the Buffer: {body}\n{:?}",
            g.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let limit = value(&body, "memfit_guard_node_heap_limit_bytes").unwrap();
    // V8's limit is the old space the flag sets plus the young generation.
    assert!(
        (96 * MIB..160 * MIB).contains(&limit),
        "heap limit {limit} from --max-old-space-size=96"
    );
    let used = value(&body, "memfit_guard_node_heap_used_bytes").unwrap();
    assert!(used >= 15 * MIB && used < limit, "heap used {used}");
    let buffers = value(&body, "memfit_guard_node_array_buffers_bytes").unwrap();
    assert!(buffers >= 48 * MIB, "array buffers {buffers}");
    for family in [
        "node_heap_limit_bytes",
        "node_heap_used_bytes",
        "node_external_bytes",
    ] {
        assert!(
            body.contains(&format!("# TYPE memfit_guard_{family} gauge")),
            "{family}: {body}"
        );
    }
    promtool_check(&body);
    // /health/memory shows the same sums.
    let (_, health) = get(port, "/health/memory");
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    let node = &health["node"];
    assert!(
        node["external_bytes"].as_u64().unwrap() >= 48 * MIB,
        "{health}"
    );
    assert!(
        node["heap_limit_bytes"].as_u64().unwrap() >= 96 * MIB,
        "{health}"
    );
    assert_eq!(node["threads"], 1, "{health}");
    g.signal(libc::SIGTERM);
    let _ = g.finish(Duration::from_secs(20));
}

/// Scrapes until `done` accepts the node metrics (external, heap limit).
fn scrape_until(g: &Guarded, what: &str, done: impl Fn(u64, u64) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, body) = get(g.port(), "/metrics");
        assert_eq!(code, 200);
        let external = value(&body, "memfit_guard_node_external_bytes");
        let limit = value(&body, "memfit_guard_node_heap_limit_bytes");
        if let (Some(e), Some(l)) = (external, limit) {
            if done(e, l) {
                return body;
            }
        }
        assert!(
            Instant::now() < deadline,
            "never {what}: {body}\n{:?}",
            g.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_restarted_child_reports_again_and_the_old_ones_numbers_leave_the_sums() {
    if !node_available() {
        eprintln!("node not installed: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("node-options");
    let g = Guarded::start(
        None,
        &[
            "--listen",
            "127.0.0.1:0",
            "--limit",
            "2G",
            "--allow-actions",
            "--grace",
            "1s",
        ],
        &["node", "-e", &grower(&marker)],
        &[
            ("NODE_OPTIONS", "--max-old-space-size=96"),
            ("MEMFIT_GUARD_ACTION_TOKEN", TEST_TOKEN),
        ],
    );
    wait_for_file(&marker, &g);
    scrape_until(&g, "the first child's 48 MiB", |e, _| e >= 48 * MIB);
    let accepted = post_restart(g.port(), Some(&format!("Bearer {TEST_TOKEN}")));
    assert!(accepted.starts_with("HTTP/1.1 202"), "{accepted}");
    assert!(
        g.wait_for("restarted (http)", Duration::from_secs(30)),
        "{:?}",
        g.log()
    );
    // The old child died of SIGTERM without a last report: only the new one's 8 MiB, and
    // one heap limit, remain.
    let body = scrape_until(&g, "the new child's 8 MiB alone", |e, l| {
        (8 * MIB..30 * MIB).contains(&e) && l < 160 * MIB
    });
    promtool_check(&body);
    g.signal(libc::SIGTERM);
    let _ = g.finish(Duration::from_secs(20));
}

/// An entrypoint that drops privileges (`su-exec node …`, `gosu`) still starts its Node: the
/// preload is readable by any user (Node exits at once when a `--require` cannot be read).
#[test]
fn a_child_that_drops_privileges_still_starts_and_reports() {
    if !node_available() || Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("node or setpriv not installed: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let marker = dir.path().join("node-options");
    let script = grower(&marker);
    let g = Guarded::start(
        None,
        &["--listen", "127.0.0.1:0", "--limit", "2G"],
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "node",
            "-e",
            &script,
        ],
        &[],
    );
    let options = wait_for_file(&marker, &g);
    assert!(options.starts_with("--require "), "{options}");
    scrape_until(&g, "the unprivileged child's 48 MiB", |e, _| e >= 48 * MIB);
    g.signal(libc::SIGTERM);
    let _ = g.finish(Duration::from_secs(20));
}

#[test]
fn with_the_view_off_the_child_is_left_alone_and_no_node_metric_is_exported() {
    if !node_available() {
        eprintln!("node not installed: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("node-options");
    let g = Guarded::start(
        None,
        &["--listen", "127.0.0.1:0", "--limit", "2G"],
        &["node", "-e", &grower(&marker)],
        &[
            ("NODE_OPTIONS", "--max-old-space-size=96"),
            ("MEMFIT_GUARD_NO_RUNTIME_VIEW", "1"),
        ],
    );
    let options = wait_for_file(&marker, &g);
    assert_eq!(options, "--max-old-space-size=96", "NODE_OPTIONS untouched");
    let (code, body) = get(g.port(), "/metrics");
    assert_eq!(code, 200);
    assert!(!body.contains("memfit_guard_node_"), "{body}");
    let (_, health) = get(g.port(), "/health/memory");
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert!(health["node"].is_null(), "{health}");
    promtool_check(&body);
    g.signal(libc::SIGTERM);
    let _ = g.finish(Duration::from_secs(20));
}

/// Without a writable temporary directory (a read-only root filesystem) the guard says so
/// once and runs the child untouched.
#[test]
fn without_a_temporary_directory_the_child_runs_without_the_view() {
    if !node_available() {
        eprintln!("node not installed: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("node-options");
    let g = Guarded::start(
        None,
        &["--listen", "127.0.0.1:0", "--limit", "2G"],
        &["node", "-e", &grower(&marker)],
        &[
            ("NODE_OPTIONS", "--max-old-space-size=96"),
            ("TMPDIR", "/nonexistent-memfit-test"),
        ],
    );
    let options = wait_for_file(&marker, &g);
    assert_eq!(options, "--max-old-space-size=96", "NODE_OPTIONS untouched");
    let line = g.line_with("no Node runtime view", Duration::from_secs(10));
    assert!(line.contains("set TMPDIR"), "{line}");
    let (_, body) = get(g.port(), "/metrics");
    assert!(!body.contains("memfit_guard_node_"), "{body}");
    g.signal(libc::SIGTERM);
    let (code, _, _) = g.finish(Duration::from_secs(20));
    assert_eq!(code, 143);
}
