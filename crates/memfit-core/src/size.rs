use std::fmt;
use std::str::FromStr;

/// A number of bytes, parsed like Docker's `--memory` and printed in binary units.
///
/// Docker (go-units `RAMInBytes`) reads `512m`, `1.5g`, `256MiB`, `2 GB` and a bare
/// `1073741824`; every unit is binary (k = 1024) whatever its spelling, because that is
/// what the limit the user copies from a platform's dashboard means to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
pub const GIB: u64 = 1024 * MIB;

/// The largest size memfit accepts, exclusive: 4 EiB. The kernel treats any memory limit from
/// 2^63 − 4096 up as "max" (`PAGE_COUNTER_MAX`, include/linux/page_counter.h), so a larger one cannot be
/// meant; below 4 EiB a limit plus an equal swap still fits in 64 bits.
pub const MAX_SIZE: ByteSize = ByteSize(4 << 60);

/// Why a size could not be read. The message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("invalid size `{input}`: {reason}; use a number with an optional unit k, m, g or t (binary, as Docker's --memory), e.g. 512M, 1.5G, 256MiB or 1073741824")]
    Invalid { input: String, reason: &'static str },
    #[error("invalid size `{input}`: it has no unit; write {input}M for {input} MiB (or {input}B if you mean bytes)")]
    NoUnit { input: String },
    #[error("invalid size `{input}`: it is 4 EiB or more, larger than any memory limit; e.g. 512M or 64G")]
    TooLarge { input: String },
}

impl ByteSize {
    pub const fn mib(n: u64) -> Self {
        ByteSize(n * MIB)
    }

    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// Parses a size for a setting with no bare-bytes tradition (memfit's own flags, as
    /// opposed to Docker's `--memory`): `180` is refused, where it would silently be 180 bytes;
    /// `180M` and `180B` are read.
    pub fn parse_with_unit(input: &str) -> Result<Self, SizeError> {
        let text = input.trim();
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(SizeError::NoUnit {
                input: text.to_string(),
            });
        }
        ByteSize::parse(input)
    }

    /// Parses a size; see the type's documentation for the grammar. Sizes of 4 EiB and more
    /// ([`MAX_SIZE`]) are refused.
    pub fn parse(input: &str) -> Result<Self, SizeError> {
        let err = |reason| SizeError::Invalid {
            input: input.to_string(),
            reason,
        };
        let text = input.trim();
        if text.is_empty() {
            return Err(err("it is empty"));
        }
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        if number.is_empty() {
            return Err(err("it does not start with a number"));
        }
        if number.matches('.').count() > 1 || number.ends_with('.') || number.starts_with('.') {
            return Err(err("the number is malformed"));
        }
        let unit = unit.trim_start();
        let lower = unit.to_ascii_lowercase();
        let (scale_char, rest) = match lower.chars().next() {
            Some(c @ ('b' | 'k' | 'm' | 'g' | 't' | 'p')) => (Some(c), &lower[1..]),
            Some(_) => return Err(err("the unit is not one of b, k, m, g, t, p")),
            None => (None, ""),
        };
        let multiplier = match scale_char {
            None | Some('b') => 1,
            Some('k') => KIB,
            Some('m') => MIB,
            Some('g') => GIB,
            Some('t') => 1024 * GIB,
            Some(_) => 1024 * 1024 * GIB,
        };
        let suffix_ok = match scale_char {
            None => rest.is_empty(),
            Some('b') => rest.is_empty(),
            Some(_) => matches!(rest, "" | "i" | "b" | "ib"),
        };
        if !suffix_ok {
            return Err(err("the unit is not one of b, k, m, g, t, p"));
        }
        let value = if let Some((whole, frac)) = number.split_once('.') {
            let whole: u64 = whole.parse().map_err(|_| err("the number is too large"))?;
            let frac_value: f64 = format!("0.{frac}")
                .parse()
                .map_err(|_| err("the number is malformed"))?;
            let whole_bytes = whole
                .checked_mul(multiplier)
                .ok_or_else(|| err("the number is too large"))?;
            whole_bytes
                .checked_add((frac_value * multiplier as f64).round() as u64)
                .ok_or_else(|| err("the number is too large"))?
        } else {
            let whole: u64 = number.parse().map_err(|_| err("the number is too large"))?;
            whole
                .checked_mul(multiplier)
                .ok_or_else(|| err("the number is too large"))?
        };
        if value >= MAX_SIZE.0 {
            return Err(SizeError::TooLarge {
                input: text.to_string(),
            });
        }
        Ok(ByteSize(value))
    }

    /// Rounds up to a whole number of `step` bytes.
    pub fn round_up(self, step: u64) -> Self {
        if step == 0 {
            return self;
        }
        ByteSize(self.0.div_ceil(step) * step)
    }
}

impl FromStr for ByteSize {
    type Err = SizeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ByteSize::parse(s)
    }
}

impl fmt::Display for ByteSize {
    /// `512 MiB`, `1.5 GiB`, `300.2 MiB`, `812 KiB`, `17 B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        let (unit, scale) = if n >= GIB {
            ("GiB", GIB)
        } else if n >= MIB {
            ("MiB", MIB)
        } else if n >= KIB {
            ("KiB", KIB)
        } else {
            return write!(f, "{n} B");
        };
        let value = n as f64 / scale as f64;
        let rounded = (value * 10.0).round() / 10.0;
        if rounded.fract() == 0.0 {
            write!(f, "{} {unit}", rounded as u64)
        } else {
            write!(f, "{rounded:.1} {unit}")
        }
    }
}

impl serde::Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_spellings_are_binary() {
        for (text, bytes) in [
            ("512M", 512 * MIB),
            ("512m", 512 * MIB),
            ("512MiB", 512 * MIB),
            ("512mb", 512 * MIB),
            ("512 MB", 512 * MIB),
            ("1.5G", GIB + GIB / 2),
            ("1.5gib", GIB + GIB / 2),
            ("256k", 256 * KIB),
            ("1073741824", GIB),
            ("100b", 100),
            ("2T", 2048 * GIB),
        ] {
            assert_eq!(ByteSize::parse(text), Ok(ByteSize(bytes)), "{text}");
        }
    }

    #[test]
    fn bad_sizes_say_what_is_accepted() {
        for text in [
            "", "M", "12x", "1..5G", "-5M", "5Mx", "5 M B", ".5G", "5.G", "5bi",
        ] {
            let err = ByteSize::parse(text).unwrap_err();
            assert!(err.to_string().contains("e.g. 512M"), "{text}: {err}");
        }
        assert!(ByteSize::parse("99999999999999999999").is_err());
        assert!(ByteSize::parse("99999999999T").is_err());
    }

    #[test]
    fn display_uses_binary_units_with_one_decimal() {
        assert_eq!(ByteSize(512 * MIB).to_string(), "512 MiB");
        assert_eq!(ByteSize(GIB + GIB / 2).to_string(), "1.5 GiB");
        assert_eq!(ByteSize(300 * MIB + MIB / 5).to_string(), "300.2 MiB");
        assert_eq!(ByteSize(17).to_string(), "17 B");
        assert_eq!(ByteSize(2048).to_string(), "2 KiB");
    }

    #[test]
    fn sizes_stop_below_4_eib() {
        assert_eq!(ByteSize::parse("4095P"), Ok(ByteSize(4095 << 50)));
        for text in ["4096P", "18446744073709551615", "16383.99P"] {
            assert!(
                matches!(ByteSize::parse(text), Err(SizeError::TooLarge { .. })),
                "{text}"
            );
        }
    }

    #[test]
    fn a_unit_can_be_required() {
        assert_eq!(ByteSize::parse_with_unit("180M"), Ok(ByteSize(180 * MIB)));
        assert_eq!(ByteSize::parse_with_unit("180B"), Ok(ByteSize(180)));
        let err = ByteSize::parse_with_unit(" 180 ").unwrap_err();
        assert!(err.to_string().contains("write 180M"), "{err}");
        assert!(ByteSize::parse_with_unit("1.5").is_err());
    }

    #[test]
    fn round_up_to_step() {
        assert_eq!(ByteSize(MIB + 1).round_up(MIB), ByteSize(2 * MIB));
        assert_eq!(ByteSize(MIB).round_up(MIB), ByteSize(MIB));
    }
}
