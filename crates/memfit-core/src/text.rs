//! Text from files, logs and command lines memfit did not write, made safe for a terminal.
//!
//! A log line or a Dockerfile can carry terminal escape sequences (`ESC ] 0 ; title BEL`
//! retitles the window, `ESC [ 2 J` clears the screen, OSC 52 writes the clipboard) and
//! bidirectional overrides that make a line read differently than it runs (CVE-2021-42574,
//! "Trojan Source"). memfit shows such text with every control character written out, as
//! Rust's `escape_debug` would, so what the user reads is what the file holds.

use std::borrow::Cow;

/// `text` with control characters written out: C0 controls (but tab and newline) and DEL as
/// `\x1b`, C1 controls and the bidirectional embeddings, overrides and isolates as `\u{202e}`.
/// A carriage return just before a newline (CRLF) is kept.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let crlf = c == '\r' && chars.peek() == Some(&'\n');
        if crlf || !needs_escape(c) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    match c {
        '\t' | '\n' => false,
        c if c.is_control() => true,
        // Bidirectional embeddings and overrides (U+202A–U+202E), isolates (U+2066–U+2069).
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_sequences_are_written_out() {
        assert_eq!(
            escape_control("a\x1b]0;title\x07b\x1b[2Jc"),
            "a\\x1b]0;title\\x07b\\x1b[2Jc"
        );
        assert_eq!(
            escape_control("\u{9b}31m\u{202e}x\x7f"),
            "\\u{9b}31m\\u{202e}x\\x7f"
        );
    }

    #[test]
    fn plain_text_tabs_newlines_and_crlf_are_kept() {
        assert!(matches!(escape_control("npm ci\t# ok\n"), Cow::Borrowed(_)));
        assert_eq!(escape_control("a\r\nb\rc"), "a\r\nb\\x0dc");
        assert_eq!(escape_control("Getötet 已杀死"), "Getötet 已杀死");
    }
}
