//! `memfit explain` through the real binary: files, stdin, exit codes, JSON, bad input, and
//! flat memory on a large stream (measured by memfit run itself).

mod common;

use std::io::Write;
use std::process::Stdio;

use common::*;

fn corpus(name: &str) -> String {
    format!(
        "{}/../memfit-explain/tests/corpus/{name}.log",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn explain(args: &[&str]) -> (i32, String, String) {
    let output = memfit().arg("explain").args(args).output().unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_v8_heap_death_is_explained_with_its_heap_and_a_concrete_remedy() {
    let (code, out, _) = explain(&[&corpus("node-heap-cra-github-actions")]);
    assert_eq!(code, 0);
    assert!(out.contains("OUT OF MEMORY — node-heap"), "{out}");
    assert!(out.contains("V8 died at 2041 MB"), "{out}");
    assert!(out.contains("--max-old-space-size=3072"), "{out}");
    assert!(
        !out.contains("--gc-interval="),
        "never recommend a no-op flag: {out}"
    );
}

#[test]
fn stdin_is_read_with_a_dash() {
    let mut child = memfit()
        .args(["explain", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            std::fs::read(corpus("k8s-describe-oomkilled"))
                .unwrap()
                .as_slice(),
        )
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(out.contains("container-memcg"), "{out}");
}

#[test]
fn an_exit_code_alone_is_uncertain_and_says_what_would_decide() {
    let (code, out, _) = explain(&["--exit-code", "137"]);
    assert_eq!(code, 0);
    assert!(out.contains("UNCERTAIN"), "{out}");
    assert!(out.contains("OOMKilled"), "{out}");
    let (_, out, _) = explain(&["--exit-code", "143"]);
    assert!(out.contains("NOT MEMORY — sigterm"), "{out}");
}

#[test]
fn json_has_the_documented_fields() {
    let (code, out, _) = explain(&["--json", &corpus("kernel-memcg-java-kubepods")]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["schema"], "memfit.explain/1");
    assert_eq!(v["verdict"], "oom");
    assert_eq!(v["kind"], "container-memcg");
    assert_eq!(v["process"], "java");
    assert_eq!(v["pid"], 28438);
    for field in [
        "sub_reason",
        "confidence",
        "limit_bytes",
        "heap_at_death_mb",
        "evidence",
        "remedies",
    ] {
        assert!(v.get(field).is_some(), "{field}");
    }
    assert!(v["evidence"][0]["line"].as_u64().unwrap() > 0);
    assert!(!v["remedies"][0]["commands"].as_array().unwrap().is_empty());
}

#[test]
fn unreadable_input_exits_2_with_one_line() {
    let (code, _, err) = explain(&["/no/such/log"]);
    assert_eq!(code, 2);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("give a readable log file"), "{err}");
    let (code, _, err) = explain(&["/tmp"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn a_large_stream_is_explained_with_flat_memory() {
    if !cgroups_available("a_large_stream_is_explained_with_flat_memory") {
        return;
    }
    // 64 MiB of log through a pipe, measured by memfit run: explain's own peak stays small.
    let script = format!(
        "yes 'npm http fetch GET 200 https://registry.npmjs.org/react 34ms' | head -c 67108864 | {} explain - > /dev/null",
        env!("CARGO_BIN_EXE_memfit")
    );
    let run = run(&["--interval", "50ms"], &["sh", "-c", &script]);
    assert_eq!(run.status(), 0, "{}", run.stderr());
    let processes = run.report["processes"].as_array().unwrap();
    let explain = processes
        .iter()
        .find(|p| p["command"].as_str().unwrap().contains("explain -"))
        .expect("explain process");
    let peak = explain["peak_rss_bytes"].as_u64().unwrap();
    assert!(
        peak < 32 * MIB,
        "explain peaked at {peak} bytes on a 64 MiB stream"
    );
}

fn explain_bytes(log: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("build.log");
    std::fs::write(&path, log).unwrap();
    let (code, out, err) = explain(&[path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    out
}

/// The real pip traceback of pytorch/pytorch#25164, as `docker build` (BuildKit) prints a
/// RUN step's output: `#8 12.34 ` before every line.
#[test]
fn pips_memory_error_inside_a_buildkit_step_is_memory() {
    let log = std::fs::read_to_string(corpus("pip-memoryerror-torch")).unwrap();
    let mut buildkit: String = log
        .lines()
        .enumerate()
        .map(|(i, l)| format!("#8 {}.{:02} {l}\n", 40 + i / 10, i % 100))
        .collect();
    buildkit.push_str("#8 ERROR: process \"/bin/sh -c pip install torch==1.2.0\" did not complete successfully: exit code: 2\n");
    let out = explain_bytes(buildkit.as_bytes());
    assert!(out.contains("OUT OF MEMORY — python-memoryerror"), "{out}");
}

#[test]
fn a_memory_error_in_pytest_output_is_memory() {
    let out = explain_bytes(b"    def test_big():\n>       data = bytearray(10**12)\nE       MemoryError\n\ntests/test_big.py:3: MemoryError\n");
    assert!(out.contains("OUT OF MEMORY — python-memoryerror"), "{out}");
}

#[test]
fn a_utf16_log_with_a_bom_is_decoded() {
    let text = "Step 3/4 : RUN npm install\r\nKilled\r\n";
    for little_endian in [true, false] {
        let mut bytes = if little_endian {
            vec![0xff, 0xfe]
        } else {
            vec![0xfe, 0xff]
        };
        for unit in text.encode_utf16() {
            bytes.extend_from_slice(&if little_endian {
                unit.to_le_bytes()
            } else {
                unit.to_be_bytes()
            });
        }
        let out = explain_bytes(&bytes);
        assert!(out.contains("OUT OF MEMORY — build-step-killed"), "{out}");
        assert!(out.contains("(2 lines)"), "{out}");
        assert!(out.contains("     2  Killed"), "{out}");
    }
}

#[test]
fn a_utf8_bom_before_killed_is_skipped() {
    let out = explain_bytes(b"\xef\xbb\xbfKilled\n");
    assert!(out.contains("OUT OF MEMORY — build-step-killed"), "{out}");
}

#[test]
fn colour_codes_and_ci_timestamps_do_not_change_the_verdict() {
    let out = explain_bytes(b"2024-05-01T12:34:56.1234567Z \x1b[36;1mnpm run build\x1b[0m\n2024-05-01T12:34:57.0000000Z \x1b[31mKilled\x1b[0m\n");
    assert!(out.contains("OUT OF MEMORY — build-step-killed"), "{out}");
    assert!(
        out.contains("     2  Killed\n"),
        "the evidence is the line as written: {out}"
    );
}
