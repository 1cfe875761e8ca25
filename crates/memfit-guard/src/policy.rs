//! When to act: thresholds, a sustained breach, a startup grace and a cooldown, with one
//! override — when the growth rate says the hard limit is nearer than the time left to wait,
//! waiting would only hand the decision to the kernel's OOM killer. And how often to look:
//! the headroom to the critical threshold divided by the growth rate.

use std::time::{Duration, Instant};

use crate::options::Threshold;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    #[default]
    Ok,
    Warn,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Critical => "critical",
        }
    }
}

/// Fastest sampling period, close to the limit: a 20 MB/s leak grows 40 KB in 2 ms.
pub const MIN_INTERVAL: Duration = Duration::from_millis(2);

#[derive(Debug)]
pub struct Policy {
    pub warn: Threshold,
    pub critical: Threshold,
    pub sustain: Duration,
    pub startup_grace: Duration,
    pub cooldown: Duration,
    pub max_interval: Duration,
    started: Instant,
    warn_since: Option<Instant>,
    critical_since: Option<Instant>,
    last_warn_action: Option<Instant>,
    last_critical_action: Option<Instant>,
    last: Option<(Instant, u64)>,
    /// Growth in bytes per second, smoothed; negative when shrinking.
    rate: f64,
    /// Recent readings (the last second), to tell a growth that goes on from a spike.
    history: std::collections::VecDeque<(Instant, u64)>,
}

/// The window of the growth check: a leak rises over two windows in a row, a spike does not.
const GROWTH_WINDOW: Duration = Duration::from_millis(300);

/// What the evaluation decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub level: Level,
    /// Act at this level now.
    pub act: Option<Level>,
    /// Seconds until the limit at the current rate, when growing.
    pub seconds_to_limit: Option<f64>,
    /// Whether the action is taken early because the limit is imminent.
    pub imminent: bool,
}

impl Policy {
    pub fn new(
        warn: Threshold,
        critical: Threshold,
        sustain: Duration,
        startup_grace: Duration,
        cooldown: Duration,
        max_interval: Duration,
        now: Instant,
    ) -> Policy {
        Policy {
            warn,
            critical,
            sustain,
            startup_grace,
            cooldown,
            max_interval,
            started: now,
            warn_since: None,
            critical_since: None,
            last_warn_action: None,
            last_critical_action: None,
            last: None,
            rate: 0.0,
            history: std::collections::VecDeque::new(),
        }
    }

    /// A new child: the grace starts again, the rate is forgotten.
    pub fn restarted(&mut self, now: Instant) {
        self.started = now;
        self.warn_since = None;
        self.critical_since = None;
        self.last = None;
        self.rate = 0.0;
        self.history.clear();
        // The cooldown is per child: a new process is judged afresh (--max-restarts bounds loops).
        self.last_warn_action = None;
        self.last_critical_action = None;
    }

    /// The reading at or just before `t`.
    fn reading_at(&self, t: Instant) -> Option<u64> {
        self.history
            .iter()
            .rev()
            .find(|(at, _)| *at <= t)
            .map(|(_, u)| *u)
    }

    /// (rising over the last two windows, bytes per second over them).
    fn growth(&self, now: Instant, usage: u64) -> (bool, Option<f64>) {
        let (Some(a), Some(b)) = (
            now.checked_sub(GROWTH_WINDOW),
            now.checked_sub(2 * GROWTH_WINDOW),
        ) else {
            return (false, None);
        };
        match (self.reading_at(a), self.reading_at(b)) {
            (Some(mid), Some(old)) => {
                let rate = (usage as f64 - old as f64) / (2 * GROWTH_WINDOW).as_secs_f64();
                (usage > mid && mid > old, Some(rate))
            }
            _ => (false, None),
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Feeds a reading and decides.
    pub fn evaluate(&mut self, now: Instant, usage: u64, limit: u64) -> Decision {
        self.history.push_back((now, usage));
        while self
            .history
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(2))
        {
            self.history.pop_front();
        }
        if let Some((t, u)) = self.last {
            let dt = now.duration_since(t).as_secs_f64();
            if dt > 0.0 {
                let instant_rate = (usage as f64 - u as f64) / dt;
                // Smoothing that follows a real leak within a few samples.
                let alpha = (dt / 0.2).min(1.0);
                self.rate += alpha * (instant_rate - self.rate);
            }
        }
        self.last = Some((now, usage));
        let warn = self.warn.bytes(limit);
        let critical = self.critical.bytes(limit);
        let level = if usage >= critical {
            Level::Critical
        } else if usage >= warn {
            Level::Warn
        } else {
            Level::Ok
        };
        if level >= Level::Warn {
            self.warn_since.get_or_insert(now);
        } else {
            self.warn_since = None;
        }
        if level == Level::Critical {
            self.critical_since.get_or_insert(now);
        } else {
            self.critical_since = None;
        }
        // Only a growth that goes on over two windows in a row counts as heading for the limit;
        // its rate is taken over those windows (allocations come in steps).
        let (sustained_growth, window_rate) = self.growth(now, usage);
        let rate = window_rate.filter(|r| *r > 0.0).unwrap_or(self.rate);
        let seconds_to_limit = (rate > 0.0).then(|| limit.saturating_sub(usage) as f64 / rate);
        let in_grace = now.duration_since(self.started) < self.startup_grace;
        let mut decision = Decision {
            level,
            act: None,
            seconds_to_limit,
            imminent: false,
        };
        let ready = |since: Option<Instant>, last_action: Option<Instant>| -> Option<bool> {
            let since = since?;
            let waited = now.duration_since(since);
            let remaining = self.sustain.saturating_sub(waited).max(if in_grace {
                self.startup_grace
                    .saturating_sub(now.duration_since(self.started))
            } else {
                Duration::ZERO
            });
            // The limit comes before the wait would end.
            let imminent = sustained_growth
                && seconds_to_limit.is_some_and(|s| s < remaining.as_secs_f64() + 0.25);
            let cooled = last_action.is_none_or(|t| now.duration_since(t) >= self.cooldown);
            (cooled && (remaining.is_zero() || imminent)).then_some(imminent)
        };
        if let Some(imminent) = ready(self.critical_since, self.last_critical_action) {
            self.last_critical_action = Some(now);
            decision.act = Some(Level::Critical);
            decision.imminent = imminent;
        } else if level == Level::Warn {
            if let Some(imminent) = ready(self.warn_since, self.last_warn_action) {
                self.last_warn_action = Some(now);
                decision.act = Some(Level::Warn);
                decision.imminent = imminent;
            }
        }
        decision
    }

    /// How long to wait before the next reading.
    pub fn next_interval(&self, usage: u64, limit: u64) -> Duration {
        let critical = self.critical.bytes(limit);
        if usage >= critical {
            return MIN_INTERVAL.max(Duration::from_millis(5));
        }
        let mut interval = self.max_interval;
        if usage >= self.warn.bytes(limit) {
            interval = interval.min(Duration::from_millis(250));
        }
        if self.rate > 0.0 {
            // A quarter of the time the growth needs to reach the critical threshold.
            let seconds = (critical - usage) as f64 / self.rate / 4.0;
            // A slow growth makes a time too long for a Duration: then the interval stands.
            if let Ok(quarter) = Duration::try_from_secs_f64(seconds.max(0.0)) {
                interval = interval.min(quarter);
            }
        }
        interval.max(MIN_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn policy(now: Instant) -> Policy {
        Policy::new(
            Threshold::Percent(80.0),
            Threshold::Percent(92.0),
            Duration::from_secs(2),
            Duration::ZERO,
            Duration::from_secs(30),
            Duration::from_secs(1),
            now,
        )
    }

    #[test]
    fn a_short_spike_is_not_acted_on_but_a_sustained_breach_is() {
        let t0 = Instant::now();
        let mut p = policy(t0);
        // Flat at 95% for 1.5 s: no growth, so nothing imminent, and the sustain is not over.
        for ms in (0..1500).step_by(100) {
            let d = p.evaluate(t0 + Duration::from_millis(ms), 95 * MIB, 100 * MIB);
            assert_eq!(d.level, Level::Critical);
            assert_eq!(d.act, None, "at {ms} ms");
        }
        // Back to normal: the breach timer resets.
        p.evaluate(t0 + Duration::from_millis(1600), 50 * MIB, 100 * MIB);
        let d = p.evaluate(t0 + Duration::from_millis(2100), 95 * MIB, 100 * MIB);
        assert_eq!(d.act, None);
        // Held for 2 s: act.
        let mut acted = None;
        for ms in (2100..4500).step_by(100) {
            let d = p.evaluate(t0 + Duration::from_millis(ms), 95 * MIB, 100 * MIB);
            if d.act.is_some() {
                acted = Some(ms);
                break;
            }
        }
        assert_eq!(acted, Some(4100));
        // Cooldown: not again right away.
        assert_eq!(
            p.evaluate(t0 + Duration::from_millis(6500), 95 * MIB, 100 * MIB)
                .act,
            None
        );
    }

    #[test]
    fn a_fast_leak_is_acted_on_before_the_sustain_ends() {
        let t0 = Instant::now();
        let mut p = policy(t0);
        let mut usage = 0u64;
        let mut t = t0;
        let mut acted_at = None;
        // 20 MB/s towards a 150 MB limit, sampled every 10 ms.
        for _ in 0..1000 {
            t += Duration::from_millis(10);
            usage += 200_000;
            let d = p.evaluate(t, usage, 150_000_000);
            if d.act == Some(Level::Critical) {
                acted_at = Some(usage);
                assert!(d.imminent);
                break;
            }
        }
        let acted = acted_at.expect("acted");
        // Critical is 92% of 150 MB = 138 MB; acted within 10% over it, below the limit.
        assert!((138_000_000..=151_800_000).contains(&acted), "{acted}");
        assert!(acted < 150_000_000);
    }

    #[test]
    fn polling_speeds_up_near_the_limit() {
        let t0 = Instant::now();
        let mut p = policy(t0);
        p.evaluate(t0, 10 * MIB, 100 * MIB);
        assert_eq!(p.next_interval(10 * MIB, 100 * MIB), Duration::from_secs(1));
        p.evaluate(t0 + Duration::from_millis(100), 30 * MIB, 100 * MIB);
        let growing = p.next_interval(30 * MIB, 100 * MIB);
        assert!(growing < Duration::from_secs(1), "{growing:?}");
        p.evaluate(t0 + Duration::from_millis(200), 88 * MIB, 100 * MIB);
        assert!(p.next_interval(88 * MIB, 100 * MIB) <= Duration::from_millis(20));
    }

    #[test]
    fn startup_grace_holds_unless_the_limit_is_imminent() {
        let t0 = Instant::now();
        let mut p = Policy::new(
            Threshold::Percent(80.0),
            Threshold::Percent(92.0),
            Duration::ZERO,
            Duration::from_secs(10),
            Duration::from_secs(30),
            Duration::from_secs(1),
            t0,
        );
        // A startup spike held flat at 93%: nothing during the grace.
        for s in 0..9 {
            assert_eq!(
                p.evaluate(t0 + Duration::from_secs(s), 93 * MIB, 100 * MIB)
                    .act,
                None
            );
        }
        assert_eq!(
            p.evaluate(t0 + Duration::from_secs(10), 93 * MIB, 100 * MIB)
                .act,
            Some(Level::Critical)
        );
    }
}
