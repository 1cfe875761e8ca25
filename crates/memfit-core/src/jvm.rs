//! What a JVM commits beside its heap, item by item: the metaspace, the code cache, the
//! threads' stacks and the rest (GC structures, symbols, the CDS archive, the JIT's arenas).
//!
//! One model for `memfit plan --runtime jvm` and `memfit audit`'s `jvm-heap-over-limit`. An
//! item the service's options bound (`-XX:MaxMetaspaceSize`, `-XX:ReservedCodeCacheSize`,
//! `-Xss`) is taken from them; the others are what `bench/jvm_nonheap.sh` measured with
//! Native Memory Tracking (`-XX:NativeMemoryTracking=summary`, committed memory) on OpenJDK
//! 17.0.15 under `memfit run --limit 1G`, for a program that loads 15,000 classes, compiles a
//! large program (javac, 40 times) so the JIT fills its code cache, and starts 200 threads
//! that each do some library work (table in docs/rules.md, jvm-heap-over-limit).
//!
//! NMT: https://docs.oracle.com/en/java/javase/17/vm/native-memory-tracking.html

use crate::plan::HEAP_SHARE_PERCENT;
use crate::{KIB, MIB};

/// Committed metaspace (Metadata + Class space) measured with 15,000 classes loaded: 82.2–82.4
/// MiB over three runs.
/// A Spring Boot service loads that many; a small program a few thousand (28.4 MiB for 5,000).
pub const MEASURED_METASPACE: u64 = 83 * MIB;

/// Committed code cache after the JIT compiled javac 40 times: 14.9–16.0 MiB. The JVM reserves
/// 240 MiB with tiered compilation (`-XX:ReservedCodeCacheSize`, the java man page) but
/// commits what it fills.
pub const MEASURED_CODE_CACHE: u64 = 16 * MIB;

/// Stack touched per thread that did some library work (a regex, a format, a stream): 104–106
/// KiB of the 1 MiB each reserves; NMT counts the committed pages, not the reservation. A
/// deeper call stack touches more, never more than `-Xss`.
pub const MEASURED_STACK_PER_THREAD: u64 = 108 * KIB;

/// The rest with the Serial collector (the JVM's choice below 2 GB or 2 CPUs): GC
/// structures (0.4 MiB), symbols, the CDS archive, the JIT's arenas, malloc of class loaders
/// and threads, without NMT's own tracking: 45.1, 50.2 and 53.4 MiB (GC 0.4 included) over
/// three runs of the script, the JIT's arenas varying; the median.
pub const MEASURED_GC_AND_OTHER: u64 = 50 * MIB;

/// What G1 adds to the rest (remembered sets, card table, mark bitmaps): 41.8–42.8 MiB of GC
/// structures measured with `-XX:+UseG1GC` on the same program, 0.4 with Serial (it grows
/// with the heap).
pub const MEASURED_G1_EXTRA: u64 = 43 * MIB;

/// `-Xss`'s default on Linux x64: 1024 KB (the java man page, "-Xss size").
pub const DEFAULT_THREAD_STACK: u64 = MIB;

/// Threads counted when the configuration does not say: 200, Tomcat's default maximum
/// (`server.tomcat.threads.max`, Spring Boot's application properties) and Jetty's
/// (`server.jetty.threads.max`). https://docs.spring.io/spring-boot/appendix/application-properties/index.html
pub const DEFAULT_THREADS: u32 = 200;

/// The options that bound the non-heap, as the service sets them (`None`: not set).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NonHeapOptions {
    /// `-XX:MaxMetaspaceSize`.
    pub max_metaspace: Option<u64>,
    /// `-XX:ReservedCodeCacheSize`.
    pub reserved_code_cache: Option<u64>,
    /// `-Xss` / `-XX:ThreadStackSize`.
    pub thread_stack: Option<u64>,
    /// The server's thread pool, from its configuration.
    pub threads: Option<u32>,
    /// `-XX:+UseG1GC`.
    pub g1: bool,
}

/// Where an item's size comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemBasis {
    /// An option caps it (`-XX:MaxMetaspaceSize`, `-XX:ReservedCodeCacheSize`, `-Xss`).
    Option,
    /// What bench/jvm_nonheap.sh measured.
    Measured,
}

/// The non-heap budget, item by item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NonHeap {
    pub metaspace: u64,
    pub metaspace_basis: ItemBasis,
    pub code_cache: u64,
    pub code_cache_basis: ItemBasis,
    pub threads: u32,
    /// Whether the thread count came from the configuration (else [`DEFAULT_THREADS`]).
    pub threads_configured: bool,
    pub stack_per_thread: u64,
    pub stack_basis: ItemBasis,
    pub gc_and_other: u64,
}

impl NonHeap {
    /// The budget for a service with these options.
    pub fn estimate(options: &NonHeapOptions) -> NonHeap {
        // MaxMetaspaceSize is what the service allows the metaspace: budget all of it.
        let (metaspace, metaspace_basis) = match options.max_metaspace {
            Some(max) => (max, ItemBasis::Option),
            None => (MEASURED_METASPACE, ItemBasis::Measured),
        };
        // A code cache reserved smaller than the measured fill is full at its size.
        let (code_cache, code_cache_basis) = match options.reserved_code_cache {
            Some(size) if size < MEASURED_CODE_CACHE => (size, ItemBasis::Option),
            _ => (MEASURED_CODE_CACHE, ItemBasis::Measured),
        };
        let stack = options.thread_stack.unwrap_or(DEFAULT_THREAD_STACK);
        let (stack_per_thread, stack_basis) = if stack < MEASURED_STACK_PER_THREAD {
            (stack, ItemBasis::Option)
        } else {
            (MEASURED_STACK_PER_THREAD, ItemBasis::Measured)
        };
        let gc_and_other = MEASURED_GC_AND_OTHER + if options.g1 { MEASURED_G1_EXTRA } else { 0 };
        NonHeap {
            metaspace,
            metaspace_basis,
            code_cache,
            code_cache_basis,
            threads: options.threads.unwrap_or(DEFAULT_THREADS),
            threads_configured: options.threads.is_some(),
            stack_per_thread,
            stack_basis,
            gc_and_other,
        }
    }

    /// The stacks of all the threads.
    pub fn thread_stacks(&self) -> u64 {
        u64::from(self.threads).saturating_mul(self.stack_per_thread)
    }

    /// Everything beside the heap.
    pub fn total(&self) -> u64 {
        self.metaspace
            .saturating_add(self.code_cache)
            .saturating_add(self.thread_stacks())
            .saturating_add(self.gc_and_other)
    }
}

/// The JVM's default `MaxHeapSize` on 64-bit: `ScaleForWordSize(96*M)` = 124.8 MB
/// (src/hotspot/share/gc/shared/gc_globals.hpp). A percentage of the limit gives no less.
pub const DEFAULT_MAX_HEAP: u64 = 96 * MIB * 13 / 10;

/// `-XX:MinRAMPercentage`'s default: the heap's share of a small container, whatever
/// `MaxRAMPercentage` says (the java man page).
pub const MIN_RAM_PERCENTAGE: f64 = 50.0;

/// The heap's alignment with 4 KiB pages (card size 512 × page size): measured on OpenJDK
/// 17.0.15 under `memfit run --limit 256M`, `-Xmx89m` gives a MaxHeapSize of 90 MiB.
pub const HEAP_ALIGNMENT: u64 = 2 * MIB;

fn align_up(bytes: u64) -> u64 {
    bytes
        .div_ceil(HEAP_ALIGNMENT)
        .saturating_mul(HEAP_ALIGNMENT)
}

/// The maximum heap the JVM derives from `MaxRAMPercentage=percent` of `ram` bytes, as
/// HotSpot's `Arguments::set_heap_size` does: when `MinRAMPercentage` of the memory is below
/// the default MaxHeapSize the memory is "small" and that share wins; otherwise the
/// percentage, but never below the default MaxHeapSize; aligned up. Measured under
/// `memfit run` (OpenJDK 17.0.15): 67% of 512 MiB → 344 MiB, 35% of 300 MiB → 126 MiB, 75% of
/// 200 MiB → 100 MiB.
pub fn heap_of_percentage(ram: u64, percent: f64) -> u64 {
    let share = |p: f64| (ram as f64 * p / 100.0) as u64;
    let small = share(MIN_RAM_PERCENTAGE);
    let heap = if small < DEFAULT_MAX_HEAP {
        small
    } else {
        share(percent).max(DEFAULT_MAX_HEAP)
    };
    align_up(heap)
}

/// What `-Xmx` to write for a heap of at most `bytes`: whole MiB, rounded down to the heap's
/// alignment so that the JVM does not round it up past the budget.
pub fn xmx_mib(bytes: u64) -> u64 {
    bytes / HEAP_ALIGNMENT * (HEAP_ALIGNMENT / MIB)
}

/// The heap memfit gives a JVM with `share` bytes: 75% of the share ([`HEAP_SHARE_PERCENT`]),
/// less when the non-heap needs more than the other quarter.
pub fn planned_heap(share: u64, non_heap: &NonHeap) -> u64 {
    let roomy =
        u64::try_from(u128::from(share) * u128::from(HEAP_SHARE_PERCENT) / 100).unwrap_or(u64::MAX);
    roomy.min(share.saturating_sub(non_heap.total()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measured_figures_without_options() {
        let n = NonHeap::estimate(&NonHeapOptions::default());
        assert_eq!(n.metaspace, 83 * MIB);
        assert_eq!(n.threads, 200);
        assert_eq!(n.thread_stacks(), 200 * 108 * KIB);
        assert_eq!(n.total(), (83 + 16 + 50) * MIB + 200 * 108 * KIB);
    }

    #[test]
    fn heaps_from_percentages_as_measured() {
        assert_eq!(heap_of_percentage(512 * MIB, 67.0), 344 * MIB);
        assert_eq!(heap_of_percentage(512 * MIB, 75.0), 384 * MIB);
        assert_eq!(heap_of_percentage(300 * MIB, 35.0), 126 * MIB);
        assert_eq!(heap_of_percentage(200 * MIB, 75.0), 100 * MIB);
        assert_eq!(heap_of_percentage(256 * MIB, 25.0), 126 * MIB);
        assert_eq!(xmx_mib(89 * MIB + 5), 88);
        assert_eq!(xmx_mib(346 * MIB + MIB / 2), 346);
    }

    #[test]
    fn options_cap_their_items() {
        let n = NonHeap::estimate(&NonHeapOptions {
            max_metaspace: Some(128 * MIB),
            reserved_code_cache: Some(8 * MIB),
            thread_stack: Some(64 * KIB),
            threads: Some(20),
            g1: true,
        });
        assert_eq!(
            (n.metaspace, n.metaspace_basis),
            (128 * MIB, ItemBasis::Option)
        );
        assert_eq!(
            (n.code_cache, n.code_cache_basis),
            (8 * MIB, ItemBasis::Option)
        );
        assert_eq!(n.thread_stacks(), 20 * 64 * KIB);
        assert_eq!(n.gc_and_other, 93 * MIB);
        // A larger code cache or stack than the measured fill does not raise the budget.
        let n = NonHeap::estimate(&NonHeapOptions {
            reserved_code_cache: Some(240 * MIB),
            thread_stack: Some(4 * MIB),
            ..NonHeapOptions::default()
        });
        assert_eq!(n.code_cache, MEASURED_CODE_CACHE);
        assert_eq!(n.stack_per_thread, MEASURED_STACK_PER_THREAD);
    }
}
