//! The band a search ends with: the highest limit that failed, the smallest that always
//! passed, the recommendation and the plans that hold it.

use std::collections::BTreeMap;

use memfit_core::{platform, ByteSize};

use super::{BisectOptions, BisectReport, TryRecord, DEFAULT_LO, HEADROOM_PERCENT};
use crate::Mode;

/// Tries at one limit.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Tally {
    pub passed: u32,
    pub total: u32,
}

impl Tally {
    pub fn add(&mut self, passed: bool) {
        self.passed += u32::from(passed);
        self.total += 1;
    }

    pub fn always_passed(&self) -> bool {
        self.passed == self.total
    }
}

/// The report of a search from its tries and tallies.
pub(super) fn report(
    options: &BisectOptions,
    tries: Vec<TryRecord>,
    tallies: BTreeMap<u64, Tally>,
    precision: u64,
    interrupted: bool,
) -> BisectReport {
    let min_passing = tallies
        .iter()
        .find(|(_, tally)| tally.always_passed() && tally.total > 0)
        .map(|(limit, _)| *limit);
    // The highest limit that failed at least once below the smallest reliable pass.
    let max_failing = tallies
        .iter()
        .filter(|(limit, tally)| !tally.always_passed() && min_passing.is_none_or(|m| **limit < m))
        .map(|(limit, _)| *limit)
        .next_back();
    let describe = |limit: u64, verb: &str, count: fn(&Tally) -> u32| {
        let tally = tallies[&limit];
        format!(
            "{verb} at {} ({}/{})",
            ByteSize(limit),
            count(&tally),
            tally.total
        )
    };
    let mut band_parts = Vec::new();
    match max_failing {
        Some(limit) => band_parts.push(describe(limit, "fails", |t| t.total - t.passed)),
        // Only a search that ran to its end may say nothing fails below.
        None if min_passing.is_some() && !interrupted => band_parts.push(format!(
            "no failing limit found at or above {}",
            ByteSize(options.lo.unwrap_or(DEFAULT_LO))
        )),
        None => {}
    }
    if let Some(limit) = min_passing {
        band_parts.push(describe(limit, "passes", |t| t.passed));
    }
    let recommended = min_passing.map(|m| {
        ByteSize(m + m * HEADROOM_PERCENT / 100)
            .round_up(8 * 1024 * 1024)
            .bytes()
    });
    let fitting_plans = recommended
        .map(|r| {
            platform::smallest_fitting(ByteSize(r))
                .into_iter()
                .map(|p| format!("{} ({})", p.name, p.memory))
                .collect()
        })
        .unwrap_or_default();
    BisectReport {
        schema: "memfit.bisect/1",
        memfit_version: env!("CARGO_PKG_VERSION"),
        command: Vec::new(),
        mode: Mode::MeasureOnly,
        cpus: 0,
        min_passing_bytes: min_passing,
        max_failing_bytes: max_failing,
        recommended_bytes: recommended,
        band: band_parts.join(", "),
        fitting_plans,
        unconstrained_peak_bytes: tries
            .first()
            .filter(|t| !t.interrupted)
            .map_or(0, |t| t.peak_charged_bytes),
        precision_bytes: precision,
        tries,
        interrupted,
        interrupted_during_setup: false,
        caveats: Vec::new(),
    }
}
