//! The guard's log on stderr: `memfit guard: MESSAGE` lines, or with `--log-format json` one
//! JSON object a line (`ts`, `level`, `event`, `msg` and the event's fields) for log
//! collectors. Either way, text that comes from the child (command lines, hook commands) is
//! escaped: a control character never ends a line or forges another.

use std::io::Write;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::options::LogFormat;

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Set once, when the options are known; text until then.
pub fn set_format(format: LogFormat) {
    let _ = FORMAT.set(format);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// A field of an event.
#[derive(Debug, Clone, Copy)]
pub enum Field<'a> {
    Str(&'a str),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// One event: a line of text, or an object.
pub fn event(level: Level, event: &str, msg: &str, fields: &[(&str, Field)]) {
    let line = match FORMAT.get().copied().unwrap_or_default() {
        LogFormat::Text => format!("memfit guard: {}\n", escape_text(msg)),
        LogFormat::Json => json_line(SystemTime::now(), level, event, msg, fields),
    };
    // One write a line: the HTTP thread's lines never interleave with these.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Control characters as Rust writes them (`\n`, `\u{1b}`); everything else as it is.
pub fn escape_text(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn json_line(
    now: SystemTime,
    level: Level,
    event: &str,
    msg: &str,
    fields: &[(&str, Field)],
) -> String {
    let mut out = String::with_capacity(128 + msg.len());
    out.push_str("{\"ts\":\"");
    out.push_str(&rfc3339(now));
    out.push_str("\",\"level\":\"");
    out.push_str(level.as_str());
    out.push_str("\",\"event\":");
    json_string(&mut out, event);
    out.push_str(",\"msg\":");
    json_string(&mut out, msg);
    for (key, value) in fields {
        out.push(',');
        json_string(&mut out, key);
        out.push(':');
        match value {
            Field::Str(s) => json_string(&mut out, s),
            Field::U64(n) => out.push_str(&n.to_string()),
            Field::I64(n) => out.push_str(&n.to_string()),
            // JSON has no infinity: a limit never reached is null.
            Field::F64(x) if x.is_finite() => out.push_str(&x.to_string()),
            Field::F64(_) => out.push_str("null"),
        }
    }
    out.push_str("}\n");
    out
}

/// A JSON string (RFC 8259 §7), with every control character (C0, DEL, C1) escaped.
fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            // Line and paragraph separators end lines in some readers.
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `2026-12-01T19:40:00.123Z`.
fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86400, secs % 86400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's `civil_from_days`
/// (https://howardhinnant.github.io/date_algorithms.html#civil_from_days).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = UNIX_EPOCH + Duration::from_millis(1_796_154_000_123);
        assert_eq!(rfc3339(t), "2026-12-01T19:40:00.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // A leap day.
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn a_json_line_is_one_line_whatever_the_text() {
        let msg = "a\nb\r\u{1b}[31m\"q\"\\ \u{7f}\u{85}\u{2028}é";
        let line = json_line(
            UNIX_EPOCH,
            Level::Warn,
            "warn",
            msg,
            &[
                ("usage_bytes", Field::U64(5)),
                ("eta", Field::F64(f64::INFINITY)),
                ("cmd", Field::Str(msg)),
            ],
        );
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.ends_with("}\n"));
        assert!(
            !line.contains(['\r', '\u{1b}', '\u{7f}', '\u{85}', '\u{2028}']),
            "{line:?}"
        );
        assert!(
            line.contains(r#""msg":"a\nb\r\u001b[31m\"q\"\\ \u007f\u0085\u2028é""#),
            "{line}"
        );
        assert!(line.contains(r#""usage_bytes":5,"eta":null"#), "{line}");
    }

    #[test]
    fn text_lines_escape_control_characters_only() {
        assert_eq!(escape_text("ran `x` é"), "ran `x` é");
        assert_eq!(escape_text("a\nb\u{1b}"), "a\\nb\\u{1b}");
    }
}
