//! What each request gets: the endpoints, the bearer token of `POST /actions/restart` and its
//! rate limit. Responses are whole byte strings, `Connection: close`.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;

use super::parse::{ParseError, Request};
use super::{health_json, prometheus_text, Shared};
use crate::options::Secret;

/// `POST /actions/restart`'s settings (`--allow-actions`).
pub struct Actions {
    pub token: Secret,
    /// At most one accepted restart per this period.
    pub interval: Duration,
    pub last_accepted: Option<Instant>,
}

/// A response, ready to be written.
pub struct Response {
    pub code: u16,
    reason: &'static str,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    body: String,
    /// HEAD: the head of the GET response, with its Content-Length, and no body.
    head_only: bool,
}

impl Response {
    pub fn text(code: u16, reason: &'static str, body: impl Into<String>) -> Response {
        Response {
            code,
            reason,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: body.into(),
            head_only: false,
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    pub fn into_bytes(self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n",
            self.code,
            self.reason,
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if !self.head_only {
            bytes.extend_from_slice(self.body.as_bytes());
        }
        bytes
    }
}

/// The response to bytes that are not a request.
pub fn rejected(error: ParseError) -> Response {
    match error {
        ParseError::TooLarge => Response::text(
            431,
            "Request Header Fields Too Large",
            "request too large\n",
        ),
        ParseError::Malformed(why) => {
            Response::text(400, "Bad Request", format!("bad request: {why}\n"))
        }
        // The server only answers a request that has ended; this is a fallback.
        ParseError::Incomplete => Response::text(400, "Bad Request", "incomplete request\n"),
    }
}

/// The response to a request.
pub fn respond(request: &Request<'_>, shared: &Shared, now: Instant) -> Response {
    let head_only = request.method == "HEAD";
    let mut response = match (request.method, request.path) {
        ("GET" | "HEAD", "/health/memory") => {
            let status = shared.status.lock().unwrap_or_else(|e| e.into_inner());
            Response {
                content_type: "application/json",
                ..Response::text(200, "OK", health_json(&status, shared.health_details))
            }
        }
        ("GET" | "HEAD", "/metrics") => {
            let mut body = String::new();
            if encode(&mut body, &shared.registry).is_err() {
                return Response::text(500, "Internal Server Error", "encoding failed\n");
            }
            Response {
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                ..Response::text(200, "OK", prometheus_text(&body))
            }
        }
        ("POST", "/actions/restart") => restart(request, shared, now),
        (_, "/health/memory" | "/metrics") => {
            Response::text(405, "Method Not Allowed", "method not allowed\n")
                .with_header("Allow", "GET, HEAD")
        }
        (_, "/actions/restart") => {
            Response::text(405, "Method Not Allowed", "method not allowed\n")
                .with_header("Allow", "POST")
        }
        _ => Response::text(
            404,
            "Not Found",
            "endpoints: GET /health/memory, GET /metrics, POST /actions/restart\n",
        ),
    };
    response.head_only = head_only;
    response
}

fn restart(request: &Request<'_>, shared: &Shared, now: Instant) -> Response {
    let mut guard = shared.actions.lock().unwrap_or_else(|e| e.into_inner());
    let Some(actions) = guard.as_mut() else {
        return Response::text(
            403,
            "Forbidden",
            "actions over HTTP are off; start the guard with --allow-actions\n",
        );
    };
    let mut authorizations = request.header_values("authorization");
    let presented = match (authorizations.next(), authorizations.next()) {
        (Some(value), None) => bearer(value),
        _ => None,
    };
    if !presented.is_some_and(|p| same_secret(p.as_bytes(), actions.token.as_bytes())) {
        return Response::text(
            401,
            "Unauthorized",
            "send the guard's action token as `Authorization: Bearer TOKEN`\n",
        )
        .with_header("WWW-Authenticate", "Bearer realm=\"memfit-guard\"");
    }
    if let Some(last) = actions.last_accepted {
        let next = last + actions.interval;
        if now < next {
            // Whole seconds, rounded up: a client that waits that long is accepted.
            let wait = next.duration_since(now);
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Response::text(
                429,
                "Too Many Requests",
                format!(
                    "at most one restart per {:?}; retry in {seconds} s\n",
                    actions.interval
                ),
            )
            .with_header("Retry-After", seconds.max(1).to_string());
        }
    }
    actions.last_accepted = Some(now);
    shared.restart_requested.store(true, Ordering::SeqCst);
    Response::text(202, "Accepted", "restart requested\n")
}

/// The token of `Bearer TOKEN` (the scheme is case-insensitive, RFC 9110 §11.1).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_matches(' '))
}

/// Compares a presented token with the secret in time that depends only on their lengths: every
/// byte of the secret is compared whatever the first difference, so how long a refusal takes
/// says nothing about how much of a guess was right.
fn same_secret(presented: &[u8], secret: &[u8]) -> bool {
    let mut difference = presented.len() ^ secret.len();
    for (i, &s) in secret.iter().enumerate() {
        let p = presented.get(i).copied().unwrap_or(!s);
        difference |= usize::from(p ^ s);
    }
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcdeX", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcde", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcdef0", b"0123456789abcdef"));
        assert!(!same_secret(b"", b"0123456789abcdef"));
    }

    #[test]
    fn bearer_takes_the_scheme_in_any_case() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("abc"), None);
    }
}
