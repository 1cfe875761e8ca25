//! The leak trend: a garbage-collected heap saws up and down, so the slope is taken over the
//! lows (the minimum of each time bucket: what is left after collections), with the
//! Theil–Sen estimator (the median of pairwise slopes), which a few outliers cannot move.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The leak trend as /health/memory reports it, when there is one.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrendStatus {
    pub bytes_per_second: Option<f64>,
    pub seconds_to_limit: Option<f64>,
}

/// Lows kept; when full, neighbours merge and the bucket doubles, so hours fit in a fixed size.
const CAPACITY: usize = 64;
/// Lows needed before a slope is reported.
const MIN_LOWS: usize = 6;

#[derive(Debug)]
pub struct Trend {
    origin: Instant,
    bucket: Duration,
    current: Option<(Instant, u64)>,
    lows: VecDeque<(f64, u64)>,
}

impl Trend {
    pub fn new(bucket: Duration, now: Instant) -> Trend {
        Trend {
            origin: now,
            bucket,
            current: None,
            lows: VecDeque::new(),
        }
    }

    /// A new child: its memory starts over.
    pub fn reset(&mut self, now: Instant) {
        self.origin = now;
        self.current = None;
        self.lows.clear();
    }

    pub fn add(&mut self, now: Instant, usage: u64) {
        match &mut self.current {
            Some((start, low)) if now.duration_since(*start) < self.bucket => {
                *low = (*low).min(usage);
            }
            _ => {
                if let Some((start, low)) = self.current.take() {
                    let t = start.duration_since(self.origin).as_secs_f64();
                    self.lows.push_back((t, low));
                    if self.lows.len() > CAPACITY {
                        self.compact();
                    }
                }
                self.current = Some((now, usage));
            }
        }
    }

    fn compact(&mut self) {
        let old: Vec<(f64, u64)> = self.lows.drain(..).collect();
        for pair in old.chunks(2) {
            let low = pair
                .iter()
                .min_by_key(|(_, u)| *u)
                .copied()
                .unwrap_or(pair[0]);
            self.lows.push_back((pair[0].0, low.1));
        }
        self.bucket = self.bucket.saturating_mul(2);
    }

    /// Bytes per second, when the lows rise consistently (at least 70% of the pairs).
    pub fn slope(&self) -> Option<f64> {
        if self.lows.len() < MIN_LOWS {
            return None;
        }
        let points: Vec<(f64, u64)> = self.lows.iter().copied().collect();
        let mut slopes = Vec::with_capacity(points.len() * points.len() / 2);
        for i in 0..points.len() {
            for j in i + 1..points.len() {
                let dt = points[j].0 - points[i].0;
                if dt > 0.0 {
                    slopes.push((points[j].1 as f64 - points[i].1 as f64) / dt);
                }
            }
        }
        if slopes.is_empty() {
            return None;
        }
        let rising = slopes.iter().filter(|s| **s > 0.0).count();
        if rising * 10 < slopes.len() * 7 {
            return None;
        }
        slopes.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        let median = slopes[slopes.len() / 2];
        (median > 0.0).then_some(median)
    }

    /// The latest low.
    pub fn last_low(&self) -> Option<u64> {
        self.lows.back().map(|(_, u)| *u)
    }
}

/// "38 MiB/h" / "1.2 MiB/min".
pub fn describe_rate(bytes_per_second: f64) -> String {
    let per_hour = bytes_per_second * 3600.0 / (1024.0 * 1024.0);
    if per_hour >= 600.0 {
        format!("{:.1} MiB/min", per_hour / 60.0)
    } else if per_hour >= 10.0 {
        format!("{per_hour:.0} MiB/h")
    } else {
        format!("{per_hour:.1} MiB/h")
    }
}

/// "~2.6 h" / "~14 min" / "~40 s".
pub fn describe_eta(seconds: f64) -> String {
    if seconds >= 5400.0 {
        format!("~{:.1} h", seconds / 3600.0)
    } else if seconds >= 90.0 {
        format!("~{:.0} min", seconds / 60.0)
    } else {
        format!("~{:.0} s", seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn a_sawtooth_with_rising_lows_has_the_lows_slope() {
        let t0 = Instant::now();
        let mut trend = Trend::new(Duration::from_secs(10), t0);
        // GC sawtooth of 60 MiB over a base growing 38 MiB/h, sampled every second for 2 h.
        for s in 0..7200u64 {
            let base = 100 * MIB + (38 * MIB * s) / 3600;
            let saw = (s % 7) * 10 * MIB;
            trend.add(t0 + Duration::from_secs(s), base + saw);
        }
        let slope = trend.slope().expect("a slope");
        let per_hour = slope * 3600.0 / MIB as f64;
        assert!((35.0..=41.0).contains(&per_hour), "{per_hour}");
        assert_eq!(describe_rate(slope), format!("{per_hour:.0} MiB/h"));
        assert!(trend.lows.len() <= CAPACITY);
    }

    #[test]
    fn a_flat_sawtooth_has_no_trend() {
        let t0 = Instant::now();
        let mut trend = Trend::new(Duration::from_secs(10), t0);
        for s in 0..3600u64 {
            trend.add(
                t0 + Duration::from_secs(s),
                100 * MIB + (s % 7) * 10 * MIB + (s * 7919 % 13) * 1024,
            );
        }
        assert_eq!(trend.slope(), None);
    }

    #[test]
    fn etas() {
        assert_eq!(describe_eta(2.6 * 3600.0), "~2.6 h");
        assert_eq!(describe_eta(14.0 * 60.0), "~14 min");
        assert_eq!(describe_eta(40.0), "~40 s");
    }
}
