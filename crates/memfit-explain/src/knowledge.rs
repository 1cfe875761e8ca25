//! Loads `signatures.toml` (embedded) into compiled regexes, once.

use std::sync::LazyLock;

use regex::bytes::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use serde::Deserialize;

const SOURCE: &str = include_str!("../signatures.toml");

#[derive(Debug, Deserialize)]
struct File {
    signature: Vec<SignatureSpec>,
    fact: Vec<FactSpec>,
    remedy: Vec<RemedySpec>,
}

#[derive(Debug, Deserialize)]
pub struct SignatureSpec {
    pub id: String,
    pub kind: String,
    #[serde(default)]
    pub sub_reason: String,
    pub verdict: String,
    pub strength: f64,
    #[serde(default)]
    pub process: String,
    pub pattern: String,
    pub meaning: String,
    pub source: String,
}

#[derive(Debug, Deserialize)]
pub struct FactSpec {
    pub id: String,
    pub fact: String,
    pub parse: String,
    pub reduce: String,
    #[serde(default)]
    pub priority: u8,
    #[serde(default)]
    pub section: String,
    #[serde(default)]
    pub template: String,
    pub pattern: String,
}

#[derive(Debug, Deserialize)]
pub struct RemedySpec {
    #[serde(default)]
    pub kinds: Vec<String>,
    #[serde(default)]
    pub sub_reasons: Vec<String>,
    #[serde(default)]
    pub verdicts: Vec<String>,
    #[serde(default)]
    pub when: String,
    pub title: String,
    pub commands: Vec<String>,
    pub note: String,
}

pub struct Signature {
    pub spec: SignatureSpec,
    pub regex: Regex,
}

pub struct Fact {
    pub spec: FactSpec,
    pub regex: Regex,
}

pub struct Knowledge {
    pub signatures: Vec<Signature>,
    pub facts: Vec<Fact>,
    pub remedies: Vec<RemedySpec>,
    /// Every signature pattern, then every fact pattern: finds which occur in a chunk.
    pub set: RegexSet,
}

impl Knowledge {
    /// The regex of pattern `index` in `set` order.
    pub fn regex(&self, index: usize) -> &Regex {
        if index < self.signatures.len() {
            &self.signatures[index].regex
        } else {
            &self.facts[index - self.signatures.len()].regex
        }
    }
}

static KNOWLEDGE: LazyLock<Knowledge> =
    LazyLock::new(|| load(SOURCE).unwrap_or_else(|e| panic!("signatures.toml: {e}")));

pub fn get() -> &'static Knowledge {
    &KNOWLEDGE
}

const KINDS: &[&str] = &[
    "node-heap",
    "container-memcg",
    "kernel-oom-killer",
    "build-step-killed",
    "jvm-heap",
    "jvm-metaspace",
    "go-runtime",
    "python-memoryerror",
    "enomem",
    "paas-quota",
    "not-oom",
];

pub fn load(text: &str) -> Result<Knowledge, String> {
    let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
    // Multi-line: `^`/`$` mean a line's start and end both in a chunk and on one line.
    // Unicode off: `\b`, `\s`, `\d` are ASCII, which keeps the lazy DFA from giving up on
    // non-ASCII log bytes (a Unicode word boundary makes it quit); non-ASCII literals
    // (Getötet, 已杀死) still match their UTF-8 bytes.
    let compile = |id: &str, pattern: &str| {
        RegexBuilder::new(pattern)
            .multi_line(true)
            .unicode(false)
            .build()
            .map_err(|e| format!("pattern of `{id}`: {e}"))
    };
    let mut signatures = Vec::new();
    for spec in file.signature {
        if !KINDS.contains(&spec.kind.as_str()) {
            return Err(format!(
                "signature `{}`: unknown kind `{}`",
                spec.id, spec.kind
            ));
        }
        if !["oom", "not-oom", "hint"].contains(&spec.verdict.as_str()) {
            return Err(format!("signature `{}`: unknown verdict", spec.id));
        }
        if !(0.0..=1.0).contains(&spec.strength) {
            return Err(format!("signature `{}`: strength outside 0–1", spec.id));
        }
        let regex = compile(&spec.id, &spec.pattern)?;
        signatures.push(Signature { spec, regex });
    }
    let mut facts = Vec::new();
    for spec in file.fact {
        if !["float", "int", "text", "kib", "size", "heroku"].contains(&spec.parse.as_str()) {
            return Err(format!(
                "fact `{}`: unknown parse `{}`",
                spec.id, spec.parse
            ));
        }
        let regex = compile(&spec.id, &spec.pattern)?;
        facts.push(Fact { spec, regex });
    }
    let set = RegexSetBuilder::new(
        signatures
            .iter()
            .map(|s| s.spec.pattern.as_str())
            .chain(facts.iter().map(|f| f.spec.pattern.as_str())),
    )
    .multi_line(true)
    .unicode(false)
    .dfa_size_limit(32 << 20)
    .build()
    .map_err(|e| e.to_string())?;
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
    fn the_embedded_knowledge_loads() {
        let k = load(SOURCE).unwrap();
        assert!(k.signatures.len() >= 30);
        let mut ids: Vec<_> = k.signatures.iter().map(|s| &s.spec.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), k.signatures.len(), "signature ids are unique");
        for s in &k.signatures {
            assert!(s.spec.source.starts_with("https://"), "{}", s.spec.id);
            assert!(!s.spec.meaning.is_empty());
        }
    }

    #[test]
    fn a_bad_pattern_is_reported_with_its_id() {
        let bad = "[[signature]]\nid='x'\nkind='node-heap'\nverdict='oom'\nstrength=0.5\npattern='('\nmeaning='m'\nsource='https://e'\n[[fact]]\nid='f'\nfact='a'\nparse='int'\nreduce='max'\npattern='a'\n[[remedy]]\ntitle='t'\ncommands=[]\nnote=''\n";
        let err = load(bad).err().unwrap();
        assert!(err.contains("`x`"), "{err}");
    }
}
