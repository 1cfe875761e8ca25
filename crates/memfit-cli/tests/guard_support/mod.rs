//! What the guard's integration tests share: a running guard with its stderr collected, and a
//! tiny HTTP client for its endpoints.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::memfit;

pub fn leak_js() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/guard/leak.js")
}

pub fn node_available() -> bool {
    Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A running guard, its stderr collected line by line.
pub struct Guarded {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
    json: PathBuf,
}

impl Guarded {
    /// `memfit run RUN_ARGS -- memfit guard GUARD_ARGS -- COMMAND` (or without memfit run when
    /// RUN_ARGS is None).
    pub fn start(
        run_args: Option<&[&str]>,
        guard_args: &[&str],
        command: &[&str],
        env: &[(&str, &str)],
    ) -> Guarded {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("run.json");
        let mut cmd = memfit();
        if let Some(run_args) = run_args {
            cmd.args(["run", "-q"])
                .args(run_args)
                .arg("--json")
                .arg(&json)
                .arg("--")
                .arg(env!("CARGO_BIN_EXE_memfit"));
        }
        cmd.arg("guard").args(guard_args).arg("--").args(command);
        // The test's own NODE_OPTIONS never leak in; the ones a test asks for do.
        cmd.env_remove("NODE_OPTIONS");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("  | {line}");
                sink.lock().unwrap().push(line);
            }
        });
        Guarded {
            child,
            lines,
            _dir: dir,
            json,
        }
    }

    pub fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn count(&self, needle: &str) -> usize {
        self.log().iter().filter(|l| l.contains(needle)).count()
    }

    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_for_count(needle, 1, timeout)
    }

    /// Waits up to `timeout` for `n` log lines containing `needle`.
    pub fn wait_for_count(&self, needle: &str, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.count(needle) >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The first log line containing `needle`, waiting up to `timeout` for it.
    pub fn line_with(&self, needle: &str, timeout: Duration) -> String {
        assert!(self.wait_for(needle, timeout), "{needle}: {:?}", self.log());
        self.log().into_iter().find(|l| l.contains(needle)).unwrap()
    }

    /// The port the guard listens on, from its log.
    pub fn port(&self) -> u16 {
        let line = self.line_with("serving /health/memory", Duration::from_secs(10));
        line.rsplit(':').next().unwrap().trim().parse().unwrap()
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on a child of the test.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    pub fn finish(mut self, timeout: Duration) -> (i32, Vec<String>, Option<serde_json::Value>) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the guard did not end within {timeout:?}: {:?}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(50));
        let report = std::fs::read_to_string(&self.json)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        (status.code().unwrap_or(-1), self.log(), report)
    }
}

/// A test that panics before `finish` must not leave its guard (and the guard's child) running:
/// SIGTERM, as `docker stop` does, and SIGKILL when it does not end.
impl Drop for Guarded {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn http(port: u16, request: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    out
}

pub fn get(port: u16, path: &str) -> (u16, String) {
    let response = http(port, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

pub fn metric(port: u16, name: &str) -> u64 {
    let (_, body) = get(port, "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("{name} not in {body}")) as u64
}

/// The action token the tests give the guard (MEMFIT_GUARD_ACTION_TOKEN).
pub const TEST_TOKEN: &str = "memfit-test-token-0123456789abcdef";

/// `POST /actions/restart` with an `Authorization` header when given; the whole response.
pub fn post_restart(port: u16, authorization: Option<&str>) -> String {
    let header = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    http(
        port,
        &format!("POST /actions/restart HTTP/1.1\r\nHost: x\r\n{header}Content-Length: 0\r\n\r\n"),
    )
}
