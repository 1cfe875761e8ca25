//! Weighs the hits into a verdict and fills the explanation with the facts found.

use std::collections::BTreeMap;

use crate::knowledge::{Claim, FactName, Knowledge, Signature};
use crate::remedy;
use crate::report::{Evidence, Explanation, HeapCeiling, Kind, SubReason, Verdict};
use crate::scan::{buildkit_id, Scanned};

/// A verdict needs at least this much support; below it the answer is `uncertain`.
const DECIDE: f64 = 0.6;
const MAX_EVIDENCE: usize = 8;

/// What settles an uncertain verdict: the places that record an OOM kill, or a rerun.
const DECIDE_WITH: [&str; 4] = [
    "docker inspect <container> --format '{{.State.OOMKilled}}' (true: the memory limit killed it)",
    "the cgroup's memory.events: oom_kill > 0 means an OOM kill (memory.oom_control on cgroup v1)",
    "the kernel log: dmesg | grep -i 'killed process'",
    "reproduce under the same limit: memfit run --limit <limit> -- <the step>",
];

/// Support for one kind (or sub-reason): the strongest signature, raised a little by every
/// further distinct signature that agrees (1 − Π(1 − s)), and the last line it was seen on.
#[derive(Debug, Default)]
struct Support {
    strength: f64,
    last_line: u64,
    signatures: Vec<usize>,
}

/// The hits grouped by what their signatures claim.
#[derive(Default)]
struct Tally {
    oom: BTreeMap<Kind, Support>,
    not_oom: BTreeMap<SubReason, Support>,
    hints: Vec<Hint>,
}

/// A signature that matched and points at a kind of memory failure, but cannot decide alone.
struct Hint {
    signature: usize,
    kind: Kind,
}

/// The verdict and the signatures that carried it.
struct Decision {
    verdict: Verdict,
    kind: Kind,
    sub_reason: Option<SubReason>,
    confidence: f64,
    /// Signatures whose lines are quoted as evidence.
    decisive: Vec<usize>,
}

pub(crate) fn decide(
    scanned: &Scanned,
    exit_code: Option<i32>,
    knowledge: &Knowledge,
) -> Explanation {
    let exit_code = exit_code.or_else(|| logged_exit_code(scanned));
    let mut tally = tally(scanned, knowledge);
    drop_what_memory_explains(&mut tally);
    let decision = weigh(&tally, exit_code, scanned.lines);
    let mut explanation = assemble(decision, exit_code, scanned, knowledge);
    explanation.remedies = remedy::remedies(&explanation, scanned, knowledge);
    explanation
}

/// The exit status the log reports, for when the user gave none: it can still tell a SIGTERM
/// or a segfault from a log with no memory evidence.
fn logged_exit_code(scanned: &Scanned) -> Option<i32> {
    scanned
        .facts
        .get(&FactName::ExitCode)
        .and_then(|f| f.number)
        .map(|n| n as i32)
}

/// Groups the hits by what their signatures claim. In signature order, so that equal evidence
/// always gives the same answer.
fn tally(scanned: &Scanned, knowledge: &Knowledge) -> Tally {
    let mut tally = Tally::default();
    let mut indices: Vec<usize> = scanned.hits.keys().copied().collect();
    indices.sort_unstable();
    for index in indices {
        let signature = &knowledge.signatures[index];
        let support = match signature.claim {
            Claim::Oom(kind) => tally.oom.entry(kind).or_default(),
            Claim::NotOom(sub_reason) => tally.not_oom.entry(sub_reason).or_default(),
            Claim::Hint(kind) => {
                tally.hints.push(Hint {
                    signature: index,
                    kind,
                });
                continue;
            }
        };
        support.strength = 1.0 - (1.0 - support.strength) * (1.0 - signature.strength);
        support.last_line = support.last_line.max(scanned.hits[&index].last_line());
        support.signatures.push(index);
    }
    tally
}

/// A V8 heap abort in PID 1 of a container exits 139, not 134: the kernel does not deliver
/// to PID 1 a signal it has no handler for, so abort()'s SIGABRT is ignored and glibc ends
/// the process with SIGSEGV (measured: `memfit run --pid1` and `docker run`, 139; with
/// `--init`, 134; tests/fidelity.rs and docs/fidelity.md). A segfault beside a V8 heap death
/// is that abort, not a crash.
fn drop_what_memory_explains(tally: &mut Tally) {
    if tally.oom.contains_key(&Kind::NodeHeap) {
        tally.not_oom.remove(&SubReason::Segfault);
    }
}

/// The kind (or sub-reason) with the most support. Of equal strengths the one seen last wins:
/// the log ends where the process died. A full tie goes to the later `name`, so that the
/// answer does not hang on the order the enum declares its variants in.
fn strongest<K: Copy>(
    table: &BTreeMap<K, Support>,
    name: fn(K) -> &'static str,
) -> Option<(K, &Support)> {
    table
        .iter()
        .max_by(|(a_key, a), (b_key, b)| {
            a.strength
                .total_cmp(&b.strength)
                .then(a.last_line.cmp(&b.last_line))
                .then(name(**a_key).cmp(name(**b_key)))
        })
        .map(|(key, support)| (*key, support))
}

/// Decides between memory, another cause and uncertain. Memory wins ties at `DECIDE`: a
/// process killed for memory leaves other errors behind (the build that stopped, the
/// connection it held), which must not outvote the kill.
fn weigh(tally: &Tally, exit_code: Option<i32>, lines: u64) -> Decision {
    let oom = strongest(&tally.oom, Kind::as_str);
    let not_oom = strongest(&tally.not_oom, SubReason::as_str);
    let oom_strength = oom.map_or(0.0, |(_, support)| support.strength);
    let not_strength = not_oom.map_or(0.0, |(_, support)| support.strength);
    match (oom, not_oom) {
        (Some((kind, support)), _) if oom_strength >= DECIDE && oom_strength >= not_strength => {
            memory(kind, support, not_strength)
        }
        (_, Some((sub_reason, support)))
            if not_strength >= DECIDE && not_strength > oom_strength =>
        {
            not_memory(sub_reason, support, oom_strength)
        }
        _ if !tally.hints.is_empty()
            || matches!(exit_code, Some(137) | Some(134))
            || oom_strength > 0.0 =>
        {
            uncertain(tally, oom, exit_code)
        }
        _ => from_exit_code(exit_code, lines),
    }
}

/// Out of memory. Support for another cause lowers the confidence only a little, for the
/// reason memory wins ties.
fn memory(kind: Kind, support: &Support, not_strength: f64) -> Decision {
    Decision {
        verdict: Verdict::Oom,
        kind,
        sub_reason: None,
        confidence: support.strength - 0.5 * not_strength.min(support.strength) * 0.3,
        decisive: support.signatures.clone(),
    }
}

/// Another cause. Weaker memory evidence lowers the confidence: memory may still be the
/// cause.
fn not_memory(sub_reason: SubReason, support: &Support, oom_strength: f64) -> Decision {
    Decision {
        verdict: Verdict::NotOom,
        kind: Kind::NotOom,
        sub_reason: Some(sub_reason),
        confidence: support.strength - 0.3 * oom_strength,
        decisive: support.signatures.clone(),
    }
}

/// Memory is suspected but not shown: a hint (a bare 137), weak memory signatures, or a status
/// that a memory failure also gives (137: SIGKILL; 134: SIGABRT, as V8's heap abort). The kind
/// is the best guess: the strongest memory kind, else the first hint's, else the status's.
fn uncertain(tally: &Tally, oom: Option<(Kind, &Support)>, exit_code: Option<i32>) -> Decision {
    let kind = oom
        .map(|(kind, _)| kind)
        .or_else(|| tally.hints.first().map(|hint| hint.kind))
        .unwrap_or(if exit_code == Some(134) {
            Kind::NodeHeap
        } else {
            Kind::ContainerMemcg
        });
    let mut decisive: Vec<usize> = tally.hints.iter().map(|hint| hint.signature).collect();
    if let Some((_, support)) = oom {
        decisive.extend(&support.signatures);
    }
    Decision {
        verdict: Verdict::Uncertain,
        kind,
        sub_reason: None,
        confidence: 0.5,
        decisive,
    }
}

/// No memory evidence at all: the status names the cause when it can (143: SIGTERM,
/// 139: SIGSEGV). A status alone, without a log, says little that memory was not involved.
fn from_exit_code(exit_code: Option<i32>, lines: u64) -> Decision {
    let (sub_reason, confidence) = match exit_code {
        Some(143) => (SubReason::Sigterm, 0.75),
        Some(139) => (SubReason::Segfault, 0.8),
        _ if lines > 0 => (SubReason::NoMemoryEvidence, 0.6),
        _ => (SubReason::NoMemoryEvidence, 0.3),
    };
    Decision {
        verdict: Verdict::NotOom,
        kind: Kind::NotOom,
        sub_reason: Some(sub_reason),
        confidence,
        decisive: Vec::new(),
    }
}

/// The explanation of a decision: its lines, the meaning of its strongest signature, and the
/// facts the scan extracted.
fn assemble(
    decision: Decision,
    exit_code: Option<i32>,
    scanned: &Scanned,
    knowledge: &Knowledge,
) -> Explanation {
    let strongest = strongest_signature(&decision.decisive, knowledge);
    let fact_text = |name: FactName| scanned.facts.get(&name).map(|f| f.text.clone());
    let fact_number = |name: FactName| scanned.facts.get(&name).and_then(|f| f.number);
    let heap_at_death_mb = fact_number(FactName::HeapAtDeathMb);
    Explanation {
        schema: "memfit.explain/1",
        verdict: decision.verdict,
        kind: decision.kind,
        sub_reason: decision.sub_reason,
        // Two decimals: the strengths behind it are judgements, not measurements.
        confidence: (decision.confidence.clamp(0.0, 1.0) * 100.0).round() / 100.0,
        meaning: match (strongest, decision.kind, exit_code) {
            (Some(signature), Kind::NodeHeap, Some(139)) => format!(
                "{} Status 139 is that abort in PID 1 of a container: the kernel ignores a SIGABRT PID 1 has no handler for, and glibc's abort() ends in SIGSEGV (behind an init, docker run --init or tini, it is 134).",
                signature.meaning
            ),
            (Some(signature), _, _) => signature.meaning.clone(),
            (None, _, _) => exit_meaning(exit_code, decision.sub_reason),
        },
        process: fact_text(FactName::Process)
            .or_else(|| strongest.and_then(|signature| signature.process.clone())),
        pid: fact_number(FactName::Pid).map(|p| p as i64),
        limit_bytes: fact_number(FactName::LimitBytes).map(|b| b as u64),
        heap_at_death_mb,
        heap_ceiling: heap_ceiling(
            decision.kind,
            heap_at_death_mb,
            fact_number(FactName::MaxOldSpaceMb),
        ),
        anon_rss_bytes: fact_number(FactName::AnonRssBytes).map(|b| b as u64),
        exit_code,
        step: fact_text(FactName::Step).map(|s| s.trim_start_matches("RUN ").trim().to_string()),
        running: running_command(
            scanned,
            fact_text(FactName::Step).as_deref(),
            &decision.decisive,
        ),
        node_version: fact_text(FactName::NodeVersion),
        runtime_version: fact_text(FactName::RuntimeVersion),
        evidence: quote_evidence(&decision.decisive, exit_code, scanned, knowledge),
        decide_with: match decision.verdict {
            Verdict::Uncertain => DECIDE_WITH.map(String::from).to_vec(),
            Verdict::Oom | Verdict::NotOom => Vec::new(),
        },
        remedies: Vec::new(),
        signatures_matched: signatures_matched(scanned, knowledge),
        lines_read: scanned.lines,
        bytes_read: scanned.bytes,
    }
}

/// The command the failing step was running when it died, as its script runner announced it:
/// of the failing BuildKit step (by its text, else by the step number of the last decisive
/// line), else of output without BuildKit's prefix.
fn running_command(scanned: &Scanned, step: Option<&str>, decisive: &[usize]) -> Option<String> {
    let by_step = step
        .and_then(|text| scanned.step_ids.get(text))
        .and_then(|id| scanned.commands.get(id));
    let by_line = || {
        decisive
            .iter()
            .filter_map(|index| scanned.hits.get(index))
            .flat_map(|hits| hits.all())
            .max_by_key(|hit| hit.line)
            .and_then(|hit| buildkit_id(hit.text.as_bytes()))
            .and_then(|id| scanned.commands.get(id))
    };
    by_step
        .or_else(by_line)
        .or_else(|| scanned.commands.get(""))
        .cloned()
}

/// The decisive signature that says the most: its meaning and process speak for the whole
/// explanation. Of equal strengths, the later one.
fn strongest_signature<'k>(decisive: &[usize], knowledge: &'k Knowledge) -> Option<&'k Signature> {
    decisive
        .iter()
        .map(|&index| &knowledge.signatures[index])
        .max_by(|a, b| a.strength.total_cmp(&b.strength))
}

/// The decisive lines, one per line number. A long run keeps its first and last lines: where
/// the failure started and where it ended. A status given without a log is quoted as such.
fn quote_evidence(
    decisive: &[usize],
    exit_code: Option<i32>,
    scanned: &Scanned,
    knowledge: &Knowledge,
) -> Vec<Evidence> {
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
        let tail = evidence.split_off(evidence.len() - (MAX_EVIDENCE - 2));
        evidence.truncate(2);
        evidence.extend(tail);
    }
    if let (Some(code), 0) = (exit_code, scanned.lines) {
        evidence.push(Evidence {
            line: 0,
            text: format!("exit status {code} (given with --exit-code)"),
            signature: "exit-code".into(),
            source: String::new(),
        });
    }
    evidence
}

/// V8's ceiling matters when V8's heap is involved: a node-heap failure, or a GC trace in the
/// log.
fn heap_ceiling(
    kind: Kind,
    heap_at_death_mb: Option<f64>,
    max_old_space_mb: Option<f64>,
) -> Option<HeapCeiling> {
    if kind != Kind::NodeHeap && heap_at_death_mb.is_none() {
        return None;
    }
    Some(match max_old_space_mb {
        Some(megabytes) => HeapCeiling::MaxOldSpaceSize { megabytes },
        None => HeapCeiling::V8Default,
    })
}

fn signatures_matched(scanned: &Scanned, knowledge: &Knowledge) -> Vec<String> {
    let mut ids: Vec<String> = scanned
        .hits
        .keys()
        .map(|&index| knowledge.signatures[index].id.clone())
        .collect();
    ids.sort();
    ids
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

#[cfg(test)]
mod tests {
    use super::*;

    fn explain(log: &str) -> Explanation {
        crate::explain(log.as_bytes(), None).unwrap()
    }

    #[test]
    fn a_v8_heap_abort_that_exits_139_was_pid_1_not_a_crash() {
        let e = explain("FATAL ERROR: Ineffective mark-compacts near heap limit Allocation failed - JavaScript heap out of memory\nerror Command failed with exit code 139.\n");
        assert_eq!(e.verdict, Verdict::Oom);
        assert_eq!(e.kind, Kind::NodeHeap);
        assert!(e.confidence >= 0.95, "{}", e.confidence);
        assert!(e.meaning.contains("PID 1"), "{}", e.meaning);
    }

    #[test]
    fn equal_support_on_one_line_goes_to_the_later_name() {
        // v8-heap-out-of-memory and k8s-oomkilled-reason both weigh 0.97.
        let e = explain("JavaScript heap out of memory; Reason: OOMKilled\n");
        assert_eq!(e.kind, Kind::NodeHeap);
        let e = explain("Segmentation fault error TS2322: bad\n");
        assert_eq!(e.sub_reason, Some(SubReason::Segfault));
    }

    #[test]
    fn a_heap_flag_in_the_log_is_named_as_the_ceiling() {
        let e = explain(
            "node --max-old-space-size=4096 build.js\n\
             Mark-sweep 4000.1 (4100.2) -> 3990.5 (4090.1) MB\n\
             FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory\n",
        );
        assert_eq!(
            e.heap_ceiling,
            Some(HeapCeiling::MaxOldSpaceSize { megabytes: 4096.0 })
        );
        assert!(
            e.remedies[0]
                .note
                .contains("~3991 MB of heap, the ceiling set by --max-old-space-size=4096."),
            "{}",
            e.remedies[0].note
        );
    }

    /// BuildKit's plain progress of `RUN npm ci && npm run build` (Docker 24, `--progress
    /// plain`): the install finished, `next build` was killed. Another step (#9) ran a
    /// command of its own at the same time.
    const NEXT_BUILD_KILLED: &str = "#9 [deps 3/3] RUN pnpm fetch\n\
#9 1.201 $ node scripts/prefetch.js\n\
#12 [builder 4/5] RUN npm ci && npm run build\n\
#12 2.113 npm warn deprecated inflight@1.0.6: This module is not supported\n\
#12 31.90 added 412 packages, and audited 413 packages in 30s\n\
#12 31.95 \n\
#12 31.95 > web@0.1.0 build\n\
#12 31.95 > next build\n\
#12 33.02    Creating an optimized production build ...\n\
#12 95.71 Killed\n\
#12 ERROR: process \"/bin/sh -c npm ci && npm run build\" did not complete successfully: exit code: 137\n\
------\n\
 > [builder 4/5] RUN npm ci && npm run build:\n\
------\n\
ERROR: failed to solve: process \"/bin/sh -c npm ci && npm run build\" did not complete successfully: exit code: 137\n";

    #[test]
    fn the_command_a_killed_step_was_running_decides_the_remedies() {
        let e = explain(NEXT_BUILD_KILLED);
        assert_eq!(e.verdict, Verdict::Oom);
        assert_eq!(e.step.as_deref(), Some("npm ci && npm run build"));
        assert_eq!(e.running.as_deref(), Some("next build"));
        let titles: Vec<&str> = e.remedies.iter().map(|r| r.title.as_str()).collect();
        assert!(
            !titles
                .iter()
                .any(|t| t.contains("Install with less memory")),
            "{titles:?}"
        );
        // Pasted as printed, the whole step runs under memfit, not only `npm ci`.
        let commands: Vec<&str> = e
            .remedies
            .iter()
            .flat_map(|r| r.commands.iter().map(String::as_str))
            .collect();
        assert!(
            commands.contains(&"memfit run --cpus 1 -- sh -c 'npm ci && npm run build'"),
            "{commands:?}"
        );
    }

    #[test]
    fn a_killed_install_step_still_gets_the_install_remedy() {
        let log = NEXT_BUILD_KILLED
            .replace("RUN npm ci && npm run build", "RUN npm ci")
            .replace("npm ci && npm run build", "npm ci")
            .replace("#12 31.95 > web@0.1.0 build\n#12 31.95 > next build\n", "");
        let e = explain(&log);
        assert_eq!(e.step.as_deref(), Some("npm ci"));
        assert!(
            e.remedies
                .iter()
                .any(|r| r.title.contains("Install with less memory")),
            "{:?}",
            e.remedies
        );
    }

    #[test]
    fn a_memory_kill_wins_a_tie_with_the_errors_it_leaves_behind() {
        // docker-build-step-137 and network both weigh 0.75.
        let e = explain(
            "npm ERR! network socket hang up\n\
             The command '/bin/sh -c npm ci' returned a non-zero code: 137\n",
        );
        assert_eq!(e.verdict, Verdict::Oom);
        assert_eq!(e.kind, Kind::BuildStepKilled);
    }
}
