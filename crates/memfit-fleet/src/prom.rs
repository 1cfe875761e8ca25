//! A small client of Prometheus' HTTP API (`GET /api/v1/query`, instant queries), built to
//! distrust the server: the body is read up to a bound, the JSON is walked field by field and
//! anything odd (a missing field, a non-numeric value, NaN, a label that is not a string) is
//! skipped instead of trusted, and error texts are cut short and stripped of control
//! characters before they reach a terminal.
//! API: <https://prometheus.io/docs/prometheus/latest/querying/api/#instant-queries>.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The most a response may hold: 64 MiB, about 200,000 series (a 1,000-workload cluster's
/// largest answer is under 1 MiB). serde_json's tree of it takes several times that.
const MAX_BODY: u64 = 64 * 1024 * 1024;

/// How long one query may take, connection included.
const QUERY_TIMEOUT: Duration = Duration::from_secs(120);

/// At most this many series per answer are kept (a hostile or misconfigured server cannot
/// make memfit hold millions).
pub const MAX_SERIES: usize = 200_000;

/// One series of an instant vector: its labels and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map(String::as_str).unwrap_or("")
    }
}

/// What went wrong talking to Prometheus; every variant reads as one line.
#[derive(Debug)]
pub enum PromError {
    Url(String),
    Unreachable(String),
    Answer(String),
}

impl std::fmt::Display for PromError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PromError::Url(m) | PromError::Unreachable(m) | PromError::Answer(m) => f.write_str(m),
        }
    }
}

/// How to reach a Prometheus behind TLS or authentication.
#[derive(Clone, Default)]
pub struct Access {
    /// PEM certificates to trust instead of Mozilla's roots (a cluster's private CA).
    pub ca_pem: Option<Vec<u8>>,
    pub auth: Option<Auth>,
}

/// Credentials sent with every query (never printed, never sent on to a redirect: memfit
/// follows none).
#[derive(Clone)]
pub enum Auth {
    /// `Authorization: Bearer …` (a service-account token, an API key).
    Bearer(String),
    /// `Authorization: Basic …` (Prometheus' own `basic_auth_users`, most reverse proxies).
    Basic { user: String, password: String },
}

/// Secrets stay out of debug output.
impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = match self.auth {
            None => "none",
            Some(Auth::Bearer(_)) => "bearer (redacted)",
            Some(Auth::Basic { .. }) => "basic (redacted)",
        };
        f.debug_struct("Access")
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .field("auth", &auth)
            .finish()
    }
}

impl Auth {
    fn header(&self) -> String {
        match self {
            Auth::Bearer(token) => format!("Bearer {token}"),
            Auth::Basic { user, password } => {
                use base64::Engine as _;
                let pair = format!("{user}:{password}");
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )
            }
        }
    }
}

/// A host that is this machine: credentials may go there over plain http (a
/// `kubectl port-forward`), nowhere else.
fn is_loopback(host: &str) -> bool {
    let name = host
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(name, _)| name);
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A Prometheus server and the queries made to it so far.
pub struct Client {
    base: String,
    agent: ureq::Agent,
    authorization: Option<String>,
    /// Queries made.
    pub queries: u32,
    /// Time spent waiting for them.
    pub elapsed: Duration,
}

/// Text from the server made fit for one line on a terminal: control characters dropped,
/// at most 200 characters.
pub fn clean(text: &str) -> String {
    let mut out: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    if text.chars().filter(|c| !c.is_control()).count() > 200 {
        out.push('…');
    }
    out
}

impl Client {
    /// Checks the URL: http:// or https://, a host, no query, fragment or credentials in it
    /// (they would show in process lists and output: give them through [`Access`]).
    /// Credentials over plain http only to this machine.
    pub fn new(url: &str, access: &Access) -> Result<Client, PromError> {
        let usage = |why: &str| {
            PromError::Url(format!(
                "--prometheus {}: {why}; give the server's base URL, e.g. --prometheus http://127.0.0.1:9090 (kubectl -n monitoring port-forward svc/prometheus 9090)",
                clean(url)
            ))
        };
        let (rest, tls) = if let Some(rest) = url.strip_prefix("http://") {
            (rest, false)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (rest, true)
        } else {
            return Err(usage("not an http:// or https:// URL"));
        };
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) || url.contains(['?', '#']) {
            return Err(usage("spaces, control characters, ? or # in the URL"));
        }
        let host = rest.split('/').next().unwrap_or("");
        if host.is_empty() || host.contains('@') {
            return Err(usage(
                "no host (or credentials in it: give them in MEMFIT_PROMETHEUS_USER/MEMFIT_PROMETHEUS_PASSWORD or MEMFIT_PROMETHEUS_TOKEN)",
            ));
        }
        if access.auth.is_some() && !tls && !is_loopback(host) {
            return Err(usage(
                "credentials would cross the network unencrypted; use https:// (with --prometheus-ca for a private CA) or a kubectl port-forward to 127.0.0.1",
            ));
        }
        let roots = match &access.ca_pem {
            None => ureq::tls::RootCerts::WebPki,
            Some(pem) => {
                let mut certs = Vec::new();
                for item in ureq::tls::parse_pem(pem) {
                    match item {
                        Ok(ureq::tls::PemItem::Certificate(cert)) => certs.push(cert),
                        Ok(_) => {}
                        Err(e) => {
                            return Err(PromError::Url(format!(
                                "--prometheus-ca: not a PEM certificate file ({}); give the CA certificate(s) in PEM, e.g. --prometheus-ca ca.crt",
                                clean(&e.to_string())
                            )))
                        }
                    }
                }
                if certs.is_empty() {
                    return Err(PromError::Url(
                        "--prometheus-ca: no certificate in the file; give the CA certificate(s) in PEM, e.g. --prometheus-ca ca.crt".into(),
                    ));
                }
                ureq::tls::RootCerts::new_with_certs(&certs)
            }
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build())
            .timeout_global(Some(QUERY_TIMEOUT))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("memfit/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Client {
            base: url.trim_end_matches('/').to_string(),
            agent,
            authorization: access.auth.as_ref().map(Auth::header),
            queries: 0,
            elapsed: Duration::ZERO,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// An instant query at `time` (Unix seconds; the server's now when `None`): the series of
    /// the resulting vector.
    pub fn query(&mut self, promql: &str, time: Option<f64>) -> Result<Vec<Sample>, PromError> {
        let started = Instant::now();
        let result = self.query_inner(promql, time);
        self.queries += 1;
        self.elapsed += started.elapsed();
        result
    }

    fn query_inner(&mut self, promql: &str, time: Option<f64>) -> Result<Vec<Sample>, PromError> {
        let url = format!("{}/api/v1/query", self.base);
        let mut request = self.agent.get(&url).query("query", promql);
        if let Some(t) = time {
            request = request.query("time", format!("{t:.3}"));
        }
        if let Some(value) = &self.authorization {
            request = request.header("Authorization", value);
        }
        let mut response = request.call().map_err(|e| {
            PromError::Unreachable(format!(
                "cannot reach Prometheus at {}: {}; check --prometheus (e.g. http://127.0.0.1:9090) and that the server is up",
                clean(&self.base),
                clean(&e.to_string())
            ))
        })?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(|e| {
                PromError::Answer(format!(
                    "Prometheus at {} sent an unreadable answer (HTTP {status}): {}",
                    clean(&self.base),
                    clean(&e.to_string())
                ))
            })?;
        parse_answer(&body, status, &self.base)
    }
}

/// The series of an instant-query answer; the error Prometheus gave, or what is wrong with
/// the answer, as one line.
pub fn parse_answer(body: &str, status: u16, base: &str) -> Result<Vec<Sample>, PromError> {
    let not_prometheus = || {
        PromError::Answer(format!(
            "{} did not answer as Prometheus' HTTP API does (HTTP {status}); is --prometheus the server's base URL?",
            clean(base)
        ))
    };
    if status == 401 || status == 403 {
        return Err(PromError::Answer(format!(
            "{} refused memfit's credentials (HTTP {status}); set MEMFIT_PROMETHEUS_TOKEN, or MEMFIT_PROMETHEUS_USER and MEMFIT_PROMETHEUS_PASSWORD, or --prometheus-token-file",
            clean(base)
        )));
    }
    let value: Value = serde_json::from_str(body).map_err(|_| not_prometheus())?;
    match value.get("status").and_then(Value::as_str) {
        Some("success") => {}
        Some("error") => {
            let kind = value.get("errorType").and_then(Value::as_str).unwrap_or("");
            let error = value.get("error").and_then(Value::as_str).unwrap_or("");
            return Err(PromError::Answer(format!(
                "Prometheus refused the query ({}: {}); check --selector and --range",
                clean(kind),
                clean(error)
            )));
        }
        _ => return Err(not_prometheus()),
    }
    let data = value.get("data").ok_or_else(not_prometheus)?;
    if data.get("resultType").and_then(Value::as_str) != Some("vector") {
        return Err(not_prometheus());
    }
    let result = data
        .get("result")
        .and_then(Value::as_array)
        .ok_or_else(not_prometheus)?;
    let mut samples = Vec::new();
    for series in result.iter().take(MAX_SERIES) {
        let Some(metric) = series.get("metric").and_then(Value::as_object) else {
            continue;
        };
        // [ <unix time>, "<value>" ]
        let Some(value) = series
            .get("value")
            .and_then(Value::as_array)
            .and_then(|pair| pair.get(1))
            .and_then(Value::as_str)
            .and_then(|text| text.parse::<f64>().ok())
            .filter(|v| v.is_finite())
        else {
            continue;
        };
        let labels = metric
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect();
        samples.push(Sample { labels, value });
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_answers_are_errors_or_skipped_never_panics() {
        for body in [
            "",
            "null",
            "[]",
            "{\"status\":\"success\"}",
            "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[]}}",
            "{\"status\":7}",
        ] {
            assert!(parse_answer(body, 200, "http://x").is_err(), "{body}");
        }
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"pod":"a"},"value":[1,"12"]},
            {"metric":{"pod":"b"},"value":[1,"NaN"]},
            {"metric":{"pod":"c"},"value":[1,12]},
            {"metric":{"pod":5},"value":[1,"3"]},
            {"metric":"x","value":[1,"3"]},
            {"value":[1,"3"]}]}}"#;
        let samples = parse_answer(body, 200, "http://x").unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].label("pod"), "a");
        assert_eq!(samples[0].value, 12.0);
        assert_eq!(samples[1].label("pod"), "");
        let error = r#"{"status":"error","errorType":"bad_data","error":"parse error\u001b[31m"}"#;
        let e = parse_answer(error, 400, "http://x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad_data: parse error[31m"), "{e}");
        assert!(!e.contains('\u{1b}'));
    }

    #[test]
    fn urls_are_checked() {
        for bad in [
            "",
            "localhost:9090",
            "ftp://p:9090",
            "http://",
            "http://u:p@host",
            "http://h/?q",
            "http://h\n",
        ] {
            assert!(Client::new(bad, &Access::default()).is_err(), "{bad}");
        }
        assert_eq!(
            Client::new("http://127.0.0.1:9090/", &Access::default())
                .unwrap()
                .base(),
            "http://127.0.0.1:9090"
        );
        assert!(Client::new("https://p:9090", &Access::default()).is_ok());
    }

    #[test]
    fn credentials_go_over_plain_http_only_to_this_machine() {
        let access = Access {
            ca_pem: None,
            auth: Some(Auth::Bearer("t0ken".into())),
        };
        for local in [
            "http://127.0.0.1:9090",
            "http://localhost:9090",
            "http://[::1]:9090",
        ] {
            assert!(Client::new(local, &access).is_ok(), "{local}");
        }
        for remote in ["http://10.0.0.7:9090", "http://prometheus.monitoring:9090"] {
            let e = Client::new(remote, &access).err().unwrap().to_string();
            assert!(e.contains("unencrypted"), "{e}");
            assert!(!e.contains("t0ken"), "{e}");
        }
        assert!(Client::new("https://prometheus.monitoring", &access).is_ok());
    }

    #[test]
    fn basic_credentials_are_encoded_as_rfc_7617_says() {
        let auth = Auth::Basic {
            user: "Aladdin".into(),
            password: "open sesame".into(),
        };
        // RFC 7617 section 2's example.
        assert_eq!(auth.header(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused_in_one_line() {
        let access = Access {
            ca_pem: Some(b"not a certificate".to_vec()),
            auth: None,
        };
        let e = Client::new("https://p:9090", &access)
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("--prometheus-ca:"), "{e}");
        assert!(!e.contains('\n'));
    }
}
