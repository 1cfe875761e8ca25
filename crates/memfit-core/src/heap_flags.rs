//! Node's command-line flags as Node reads them: `NODE_OPTIONS` split the way Node splits it,
//! every spelling of a flag recognised, and the V8 heap caps they set. One parser for every
//! command: `memfit audit` (flags in Dockerfiles, scripts, platform env), `memfit guard` (its
//! child's flags at startup) and `memfit plan`.

use crate::size::MIB;

/// The flags of one Node process, in the order Node sees them (NODE_OPTIONS first, then the
/// command line: "Options on the command line take precedence over options passed through
/// NODE_OPTIONS", nodejs.org/api/cli.html#node_optionsoptions).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeapFlags {
    /// Every `-`/`--` flag, normalised: a separate value joined (`--max-old-space-size 512`
    /// → `--max-old-space-size=512`), quotes removed, the name as written.
    flags: Vec<String>,
}

/// Flags whose value may follow as the next word (Node's parser accepts `--flag value` for
/// options that take one).
const VALUE_FLAGS: [&str; 4] = [
    "max-old-space-size",
    "max-old-space-size-percentage",
    "max-semi-space-size",
    "max-heap-size",
];

/// How the old generation is capped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OldSpaceCap {
    /// `--max-old-space-size=N`, in MiB.
    Mib(u64),
    /// `--max-old-space-size-percentage=P` (Node 22.21 / 24.6+), a share of the memory Node
    /// sees (the container's limit).
    Percentage(f64),
}

impl HeapFlags {
    /// Parses a `NODE_OPTIONS` value as Node does (src/node_options.cc `ParseNodeOptionsEnv`):
    /// words separated by spaces, double quotes group a word, and inside quotes a backslash
    /// escapes the next character.
    pub fn parse_node_options(text: &str) -> HeapFlags {
        HeapFlags::from_words(split_node_options(text))
    }

    /// The flags of a node command line (`node --max-old-space-size=384 server.js`): the words
    /// that start with `-`, up to the script.
    pub fn from_args<S: AsRef<str>>(args: impl IntoIterator<Item = S>) -> HeapFlags {
        let words: Vec<String> = args.into_iter().map(|a| a.as_ref().to_string()).collect();
        let mut flags = Vec::new();
        let mut i = 0;
        while let Some(word) = words.get(i) {
            if !word.starts_with('-') {
                break;
            }
            i += take_flag(&words[i..], &mut flags);
        }
        HeapFlags { flags }
    }

    /// Flags from words anywhere in a text (a Dockerfile `CMD`, an npm script): every word
    /// that starts with `-`, with a separate value joined.
    pub fn from_words<S: AsRef<str>>(words: impl IntoIterator<Item = S>) -> HeapFlags {
        let words: Vec<String> = words.into_iter().map(|a| a.as_ref().to_string()).collect();
        let mut flags = Vec::new();
        let mut i = 0;
        while i < words.len() {
            if words[i].starts_with('-') {
                i += take_flag(&words[i..], &mut flags);
            } else {
                i += 1;
            }
        }
        HeapFlags { flags }
    }

    /// These flags followed by `later`'s, which win where both set a flag.
    pub fn then(mut self, later: HeapFlags) -> HeapFlags {
        self.flags.extend(later.flags);
        self
    }

    /// Every flag, normalised, in order.
    pub fn flags(&self) -> &[String] {
        &self.flags
    }

    /// The value of the last occurrence of a flag, whatever its spelling: "All options,
    /// including V8 options, allow words to be separated by both dashes and underscores"
    /// (nodejs.org/api/cli.html#options). `name` is given with dashes and without `--`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.flags.iter().rev().find_map(|flag| {
            let (flag_name, value) = flag.split_once('=')?;
            (canonical_name(flag_name) == name).then_some(value)
        })
    }

    /// Whether a flag is present, in any spelling, with or without a value.
    pub fn has(&self, name: &str) -> bool {
        self.flags
            .iter()
            .any(|flag| canonical_name(flag.split_once('=').map_or(flag, |(n, _)| n)) == name)
    }

    /// `--max-old-space-size=N` (MiB).
    pub fn old_space_mib(&self) -> Option<u64> {
        self.value("max-old-space-size")?.trim().parse().ok()
    }

    /// `--max-old-space-size-percentage=P`, when it is a valid percentage: Node accepts
    /// 0 < P ≤ 100 and refuses to start otherwise (test/parallel/
    /// test-max-old-space-size-percentage.js).
    pub fn old_space_percentage(&self) -> Option<f64> {
        let p: f64 = self
            .value("max-old-space-size-percentage")?
            .trim()
            .parse()
            .ok()?;
        (p > 0.0 && p <= 100.0).then_some(p)
    }

    /// `--max-semi-space-size=N` (MiB).
    pub fn semi_space_mib(&self) -> Option<u64> {
        self.value("max-semi-space-size")?.trim().parse().ok()
    }

    /// The old-space cap these flags set. A percentage replaces a size: Node turns it into
    /// `--max-old-space-size` itself (`HandleMaxOldSpaceSizePercentage`, nodejs/node#59082).
    pub fn old_space(&self) -> Option<OldSpaceCap> {
        self.old_space_percentage()
            .map(OldSpaceCap::Percentage)
            .or_else(|| self.old_space_mib().map(OldSpaceCap::Mib))
    }

    pub fn has_heap_cap(&self) -> bool {
        self.old_space().is_some()
    }

    /// The old-space cap in bytes in a container of `limit` bytes; `None` without a cap, or
    /// for a percentage when the limit is unknown.
    pub fn old_space_bytes(&self, limit: Option<u64>) -> Option<u64> {
        match self.old_space()? {
            OldSpaceCap::Mib(mib) => Some(mib.saturating_mul(MIB)),
            OldSpaceCap::Percentage(p) => limit.map(|l| percentage_of_limit_mib(l, p) * MIB),
        }
    }
}

/// What Node computes for `--max-old-space-size-percentage=P`: P % of the memory it sees,
/// in whole MiB, rounded down.
fn percentage_of_limit_mib(limit: u64, percentage: f64) -> u64 {
    ((limit / MIB) as f64 * percentage / 100.0) as u64
}

/// `--max_old_space_size` → `max-old-space-size`.
fn canonical_name(flag: &str) -> String {
    flag.trim_start_matches('-').replace('_', "-")
}

/// Takes the flag at `words[0]` (and its separate value, where it has one) into `flags`;
/// returns how many words it used.
fn take_flag(words: &[String], flags: &mut Vec<String>) -> usize {
    let word = &words[0];
    if !word.contains('=') && VALUE_FLAGS.contains(&canonical_name(word).as_str()) {
        if let Some(value) = words.get(1).filter(|v| !v.starts_with('-')) {
            flags.push(format!("{word}={value}"));
            return 2;
        }
    }
    flags.push(word.clone());
    1
}

/// Node's NODE_OPTIONS splitting: spaces separate words outside double quotes; quotes are
/// removed; inside quotes a backslash takes the next character literally.
fn split_node_options(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current: Option<String> = None;
    let mut in_quotes = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        let c = match c {
            '\\' if in_quotes => match chars.next() {
                Some(escaped) => escaped,
                // Node refuses a trailing escape ("invalid escape"); nothing more to read.
                None => break,
            },
            ' ' if !in_quotes => {
                words.extend(current.take());
                continue;
            }
            '"' => {
                in_quotes = !in_quotes;
                // `""` is an empty word in Node's parser.
                current.get_or_insert_with(String::new);
                continue;
            }
            c => c,
        };
        current.get_or_insert_with(String::new).push(c);
    }
    words.extend(current);
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_the_old_space_flag() {
        for options in [
            "--max-old-space-size=384",
            "--max_old_space_size=384",
            "--max-old_space-size=384",
            "--max-old-space-size 384",
            "--max_old_space_size 384",
            "--max-old-space-size=\"384\"",
            "\"--max-old-space-size=384\"",
        ] {
            let flags = HeapFlags::parse_node_options(options);
            assert_eq!(flags.old_space_mib(), Some(384), "{options}");
        }
    }

    #[test]
    fn the_last_setting_wins_and_the_command_line_after_node_options() {
        let env =
            HeapFlags::parse_node_options("--max-old-space-size=512 --max_old_space_size=256");
        assert_eq!(env.old_space_mib(), Some(256));
        let both = env.then(HeapFlags::from_args([
            "--max-old-space-size=300",
            "server.js",
        ]));
        assert_eq!(both.old_space_mib(), Some(300));
    }

    #[test]
    fn quoted_words_keep_their_spaces() {
        let flags = HeapFlags::parse_node_options(
            r#"--require "./my path/init.js" --max-old-space-size=200 --title="a \"b\"""#,
        );
        assert_eq!(
            flags.flags(),
            ["--require", "--max-old-space-size=200", "--title=a \"b\""]
        );
        assert!(flags.has("require"));
    }

    #[test]
    fn a_percentage_replaces_a_size() {
        let flags = HeapFlags::parse_node_options(
            "--max-old-space-size=100 --max_old_space_size_percentage=75",
        );
        assert_eq!(flags.old_space(), Some(OldSpaceCap::Percentage(75.0)));
        assert_eq!(flags.old_space_bytes(Some(512 * MIB)), Some(384 * MIB));
        assert_eq!(flags.old_space_bytes(None), None);
    }

    /// The audit computed a percentage in integers and truncated P to two decimals; the guard
    /// accepted only the dashed spelling. Both now read what Node reads.
    #[test]
    fn fractional_percentages_and_the_underscore_spelling() {
        let flags = HeapFlags::parse_node_options("--max_old_space_size_percentage=25.555");
        // 1000 MiB × 25.555 % = 255.55 MiB → 255.
        assert_eq!(flags.old_space_bytes(Some(1000 * MIB)), Some(255 * MIB));
    }

    #[test]
    fn invalid_percentages_set_no_cap() {
        for p in ["0", "101", "-5", "abc"] {
            let flags =
                HeapFlags::parse_node_options(&format!("--max-old-space-size-percentage={p}"));
            assert_eq!(flags.old_space(), None, "{p}");
        }
    }

    #[test]
    fn command_line_flags_end_at_the_script() {
        let flags = HeapFlags::from_args([
            "--expose-gc",
            "--max-semi-space-size",
            "4",
            "server.js",
            "--max-old-space-size=1",
        ]);
        assert_eq!(flags.semi_space_mib(), Some(4));
        assert_eq!(flags.old_space_mib(), None);
    }
}
