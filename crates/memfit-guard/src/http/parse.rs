//! The request parser: a pure function of the bytes received so far, so that a fuzzer can call
//! it and the server can call it after every read. It reads the request line and the header
//! fields of HTTP/1.0 and HTTP/1.1 (RFC 9112 §2–5) and no body: no endpoint takes one.
//!
//! Bounds: the head (request line and fields) is at most [`MAX_HEAD`] bytes and
//! [`MAX_HEADERS`] fields. Bare LF line endings are accepted, as RFC 9112 §2.2 allows; what the
//! RFC says a server must reject — whitespace before a field's colon (§5.1), obsolete line
//! folding (§5.2), control characters — is rejected.

/// The longest request head the guard reads (nginx's default `client_header_buffer_size` is
/// 1 KiB; a probe or a scraper sends a few hundred bytes).
pub const MAX_HEAD: usize = 8 * 1024;

/// The most header fields a request may carry.
pub const MAX_HEADERS: usize = 32;

/// A request head; every field borrows from the bytes it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: &'a str,
    pub headers: Vec<(&'a str, &'a str)>,
}

impl Request<'_> {
    /// The values of a header field, by case-insensitive name.
    pub fn header_values<'r>(&'r self, name: &'r str) -> impl Iterator<Item = &'r str> + 'r {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// Why the bytes so far are not a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// The head has not ended yet: read more.
    Incomplete,
    /// The head is longer than [`MAX_HEAD`] or has more than [`MAX_HEADERS`] fields (431).
    TooLarge,
    /// Not an HTTP/1.x request head (400); the reason is for the response body.
    Malformed(&'static str),
}

/// Parses the head of a request from the bytes received so far.
pub fn parse_request(bytes: &[u8]) -> Result<Request<'_>, ParseError> {
    let Some(end) = head_end(bytes) else {
        return Err(if bytes.len() >= MAX_HEAD {
            ParseError::TooLarge
        } else {
            ParseError::Incomplete
        });
    };
    if end > MAX_HEAD {
        return Err(ParseError::TooLarge);
    }
    let head = std::str::from_utf8(&bytes[..end])
        .map_err(|_| ParseError::Malformed("the request head is not ASCII"))?;
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::Malformed(
            "the request line is not METHOD PATH HTTP/1.1",
        ));
    };
    if method.is_empty() || !method.bytes().all(is_token) {
        return Err(ParseError::Malformed("the method is not a token"));
    }
    if !target.starts_with('/') || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ParseError::Malformed("the path must start with /"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(ParseError::Malformed("HTTP/1.x only"));
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            // The blank line that ends the head (and the empty piece after it).
            continue;
        }
        if headers.len() == MAX_HEADERS {
            return Err(ParseError::TooLarge);
        }
        if line.starts_with([' ', '\t']) {
            return Err(ParseError::Malformed("obsolete line folding"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ParseError::Malformed("a header field without a colon"));
        };
        if name.is_empty() || !name.bytes().all(is_token) {
            return Err(ParseError::Malformed("a header field name is not a token"));
        }
        let value = value.trim_matches([' ', '\t']);
        if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(ParseError::Malformed(
                "a header field value holds a control character",
            ));
        }
        headers.push((name, value));
    }
    Ok(Request {
        method,
        path,
        version,
        headers,
    })
}

/// The length of the head including the blank line that ends it, if it has ended.
fn head_end(bytes: &[u8]) -> Option<usize> {
    // The first LF that follows another LF, with an optional CR between.
    let mut previous_lf = false;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\n' if previous_lf => return Some(i + 1),
            b'\n' => previous_lf = true,
            b'\r' => {}
            _ => previous_lf = false,
        }
    }
    None
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_request_parses() {
        let r = parse_request(
            b"GET /health/memory?verbose=1 HTTP/1.1\r\nHost: x\r\nAuthorization:  Bearer t \r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/health/memory");
        assert_eq!(r.version, "HTTP/1.1");
        assert_eq!(
            r.header_values("authorization").collect::<Vec<_>>(),
            ["Bearer t"]
        );
        // Bare LF, and no fields at all.
        assert_eq!(
            parse_request(b"HEAD /metrics HTTP/1.0\n\n").unwrap().path,
            "/metrics"
        );
    }

    #[test]
    fn every_prefix_of_a_request_is_incomplete() {
        let full = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";
        for n in 0..full.len() {
            assert_eq!(
                parse_request(&full[..n]),
                Err(ParseError::Incomplete),
                "{n}"
            );
        }
        assert!(parse_request(full).is_ok());
    }

    #[test]
    fn heads_beyond_the_bounds_are_too_large() {
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(parse_request(long.as_bytes()), Err(ParseError::TooLarge));
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "X-A: b\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(parse_request(many.as_bytes()), Err(ParseError::TooLarge));
        let just = format!("GET / HTTP/1.1\r\n{}\r\n", "X-A: b\r\n".repeat(MAX_HEADERS));
        assert!(parse_request(just.as_bytes()).is_ok());
    }

    #[test]
    fn what_rfc_9112_says_to_reject_is_malformed() {
        for bad in [
            &b"\x00\xff\xfe garbage \r\n\r\n"[..],
            b"GET /health/memory HTTP/9.9\r\n\r\n",
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.1 extra\r\n\r\n",
            b"G(T /metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nX: a\x01b\r\n\r\n",
            b"GET /m\xc3\xa9trics HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(parse_request(bad), Err(ParseError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small xorshift over bytes that matter to the parser.
        let alphabet = b"GET /:\r\n \tHTTP/1.1\x00\xffaz";
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            let mut input = Vec::new();
            let len = (state % 64) as usize;
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                input.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            let _ = parse_request(&input);
        }
    }
}
