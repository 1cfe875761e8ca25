//! Weighs the hits into a verdict and fills the explanation with the facts found.

use std::collections::BTreeMap;

use crate::knowledge::{Claim, FactName, Knowledge};
use crate::remedy;
use crate::report::{Evidence, Explanation, HeapCeiling, Kind, SubReason, Verdict};
use crate::scan::Scanned;

/// A verdict needs at least this much support; below it the answer is `uncertain`.
const DECIDE: f64 = 0.6;
const MAX_EVIDENCE: usize = 8;

/// Support for one kind (or sub-reason): the strongest signature, raised a little by every
/// further distinct signature that agrees (1 − Π(1 − s)), and the last line it was seen on.
#[derive(Debug, Clone, Default)]
struct Support {
    strength: f64,
    last_line: u64,
    signatures: Vec<usize>,
}

pub(crate) fn decide(
    scanned: &Scanned,
    exit_code: Option<i32>,
    knowledge: &Knowledge,
) -> Explanation {
    let mut oom: BTreeMap<Kind, Support> = BTreeMap::new();
    let mut not_oom: BTreeMap<SubReason, Support> = BTreeMap::new();
    let mut hints: Vec<usize> = Vec::new();
    // In signature order, so that equal evidence always gives the same answer.
    let mut indices: Vec<usize> = scanned.hits.keys().copied().collect();
    indices.sort_unstable();
    for index in indices {
        let hits = &scanned.hits[&index];
        let signature = &knowledge.signatures[index];
        let support = match signature.claim {
            Claim::Oom(kind) => oom.entry(kind).or_default(),
            Claim::NotOom(sub_reason) => not_oom.entry(sub_reason).or_default(),
            Claim::Hint(_) => {
                hints.push(index);
                continue;
            }
        };
        support.strength = 1.0 - (1.0 - support.strength) * (1.0 - signature.strength);
        support.last_line = support.last_line.max(hits.last_line());
        support.signatures.push(index);
    }
    fn best<K: Copy>(table: &BTreeMap<K, Support>) -> Option<(K, Support)> {
        table
            .iter()
            .max_by(|a, b| {
                a.1.strength
                    .partial_cmp(&b.1.strength)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then(a.1.last_line.cmp(&b.1.last_line))
            })
            .map(|(k, s)| (*k, s.clone()))
    }
    let best_oom = best(&oom);
    let best_not = best(&not_oom);
    let exit_code = exit_code.or_else(|| {
        scanned
            .facts
            .get(&FactName::ExitCode)
            .and_then(|f| f.number)
            .map(|n| n as i32)
    });

    let oom_strength = best_oom.as_ref().map_or(0.0, |b| b.1.strength);
    let not_strength = best_not.as_ref().map_or(0.0, |b| b.1.strength);
    let (verdict, kind, sub_reason, confidence, decisive): (
        Verdict,
        Kind,
        Option<SubReason>,
        f64,
        Vec<usize>,
    ) = if oom_strength >= DECIDE && oom_strength >= not_strength {
        let (kind, support) = best_oom
            .clone()
            .unwrap_or((Kind::NotOom, Support::default()));
        let confidence = oom_strength - 0.5 * not_strength.min(oom_strength) * 0.3;
        (Verdict::Oom, kind, None, confidence, support.signatures)
    } else if not_strength >= DECIDE && not_strength > oom_strength {
        let (sub, support) = best_not
            .clone()
            .unwrap_or((SubReason::NoMemoryEvidence, Support::default()));
        let confidence = not_strength - 0.3 * oom_strength;
        (
            Verdict::NotOom,
            Kind::NotOom,
            Some(sub),
            confidence,
            support.signatures,
        )
    } else if !hints.is_empty() || matches!(exit_code, Some(137) | Some(134)) || oom_strength > 0.0
    {
        let kind = best_oom
            .as_ref()
            .map(|b| b.0)
            .or_else(|| {
                hints.first().map(|&i| match knowledge.signatures[i].claim {
                    Claim::Oom(kind) | Claim::Hint(kind) => kind,
                    Claim::NotOom(_) => Kind::NotOom,
                })
            })
            .unwrap_or(if exit_code == Some(134) {
                Kind::NodeHeap
            } else {
                Kind::ContainerMemcg
            });
        let mut decisive = hints.clone();
        if let Some((_, s)) = &best_oom {
            decisive.extend(&s.signatures);
        }
        (Verdict::Uncertain, kind, None, 0.5, decisive)
    } else {
        match exit_code {
            Some(143) => (
                Verdict::NotOom,
                Kind::NotOom,
                Some(SubReason::Sigterm),
                0.75,
                vec![],
            ),
            Some(139) => (
                Verdict::NotOom,
                Kind::NotOom,
                Some(SubReason::Segfault),
                0.8,
                vec![],
            ),
            _ => (
                Verdict::NotOom,
                Kind::NotOom,
                Some(SubReason::NoMemoryEvidence),
                if scanned.lines > 0 { 0.6 } else { 0.3 },
                vec![],
            ),
        }
    };

    let mut evidence: Vec<Evidence> = decisive
        .iter()
        .flat_map(|&index| {
            let signature = &knowledge.signatures[index];
            scanned.hits[&index].all().map(move |h| Evidence {
                line: h.line,
                text: h.text.clone(),
                signature: signature.id.clone(),
                source: signature.source.clone(),
            })
        })
        .collect();
    evidence.sort_by_key(|e| e.line);
    evidence.dedup_by_key(|e| e.line);
    if evidence.len() > MAX_EVIDENCE {
        // Keep the first and the last lines: where it started and where it ended.
        let tail = evidence.split_off(evidence.len() - (MAX_EVIDENCE - 2));
        evidence.truncate(2);
        evidence.extend(tail);
    }
    if let (Some(code), true) = (exit_code, scanned.lines == 0) {
        evidence.push(Evidence {
            line: 0,
            text: format!("exit status {code} (given with --exit-code)"),
            signature: "exit-code".into(),
            source: String::new(),
        });
    }

    let strongest = decisive.iter().copied().max_by(|&a, &b| {
        let sa = knowledge.signatures[a].strength;
        let sb = knowledge.signatures[b].strength;
        sa.partial_cmp(&sb).unwrap_or(std::cmp::Ordering::Equal)
    });
    let meaning = strongest
        .map(|i| knowledge.signatures[i].meaning.clone())
        .unwrap_or_else(|| exit_meaning(exit_code, sub_reason));

    let fact_text = |name: FactName| scanned.facts.get(&name).map(|f| f.text.clone());
    let fact_number = |name: FactName| scanned.facts.get(&name).and_then(|f| f.number);
    let process = fact_text(FactName::Process)
        .or_else(|| strongest.and_then(|i| knowledge.signatures[i].process.clone()));
    let limit_bytes = fact_number(FactName::LimitBytes).map(|b| b as u64);
    let heap_at_death_mb = fact_number(FactName::HeapAtDeathMb);
    let max_old_space = fact_number(FactName::MaxOldSpaceMb);
    let heap_ceiling = if kind == Kind::NodeHeap || heap_at_death_mb.is_some() {
        Some(match max_old_space {
            Some(megabytes) => HeapCeiling::MaxOldSpaceSize { megabytes },
            None => HeapCeiling::V8Default,
        })
    } else {
        None
    };
    let step = fact_text(FactName::Step).map(|s| s.trim_start_matches("RUN ").trim().to_string());

    let mut explanation = Explanation {
        schema: "memfit.explain/1",
        verdict,
        kind,
        sub_reason,
        confidence: (confidence.clamp(0.0, 1.0) * 100.0).round() / 100.0,
        meaning,
        process,
        pid: fact_number(FactName::Pid).map(|p| p as i64),
        limit_bytes,
        heap_at_death_mb,
        heap_ceiling,
        anon_rss_bytes: fact_number(FactName::AnonRssBytes).map(|b| b as u64),
        exit_code,
        step,
        node_version: fact_text(FactName::NodeVersion),
        runtime_version: fact_text(FactName::RuntimeVersion),
        evidence,
        decide_with: Vec::new(),
        remedies: Vec::new(),
        signatures_matched: {
            let mut ids: Vec<String> = scanned
                .hits
                .keys()
                .map(|&i| knowledge.signatures[i].id.clone())
                .collect();
            ids.sort();
            ids
        },
        lines_read: scanned.lines,
        bytes_read: scanned.bytes,
    };
    if explanation.verdict == Verdict::Uncertain {
        explanation.decide_with = vec![
            "docker inspect <container> --format '{{.State.OOMKilled}}' (true: the memory limit killed it)".into(),
            "the cgroup's memory.events: oom_kill > 0 means an OOM kill (memory.oom_control on cgroup v1)".into(),
            "the kernel log: dmesg | grep -i 'killed process'".into(),
            "reproduce under the same limit: memfit run --limit <limit> -- <the step>".into(),
        ];
    }
    explanation.remedies = remedy::remedies(&explanation, scanned, knowledge);
    explanation
}

fn exit_meaning(exit_code: Option<i32>, sub_reason: Option<SubReason>) -> String {
    match (exit_code, sub_reason) {
        (Some(137), _) => "Status 137 means SIGKILL (128 + 9). The kernel's OOM killer sends SIGKILL, but so do docker stop after its timeout, Kubernetes after a failed probe, and kill -9: the status alone cannot tell.".into(),
        (Some(134), _) => "Status 134 means SIGABRT (128 + 6): a V8 heap abort (\"JavaScript heap out of memory\") ends this way, as does any failed assertion. The log's last lines tell which.".into(),
        (Some(143), _) => "Status 143 means SIGTERM (128 + 15): something asked the process to stop. The OOM killer never sends SIGTERM.".into(),
        (Some(139), _) => "Status 139 means SIGSEGV (128 + 11): a crash in native code, not a memory limit.".into(),
        (Some(0), _) => "Status 0: the command succeeded.".into(),
        (Some(1), _) => "Status 1 is a generic failure. Wrappers (npm, yarn, gradle) also exit 1 when a process they ran was OOM-killed, so read the lines above it.".into(),
        (_, Some(SubReason::NoMemoryEvidence)) => "Nothing in this log points to memory: no OOM message, no SIGKILL, no memory limit.".into(),
        _ => "No decisive line.".into(),
    }
}
