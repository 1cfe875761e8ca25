//! A real Prometheus for the fleet tests: started on 127.0.0.1 with a free port and a
//! temporary storage directory, optionally fed recorded series through `promtool tsdb
//! create-blocks-from openmetrics`, killed and reaped when dropped (even on failure).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `prometheus` started by the test, killed and reaped when dropped.
pub struct Prometheus {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Starts prometheus on `openmetrics` (loaded as blocks first) and an optional scrape
/// config; `None` (said loudly) when prometheus/promtool are not installed.
pub fn start_prometheus(test: &str, openmetrics: Option<&str>, scrape: &str) -> Option<Prometheus> {
    start_prometheus_with(test, openmetrics, scrape, None)
}

/// As [`start_prometheus`], with a `--web.config.file` (TLS, basic auth): then the URL is
/// https:// and readiness is read from the server's log.
pub fn start_prometheus_with(
    test: &str,
    openmetrics: Option<&str>,
    scrape: &str,
    web_config: Option<&str>,
) -> Option<Prometheus> {
    if !have("prometheus") || !have("promtool") {
        eprintln!(
            "SKIPPING {test}: prometheus/promtool not installed (Debian package prometheus: apt-get install -y prometheus; .ci/run installs it)"
        );
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    if let Some(text) = openmetrics {
        let input = dir.path().join("series.om");
        std::fs::write(&input, text).unwrap();
        let out = Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics", "-q"])
            .arg(&input)
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{scrape}"
        ),
    )
    .unwrap();
    let port = free_port();
    let scheme = if web_config.is_some() {
        "https"
    } else {
        "http"
    };
    let url = format!("{scheme}://127.0.0.1:{port}");
    let mut command = Command::new("prometheus");
    if let Some(web) = web_config {
        let path = dir.path().join("web.yml");
        std::fs::write(&path, web).unwrap();
        command.arg(format!("--web.config.file={}", path.display()));
    }
    let child = command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg("--storage.tsdb.retention.time=3650d")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.path().join("prometheus.log")).unwrap(),
        ))
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(e) => {
            eprintln!("SKIPPING {test}: prometheus cannot be started: {e}");
            return None;
        }
    };
    let mut prom = Prometheus {
        child,
        url,
        _dir: dir,
    };
    // Ready when /-/ready says so; a bound so a broken install fails instead of hanging.
    let deadline = Instant::now() + Duration::from_secs(120);
    let log_path = prom._dir.path().join("prometheus.log");
    loop {
        let ready = if web_config.is_some() {
            std::fs::read_to_string(&log_path)
                .unwrap_or_default()
                .contains("Server is ready to receive web requests")
        } else {
            http_get(port, "/-/ready").starts_with("HTTP/1.1 200")
        };
        if ready {
            break;
        }
        if let Some(status) = prom.child.try_wait().unwrap() {
            let log = std::fs::read_to_string(prom._dir.path().join("prometheus.log"))
                .unwrap_or_default();
            eprintln!("SKIPPING {test}: prometheus exited before it was ready ({status}): {log}");
            return None;
        }
        assert!(Instant::now() < deadline, "prometheus never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(prom)
}

pub fn http_get(port: u16, path: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    out
}
