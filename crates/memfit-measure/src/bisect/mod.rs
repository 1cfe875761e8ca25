//! `bisect`: the smallest limit at which a command still succeeds, as a band.
//!
//! One unconstrained run bounds the search (its charged peak is an upper bound), then a
//! binary search with a fresh cgroup per try. Boundary limits are tried `repeat` times
//! because garbage-collected runtimes size their heaps from the limit (V8 from the cgroup:
//! nodejs/node#35573, #64646) and network timing, caches, JIT and GC make tries unequal.

use std::str::FromStr;

use memfit_core::ByteSize;
use serde::Serialize;

use crate::docker::DockerCommand;
use crate::run::{run, RunError, RunOptions};
use crate::signals::SignalWatcher;
use crate::{Mode, RunReport};

mod band;
mod search;
mod setup;

const PAGE: u64 = 4096;
/// Docker's minimum `--memory`.
const DEFAULT_LO: u64 = 6 * 1024 * 1024;
/// Headroom added to the smallest passing limit for the recommendation: GC'd runtimes,
/// inputs and dependencies vary between runs and grow over time.
const HEADROOM_PERCENT: u64 = 20;

/// How narrow the final band must be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Precision {
    Bytes(u64),
    /// A percentage of the upper bound.
    Percent(f64),
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(pct) = text.trim().strip_suffix('%') {
            return match pct.trim().parse::<f64>() {
                Ok(p) if p > 0.0 && p < 100.0 => Ok(Precision::Percent(p)),
                _ => Err(format!(
                    "invalid precision `{text}`: a percentage must be between 0 and 100, e.g. 2%"
                )),
            };
        }
        match ByteSize::parse(text) {
            Ok(size) if size.bytes() >= PAGE => Ok(Precision::Bytes(size.bytes())),
            Ok(_) => Err(format!(
                "invalid precision `{text}`: use at least 4K, e.g. 16M or 2%"
            )),
            Err(e) => Err(format!(
                "invalid precision `{text}`: use a size (16M) or a percentage (2%); {e}"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct BisectOptions {
    /// The command and how to run it; `limit` is set per try.
    pub run: RunOptions,
    pub lo: Option<u64>,
    pub hi: Option<u64>,
    pub precision: Precision,
    pub repeat: u32,
    /// Shell command run before every try.
    pub setup: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TryRecord {
    /// `null` for the unconstrained first run.
    pub limit_bytes: Option<u64>,
    pub passed: bool,
    pub oom_killed: Option<bool>,
    pub peak_charged_bytes: u64,
    pub peak_working_bytes: u64,
    pub duration_ms: u64,
    pub exit_status: i32,
    pub phase: TryPhase,
    /// memfit was asked to stop (Ctrl-C, SIGTERM) during this try: it says nothing about the
    /// limit and is kept out of the band.
    pub interrupted: bool,
    /// Swap the try used (with `--swap`): it passed only with that much swap.
    pub swap_used_bytes: u64,
}

/// What a try was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TryPhase {
    /// The first run, without a limit: it bounds the search.
    Unconstrained,
    /// The upper bound must pass before the search starts.
    UpperBound,
    /// A step of the binary search.
    Search,
    /// A repeat at a boundary limit.
    Confirm,
}

#[derive(Debug, Clone, Serialize)]
pub struct BisectReport {
    pub schema: &'static str,
    pub memfit_version: &'static str,
    pub command: Vec<String>,
    pub mode: Mode,
    pub cpus: usize,
    pub min_passing_bytes: Option<u64>,
    pub max_failing_bytes: Option<u64>,
    pub recommended_bytes: Option<u64>,
    /// e.g. "fails at 288 MiB (2/2), passes at 304 MiB (2/2)".
    pub band: String,
    /// The smallest plan of each provider that holds the recommended limit.
    pub fitting_plans: Vec<String>,
    pub unconstrained_peak_bytes: u64,
    pub precision_bytes: u64,
    pub tries: Vec<TryRecord>,
    /// memfit was asked to stop: the band is what was learnt before.
    pub interrupted: bool,
    /// It was asked during `--setup`, and the try's command was not started.
    pub interrupted_during_setup: bool,
    pub caveats: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BisectError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("bisect needs a cgroup to enforce limits, and none is available: {0}")]
    NoCgroup(String),
    #[error("the command fails even without a limit ({0}); fix that first, memfit run shows why")]
    FailsUnconstrained(String),
    #[error("the command still fails at {0}, the highest limit tried; give a larger --hi")]
    FailsAtUpperBound(ByteSize),
    #[error("the command does not pass every try even at {0}, the highest limit tried; give a larger --hi (or fewer --repeat)")]
    UnreliableAtUpperBound(ByteSize),
    #[error("--lo {lo} is not below --hi {hi}")]
    EmptyRange { lo: ByteSize, hi: ByteSize },
    #[error("the --setup command failed ({0}); it must succeed before every try")]
    SetupFailed(String),
    #[error("cannot run the --setup command: {0}")]
    SetupSpawn(std::io::Error),
}

/// Hears about progress (a progress bar on a terminal, plain lines otherwise).
pub trait BisectObserver {
    fn try_started(&mut self, index: usize, estimated_total: usize, limit: Option<u64>);
    fn try_finished(&mut self, record: &TryRecord);
    /// The try that started was stopped during `--setup`; its command never ran.
    fn stopped_during_setup(&mut self);
}

/// The outcome of one try as the search sees it.
pub(crate) enum Outcome {
    /// The command ran; `stop` when memfit was asked to stop (during the try, which its
    /// record then says, or after it).
    Ran { record: TryRecord, stop: bool },
    /// memfit was asked to stop during `--setup` (or before it): the command did not start.
    StoppedBeforeStart,
}

pub fn bisect(
    options: &BisectOptions,
    signals: &SignalWatcher,
    observer: &mut dyn BisectObserver,
) -> Result<BisectReport, BisectError> {
    let mut mode = Mode::MeasureOnly;
    let mut cpus = 0;
    let mut caveats = Vec::new();
    let mut trial = |limit: Option<u64>, phase: TryPhase| -> Result<Outcome, BisectError> {
        if termination_pending(signals) {
            return Ok(Outcome::StoppedBeforeStart);
        }
        if let Some(setup) = &options.setup {
            let end = setup::run_setup(setup, options.run.stdio, signals)?;
            if end == setup::SetupEnd::Interrupted || termination_pending(signals) {
                return Ok(Outcome::StoppedBeforeStart);
            }
        }
        let mut run_options = options.run.clone();
        run_options.limit = limit;
        let report = run(&run_options, signals)?;
        if report.mode == Mode::MeasureOnly {
            return Err(BisectError::NoCgroup(
                report.mode_reason.clone().unwrap_or_default(),
            ));
        }
        mode = report.mode;
        cpus = report.cpus;
        if caveats.is_empty() {
            caveats = report.caveats.clone();
        }
        Ok(Outcome::Ran {
            record: record_of(&report, limit, phase),
            stop: report.interrupted || termination_pending(signals),
        })
    };
    let mut result = search::search(options, &mut trial, observer)?;
    caveats.push("tries after the first run with a warm page cache: files cached by an earlier try are not charged to the next, so a cold build on a fresh builder may need more".to_string());
    if DockerCommand::recognize(&options.run.command)
        .is_some_and(|docker| docker.may_use_build_cache(&options.run.command))
    {
        caveats.push("a docker build without --no-cache reuses the layers an earlier try built: later tries run none of the steps; bisect -- docker build --no-cache … makes every try a fresh build".to_string());
    }
    if command_mentions_node(&options.run.command) {
        caveats.push("Node.js ≥ 20.3 sizes its heap from the cgroup limit, so each try runs with a different heap limit — as it would on that plan".to_string());
    }
    result.mode = mode;
    result.cpus = cpus;
    result.caveats = caveats;
    result.command = options
        .run
        .command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    Ok(result)
}

/// Whether memfit was asked to stop since it last looked (between tries, as a setup ended).
fn termination_pending(signals: &SignalWatcher) -> bool {
    signals.drain().iter().any(|s| s.is_termination())
}

fn command_mentions_node(command: &[std::ffi::OsString]) -> bool {
    command.iter().any(|a| {
        let a = a.to_string_lossy();
        [
            "node", "npm", "npx", "pnpm", "yarn", "next", "tsc", "vite", "webpack",
        ]
        .iter()
        .any(|tool| a.contains(tool))
    })
}

fn record_of(report: &RunReport, limit: Option<u64>, phase: TryPhase) -> TryRecord {
    TryRecord {
        limit_bytes: limit,
        passed: report.exit.status == 0 && report.oom_killed != Some(true),
        oom_killed: report.oom_killed,
        peak_charged_bytes: report.peak.charged_bytes,
        peak_working_bytes: report.peak.working_bytes,
        duration_ms: report.duration_ms,
        exit_status: report.exit.status,
        phase,
        interrupted: report.interrupted,
        swap_used_bytes: report.peak.swap_used_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spawn::Stdio;

    const MIB: u64 = 1024 * 1024;

    struct Silent;
    impl BisectObserver for Silent {
        fn try_started(&mut self, _: usize, _: usize, _: Option<u64>) {}
        fn try_finished(&mut self, _: &TryRecord) {}
        fn stopped_during_setup(&mut self) {}
    }

    fn options(precision: Precision, repeat: u32) -> BisectOptions {
        BisectOptions {
            run: RunOptions {
                command: vec!["true".into()],
                limit: None,
                swap: 0,
                cpu_quota: None,
                cpuset: None,
                pid: crate::PidMode::Child,
                init_program: None,
                environment: crate::Environment::default(),
                interval: None,
                measure_only: false,
                host_view: false,
                stdio: Stdio::Null,
                platform: None,
                caveats: vec![],
                runtime_view: false,
                dockerfiles: None,
                python_tracemalloc: false,
            },
            lo: None,
            hi: None,
            precision,
            repeat,
            setup: None,
        }
    }

    /// A command that peaks at `peak` unconstrained, always passes at `stable` and above,
    /// never below `need`, and in between passes its first try at a limit but not the second.
    fn model(
        need: u64,
        stable: u64,
        peak: u64,
    ) -> impl FnMut(Option<u64>, TryPhase) -> Result<Outcome, BisectError> {
        let mut tries_at: std::collections::HashMap<u64, u32> = Default::default();
        move |limit, phase| {
            let passed = match limit {
                None => true,
                Some(l) if l >= stable => true,
                Some(l) if l >= need => {
                    let n = tries_at.entry(l).or_insert(0);
                    *n += 1;
                    *n == 1
                }
                Some(_) => false,
            };
            Ok(Outcome::Ran {
                record: TryRecord {
                    limit_bytes: limit,
                    passed,
                    oom_killed: Some(!passed),
                    peak_charged_bytes: limit.map_or(peak, |l| l.min(peak)),
                    peak_working_bytes: 0,
                    duration_ms: 1,
                    exit_status: if passed { 0 } else { 137 },
                    swap_used_bytes: 0,
                    phase,
                    interrupted: false,
                },
                stop: false,
            })
        }
    }

    #[test]
    fn finds_a_deterministic_requirement_within_the_precision() {
        let opts = options(Precision::Bytes(4 * MIB), 2);
        let report = search::search(
            &opts,
            &mut model(150 * MIB, 150 * MIB, 400 * MIB),
            &mut Silent,
        )
        .unwrap();
        let min = report.min_passing_bytes.unwrap();
        let max_fail = report.max_failing_bytes.unwrap();
        assert!(min >= 150 * MIB && min - 150 * MIB <= 4 * MIB, "{min}");
        assert!(max_fail < 150 * MIB && min - max_fail <= 4 * MIB);
        assert!(report.band.contains("(2/2)"), "{}", report.band);
        assert!(report.recommended_bytes.unwrap() >= min + min / 5);
        assert!(!report.fitting_plans.is_empty());
    }

    #[test]
    fn a_flaky_boundary_moves_the_answer_up() {
        let opts = options(Precision::Bytes(4 * MIB), 2);
        // Between 150 and 200 MiB it passes only every other time: the answer is ≥ 200 MiB.
        let report = search::search(
            &opts,
            &mut model(150 * MIB, 200 * MIB, 400 * MIB),
            &mut Silent,
        )
        .unwrap();
        let min = report.min_passing_bytes.unwrap();
        assert!((200 * MIB..=204 * MIB).contains(&min), "{}", report.band);
    }

    /// Seen under load: the upper bound passed its first try and failed its confirmation;
    /// the search then spun forever without starting a try.
    #[test]
    fn a_flaky_upper_bound_ends_the_search_with_an_error() {
        let opts = options(Precision::Bytes(4 * MIB), 2);
        // Passes only its first try everywhere from 150 MiB up to the 400 MiB upper bound.
        let mut flaky = model(150 * MIB, 1024 * MIB, 400 * MIB);
        let mut tries = 0;
        let mut bounded = move |limit: Option<u64>, phase| {
            tries += 1;
            assert!(tries < 1000, "the search does not end");
            flaky(limit, phase)
        };
        // Before the fix the search spun without trying anything: a thread keeps that from
        // hanging the suite (a bound on a hang, not on speed).
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let outcome = search::search(&opts, &mut bounded, &mut Silent);
            let _ = done.send(matches!(
                outcome,
                Err(BisectError::UnreliableAtUpperBound(b)) if b == ByteSize(400 * MIB)
            ));
        });
        let ended = result.recv_timeout(std::time::Duration::from_secs(300));
        assert_eq!(ended, Ok(true), "the search did not end with the error");
    }

    #[test]
    fn percent_precision_is_relative_to_the_upper_bound() {
        let opts = options(Precision::Percent(2.0), 1);
        let report = search::search(
            &opts,
            &mut model(100 * MIB, 100 * MIB, 500 * MIB),
            &mut Silent,
        )
        .unwrap();
        assert_eq!(report.precision_bytes, 10 * MIB);
        let min = report.min_passing_bytes.unwrap();
        assert!((100 * MIB..=110 * MIB).contains(&min));
    }

    #[test]
    fn precision_parses_sizes_and_percentages() {
        assert_eq!("16M".parse(), Ok(Precision::Bytes(16 * MIB)));
        assert_eq!("2%".parse(), Ok(Precision::Percent(2.0)));
        assert!("0%".parse::<Precision>().is_err());
        assert!("1".parse::<Precision>().is_err());
        assert!("x".parse::<Precision>().is_err());
    }

    #[test]
    fn a_command_failing_unconstrained_is_an_error() {
        let opts = options(Precision::Bytes(4 * MIB), 1);
        let mut always_fail = |limit: Option<u64>, phase| {
            Ok(Outcome::Ran {
                record: TryRecord {
                    limit_bytes: limit,
                    passed: false,
                    oom_killed: Some(false),
                    peak_charged_bytes: MIB,
                    peak_working_bytes: MIB,
                    duration_ms: 1,
                    exit_status: 1,
                    swap_used_bytes: 0,
                    phase,
                    interrupted: false,
                },
                stop: false,
            })
        };
        assert!(matches!(
            search::search(&opts, &mut always_fail, &mut Silent),
            Err(BisectError::FailsUnconstrained(_))
        ));
    }

    #[test]
    fn an_interrupted_try_is_kept_out_of_the_band() {
        let opts = options(Precision::Bytes(4 * MIB), 2);
        let mut passing = model(150 * MIB, 150 * MIB, 400 * MIB);
        let mut calls = 0;
        // The third try (the first search step, at a limit that passes) is cut short.
        let mut trial = |limit: Option<u64>, phase| {
            calls += 1;
            let mut outcome = passing(limit, phase)?;
            if calls == 3 {
                if let Outcome::Ran { record, stop } = &mut outcome {
                    record.passed = false;
                    record.exit_status = 130;
                    record.interrupted = true;
                    *stop = true;
                }
            }
            Ok(outcome)
        };
        let report = search::search(&opts, &mut trial, &mut Silent).unwrap();
        assert!(report.interrupted);
        assert_eq!(report.tries.len(), 3);
        assert_eq!(report.max_failing_bytes, None, "{}", report.band);
        assert_eq!(report.min_passing_bytes, report.tries[1].limit_bytes);
        assert!(!report.band.contains("fails"), "{}", report.band);
    }

    #[test]
    fn a_stop_before_the_first_command_leaves_an_empty_band() {
        let mut opts = options(Precision::Bytes(4 * MIB), 2);
        opts.setup = Some("make clean".into());
        let mut stopped = |_: Option<u64>, _| Ok(Outcome::StoppedBeforeStart);
        let report = search::search(&opts, &mut stopped, &mut Silent).unwrap();
        assert!(report.interrupted && report.interrupted_during_setup);
        assert!(report.tries.is_empty());
        assert_eq!(report.band, "");
        assert_eq!(report.unconstrained_peak_bytes, 0);
    }
}
