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

/// Why a size could not be read. The message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size `{input}`: {reason}; use a number with an optional unit k, m, g or t (binary, as Docker's --memory), e.g. 512M, 1.5G, 256MiB or 1073741824")]
pub struct SizeError {
    pub input: String,
    pub reason: &'static str,
}

impl ByteSize {
    pub const fn mib(n: u64) -> Self {
        ByteSize(n * MIB)
    }

    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// Parses a size; see the type's documentation for the grammar.
    pub fn parse(input: &str) -> Result<Self, SizeError> {
        let err = |reason| SizeError {
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
            whole_bytes + (frac_value * multiplier as f64).round() as u64
        } else {
            let whole: u64 = number.parse().map_err(|_| err("the number is too large"))?;
            whole
                .checked_mul(multiplier)
                .ok_or_else(|| err("the number is too large"))?
        };
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
    fn round_up_to_step() {
        assert_eq!(ByteSize(MIB + 1).round_up(MIB), ByteSize(2 * MIB));
        assert_eq!(ByteSize(MIB).round_up(MIB), ByteSize(MIB));
    }
}
