//! `memfit plan --prometheus https://…` against a real Prometheus behind its own TLS and basic
//! auth (`--web.config.file`, https://prometheus.io/docs/prometheus/latest/configuration/https/):
//! a private CA trusted with --prometheus-ca, credentials from the environment, and one-line
//! errors that never show a secret.

mod prom;

use std::path::Path;
use std::process::{Command, Output};

/// bcrypt (cost 10) of "fleet-secret", as Prometheus' basic_auth_users wants it.
const HASH: &str = "$2b$10$VeJxxxnQz2ftBf970bshx.6kYaRjWRzJxVKM2gNgVFs0qUXHERJPK";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl (Debian package openssl) runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=memfit test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ],
    );
}

fn plan(url: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_memfit"));
    command
        .args(["plan", "--prometheus", url, "--format", "json"])
        .args(extra)
        .env_remove("MEMFIT_PROMETHEUS_TOKEN")
        .env_remove("MEMFIT_PROMETHEUS_USER")
        .env_remove("MEMFIT_PROMETHEUS_PASSWORD");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

fn one_line_error(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        !stderr.contains("fleet-secret") && !stderr.contains("wrong-pass"),
        "{stderr}"
    );
    stderr
}

#[test]
fn https_with_a_private_ca_and_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let web = format!(
        "tls_server_config:\n  cert_file: {0}/server.crt\n  key_file: {0}/server.key\nbasic_auth_users:\n  fleet: '{HASH}'\n",
        dir.path().display()
    );
    let Some(prometheus) = prom::start_prometheus_with(
        "https_with_a_private_ca_and_basic_auth",
        None,
        "",
        Some(&web),
    ) else {
        return;
    };
    let ca = dir.path().join("ca.crt");
    let ca = ca.to_str().unwrap();
    let user = [
        ("MEMFIT_PROMETHEUS_USER", "fleet"),
        ("MEMFIT_PROMETHEUS_PASSWORD", "fleet-secret"),
    ];

    let ok = plan(&prometheus.url, &["--prometheus-ca", ca], &user);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(report["schema"], "memfit.fleet/1");
    assert!(report["queries"]["count"].as_u64().unwrap() > 0);

    // Mozilla's roots do not know the private CA.
    let e = one_line_error(&plan(&prometheus.url, &[], &user));
    assert!(
        e.to_lowercase().contains("certificate") || e.contains("UnknownIssuer"),
        "{e}"
    );

    let wrong = [
        ("MEMFIT_PROMETHEUS_USER", "fleet"),
        ("MEMFIT_PROMETHEUS_PASSWORD", "wrong-pass"),
    ];
    let e = one_line_error(&plan(&prometheus.url, &["--prometheus-ca", ca], &wrong));
    assert!(e.contains("HTTP 401"), "{e}");
    let e = one_line_error(&plan(&prometheus.url, &["--prometheus-ca", ca], &[]));
    assert!(e.contains("HTTP 401"), "{e}");

    let e = one_line_error(&plan(
        &prometheus.url,
        &["--prometheus-ca", ca],
        &[("MEMFIT_PROMETHEUS_USER", "fleet")],
    ));
    assert!(e.contains("MEMFIT_PROMETHEUS_PASSWORD"), "{e}");
}

#[test]
fn credentials_never_cross_the_network_in_clear_text() {
    // Refused before any connection: nothing listens at 10.255.255.1 here.
    let out = plan(
        "http://10.255.255.1:9090",
        &[],
        &[("MEMFIT_PROMETHEUS_TOKEN", "fleet-secret")],
    );
    let e = one_line_error(&out);
    assert!(e.contains("unencrypted"), "{e}");
    let token = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token.path(), "fleet-secret\n").unwrap();
    let e = one_line_error(&plan(
        "http://prometheus.monitoring:9090",
        &["--prometheus-token-file", token.path().to_str().unwrap()],
        &[],
    ));
    assert!(e.contains("unencrypted"), "{e}");
}
