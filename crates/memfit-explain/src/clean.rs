//! What a CI service or a terminal adds to a log line, removed before matching: terminal
//! escape sequences (colours, `ESC[K`, window titles) and the timestamp prefixes of GitHub
//! Actions, GitLab (with its `00O ` stream marker and `section_start:` lines), Jenkins'
//! Timestamper, `kubectl logs --timestamps` and `docker logs --timestamps`. Lines are kept
//! (every `\n` stays), so line numbers do not move; a chunk with nothing to remove is not
//! copied.

use std::sync::LazyLock;

use memchr::{memchr, memchr_iter};
use regex::bytes::Regex;

const ESC: u8 = 0x1b;
const BEL: u8 = 0x07;

/// GitLab's collapsible sections: `section_start:1714566896:step_script[collapsed=true]\r`.
static SECTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^section_(?:start|end):\d+:[^\r\n\x1b]*\r?").expect("the section pattern compiles")
});

/// Returns `chunk` without decorations: borrowed when there is none, else written to `out`.
pub(crate) fn clean<'a>(chunk: &'a [u8], out: &'a mut Vec<u8>) -> &'a [u8] {
    let line_starts = std::iter::once(0)
        .chain(memchr_iter(b'\n', chunk).map(|i| i + 1))
        .filter(|&start| start < chunk.len());
    if memchr(ESC, chunk).is_none() {
        // The common case: prefixes only. Copy the spans between them in bulk.
        let mut copied = None;
        for start in line_starts {
            let n = decoration_len(&chunk[start..]);
            if n > 0 {
                let from = copied.unwrap_or_else(|| {
                    out.clear();
                    0
                });
                out.extend_from_slice(&chunk[from..start]);
                copied = Some(start + n);
            }
        }
        return match copied {
            None => chunk,
            Some(from) => {
                out.extend_from_slice(&chunk[from..]);
                out
            }
        };
    }
    out.clear();
    let mut start = 0;
    while start < chunk.len() {
        let end = memchr(b'\n', &chunk[start..]).map_or(chunk.len(), |i| start + i + 1);
        clean_line(&chunk[start..end], out);
        start = end;
    }
    out
}

/// How many bytes at the start of `line` a CI service added: a timestamp, GitLab's stream
/// marker, a GitLab section line (possibly after another timestamp).
fn decoration_len(line: &[u8]) -> usize {
    let mut at = 0;
    for _ in 0..2 {
        at += timestamp_len(&line[at..]);
        if line[at..].starts_with(b"section_") {
            if let Some(m) = SECTION.find(&line[at..]) {
                at += m.end();
            }
        }
    }
    at
}

/// The length of a timestamp prefix, 0 when there is none: `2024-05-01T12:34:56.1234567Z `
/// (GitHub Actions, Docker, kubectl with `Z` or an offset such as `+02:00`), `[2024-05-01T
/// 12:34:56.123Z] ` (Jenkins' Timestamper), then GitLab's `00O `, `00E+` stream marker. Read
/// by hand, not by a regex: it is tried at the start of every line.
fn timestamp_len(line: &[u8]) -> usize {
    let digits = |at: usize, n: usize| {
        line.get(at..at + n)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    let byte = |at: usize| line.get(at).copied();
    let mut at = usize::from(byte(0) == Some(b'['));
    let date_time = digits(at, 4)
        && byte(at + 4) == Some(b'-')
        && digits(at + 5, 2)
        && byte(at + 7) == Some(b'-')
        && digits(at + 8, 2)
        && matches!(byte(at + 10), Some(b'T' | b' '))
        && digits(at + 11, 2)
        && byte(at + 13) == Some(b':')
        && digits(at + 14, 2)
        && byte(at + 16) == Some(b':')
        && digits(at + 17, 2);
    if !date_time {
        return 0;
    }
    at += 19;
    if matches!(byte(at), Some(b'.' | b',')) && digits(at + 1, 1) {
        at += 1;
        while byte(at).is_some_and(|b| b.is_ascii_digit()) {
            at += 1;
        }
    }
    match byte(at) {
        Some(b'Z') => at += 1,
        Some(b'+' | b'-') if digits(at + 1, 2) => {
            at += 3;
            if byte(at) == Some(b':') {
                at += 1;
            }
            if !digits(at, 2) {
                return 0;
            }
            at += 2;
        }
        _ => {}
    }
    if byte(0) == Some(b'[') {
        if byte(at) != Some(b']') {
            return 0;
        }
        at += 1;
    }
    match byte(at) {
        Some(b' ' | b'\t') => {
            while matches!(byte(at), Some(b' ' | b'\t')) {
                at += 1;
            }
        }
        None | Some(b'\n' | b'\r') => return at,
        _ => return 0,
    }
    // GitLab: two hex digits of stream id, O(ut) or E(rr), `+` when the line continues.
    let hex = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if hex(byte(at)) && hex(byte(at + 1)) && matches!(byte(at + 2), Some(b'O' | b'E')) {
        match byte(at + 3) {
            Some(b'+') => at += 4 + usize::from(byte(at + 4) == Some(b' ')),
            Some(b' ' | b'\t') => at += 4,
            None | Some(b'\n' | b'\r') => at += 3,
            _ => {}
        }
    }
    at
}

fn clean_line(line: &[u8], out: &mut Vec<u8>) {
    strip_escapes(&line[decoration_len(line)..], out);
}

/// Copies `line` to `out` without ECMA-48 escape sequences: CSI (`ESC [ … final`), OSC and
/// the other string controls (ended by BEL or `ESC \`, else by the end of the line), and
/// two- or three-byte escapes (`ESC ( B`).
fn strip_escapes(line: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < line.len() {
        let Some(at) = memchr(ESC, &line[i..]) else {
            out.extend_from_slice(&line[i..]);
            return;
        };
        out.extend_from_slice(&line[i..i + at]);
        i += at + 1;
        match line.get(i) {
            Some(b'[') => {
                i += 1;
                while i < line.len() && (0x20..0x40).contains(&line[i]) {
                    i += 1;
                }
                // The final byte, unless the line ended first.
                if i < line.len() && (0x40..0x7f).contains(&line[i]) {
                    i += 1;
                }
            }
            Some(b']' | b'P' | b'X' | b'^' | b'_') => {
                i += 1;
                while i < line.len() && line[i] != b'\n' {
                    if line[i] == BEL {
                        i += 1;
                        break;
                    }
                    if line[i] == ESC && line.get(i + 1) == Some(&b'\\') {
                        i += 2;
                        break;
                    }
                    i += 1;
                }
            }
            Some(_) => {
                while i < line.len() && (0x20..0x30).contains(&line[i]) {
                    i += 1;
                }
                if i < line.len() && (0x30..0x7f).contains(&line[i]) {
                    i += 1;
                }
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cleaned(text: &str) -> String {
        let mut out = Vec::new();
        String::from_utf8(clean(text.as_bytes(), &mut out).to_vec()).unwrap()
    }

    #[test]
    fn near_timestamps_are_kept() {
        for line in [
            "2024-05-01 was the day\n",
            "[2024-05-01T12:34:56Z Killed\n",
            "2024-05-01T12:34:56+0 Killed\n",
            "2024-05-01T12:34:56Killed\n",
        ] {
            assert_eq!(cleaned(line), line);
        }
        assert_eq!(cleaned("2024-05-01 12:34:56,789 Killed\n"), "Killed\n");
        assert_eq!(cleaned("2024-05-01T12:34:56Z\n"), "\n");
    }

    #[test]
    fn colours_titles_and_erases_are_removed() {
        assert_eq!(
            cleaned("\x1b[1;31mKilled\x1b[0m\x1b[K\n\x1b]0;title\x07done \x1b(Bok\n"),
            "Killed\ndone ok\n"
        );
        assert_eq!(
            cleaned("a\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\\n"),
            "alink\n"
        );
        assert_eq!(cleaned("cut \x1b[3"), "cut ");
    }

    #[test]
    fn ci_timestamps_are_removed() {
        for line in [
            "2024-05-01T12:34:56.1234567Z Killed",
            "2024-05-01T12:34:56.123456Z 00O Killed",
            "2024-05-01T12:34:56.123456Z 00E+Killed",
            "[2024-05-01T12:34:56.123Z] Killed",
            "2024-05-01T12:34:56.123456789+02:00 Killed",
            "2024-05-01T12:34:56.123456789Z Killed",
            "2024-05-01T12:34:56.123456Z 00O section_start:1714566896:build\r\x1b[0KKilled",
        ] {
            assert_eq!(cleaned(&format!("{line}\n")), "Killed\n", "{line:?}");
        }
    }

    #[test]
    fn lines_that_only_look_like_a_prefix_are_kept() {
        let mut out = Vec::new();
        let text = b"12 modules compiled\nspawn ENOMEM\n";
        assert_eq!(clean(text, &mut out), text);
        assert_eq!(
            cleaned("[12:00] start\n2024 was a year\n"),
            "[12:00] start\n2024 was a year\n"
        );
    }
}
