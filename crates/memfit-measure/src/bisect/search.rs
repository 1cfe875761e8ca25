//! The search proper, over any `trial` (the real one runs the command; tests use a model):
//! bound it from above, narrow it by halves, then repeat the boundary limits.

use std::collections::BTreeMap;

use memfit_core::ByteSize;

use super::band::{self, Tally};
use super::{
    BisectError, BisectObserver, BisectOptions, BisectReport, Outcome, Precision, TryPhase,
    TryRecord, DEFAULT_LO, PAGE,
};

/// A try's callback: run the command at a limit (`None`: unconstrained).
pub(crate) type Trial<'a> = dyn FnMut(Option<u64>, TryPhase) -> Result<Outcome, BisectError> + 'a;

/// What one attempt said.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    passed: bool,
    /// memfit was asked to stop: the search ends with what it has.
    interrupted: bool,
}

/// The state of a search: every try, and the tally per limit.
struct Search<'a, 'o> {
    trial: &'a mut Trial<'a>,
    observer: &'o mut dyn BisectObserver,
    tries: Vec<TryRecord>,
    tallies: BTreeMap<u64, Tally>,
    /// For the progress display; grows when the search must go back up.
    estimated_total: usize,
    /// memfit was asked to stop before a try's command started.
    stopped_before_start: bool,
}

pub(crate) fn search<'a>(
    options: &BisectOptions,
    trial: &'a mut Trial<'a>,
    observer: &mut dyn BisectObserver,
) -> Result<BisectReport, BisectError> {
    let mut search = Search {
        trial,
        observer,
        tries: Vec::new(),
        tallies: BTreeMap::new(),
        estimated_total: 2,
        stopped_before_start: false,
    };
    let first = search.attempt(None, TryPhase::Unconstrained)?;
    if first.interrupted {
        return Ok(search.finish(options, 0, true));
    }
    let unconstrained = search.tries[0].clone();
    if !first.passed {
        return Err(BisectError::FailsUnconstrained(crate::describe_exit(
            (unconstrained.exit_status < 128).then_some(unconstrained.exit_status),
            (unconstrained.exit_status >= 128).then_some(unconstrained.exit_status - 128),
        )));
    }

    let lo = options.lo.unwrap_or(DEFAULT_LO);
    let hi = options
        .hi
        .unwrap_or_else(|| unconstrained.peak_charged_bytes.max(lo + PAGE))
        .next_multiple_of(PAGE);
    if lo >= hi {
        return Err(BisectError::EmptyRange {
            lo: ByteSize(lo),
            hi: ByteSize(hi),
        });
    }
    let precision = match options.precision {
        Precision::Bytes(b) => b,
        Precision::Percent(p) => (hi as f64 * p / 100.0) as u64,
    }
    .max(PAGE);
    let repeat = options.repeat.max(1);
    let steps = ((hi - lo) as f64 / precision as f64).log2().ceil().max(0.0) as usize;
    search.estimated_total = 2 + steps + 2 * (repeat as usize - 1);

    let Some(hi) = search.passing_upper_bound(hi, options.hi.is_some())? else {
        return Ok(search.finish(options, precision, true));
    };
    let mut pass = hi;
    if options.lo.is_some() {
        // A given lower bound is tried: if it passes, the answer lies below it.
        let at_lo = search.attempt(Some(lo), TryPhase::Search)?;
        if at_lo.interrupted {
            return Ok(search.finish(options, precision, true));
        }
        if at_lo.passed {
            pass = lo;
        }
    }
    let interrupted = search.narrow(pass, lo, hi, precision, repeat)?;
    Ok(search.finish(options, precision, interrupted))
}

impl Search<'_, '_> {
    fn attempt(&mut self, limit: Option<u64>, phase: TryPhase) -> Result<Attempt, BisectError> {
        let index = self.tries.len() + 1;
        self.observer
            .try_started(index, self.estimated_total.max(index), limit);
        let (record, stop) = match (self.trial)(limit, phase)? {
            Outcome::Ran { record, stop } => (record, stop),
            Outcome::StoppedBeforeStart => {
                self.observer.stopped_during_setup();
                self.stopped_before_start = true;
                return Ok(Attempt {
                    passed: false,
                    interrupted: true,
                });
            }
        };
        self.observer.try_finished(&record);
        let attempt = Attempt {
            passed: record.passed,
            interrupted: stop || record.interrupted,
        };
        // A try cut short says nothing about its limit: it stays out of the band.
        if let (Some(limit), false) = (limit, record.interrupted) {
            self.tallies.entry(limit).or_default().add(record.passed);
        }
        self.tries.push(record);
        Ok(attempt)
    }

    /// The upper bound must pass. GC'd runtimes may need more than their unconstrained peak
    /// once the limit changes their heap sizing, so it grows by half up to three times (not
    /// when the user gave it). `None` when interrupted.
    fn passing_upper_bound(
        &mut self,
        mut hi: u64,
        given: bool,
    ) -> Result<Option<u64>, BisectError> {
        let mut grown = 0;
        loop {
            let at_hi = self.attempt(Some(hi), TryPhase::UpperBound)?;
            if at_hi.interrupted {
                return Ok(None);
            }
            if at_hi.passed {
                return Ok(Some(hi));
            }
            grown += 1;
            if grown > 3 || given {
                return Err(BisectError::FailsAtUpperBound(ByteSize(hi)));
            }
            hi = (hi + hi / 2).next_multiple_of(PAGE);
            self.estimated_total += 1;
        }
    }

    /// Halves the band between `fail` and `pass` down to the precision, then confirms the
    /// passing side (every repeat must pass, else the search goes back up) and repeats the
    /// failing side so the band says how reliably it fails. Returns whether it was
    /// interrupted.
    fn narrow(
        &mut self,
        mut pass: u64,
        mut fail: u64,
        hi: u64,
        precision: u64,
        repeat: u32,
    ) -> Result<bool, BisectError> {
        loop {
            while pass > fail && pass - fail > precision {
                let mid = ((pass + fail) / 2).next_multiple_of(PAGE);
                let at_mid = self.attempt(Some(mid), TryPhase::Search)?;
                if at_mid.interrupted {
                    return Ok(true);
                }
                if at_mid.passed {
                    pass = mid;
                } else {
                    fail = mid;
                }
            }
            let confirmed = self.repeat_at(pass, repeat, true)?;
            if confirmed.interrupted {
                return Ok(true);
            }
            if !confirmed.passed {
                // Not reliable here: search again above it, below the next limit that passed
                // every time.
                fail = pass;
                // The upper bound was tried (it passed once): when no limit up to it passed
                // every time, nothing in the range is reliable — say so rather than search a
                // band with nothing left to try.
                let above = (pass < hi).then(|| self.tallies.range(pass + 1..=hi));
                pass = above
                    .into_iter()
                    .flatten()
                    .find(|(_, tally)| tally.always_passed())
                    .map(|(limit, _)| *limit)
                    .ok_or(BisectError::UnreliableAtUpperBound(ByteSize(hi)))?;
                self.estimated_total += 2;
                continue;
            }
            if self.tallies.contains_key(&fail) {
                return Ok(self.repeat_at(fail, repeat, false)?.interrupted);
            }
            return Ok(false);
        }
    }

    /// Tries `limit` until it has `repeat` tries (stopping at the first failure when
    /// `stop_on_failure`); `passed` when every try at it passed.
    fn repeat_at(
        &mut self,
        limit: u64,
        repeat: u32,
        stop_on_failure: bool,
    ) -> Result<Attempt, BisectError> {
        let mut all_passed = self
            .tallies
            .get(&limit)
            .is_none_or(|tally| tally.always_passed());
        while self.tallies.get(&limit).map_or(0, |t| t.total) < repeat {
            let again = self.attempt(Some(limit), TryPhase::Confirm)?;
            if again.interrupted {
                return Ok(Attempt {
                    passed: all_passed,
                    interrupted: true,
                });
            }
            all_passed &= again.passed;
            if !again.passed && stop_on_failure {
                break;
            }
        }
        Ok(Attempt {
            passed: all_passed,
            interrupted: false,
        })
    }

    fn finish(self, options: &BisectOptions, precision: u64, interrupted: bool) -> BisectReport {
        let mut report = band::report(options, self.tries, self.tallies, precision, interrupted);
        report.interrupted_during_setup = self.stopped_before_start && options.setup.is_some();
        report
    }
}
