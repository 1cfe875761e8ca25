//! `memfit_guard_memory_watermark_bytes`: the kernel's high-water mark of the guard's cgroup
//! (v2 `memory.peak`, v1 `memory.max_usage_in_bytes`), which `memfit plan --prometheus` sizes
//! from. A real guard under a real cgroup limit (`memfit run --limit`), a real child that
//! spikes for a few milliseconds between two scrapes: the watermark shows the spike even
//! though the working set is back down by the time anyone looks.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

fn get_metrics(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

fn value(metrics: &str, name: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    // A bound so a broken guard fails the test instead of hanging it; not a timing assertion.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Stop(Child);

impl Drop for Stop {
    fn drop(&mut self) {
        // SAFETY: kill(2) on a child of the test (memfit run forwards it to the guard).
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

#[test]
fn the_watermark_metric_shows_a_spike_made_between_scrapes() {
    let test = "the_watermark_metric_shows_a_spike_made_between_scrapes";
    if !cgroups_available(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let done = dir.path().join("done");
    let w = workload();
    // The child waits for the test's go, touches 150 MiB for 30 ms, frees it, says so, idles.
    let script = format!(
        "while [ ! -e '{go}' ]; do sleep 0.02; done; '{w}' spike 150M 30 0 && : > '{done}' && exec '{w}' sleep 600000",
        go = go.display(),
        done = done.display()
    );
    let mut child = memfit()
        .args(["run", "-q", "--limit", "400M", "--"])
        .arg(env!("CARGO_BIN_EXE_memfit"))
        .args([
            "guard",
            "--listen",
            "127.0.0.1:0",
            "--on-critical",
            "log",
            "--",
        ])
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let guard = Stop(child);
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("  | {line}");
            sink.lock().unwrap().push(line);
        }
    });
    let mut port = 0u16;
    wait_until("the guard says where it listens", || {
        let log = lines.lock().unwrap();
        if let Some(line) = log.iter().find(|l| l.contains("serving /health/memory")) {
            port = line.rsplit(':').next().unwrap().trim().parse().unwrap();
        }
        port != 0
    });
    let name = "memfit_guard_memory_watermark_bytes";
    let mut before = None;
    wait_until("the first sample is published", || {
        before = value(&get_metrics(port), name).filter(|&v| v > 0);
        before.is_some()
    });
    let before = before.unwrap();
    assert!(
        before < 150 * MIB,
        "watermark {before} before the spike already ≥ 150 MiB"
    );
    std::fs::write(&go, b"").unwrap();
    wait_until("the child spiked and freed", || Path::new(&done).exists());
    let mut last = String::new();
    wait_until("the watermark reaches the spike", || {
        last = get_metrics(port);
        value(&last, name).is_some_and(|v| v >= 150 * MIB)
    });
    let watermark = value(&last, name).unwrap();
    let usage = value(&last, "memfit_guard_memory_usage_bytes").unwrap();
    assert!(
        usage < 150 * MIB,
        "usage {usage} should be back down once the 150 MiB are freed"
    );
    assert!(
        watermark <= 400 * MIB,
        "watermark {watermark} above the cgroup's limit"
    );
    assert!(
        last.contains("# TYPE memfit_guard_memory_watermark_bytes gauge"),
        "{last}"
    );
    drop(guard);
}
