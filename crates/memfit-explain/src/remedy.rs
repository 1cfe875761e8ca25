//! Chooses the remedies that fit an explanation and fills their templates from its facts.

use std::collections::HashMap;

use serde::Deserialize;

use crate::knowledge::Knowledge;
use crate::report::{Explanation, HeapCeiling, Kind, Remedy, SubReason, Verdict};
use crate::scan::Scanned;

const MIB: f64 = 1024.0 * 1024.0;

/// A remedy offered when the explanation has one of its kinds (with an `oom` verdict), one of
/// its sub-reasons or one of its verdicts, and its condition holds.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RemedySpec {
    #[serde(default)]
    kinds: Vec<Kind>,
    #[serde(default)]
    sub_reasons: Vec<SubReason>,
    #[serde(default)]
    verdicts: Vec<Verdict>,
    when: Option<Condition>,
    /// Offered only when one of these signatures matched: a runtime's own remedy (Gradle's
    /// `org.gradle.jvmargs`, gunicorn's workers) for the runtime the log shows.
    #[serde(default)]
    when_matched: Vec<String>,
    /// Not offered when one of these signatures matched (measuring "the step" means nothing
    /// for a pod the kubelet evicted).
    #[serde(default)]
    unless_matched: Vec<String>,
    title: String,
    commands: Vec<String>,
    note: String,
}

/// Narrows a remedy to the failures it helps with.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Condition {
    /// The step installs packages (npm, yarn, pnpm).
    StepIsInstall,
    /// The step installs Python packages with pip.
    StepIsPipInstall,
    /// rustc, or the linker it ran, died: a Rust build.
    ProcessIsRustc,
    /// A C/C++ compiler or linker died, or the step runs make, cmake or ninja; not in a Rust
    /// build.
    ProcessIsNativeBuild,
    /// A Heroku signature matched.
    Heroku,
}

impl Condition {
    fn holds(self, e: &Explanation, scanned: &Scanned, k: &Knowledge) -> bool {
        let step = e.step.as_deref().unwrap_or_default();
        let process = e.process.as_deref().unwrap_or_default();
        match self {
            // In a step of several commands, the one that was running when it died decides:
            // `npm ci && npm run build` killed in `next build` is not an install problem.
            Condition::StepIsInstall => [
                "npm ci",
                "npm install",
                "npm i ",
                "yarn install",
                "yarn --",
                "pnpm install",
            ]
            .iter()
            .any(|s| {
                let decisive = match &e.running {
                    Some(running) if several_commands(step) || step.is_empty() => running,
                    _ => step,
                };
                format!("{decisive} ").contains(s)
            }),
            Condition::StepIsPipInstall => {
                let decisive = match &e.running {
                    Some(running) if several_commands(step) || step.is_empty() => running,
                    _ => step,
                };
                ["pip install", "pip3 install", "pip wheel"]
                    .iter()
                    .any(|s| decisive.contains(s))
            }
            Condition::ProcessIsRustc => rust_build(e, scanned, k),
            Condition::ProcessIsNativeBuild => {
                !rust_build(e, scanned, k)
                    && (process == "ld"
                        || process.starts_with("cc1")
                        || ["make", "cmake", "ninja"].iter().any(|s| step.contains(s)))
            }
            Condition::Heroku => scanned
                .hits
                .keys()
                .any(|&i| k.signatures[i].id.starts_with("heroku")),
        }
    }
}

/// rustc died, or a linker it ran (a `rustc-…` signature matched: rustc's `= note:` around the
/// linker's error), or the step is a cargo command.
fn rust_build(e: &Explanation, scanned: &Scanned, k: &Knowledge) -> bool {
    e.process
        .as_deref()
        .unwrap_or_default()
        .starts_with("rustc")
        || e.step.as_deref().unwrap_or_default().contains("cargo ")
        || scanned
            .hits
            .keys()
            .any(|&i| k.signatures[i].id.starts_with("rustc"))
}

/// Every remedy that fits, in the order remedies.toml lists them, filled from the facts.
pub(crate) fn remedies(e: &Explanation, scanned: &Scanned, k: &Knowledge) -> Vec<Remedy> {
    let vars = variables(e);
    let matched = |ids: &[String]| {
        scanned
            .hits
            .keys()
            .any(|&i| ids.contains(&k.signatures[i].id))
    };
    k.remedies
        .iter()
        .filter(|r| {
            let by_kind = e.verdict == Verdict::Oom && r.kinds.contains(&e.kind);
            let by_sub = e.sub_reason.is_some_and(|s| r.sub_reasons.contains(&s));
            let by_verdict = r.verdicts.contains(&e.verdict);
            (by_kind || by_sub || by_verdict)
                && r.when.is_none_or(|c| c.holds(e, scanned, k))
                && (r.when_matched.is_empty() || matched(&r.when_matched))
                && !matched(&r.unless_matched)
        })
        .map(|r| Remedy {
            title: fill(&r.title, &vars),
            commands: r.commands.iter().map(|c| fill(c, &vars)).collect(),
            note: fill(&r.note, &vars),
        })
        .collect()
}

impl RemedySpec {
    /// The signature ids `when_matched` and `unless_matched` name, for the loader to check.
    pub(crate) fn named_signatures(&self) -> impl Iterator<Item = &String> {
        self.when_matched.iter().chain(&self.unless_matched)
    }
}

/// Values the remedy templates may use.
fn variables(e: &Explanation) -> HashMap<&'static str, String> {
    let mut vars = HashMap::new();
    let limit_mib = e.limit_bytes.map(|b| b as f64 / MIB);
    let heap = e.heap_at_death_mb;
    let suggested_heap = match (limit_mib, heap) {
        (Some(limit), _) => ((limit * 0.75) / 64.0).floor() * 64.0,
        (None, Some(h)) => ((h * 1.5) / 512.0).ceil() * 512.0,
        (None, None) => 1536.0,
    };
    vars.insert("suggested_heap_mb", format!("{}", suggested_heap as u64));
    let limit_arg = match (e.limit_bytes, heap) {
        (Some(bytes), _) => format!("{}M", (bytes as f64 / MIB).round() as u64),
        (None, Some(h)) => format!("{}M", (((h * 2.0) / 512.0).ceil() * 512.0) as u64),
        (None, None) => "2G".to_string(),
    };
    vars.insert("limit_arg", limit_arg);
    // Without a known limit, measure unconstrained: the peak says what the step needs.
    vars.insert(
        "limit_flag",
        e.limit_bytes
            .map(|bytes| format!("--limit {}M ", (bytes as f64 / MIB).round() as u64))
            .unwrap_or_default(),
    );
    vars.insert(
        "go_memlimit",
        match limit_mib {
            Some(l) => format!("{}MiB", (l * 0.9) as u64),
            None => "1GiB".to_string(),
        },
    );
    vars.insert(
        "step",
        e.step
            .as_deref()
            .or(e.running.as_deref())
            .map(pasteable)
            .unwrap_or_else(|| "<the failing step>".to_string()),
    );
    vars.insert(
        "heap_at_death_mb",
        heap.map(|h| format!("{}", h.round() as u64))
            .unwrap_or_else(|| "?".into()),
    );
    vars.insert(
        "heap_origin",
        match e.heap_ceiling {
            Some(flag @ HeapCeiling::MaxOldSpaceSize { .. }) => {
                format!(", the ceiling set by {flag}")
            }
            Some(HeapCeiling::V8Default) if heap.is_some() => {
                ", V8's default ceiling for that machine".to_string()
            }
            _ => String::new(),
        },
    );
    vars.insert(
        "process_phrase",
        match (&e.process, e.pid) {
            (Some(p), Some(pid)) => format!("`{p}` (pid {pid})"),
            (Some(p), None) => format!("`{p}`"),
            _ => "a process of the step".to_string(),
        },
    );
    vars.insert("meaning", e.meaning.clone());
    vars
}

/// Whether a step runs several commands (`npm ci && npm run build`).
fn several_commands(step: &str) -> bool {
    ["&&", "||", ";", "|"].iter().any(|op| step.contains(op))
}

/// Shell builtins and keywords: a step that starts with one runs only in a shell.
const SHELL_WORDS: &[&str] = &[
    "cd", "export", "source", ".", "set", "exec", "if", "for", "while", "case", "umask", "ulimit",
];

/// The step as words to paste after `memfit run --` (or after `NAME=value `): as it is when it
/// is plain words, else wrapped in `sh -c '…'`, as the builder ran it — only the first
/// command of `npm ci && npm run build` would otherwise run under memfit, and `FOO=1 cmd`
/// would be taken for a program named `FOO=1`.
pub(crate) fn pasteable(step: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:@%+,=".contains(c);
    let words: Vec<&str> = step.split_whitespace().collect();
    let needs_shell = match words.first() {
        None => true,
        Some(first) => {
            first.contains('=')
                || SHELL_WORDS.contains(first)
                || words.iter().any(|w| !w.chars().all(plain))
        }
    };
    if !needs_shell {
        return words.join(" ");
    }
    format!("sh -c '{}'", step.trim().replace('\'', r"'\''"))
}

fn fill(template: &str, vars: &HashMap<&'static str, String>) -> String {
    let mut out = template.to_string();
    for (name, value) in vars {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge;

    #[test]
    fn a_step_of_plain_words_is_pasted_as_it_is() {
        assert_eq!(pasteable("npm ci --no-audit"), "npm ci --no-audit");
        assert_eq!(pasteable("npx @nestjs/cli build"), "npx @nestjs/cli build");
    }

    #[test]
    fn a_step_that_needs_a_shell_is_wrapped_and_quoted() {
        assert_eq!(
            pasteable("npm install && npm run build"),
            "sh -c 'npm install && npm run build'"
        );
        assert_eq!(
            pasteable("mode=production webpack"),
            "sh -c 'mode=production webpack'"
        );
        assert_eq!(pasteable("cd app; make"), "sh -c 'cd app; make'");
        assert_eq!(
            pasteable("echo 'it''s' $HOME"),
            r"sh -c 'echo '\''it'\'''\''s'\'' $HOME'"
        );
    }

    /// The wrapped step runs as written in a real shell: the quoting survives quotes,
    /// variables and operators.
    #[test]
    fn a_wrapped_step_runs_as_written() {
        let step = r#"printf '%s|' "a b" 'c'\''d' && echo $((1+2)); echo "$0""#;
        let pasted = pasteable(step);
        let via_paste = std::process::Command::new("sh")
            .args(["-c", &pasted])
            .output()
            .unwrap();
        let direct = std::process::Command::new("sh")
            .args(["-c", step])
            .output()
            .unwrap();
        assert_eq!(via_paste.stdout, direct.stdout, "{pasted}");
    }

    #[test]
    fn every_name_in_a_remedy_template_is_a_variable() {
        let known = variables(&crate::explain_exit_code(137));
        let name = regex::Regex::new(r"\{([a-z_]+)\}").unwrap();
        for remedy in &knowledge::get().remedies {
            let texts = [&remedy.title, &remedy.note]
                .into_iter()
                .chain(&remedy.commands);
            for text in texts {
                for found in name.captures_iter(text) {
                    assert!(
                        known.contains_key(&found[1]),
                        "{{{}}} in {text:?}",
                        &found[1]
                    );
                }
            }
        }
    }
}
