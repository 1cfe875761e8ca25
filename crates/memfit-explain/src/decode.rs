//! The bytes of a log as UTF-8, whatever wrote it: a UTF-8 byte order mark is skipped, and a
//! UTF-16 log (PowerShell's `>` and `Out-File` write UTF-16LE with a BOM) is decoded as it
//! streams, in fixed-size pieces, so memory stays flat. Without a BOM the bytes are read as
//! they are (the matcher works on bytes; invalid UTF-8 is replaced only where a line is quoted).

use std::io::{self, Read};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Encoding {
    Utf8,
    Utf16Le,
    Utf16Be,
}

/// Reads `inner` as UTF-8; see the module documentation.
pub(crate) struct Decoder<R> {
    inner: R,
    encoding: Option<Encoding>,
    /// Raw bytes read but not yet decoded (a BOM being sniffed, half a code unit, a lone
    /// high surrogate waiting for its pair).
    pending: Vec<u8>,
    /// Decoded UTF-8 not yet handed out.
    decoded: Vec<u8>,
    decoded_at: usize,
    raw: Vec<u8>,
    eof: bool,
    /// Bytes read from `inner`, as the log's size.
    pub(crate) raw_bytes: u64,
}

const PIECE: usize = 64 * 1024;

impl<R: Read> Decoder<R> {
    pub(crate) fn new(inner: R) -> Self {
        Decoder {
            inner,
            encoding: None,
            pending: Vec::new(),
            decoded: Vec::new(),
            decoded_at: 0,
            raw: vec![0; PIECE],
            eof: false,
            raw_bytes: 0,
        }
    }

    fn fill_raw(&mut self) -> io::Result<usize> {
        loop {
            match self.inner.read(&mut self.raw) {
                Ok(n) => {
                    self.raw_bytes += n as u64;
                    self.pending.extend_from_slice(&self.raw[..n]);
                    if n == 0 {
                        self.eof = true;
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Decides the encoding from the first bytes (at most 3 needed).
    fn sniff(&mut self) -> io::Result<Encoding> {
        while self.pending.len() < 3 && !self.eof {
            self.fill_raw()?;
        }
        let (encoding, bom) = match self.pending.as_slice() {
            [0xef, 0xbb, 0xbf, ..] => (Encoding::Utf8, 3),
            [0xff, 0xfe, ..] => (Encoding::Utf16Le, 2),
            [0xfe, 0xff, ..] => (Encoding::Utf16Be, 2),
            _ => (Encoding::Utf8, 0),
        };
        self.pending.drain(..bom);
        Ok(encoding)
    }

    /// Decodes whole code units of `pending` into `decoded`, keeping an odd byte and a high
    /// surrogate at the end for the next piece (unless the stream ended).
    fn decode_utf16(&mut self, little_endian: bool) {
        let units = self.pending.len() / 2;
        let mut code_units: Vec<u16> = (0..units)
            .map(|i| {
                let pair = [self.pending[2 * i], self.pending[2 * i + 1]];
                if little_endian {
                    u16::from_le_bytes(pair)
                } else {
                    u16::from_be_bytes(pair)
                }
            })
            .collect();
        let mut keep = self.pending.len() - units * 2;
        if !self.eof
            && code_units
                .last()
                .is_some_and(|u| (0xd800..0xdc00).contains(u))
        {
            code_units.pop();
            keep += 2;
        }
        let mut text = String::with_capacity(code_units.len());
        for c in char::decode_utf16(code_units) {
            text.push(c.unwrap_or(char::REPLACEMENT_CHARACTER));
        }
        if self.eof && keep % 2 == 1 {
            text.push(char::REPLACEMENT_CHARACTER);
            keep = 0;
        }
        self.decoded.clear();
        self.decoded_at = 0;
        self.decoded.extend_from_slice(text.as_bytes());
        let consumed = self.pending.len() - keep;
        self.pending.drain(..consumed);
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let encoding = match self.encoding {
            Some(e) => e,
            None => {
                let e = self.sniff()?;
                self.encoding = Some(e);
                e
            }
        };
        if encoding == Encoding::Utf8 {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.len());
                buf[..n].copy_from_slice(&self.pending[..n]);
                self.pending.drain(..n);
                return Ok(n);
            }
            return loop {
                match self.inner.read(buf) {
                    Ok(n) => {
                        self.raw_bytes += n as u64;
                        break Ok(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
        }
        while self.decoded_at == self.decoded.len() {
            if self.eof && self.pending.is_empty() {
                return Ok(0);
            }
            if !self.eof {
                self.fill_raw()?;
            }
            self.decode_utf16(encoding == Encoding::Utf16Le);
        }
        let n = (self.decoded.len() - self.decoded_at).min(buf.len());
        buf[..n].copy_from_slice(&self.decoded[self.decoded_at..self.decoded_at + n]);
        self.decoded_at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out one byte at a time, to cut code units and surrogate pairs.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    fn decoded(bytes: &[u8]) -> String {
        let mut out = String::new();
        Decoder::new(Trickle(bytes))
            .read_to_string(&mut out)
            .unwrap();
        out
    }

    fn utf16(text: &str, little_endian: bool) -> Vec<u8> {
        let mut out = if little_endian {
            vec![0xff, 0xfe]
        } else {
            vec![0xfe, 0xff]
        };
        for u in text.encode_utf16() {
            out.extend_from_slice(&if little_endian {
                u.to_le_bytes()
            } else {
                u.to_be_bytes()
            });
        }
        out
    }

    #[test]
    fn utf16_with_a_bom_is_decoded_across_any_cut() {
        let text = "Killed 已杀死 🦀\nnext\n";
        assert_eq!(decoded(&utf16(text, true)), text);
        assert_eq!(decoded(&utf16(text, false)), text);
    }

    #[test]
    fn a_utf8_bom_is_skipped_and_plain_bytes_pass() {
        assert_eq!(decoded(b"\xef\xbb\xbfKilled\n"), "Killed\n");
        assert_eq!(decoded(b"Ki"), "Ki");
        assert_eq!(decoded(b""), "");
    }

    #[test]
    fn a_broken_utf16_tail_becomes_a_replacement_character() {
        assert_eq!(decoded(&[0xff, 0xfe, b'K', 0, b'x']), "K\u{fffd}");
        assert_eq!(decoded(&[0xff, 0xfe, 0x3d, 0xd8]), "\u{fffd}");
    }
}
