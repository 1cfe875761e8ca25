//! `compare`: two run reports (or two bisect reports) side by side, and the CI gate on a
//! memory regression: NEW's peak (for bisect reports, the smallest limit that passed) may
//! exceed BASE's by at most an allowance. The JSON form is versioned
//! (`schema: "memfit.compare/1"`); the renderers ([`markdown`], [`html`]) only read the model.

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;

use memfit_core::ByteSize;
use serde::{Deserialize, Serialize};

use crate::{RunReport, RUN_SCHEMA};

pub mod html;
pub mod markdown;

/// The schema of a comparison's JSON form.
pub const COMPARE_SCHEMA: &str = "memfit.compare/1";
/// The schema of a bisect report (`memfit bisect --json`).
pub const BISECT_SCHEMA: &str = "memfit.bisect/1";

/// How much NEW may exceed BASE.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Allowance {
    /// A share of BASE's value, e.g. `10%`.
    Percent(f64),
    /// A size, e.g. `50M`.
    Bytes(u64),
}

impl FromStr for Allowance {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(pct) = text.trim().strip_suffix('%') {
            return match pct.trim().parse::<f64>() {
                Ok(p) if p.is_finite() && (0.0..=10_000.0).contains(&p) => {
                    Ok(Allowance::Percent(p))
                }
                _ => Err(format!(
                    "invalid allowance `{text}`: a percentage from 0 to 10000, e.g. 10%"
                )),
            };
        }
        ByteSize::parse_with_unit(text)
            .map(|size| Allowance::Bytes(size.bytes()))
            .map_err(|e| {
                format!("invalid allowance `{text}`: use a percentage (10%) or a size with a unit (50M); {e}")
            })
    }
}

impl Allowance {
    /// The most NEW may be, given BASE's value.
    pub fn ceiling(self, base: u64) -> u64 {
        match self {
            Allowance::Percent(p) => base.saturating_add((base as f64 * p / 100.0) as u64),
            Allowance::Bytes(b) => base.saturating_add(b),
        }
    }

    pub fn describe(self) -> String {
        match self {
            Allowance::Percent(p) => format!("{p}%"),
            Allowance::Bytes(b) => ByteSize(b).to_string(),
        }
    }
}

/// A report `compare` reads: a run's or a bisect's.
#[derive(Debug, Clone)]
pub enum Report {
    Run(Box<RunReport>),
    Bisect(BisectSummary),
}

/// What `compare` reads of a bisect report (`memfit.bisect/1`).
#[derive(Debug, Clone, Deserialize)]
pub struct BisectSummary {
    pub command: Vec<String>,
    pub min_passing_bytes: Option<u64>,
    pub max_failing_bytes: Option<u64>,
    pub recommended_bytes: Option<u64>,
    pub band: String,
    pub unconstrained_peak_bytes: u64,
    pub tries: Vec<BisectTry>,
    pub interrupted: bool,
}

/// What `compare` reads of one try of a bisect.
#[derive(Debug, Clone, Deserialize)]
pub struct BisectTry {
    pub passed: bool,
    pub oom_killed: Option<bool>,
    pub duration_ms: u64,
}

/// Why a file is not a report `compare` reads.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("it ends before its JSON does (line {line}, column {column}): the file was cut short")]
    Truncated { line: usize, column: usize },
    #[error("it is not JSON ({0})")]
    NotJson(serde_json::Error),
    #[error("it has no `schema` field, so it is not a memfit report")]
    NoSchema,
    #[error("its schema is `{0}`, not a run ({RUN_SCHEMA}) or bisect ({BISECT_SCHEMA}) report")]
    OtherSchema(String),
    #[error("it was written by a newer memfit (schema `{found}`); this memfit {version} reads {reads}: upgrade memfit", version = env!("CARGO_PKG_VERSION"))]
    Newer { found: String, reads: &'static str },
    /// `error` is cut short: serde quotes the offending value, which comes from the file.
    #[error("it says {schema} but does not hold one ({error})")]
    Malformed { schema: &'static str, error: String },
}

/// Reads a run or bisect report from its JSON text.
pub fn parse_report(text: &str) -> Result<Report, LoadError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        if e.classify() == serde_json::error::Category::Eof {
            LoadError::Truncated {
                line: e.line(),
                column: e.column(),
            }
        } else {
            LoadError::NotJson(e)
        }
    })?;
    let schema = value
        .get("schema")
        .and_then(|s| s.as_str())
        .ok_or(LoadError::NoSchema)?
        .to_string();
    for known in [RUN_SCHEMA, BISECT_SCHEMA] {
        let (family, _) = known.split_once('/').unwrap_or((known, ""));
        let Some(version) = schema
            .strip_prefix(family)
            .and_then(|v| v.strip_prefix('/'))
        else {
            continue;
        };
        if schema == known {
            return if known == RUN_SCHEMA {
                serde_json::from_value(value)
                    .map(|r| Report::Run(Box::new(r)))
                    .map_err(|error| LoadError::Malformed {
                        schema: RUN_SCHEMA,
                        error: shorten(&error.to_string(), 160),
                    })
            } else {
                serde_json::from_value(value)
                    .map(Report::Bisect)
                    .map_err(|error| LoadError::Malformed {
                        schema: BISECT_SCHEMA,
                        error: shorten(&error.to_string(), 160),
                    })
            };
        }
        if version.parse::<u32>().is_ok_and(|v| v > 1) {
            return Err(LoadError::Newer {
                found: shorten(&schema, 40),
                reads: known,
            });
        }
    }
    Err(LoadError::OtherSchema(shorten(&schema, 40)))
}

/// What is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Run,
    Bisect,
}

/// The number the gate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GateMetric {
    /// A run's charged peak (the kernel's watermark where there was a cgroup).
    ChargedPeak,
    /// A bisect's smallest limit that always passed.
    MinPassingLimit,
}

impl GateMetric {
    pub fn describe(self) -> &'static str {
        match self {
            GateMetric::ChargedPeak => "charged peak",
            GateMetric::MinPassingLimit => "smallest passing limit",
        }
    }
}

/// The gate's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// NEW is within the allowance.
    Pass,
    /// NEW exceeds BASE by more than the allowance.
    Fail,
    /// No allowance was given: the comparison only.
    NoGate,
}

/// One report's side of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub command: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    pub limit_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charged_peak_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_peak_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_passing_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recommended_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unconstrained_peak_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub band: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tries: Option<usize>,
    /// A run's duration; a bisect's, all its tries together.
    pub duration_ms: u64,
    /// Processes the kernel OOM-killed (a run), or tries that were OOM-killed (a bisect).
    pub oom_kills: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<String>,
}

/// A process found in both runs (by its command line, pids normalised away).
#[derive(Debug, Clone, Serialize)]
pub struct ProcessDelta {
    pub command: String,
    pub base_peak_bytes: u64,
    pub new_peak_bytes: u64,
    pub change_bytes: i64,
    /// How many processes ran this command line in each run.
    pub base_count: usize,
    pub new_count: usize,
}

/// A process found in one run only.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessPeak {
    pub command: String,
    pub peak_bytes: u64,
    pub count: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcessChanges {
    /// Processes in both runs, the largest change first.
    pub changed: Vec<ProcessDelta>,
    /// Processes only NEW ran, the largest first.
    pub new: Vec<ProcessPeak>,
    /// Processes only BASE ran, the largest first.
    pub gone: Vec<ProcessPeak>,
}

/// Two reports side by side, and the gate's answer.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub schema: &'static str,
    pub memfit_version: &'static str,
    pub kind: Kind,
    pub base: Side,
    pub new: Side,
    pub gate_metric: GateMetric,
    /// The gate's number in each report; `null` when a bisect found no passing limit.
    pub base_bytes: Option<u64>,
    pub new_bytes: Option<u64>,
    pub change_bytes: Option<i64>,
    pub change_percent: Option<f64>,
    pub max_increase: Option<Allowance>,
    /// The most NEW may be under the allowance.
    pub allowed_bytes: Option<u64>,
    pub verdict: Verdict,
    pub processes: ProcessChanges,
    pub notes: Vec<String>,
}

/// Why two reports cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("BASE is a {base} report and NEW a {new} report: compare two run reports or two bisect reports")]
    MixedKinds {
        base: &'static str,
        new: &'static str,
    },
    #[error("the {side} bisect found no limit that always passed ({band}), so there is nothing to gate on: run the bisect again to its end")]
    NoPassingLimit { side: &'static str, band: String },
}

impl Report {
    pub fn kind_name(&self) -> &'static str {
        match self {
            Report::Run(_) => "run",
            Report::Bisect(_) => "bisect",
        }
    }
}

/// Compares NEW with BASE; with an allowance, the gate answers too.
pub fn compare(
    base: &Report,
    new: &Report,
    max_increase: Option<Allowance>,
) -> Result<Comparison, CompareError> {
    let (kind, gate_metric, base_side, new_side, base_bytes, new_bytes, processes, notes) =
        match (base, new) {
            (Report::Run(b), Report::Run(n)) => (
                Kind::Run,
                GateMetric::ChargedPeak,
                run_side(b),
                run_side(n),
                Some(b.peak.charged_bytes),
                Some(n.peak.charged_bytes),
                process_changes(b, n),
                run_notes(b, n),
            ),
            (Report::Bisect(b), Report::Bisect(n)) => {
                if max_increase.is_some() {
                    for (side, report) in [("BASE", b), ("NEW", n)] {
                        if report.min_passing_bytes.is_none() {
                            return Err(CompareError::NoPassingLimit {
                                side,
                                band: shorten(&report.band, 120),
                            });
                        }
                    }
                }
                (
                    Kind::Bisect,
                    GateMetric::MinPassingLimit,
                    bisect_side(b),
                    bisect_side(n),
                    b.min_passing_bytes,
                    n.min_passing_bytes,
                    ProcessChanges::default(),
                    bisect_notes(b, n),
                )
            }
            (b, n) => {
                return Err(CompareError::MixedKinds {
                    base: b.kind_name(),
                    new: n.kind_name(),
                })
            }
        };
    let change_bytes = base_bytes.zip(new_bytes).map(|(b, n)| n as i64 - b as i64);
    let change_percent = base_bytes
        .zip(change_bytes)
        .filter(|(b, _)| *b > 0)
        .map(|(b, c)| 100.0 * c as f64 / b as f64);
    let allowed_bytes = max_increase.zip(base_bytes).map(|(a, b)| a.ceiling(b));
    let verdict = match (allowed_bytes, new_bytes) {
        (Some(allowed), Some(new)) if new > allowed => Verdict::Fail,
        (Some(_), _) => Verdict::Pass,
        (None, _) => Verdict::NoGate,
    };
    Ok(Comparison {
        schema: COMPARE_SCHEMA,
        memfit_version: env!("CARGO_PKG_VERSION"),
        kind,
        base: base_side,
        new: new_side,
        gate_metric,
        base_bytes,
        new_bytes,
        change_bytes,
        change_percent,
        max_increase,
        allowed_bytes,
        verdict,
        processes,
        notes,
    })
}

impl Comparison {
    /// The gate's answer in one sentence, e.g. "charged peak rose 50 MiB (+97.1%), more than
    /// --max-increase 10% allows (at most 57.5 MiB)".
    pub fn verdict_line(&self) -> String {
        let metric = self.gate_metric.describe();
        let (Some(base), Some(new)) = (self.base_bytes, self.new_bytes) else {
            return format!("no {metric} in both reports to compare");
        };
        let change = format!(
            "{metric} {} → {} ({})",
            ByteSize(base),
            ByteSize(new),
            signed_change(self.change_bytes.unwrap_or(0), self.change_percent)
        );
        match (self.verdict, self.max_increase, self.allowed_bytes) {
            (Verdict::Fail, Some(a), Some(allowed)) => format!(
                "FAILED: {change}, more than --max-increase {} allows (at most {})",
                a.describe(),
                ByteSize(allowed)
            ),
            (Verdict::Pass, Some(a), Some(allowed)) => format!(
                "passed: {change}, within --max-increase {} (at most {})",
                a.describe(),
                ByteSize(allowed)
            ),
            _ => change,
        }
    }
}

/// `+50 MiB, +97.1%`, `−3 MiB, −2.0%`.
pub fn signed_change(bytes: i64, percent: Option<f64>) -> String {
    let size = signed_size(bytes);
    match percent {
        Some(p) if p >= 0.0 => format!("{size}, +{p:.1}%"),
        Some(p) => format!("{size}, −{:.1}%", -p),
        None => size,
    }
}

/// `+50 MiB`, `−3 MiB`, `±0 B`.
pub fn signed_size(bytes: i64) -> String {
    match bytes {
        0 => "±0 B".to_string(),
        b if b > 0 => format!("+{}", ByteSize(b as u64)),
        b => format!("−{}", ByteSize(b.unsigned_abs())),
    }
}

fn run_side(report: &RunReport) -> Side {
    Side {
        command: report.command.join(" "),
        mode: Some(report.mode.as_str()),
        limit_bytes: report.limit_that_held(),
        charged_peak_bytes: Some(report.peak.charged_bytes),
        working_peak_bytes: Some(report.peak.working_bytes),
        min_passing_bytes: None,
        recommended_bytes: None,
        unconstrained_peak_bytes: None,
        band: None,
        tries: None,
        duration_ms: report.duration_ms,
        oom_kills: report.oom.kill_count,
        exit_status: Some(report.exit.status),
        exit: Some(report.exit.description.clone()),
    }
}

fn bisect_side(report: &BisectSummary) -> Side {
    Side {
        command: report.command.join(" "),
        mode: None,
        limit_bytes: None,
        charged_peak_bytes: None,
        working_peak_bytes: None,
        min_passing_bytes: report.min_passing_bytes,
        recommended_bytes: report.recommended_bytes,
        unconstrained_peak_bytes: Some(report.unconstrained_peak_bytes),
        band: Some(report.band.clone()),
        tries: Some(report.tries.len()),
        duration_ms: report
            .tries
            .iter()
            .fold(0u64, |sum, t| sum.saturating_add(t.duration_ms)),
        oom_kills: report
            .tries
            .iter()
            .filter(|t| t.oom_killed == Some(true))
            .count() as u64,
        exit_status: None,
        exit: None,
    }
}

/// What makes two runs' numbers compare less well, said once each.
fn run_notes(base: &RunReport, new: &RunReport) -> Vec<String> {
    let mut notes = Vec::new();
    if base.command != new.command {
        notes.push("BASE and NEW ran different command lines".to_string());
    }
    if base.mode != new.mode {
        notes.push(format!(
            "BASE was measured {} and NEW {}: their peaks come from different sources",
            base.mode.as_str(),
            new.mode.as_str()
        ));
    } else if base.mode == crate::Mode::MeasureOnly {
        notes.push("both runs were measure-only: their peaks are sampled, and a spike between two samples is missed".to_string());
    }
    if base.limit_that_held() != new.limit_that_held() {
        let limit = |l: Option<u64>| l.map_or("no limit".to_string(), |l| ByteSize(l).to_string());
        notes.push(format!(
            "BASE ran under {} and NEW under {}: runtimes that size their heap from the limit (Node.js, the JVM) use more under a larger one",
            limit(base.limit_that_held()),
            limit(new.limit_that_held())
        ));
    }
    for (side, report) in [("BASE", base), ("NEW", new)] {
        if report.oom_killed == Some(true) {
            notes.push(format!(
                "{side} was OOM-killed: its peak is capped by its limit, what it needed is more"
            ));
        } else if report.exit.status != 0 {
            notes.push(format!(
                "{side} failed (status {}): it may have stopped before its peak",
                report.exit.status
            ));
        }
    }
    notes
}

fn bisect_notes(base: &BisectSummary, new: &BisectSummary) -> Vec<String> {
    let mut notes = Vec::new();
    if base.command != new.command {
        notes.push("BASE and NEW bisected different command lines".to_string());
    }
    for (side, report) in [("BASE", base), ("NEW", new)] {
        if report.interrupted {
            notes.push(format!(
                "{side}'s bisect was interrupted: its band is what it learnt before"
            ));
        }
    }
    notes
}

/// Peak and count of each command line of a run.
fn processes_by_command(report: &RunReport) -> BTreeMap<String, (u64, usize)> {
    let pids: HashSet<String> = report
        .processes
        .iter()
        .filter(|p| p.pid > 9)
        .map(|p| p.pid.to_string())
        .collect();
    let mut by_command: BTreeMap<String, (u64, usize)> = BTreeMap::new();
    for process in &report.processes {
        let entry = by_command
            .entry(normalise_pids(&process.command, &pids))
            .or_default();
        entry.0 = entry.0.max(process.peak_rss_bytes);
        entry.1 += 1;
    }
    by_command
}

/// A command line with the run's own pids (in temporary paths, `--pid 1234`) written as
/// `<pid>`, so that the same command matches in two runs.
fn normalise_pids(command: &str, pids: &HashSet<String>) -> String {
    let mut out = String::with_capacity(command.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if pids.contains(digits.as_str()) {
            out.push_str("<pid>");
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in command.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
}

fn process_changes(base: &RunReport, new: &RunReport) -> ProcessChanges {
    let before = processes_by_command(base);
    let after = processes_by_command(new);
    let mut changes = ProcessChanges::default();
    for (command, &(peak, count)) in &after {
        match before.get(command) {
            Some(&(base_peak, base_count)) => changes.changed.push(ProcessDelta {
                command: command.clone(),
                base_peak_bytes: base_peak,
                new_peak_bytes: peak,
                change_bytes: peak as i64 - base_peak as i64,
                base_count,
                new_count: count,
            }),
            None => changes.new.push(ProcessPeak {
                command: command.clone(),
                peak_bytes: peak,
                count,
            }),
        }
    }
    for (command, &(peak, count)) in &before {
        if !after.contains_key(command) {
            changes.gone.push(ProcessPeak {
                command: command.clone(),
                peak_bytes: peak,
                count,
            });
        }
    }
    changes
        .changed
        .sort_by_key(|d| std::cmp::Reverse(d.change_bytes.unsigned_abs()));
    changes.new.sort_by_key(|p| std::cmp::Reverse(p.peak_bytes));
    changes
        .gone
        .sort_by_key(|p| std::cmp::Reverse(p.peak_bytes));
    changes
}

/// At most `max` characters, with `…` where cut.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{kept}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowances_parse_percentages_and_sizes_with_units() {
        assert_eq!("10%".parse(), Ok(Allowance::Percent(10.0)));
        assert_eq!("50M".parse(), Ok(Allowance::Bytes(50 * 1024 * 1024)));
        assert!("50".parse::<Allowance>().is_err());
        assert!("-5%".parse::<Allowance>().is_err());
        assert!("abc".parse::<Allowance>().is_err());
        assert_eq!(Allowance::Percent(10.0).ceiling(1000), 1100);
        assert_eq!(Allowance::Bytes(5).ceiling(u64::MAX), u64::MAX);
    }

    #[test]
    fn only_the_runs_own_pids_are_normalised() {
        let pids: HashSet<String> = ["4242".to_string()].into();
        assert_eq!(
            normalise_pids("tsc --out /tmp/tsc-4242/x 50M", &pids),
            "tsc --out /tmp/tsc-<pid>/x 50M"
        );
    }

    #[test]
    fn a_future_schema_is_named_as_such() {
        let error = parse_report(r#"{"schema":"memfit.run/2"}"#).unwrap_err();
        assert!(matches!(error, LoadError::Newer { .. }), "{error}");
        let error = parse_report(r#"{"schema":"memfit.run/1","#).unwrap_err();
        assert!(matches!(error, LoadError::Truncated { .. }), "{error}");
    }
}
