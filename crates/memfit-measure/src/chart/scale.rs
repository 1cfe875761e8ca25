//! Round axis ticks: steps of 1-2-5 (or powers of two for memory, so that a 512 MiB limit
//! falls on a tick) in the unit a person reads, "0, 128, 256, 384, 512 MiB" rather than
//! "138.2, 276.5, 414.7".

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// An axis: its ticks from 0 to `max` (the last tick), the unit they are written in and the
/// step between them.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub ticks: Vec<u64>,
    pub max: u64,
    pub step: u64,
    /// The unit the tick labels and the axis title use (`MiB`, `s`).
    pub unit: &'static str,
    /// What one `unit` is in the axis's base unit (bytes, milliseconds).
    pub unit_size: u64,
}

impl Axis {
    /// A tick's label in the axis unit, without the unit: `384`, `1.5`.
    pub fn label(&self, value: u64) -> String {
        let scaled = value as f64 / self.unit_size as f64;
        let text = format!("{scaled:.2}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// At most this many intervals between ticks, at least `MIN_INTERVALS`.
const MAX_INTERVALS: u64 = 8;
const MIN_INTERVALS: u64 = 3;

/// Ticks for memory from 0 to at least `max_bytes`, preferring a step the `limit` is a
/// multiple of (the limit line then sits on a tick), then the least empty space on top.
pub fn memory_axis(max_bytes: u64, limit: Option<u64>) -> Axis {
    let max_bytes = max_bytes.max(1);
    let (unit, unit_size) = if max_bytes >= 2 * GIB {
        ("GiB", GIB)
    } else if max_bytes >= 2 * MIB {
        ("MiB", MIB)
    } else {
        ("KiB", KIB)
    };
    // 1-2-5 in the unit (0.1 to a million of it) and powers of two from 64 KiB to 1 PiB.
    let mut steps: Vec<u64> = Vec::new();
    for power in 0..8 {
        let decade = unit_size * 10u64.pow(power) / 10;
        steps.extend([decade, decade * 2, decade * 5]);
    }
    steps.extend((16..=50).map(|shift| 1u64 << shift));
    steps.retain(|&s| {
        let in_unit = s as f64 / unit_size as f64;
        (in_unit * 10.0).fract() == 0.0 && in_unit >= 0.1
    });
    choose(max_bytes, limit, &steps, unit, unit_size)
}

/// Ticks for time from 0 to `end_ms`: seconds (0.1 s up), or minutes past 3 min. The axis
/// ends where the run ended, with round ticks inside it: a 183 s run on a 4-minute axis left a
/// quarter of the chart empty. Below 0.1 s it ends at the first round step.
pub fn time_axis(end_ms: u64) -> Axis {
    let end_ms = end_ms.max(1);
    let (unit, unit_size, steps): (_, _, Vec<u64>) = if end_ms > 180_000 {
        let minute = 60_000;
        let steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1440, 2880, 7200];
        ("min", minute, steps.iter().map(|m| m * minute).collect())
    } else {
        let steps = [
            100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 30_000, 60_000,
        ];
        ("s", 1000, steps.to_vec())
    };
    let mut axis = choose(end_ms, None, &steps, unit, unit_size);
    // Below 0.1 s nothing is round: fall back to the finest step.
    if axis.ticks.len() < 2 {
        axis = fixed(end_ms, steps[0], unit, unit_size);
    }
    if axis.ticks.iter().filter(|&&t| t <= end_ms).count() >= 2 {
        axis.ticks.retain(|&t| t <= end_ms);
        axis.max = end_ms;
    }
    axis
}

fn choose(max: u64, limit: Option<u64>, steps: &[u64], unit: &'static str, unit_size: u64) -> Axis {
    let fits = |step: u64| {
        let intervals = max.div_ceil(step);
        (MIN_INTERVALS..=MAX_INTERVALS).contains(&intervals)
    };
    let best = steps
        .iter()
        .copied()
        .filter(|&s| fits(s))
        .min_by_key(|&step| {
            let on_limit = limit.is_some_and(|l| l > 0 && l % step == 0);
            let waste = max.div_ceil(step) * step - max;
            // Limit on a tick first, then the least empty space, then more ticks.
            (!on_limit, waste, step)
        });
    let smallest = *steps.first().unwrap_or(&1);
    match best {
        Some(step) => fixed(max, step, unit, unit_size),
        // Smaller than every step allows: the smallest step (a 30 ms run was drawn on a
        // 60 s axis).
        None if max.div_ceil(smallest) < MIN_INTERVALS => fixed(max, smallest, unit, unit_size),
        // Larger than every step allows: the largest step, however many ticks.
        None => fixed(max, *steps.last().unwrap_or(&1), unit, unit_size),
    }
}

fn fixed(max: u64, step: u64, unit: &'static str, unit_size: u64) -> Axis {
    let step = step.max(1);
    let intervals = max.div_ceil(step).max(1);
    Axis {
        ticks: (0..=intervals).map(|i| i * step).collect(),
        max: intervals * step,
        step,
        unit,
        unit_size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(axis: &Axis) -> Vec<String> {
        axis.ticks.iter().map(|&t| axis.label(t)).collect()
    }

    #[test]
    fn a_512_mib_limit_falls_on_a_tick_of_128_mib_steps() {
        let axis = memory_axis(553 * MIB, Some(512 * MIB));
        assert_eq!(axis.unit, "MiB");
        assert_eq!(labels(&axis), ["0", "128", "256", "384", "512", "640"]);
    }

    #[test]
    fn without_a_limit_the_step_wastes_least_space() {
        let axis = memory_axis(470 * MIB, None);
        assert_eq!(labels(&axis), ["0", "100", "200", "300", "400", "500"]);
    }

    #[test]
    fn gigabytes_are_written_in_gib_with_round_steps() {
        let axis = memory_axis(5 * GIB + 300 * MIB, Some(6 * GIB));
        assert_eq!(axis.unit, "GiB");
        assert_eq!(labels(&axis), ["0", "1", "2", "3", "4", "5", "6"]);
        let axis = memory_axis(3 * GIB, None);
        assert_eq!(labels(&axis), ["0", "0.5", "1", "1.5", "2", "2.5", "3"]);
    }

    #[test]
    fn tiny_and_empty_runs_still_get_round_ticks() {
        let axis = memory_axis(900 * KIB, None);
        assert_eq!(axis.unit, "KiB");
        assert!(axis.max >= 900 * KIB && axis.ticks.len() >= 4);
        assert_eq!(memory_axis(0, None).ticks[0], 0);
        assert!(memory_axis(u64::MAX / 4, None).max >= u64::MAX / 4);
    }

    #[test]
    fn every_memory_step_is_1_2_5_or_a_power_of_two() {
        for mib in (1..5000).step_by(37) {
            let axis = memory_axis(mib * MIB, None);
            let step = axis.step as f64 / axis.unit_size as f64;
            let mantissa = step / 10f64.powf(step.log10().floor());
            let decimal = [1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-9);
            let binary = (axis.step & (axis.step - 1)) == 0;
            assert!(decimal || binary, "{mib} MiB: step {step} {}", axis.unit);
            assert!(axis.max >= mib * MIB);
            let intervals = axis.ticks.len() as u64 - 1;
            assert!(
                (3..=8).contains(&intervals),
                "{mib} MiB: {intervals} intervals"
            );
        }
    }

    #[test]
    fn time_is_in_seconds_then_minutes() {
        assert_eq!(labels(&time_axis(41_500)), ["0", "10", "20", "30", "40"]);
        let axis = time_axis(1_900);
        assert_eq!(axis.unit, "s");
        assert_eq!(labels(&axis), ["0", "0.5", "1", "1.5"]);
        let axis = time_axis(25 * 60_000);
        assert_eq!(axis.unit, "min");
        assert_eq!(labels(&axis), ["0", "5", "10", "15", "20", "25"]);
        assert!(time_axis(30).ticks.len() >= 2);
    }

    #[test]
    fn the_time_axis_ends_where_the_run_ended() {
        // A 3-minute soak: minutes, and no fourth minute of empty chart.
        let axis = time_axis(183_400);
        assert_eq!((axis.unit, axis.max), ("min", 183_400));
        assert_eq!(labels(&axis), ["0", "1", "2", "3"]);
        assert_eq!(time_axis(41_500).max, 41_500);
        // Too short for two round ticks: the first round step ends it.
        assert_eq!(time_axis(30).max, 100);
    }
}
