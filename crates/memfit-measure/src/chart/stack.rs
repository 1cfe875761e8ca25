//! The per-process areas: the processes largest at their own peak, each stacked on the ones
//! below, and the rest of each sample's largest processes summed as "other".

use std::collections::HashMap;

use crate::Sample;

/// One layer of the stack: a process, or the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Process(i32),
    Other,
}

/// The stacked areas: for each layer (bottom first), its lower and upper edge at each sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Stack {
    pub layers: Vec<Layer>,
    /// `edges[layer][sample] = (lower, upper)` in bytes.
    pub edges: Vec<Vec<(u64, u64)>>,
    /// The highest top of the stack.
    pub max_total: u64,
    /// Some sample's processes add up to more than was charged: RSS counts a page shared by
    /// several processes (fork's copy-on-write pages, shared libraries, mapped files) once
    /// for each, the cgroup once.
    pub exceeds_charged: bool,
}

/// Stacks the `top_n` processes with the highest RSS in any sample (largest at the bottom)
/// and "other" for the rest of each sample's `top`.
pub fn stack(samples: &[Sample], top_n: usize) -> Stack {
    let mut peak: HashMap<i32, u64> = HashMap::new();
    for entry in samples.iter().flat_map(|s| &s.top) {
        let held = peak.entry(entry.pid).or_default();
        *held = (*held).max(entry.rss_bytes);
    }
    let mut largest: Vec<(i32, u64)> = peak.into_iter().collect();
    // Largest first; equal peaks by pid, so the order never depends on the hash.
    largest.sort_by_key(|&(pid, rss)| (std::cmp::Reverse(rss), pid));
    let chosen: Vec<i32> = largest.iter().take(top_n).map(|&(pid, _)| pid).collect();
    let has_other = largest.len() > chosen.len();

    let mut layers: Vec<Layer> = chosen.iter().map(|&pid| Layer::Process(pid)).collect();
    if has_other {
        layers.push(Layer::Other);
    }
    let mut edges = vec![Vec::with_capacity(samples.len()); layers.len()];
    let mut max_total = 0;
    let mut exceeds_charged = false;
    for sample in samples {
        let mut base = 0u64;
        for (layer, edge) in layers.iter().zip(edges.iter_mut()) {
            let held: u64 = match layer {
                Layer::Process(pid) => sample
                    .top
                    .iter()
                    .filter(|p| p.pid == *pid)
                    .map(|p| p.rss_bytes)
                    .sum(),
                Layer::Other => sample
                    .top
                    .iter()
                    .filter(|p| !chosen.contains(&p.pid))
                    .map(|p| p.rss_bytes)
                    .fold(0u64, u64::saturating_add),
            };
            let top = base.saturating_add(held);
            edge.push((base, top));
            base = top;
        }
        max_total = max_total.max(base);
        exceeds_charged |= base > sample.charged_bytes;
    }
    Stack {
        layers,
        edges,
        max_total,
        exceeds_charged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProcessRss;

    fn sample(t_ms: u64, charged: u64, top: &[(i32, u64)]) -> Sample {
        Sample {
            t_ms,
            charged_bytes: charged,
            working_bytes: charged,
            top: top.iter().map(|&p| ProcessRss::from(p)).collect(),
            runtime: None,
        }
    }

    #[test]
    fn the_largest_processes_are_stacked_bottom_up_and_the_rest_is_other() {
        let samples = [
            sample(0, 100, &[(1, 50), (2, 30), (3, 10), (4, 5)]),
            sample(100, 200, &[(2, 120), (1, 60), (4, 8)]),
        ];
        let stack = stack(&samples, 2);
        assert_eq!(
            stack.layers,
            [Layer::Process(2), Layer::Process(1), Layer::Other]
        );
        // Process 2 at the bottom, 1 on it, then 3 + 4.
        assert_eq!(stack.edges[0], [(0, 30), (0, 120)]);
        assert_eq!(stack.edges[1], [(30, 80), (120, 180)]);
        assert_eq!(stack.edges[2], [(80, 95), (180, 188)]);
        assert_eq!(stack.max_total, 188);
        assert!(!stack.exceeds_charged);
    }

    #[test]
    fn a_process_absent_from_a_sample_is_a_zero_thick_layer_there() {
        let samples = [sample(0, 100, &[(1, 50)]), sample(100, 100, &[(2, 70)])];
        let stack = stack(&samples, 5);
        assert_eq!(stack.layers, [Layer::Process(2), Layer::Process(1)]);
        assert_eq!(stack.edges[0], [(0, 0), (0, 70)]);
        assert_eq!(stack.edges[1], [(0, 50), (70, 70)]);
    }

    #[test]
    fn shared_pages_make_the_stack_exceed_the_charge_and_it_is_said() {
        // Two forked workers each show 80 MiB of RSS; the cgroup was charged 100 for both.
        let samples = [sample(0, 100, &[(1, 80), (2, 80)])];
        let stack = stack(&samples, 5);
        assert!(stack.exceeds_charged);
        assert_eq!(stack.max_total, 160);
    }

    #[test]
    fn no_samples_no_layers() {
        let stack = stack(&[], 5);
        assert!(stack.layers.is_empty() && stack.max_total == 0);
    }
}
