use super::Rule;
use crate::context::Context;
use crate::finding::{Finding, Severity};
use crate::js::JsFile;

pub const RULE: Rule = Rule {
    id: "unbounded-buffer",
    severity: Severity::Warning,
    summary: "A request body or stream collected in memory with no byte cap",
    doc: r#"## What it does
Finds
- a `'data'` handler, in a function that runs per request or per event, that keeps every
  chunk (`chunks.push(chunk)`, `body += chunk`) with no byte count, limit or `destroy()` in
  sight;
- `express.json()` / `express.urlencoded()` / `bodyParser.*()` with a `limit` of 10 MB or more
  (the default, 100kb, is fine: no finding when no limit is given);
- `fs.readFileSync` of a path taken from the request inside a request handler.

## Why is this bad?
One large or slow request, or many at once, holds its whole body in memory: a 512 MB
container is one upload away from the OOM killer. A `readFileSync` of a request-chosen file
loads whatever size it is, and blocks the event loop while it does.

## Example
```js
req.on("data", (chunk) => chunks.push(chunk));
app.use(express.json({ limit: "200mb" }));
```

## Use instead
```js
let size = 0;
req.on("data", (chunk) => {
  size += chunk.length;
  if (size > 1_000_000) return req.destroy();
  chunks.push(chunk);
});
app.use(express.json({ limit: "1mb" }));
```
"#,
    check,
};

/// Whether `object.method(…)` is a body parser that takes a `limit` option:
/// `express.json()`, `bodyParser.urlencoded()`.
pub fn is_body_parser(object: &str, method: &str) -> bool {
    matches!(object, "express" | "bodyParser" | "bodyparser")
        && matches!(method, "json" | "urlencoded" | "raw" | "text")
}

/// Parses a size like body-parser's `limit`: a number of bytes or `50mb`.
pub fn parse_limit(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let value: f64 = t[..split].parse().ok()?;
    let scale = match t[split..].trim() {
        "" | "b" => 1.0,
        "kb" | "k" => 1024.0,
        "mb" | "m" => 1024.0 * 1024.0,
        "gb" | "g" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((value * scale) as u64)
}

/// Whether a call reads a whole file at once: `readFileSync(…)`, `fs.readFileSync(…)`.
pub fn reads_whole_file(object: Option<&str>, function: &str) -> bool {
    function == "readFileSync" && object.is_none_or(|o| o == "fs")
}

/// Words of a path argument that say the request chose the file.
pub const REQUEST_DRIVEN_PATH: &[&str] = &["req.", "request.", "params", "query", "body"];

/// Streams, as written, whose 'data' events carry a request body or an upload.
pub const REQUEST_STREAMS: &[&str] = &[
    "req",
    "request",
    "req.raw",
    "request.raw",
    "ctx.req",
    "stream",
    "upload",
];

/// Words in a 'data' handler that count the bytes it keeps or stop the stream.
pub const BYTE_CAPS: &[&str] = &[
    "length",
    "byteLength",
    "size",
    "limit",
    "max",
    "destroy",
    "abort",
    "pause",
];

/// Text found in a file this rule can report on; the source prefilter parses no file for
/// this rule without one.
pub const TRIGGERS: &[&str] = &["'data'", "\"data\"", "limit:", "readFileSync"];

/// 10 MiB: a hundred times body-parser's default of 100kb.
const LARGE_LIMIT: u64 = 10 * 1024 * 1024;

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    for JsFile { file, facts, .. } in &ctx.js {
        for b in &facts.data_buffers {
            // A stream read per request or per event (a request body, an upload), or a
            // helper handed the request; a client reading a response once, or a test, is
            // not a service's memory risk.
            if !b.body_reader && facts.repeated(b.func).is_none() {
                continue;
            }
            out.push(
                Finding::new(RULE.id, RULE.severity, *file, b.span, format!("every 'data' chunk (`{}`) is kept with no byte cap: one large request holds all of it in memory", b.chunk))
                    .advise("count the bytes and destroy the stream past a limit, or stream the data onward instead of collecting it"),
            );
        }
        for limit in &facts.body_limits {
            if limit.bytes >= LARGE_LIMIT {
                out.push(
                    Finding::new(RULE.id, RULE.severity, *file, limit.span, format!("body limit {} ({} MiB): every request may hold that much in memory; the default (100kb) is safer", limit.text, limit.bytes / (1024 * 1024)))
                        .advise("keep the default, or the largest body the API really takes (uploads belong in a streaming handler)"),
                );
            }
        }
        for r in &facts.read_file_sync {
            if let Some(why) = facts.repeated(r.func) {
                out.push(
                    Finding::new(RULE.id, RULE.severity, *file, r.span, format!("readFileSync of a request-driven path ({}) in {why}: the whole file is loaded per request, and the event loop waits", r.path))
                        .advise("stream it (fs.createReadStream(path).pipe(res)) after checking the path"),
                );
            }
        }
    }
}
