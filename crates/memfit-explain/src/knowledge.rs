//! Loads `signatures.toml`, `facts.toml` and `remedies.toml` (embedded, read as one text) into
//! compiled regexes, once.
//!
//! Every closed set in the file (a signature's `kind`, `verdict` and `sub_reason`, a fact's
//! name, `parse`, `reduce` and `section`, a remedy's `when`) deserializes into an enum, and
//! every table refuses unknown keys: a typo fails at load, with its line, instead of silently
//! matching nothing.

use std::ops::Range;
use std::sync::LazyLock;

use regex::bytes::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use serde::Deserialize;
use toml::Spanned;

use crate::remedy::RemedySpec;
use crate::report::{Kind, SubReason};

/// The knowledge files in load order, each ending in a newline: TOML's arrays of tables may
/// continue across them, so they are read as one text.
const FILES: [(&str, &str); 3] = [
    ("signatures.toml", include_str!("../signatures.toml")),
    ("facts.toml", include_str!("../facts.toml")),
    ("remedies.toml", include_str!("../remedies.toml")),
];
const SOURCE: &str = concat!(
    include_str!("../signatures.toml"),
    include_str!("../facts.toml"),
    include_str!("../remedies.toml"),
);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    signature: Vec<Spanned<SignatureSpec>>,
    #[serde(default)]
    fact: Vec<Spanned<FactSpec>>,
    #[serde(default)]
    remedy: Vec<RemedySpec>,
}

/// Rewrites the first `line N` of a load error (a line of [`SOURCE`]) as the file and line
/// it is on.
fn locate(error: &str) -> String {
    let Some(at) = error.find("line ") else {
        return error.to_string();
    };
    let digits: String = error[at + 5..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let Ok(mut line) = digits.parse::<usize>() else {
        return error.to_string();
    };
    for (name, text) in FILES {
        let lines = text.matches('\n').count();
        if line <= lines {
            let rest = &error[at + 5 + digits.len()..];
            return format!("{}{name} line {line}{rest}", &error[..at]);
        }
        line -= lines;
    }
    error.to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureSpec {
    id: String,
    kind: Kind,
    sub_reason: Option<SubReason>,
    verdict: SignatureVerdict,
    strength: f64,
    process: Option<String>,
    pattern: String,
    meaning: String,
    source: String,
}

/// What one line of a signature says on its own.
#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum SignatureVerdict {
    Oom,
    NotOom,
    /// A clue that cannot decide on its own, e.g. a bare 137.
    Hint,
}

/// What a signature claims, with the kind or sub-reason its verdict needs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Claim {
    Oom(Kind),
    NotOom(SubReason),
    /// Points at a kind of memory failure but cannot decide alone.
    Hint(Kind),
}

pub(crate) struct Signature {
    pub(crate) id: String,
    pub(crate) claim: Claim,
    /// How strongly one such line supports the claim (0–1).
    pub(crate) strength: f64,
    /// The process the line implies when it does not name one.
    pub(crate) process: Option<String>,
    pub(crate) meaning: String,
    pub(crate) source: String,
    pub(crate) regex: Regex,
}

impl Signature {
    fn from_spec(spec: SignatureSpec) -> Result<Signature, String> {
        let id = spec.id;
        let claim = match (spec.verdict, spec.kind, spec.sub_reason) {
            (SignatureVerdict::NotOom, Kind::NotOom, Some(sub_reason)) => Claim::NotOom(sub_reason),
            (SignatureVerdict::Oom, kind, None) if kind != Kind::NotOom => Claim::Oom(kind),
            (SignatureVerdict::Hint, kind, None) if kind != Kind::NotOom => Claim::Hint(kind),
            _ => {
                return Err(format!(
                    "signature `{id}`: verdict \"not-oom\" goes with kind \"not-oom\" and a \
                     sub_reason; \"oom\" and \"hint\" with a memory kind and no sub_reason"
                ))
            }
        };
        if !(0.0..=1.0).contains(&spec.strength) {
            return Err(format!("signature `{id}`: strength outside 0–1"));
        }
        let regex = compile(&spec.pattern).map_err(|e| format!("pattern of `{id}`: {e}"))?;
        Ok(Signature {
            id,
            claim,
            strength: spec.strength,
            process: spec.process,
            meaning: spec.meaning,
            source: spec.source,
            regex,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FactSpec {
    id: String,
    pub(crate) fact: FactName,
    pub(crate) parse: Parse,
    pub(crate) reduce: Reduce,
    /// Orders competing sources of one fact: a kernel line beats a `docker run -m` flag.
    #[serde(default)]
    pub(crate) priority: u8,
    /// Only lines under this header count.
    pub(crate) section: Option<Section>,
    /// `{value}` is replaced by the captured text: `python {value}`.
    pub(crate) template: Option<String>,
    pattern: String,
}

/// The facts an explanation reports; several extractors may feed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FactName {
    HeapAtDeathMb,
    MaxOldSpaceMb,
    NodeVersion,
    RuntimeVersion,
    Process,
    /// Taken from the `pid` group of a `process` extractor, never extracted on its own.
    #[serde(skip_deserializing)]
    Pid,
    AnonRssBytes,
    LimitBytes,
    Step,
    /// The command a script runner announced last (`> next build`); kept per BuildKit step.
    Command,
    ExitCode,
    /// Not reported: the header that scopes the facts after it to one [`Section`].
    Section,
}

/// How a fact's captured text becomes a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Parse {
    Float,
    Int,
    /// Kibibytes, as the kernel prints them.
    Kib,
    /// A number and an optional `unit` group (`512Mi`, `1g`), to bytes.
    Size,
    /// Heroku's `mem=NNNM(PP%)`: the dyno quota that line implies, in bytes.
    Heroku,
    /// Kept as text, no number.
    Text,
}

/// Which of several matches of one fact is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Reduce {
    /// The largest number: the heap just before V8 died, the largest RSS.
    Max,
    /// The first match of the highest priority.
    First,
    /// The last match of the highest priority: the state when the process died.
    Last,
}

/// A block of a Kubernetes pod description: a memory value under `Requests:` is not a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Section {
    Limits,
    Requests,
}

impl Section {
    /// The section a header line opens (`Limits:`, `"requests": {`), if it is one.
    pub(crate) fn from_header(header: &str) -> Option<Section> {
        match header.to_ascii_lowercase().as_str() {
            "limits" => Some(Section::Limits),
            "requests" => Some(Section::Requests),
            _ => None,
        }
    }
}

pub(crate) struct Fact {
    pub(crate) spec: FactSpec,
    pub(crate) regex: Regex,
}

pub(crate) struct Knowledge {
    pub(crate) signatures: Vec<Signature>,
    pub(crate) facts: Vec<Fact>,
    pub(crate) remedies: Vec<RemedySpec>,
    /// Every signature pattern, then every fact pattern: finds which occur in a chunk.
    pub(crate) set: RegexSet,
}

impl Knowledge {
    /// The regex of pattern `index` in `set` order.
    pub(crate) fn regex(&self, index: usize) -> &Regex {
        if index < self.signatures.len() {
            &self.signatures[index].regex
        } else {
            &self.facts[index - self.signatures.len()].regex
        }
    }
}

static KNOWLEDGE: LazyLock<Knowledge> =
    LazyLock::new(|| load(SOURCE).unwrap_or_else(|e| panic!("{}", locate(&e))));

pub(crate) fn get() -> &'static Knowledge {
    &KNOWLEDGE
}

// Multi-line: `^`/`$` mean a line's start and end both in a chunk and on one line.
// Unicode off: `\b`, `\s`, `\d` are ASCII, which keeps the lazy DFA from giving up on
// non-ASCII log bytes (a Unicode word boundary makes it quit); non-ASCII literals
// (Getötet, 已杀死) still match their UTF-8 bytes.
fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .multi_line(true)
        .unicode(false)
        .build()
}

fn load(text: &str) -> Result<Knowledge, String> {
    let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
    let at_line = |span: Range<usize>, error: String| {
        let line = text[..span.start].matches('\n').count() + 1;
        format!("line {line}: {error}")
    };
    let signatures = file
        .signature
        .into_iter()
        .map(|spec| {
            let span = spec.span();
            Signature::from_spec(spec.into_inner()).map_err(|e| at_line(span, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let facts = file
        .fact
        .into_iter()
        .map(|spec| {
            let span = spec.span();
            let spec = spec.into_inner();
            match compile(&spec.pattern) {
                Ok(regex) => Ok(Fact { spec, regex }),
                Err(e) => Err(at_line(span, format!("pattern of `{}`: {e}", spec.id))),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let set = RegexSetBuilder::new(
        signatures
            .iter()
            .map(|s| s.regex.as_str())
            .chain(facts.iter().map(|f| f.regex.as_str())),
    )
    .multi_line(true)
    .unicode(false)
    .dfa_size_limit(32 << 20)
    .build()
    .map_err(|e| e.to_string())?;
    for remedy in &file.remedy {
        if let Some(id) = remedy
            .named_signatures()
            .find(|id| !signatures.iter().any(|s| &s.id == *id))
        {
            return Err(format!("a remedy names no signature: `{id}`"));
        }
    }
    Ok(Knowledge {
        signatures,
        facts,
        remedies: file.remedy,
        set,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_error_names_the_file_and_its_line() {
        let signatures = FILES[0].1.matches('\n').count();
        let facts = FILES[1].1.matches('\n').count();
        assert_eq!(locate("line 3: bad"), "signatures.toml line 3: bad");
        assert_eq!(
            locate(&format!("line {}: bad", signatures + 4)),
            "facts.toml line 4: bad"
        );
        assert_eq!(
            locate(&format!("at line {}, column 2", signatures + facts + 1)),
            "at remedies.toml line 1, column 2"
        );
        assert_eq!(SOURCE.len(), FILES.iter().map(|(_, t)| t.len()).sum());
    }

    #[test]
    fn the_embedded_knowledge_loads() {
        let k = load(SOURCE).unwrap();
        assert!(k.signatures.len() >= 30);
        let mut ids: Vec<_> = k.signatures.iter().map(|s| &s.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), k.signatures.len(), "signature ids are unique");
        for s in &k.signatures {
            assert!(s.source.starts_with("https://"), "{}", s.id);
            assert!(!s.meaning.is_empty());
        }
    }

    /// One signature, one fact and one remedy; the tests misspell one line at a time.
    const VALID: &str = r#"[[signature]]
id = "x"
kind = "node-heap"
verdict = "oom"
strength = 0.5
pattern = "heap"
meaning = "m"
source = "https://e"

[[fact]]
id = "f"
fact = "step"
parse = "text"
reduce = "last"
pattern = "a"

[[remedy]]
kinds = ["node-heap"]
when = "step-is-install"
title = "t"
commands = []
note = ""
"#;

    fn load_error_with(line: &str, replacement: &str) -> String {
        assert!(VALID.contains(line), "{line}");
        match load(&VALID.replacen(line, replacement, 1)) {
            Ok(_) => panic!("`{replacement}` loaded"),
            Err(error) => error,
        }
    }

    #[test]
    fn a_file_without_typos_loads() {
        assert!(load(VALID).is_ok());
    }

    #[test]
    fn a_misspelled_kind_fails_at_load_with_its_line() {
        let error = load_error_with(r#"kind = "node-heap""#, r#"kind = "node-heep""#);
        assert!(error.contains("line 3"), "{error}");
        assert!(error.contains("node-heep"), "{error}");
    }

    #[test]
    fn a_remedy_for_a_signature_that_does_not_exist_fails_at_load() {
        let error = load_error_with(
            r#"when = "step-is-install""#,
            "when = \"step-is-install\"\nwhen_matched = [\"gradle-daemon\"]",
        );
        assert!(error.contains("gradle-daemon"), "{error}");
        let named = VALID.replacen(
            r#"when = "step-is-install""#,
            "when = \"step-is-install\"\nwhen_matched = [\"x\"]",
            1,
        );
        assert!(load(&named).is_ok());
    }

    #[test]
    fn a_misspelled_verdict_fails_at_load_with_its_line() {
        let error = load_error_with(r#"verdict = "oom""#, r#"verdict = "oomm""#);
        assert!(error.contains("line 4"), "{error}");
        assert!(error.contains("oomm"), "{error}");
    }

    #[test]
    fn a_misspelled_parse_fails_at_load_with_its_line() {
        let error = load_error_with(r#"parse = "text""#, r#"parse = "txt""#);
        assert!(error.contains("line 13"), "{error}");
        assert!(error.contains("txt"), "{error}");
    }

    #[test]
    fn a_misspelled_when_fails_at_load_with_its_line() {
        let error = load_error_with(r#"when = "step-is-install""#, r#"when = "step_is_install""#);
        assert!(error.contains("line 19"), "{error}");
        assert!(error.contains("step_is_install"), "{error}");
    }

    #[test]
    fn a_misspelled_key_fails_at_load_with_its_line() {
        let error = load_error_with(r#"when = "step-is-install""#, r#"wehn = "step-is-install""#);
        assert!(error.contains("line 19"), "{error}");
        assert!(error.contains("wehn"), "{error}");
    }

    #[test]
    fn a_not_oom_signature_without_a_sub_reason_fails_at_load_with_its_line() {
        let error = load_error_with(r#"verdict = "oom""#, r#"verdict = "not-oom""#);
        assert!(error.starts_with("line 1: signature `x`"), "{error}");
    }

    #[test]
    fn a_bad_pattern_fails_at_load_with_its_id_and_line() {
        let error = load_error_with(r#"pattern = "heap""#, r#"pattern = "(""#);
        assert!(error.starts_with("line 1: pattern of `x`"), "{error}");
    }
}
