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

/// `2024-05-01T12:34:56.1234567Z ` (GitHub Actions, Docker, kubectl with `Z` or an offset),
/// `[2024-05-01T12:34:56.123Z] ` (Jenkins), then GitLab's `00O `, `00E+ ` stream marker.
static PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^\[?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?\]?(?:[ \t]+|$)(?:[0-9a-f]{2}[OE](?:\+ ?|[ \t]|$))?",
    )
    .expect("the prefix pattern compiles")
});

/// GitLab's collapsible sections: `section_start:1714566896:step_script[collapsed=true]\r`.
static SECTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^section_(?:start|end):\d+:[^\r\n\x1b]*\r?").expect("the section pattern compiles")
});

/// Returns `chunk` without decorations: borrowed when there is none, else written to `out`.
pub(crate) fn clean<'a>(chunk: &'a [u8], out: &'a mut Vec<u8>) -> &'a [u8] {
    if !needs_cleaning(chunk) {
        return chunk;
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

fn needs_cleaning(chunk: &[u8]) -> bool {
    memchr(ESC, chunk).is_some()
        || may_have_prefix(chunk)
        || memchr_iter(b'\n', chunk).any(|i| may_have_prefix(&chunk[i + 1..]))
}

fn may_have_prefix(line: &[u8]) -> bool {
    matches!(line.first(), Some(b'0'..=b'9' | b'[' | b's'))
}

fn clean_line(mut line: &[u8], out: &mut Vec<u8>) {
    // A timestamp, then (GitLab) a section marker, possibly after another timestamp.
    for _ in 0..2 {
        if may_have_prefix(line) {
            if let Some(m) = PREFIX.find(line).filter(|m| m.end() > 0) {
                line = &line[m.end()..];
            }
            if let Some(m) = SECTION.find(line) {
                line = &line[m.end()..];
            }
        }
    }
    strip_escapes(line, out);
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
