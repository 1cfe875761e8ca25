//! The JVM's side of the runtime view: the performance counters every HotSpot JVM publishes
//! in `/tmp/hsperfdata_<user>/<pid>` (`-XX:+UsePerfData`, the default; what `jstat` reads).
//! Nothing is injected into the command, so its output stays untouched (a `JAVA_TOOL_OPTIONS`
//! would make the JVM print "Picked up JAVA_TOOL_OPTIONS" on its stderr). The file is the
//! command's, so it is opened without following links, read to at most 1 MiB and parsed
//! with every offset checked.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::report::JvmRecord;

/// Where HotSpot puts the files (`os::get_temp_directory()` is `/tmp` on Linux, whatever
/// java.io.tmpdir says).
const PERF_ROOT: &str = "/tmp";
const MAX_FILE: u64 = 1 << 20;
const MAGIC: u32 = 0xcafe_c0c0;
/// An entry's header: entry_length, name_offset, vector_length (i32), data_type, flags,
/// data_units, data_variability (u8), data_offset (i32).
const ENTRY_HEADER: usize = 20;
/// Entries read per file: a JVM has a few hundred.
const MAX_ENTRIES: usize = 10_000;

/// The counters of one JVM at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct JvmCounters {
    pub heap_max: u64,
    pub heap_used: u64,
    /// The old generation's used bytes: what survived the collections.
    pub old_used: u64,
    pub gc_count: u64,
    pub gc_ms: u64,
}

/// Follows the JVMs of the run.
#[derive(Default)]
pub(crate) struct JvmView {
    /// `/tmp/hsperfdata_*` directories, once found.
    dirs: Option<Vec<PathBuf>>,
    /// Ticks since /tmp was last listed without finding any.
    idle_ticks: u32,
    pub(crate) records: HashMap<i32, JvmRecord>,
}

impl JvmView {
    /// Reads the counters of each run process that is a JVM.
    pub(crate) fn sample(&mut self, pids: &[i32]) {
        if self.dirs.is_none() {
            // Listing /tmp costs more than a sample: without a JVM, once in 20 ticks.
            if self.idle_ticks % 20 == 0 {
                let found = perf_dirs();
                if !found.is_empty() {
                    self.dirs = Some(found);
                }
            }
            self.idle_ticks = self.idle_ticks.wrapping_add(1);
        }
        let Some(dirs) = &self.dirs else {
            return;
        };
        for dir in dirs.iter() {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten().take(10_000) {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<i32>().ok())
                else {
                    continue;
                };
                if !pids.contains(&pid) {
                    continue;
                }
                if let Some(c) = read_counters(&entry.path()) {
                    let r = self.records.entry(pid).or_default();
                    r.heap_max_bytes = c.heap_max;
                    r.heap_used_peak_bytes = r.heap_used_peak_bytes.max(c.heap_used);
                    r.old_gen_used_peak_bytes = r.old_gen_used_peak_bytes.max(c.old_used);
                    r.gc_count = r.gc_count.max(c.gc_count);
                    r.gc_pause_total_ms = r.gc_pause_total_ms.max(c.gc_ms);
                }
            }
        }
    }
}

fn perf_dirs() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(PERF_ROOT) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().as_encoded_bytes().starts_with(b"hsperfdata_"))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .take(64)
        .collect()
}

fn read_counters(path: &Path) -> Option<JvmCounters> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    (&file as &File)
        .take(MAX_FILE)
        .read_to_end(&mut bytes)
        .ok()?;
    parse(&bytes)
}

/// Parses the perfdata format (HotSpot's perfMemory.hpp: PerfDataPrologue, PerfDataEntry).
pub(crate) fn parse(bytes: &[u8]) -> Option<JvmCounters> {
    let u32_at = |at: usize, little: bool| -> Option<u32> {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    if u32_at(0, false)? != MAGIC {
        return None;
    }
    let little = *bytes.get(4)? == 1;
    let i32_at = |at: usize| u32_at(at, little).map(|v| v as i32);
    let i64_at = |at: usize| -> Option<i64> {
        let b: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
        Some(if little {
            i64::from_le_bytes(b)
        } else {
            i64::from_be_bytes(b)
        })
    };
    let entry_offset = usize::try_from(i32_at(24)?).ok()?;
    let entries = usize::try_from(i32_at(28)?).ok()?.min(MAX_ENTRIES);
    let mut longs: HashMap<&str, i64> = HashMap::new();
    let mut policy = "";
    let mut at = entry_offset;
    for _ in 0..entries {
        let length = usize::try_from(i32_at(at)?).ok()?;
        if length < ENTRY_HEADER {
            return None;
        }
        let name_offset = usize::try_from(i32_at(at + 4)?).ok()?;
        let vector_length = usize::try_from(i32_at(at + 8)?).ok()?;
        let data_type = *bytes.get(at + 12)?;
        let data_offset = usize::try_from(i32_at(at + 16)?).ok()?;
        let entry = bytes.get(at..at.checked_add(length)?)?;
        let name = entry.get(name_offset..)?;
        let name = &name[..name.iter().position(|&b| b == 0)?];
        let name = std::str::from_utf8(name).ok()?;
        if data_type == b'J' && vector_length == 0 {
            longs.insert(name, i64_at(at.checked_add(data_offset)?)?);
        } else if data_type == b'B' && name == "sun.gc.policy.name" {
            let text = entry.get(data_offset..data_offset.checked_add(vector_length)?)?;
            let text = &text[..text.iter().position(|&b| b == 0).unwrap_or(text.len())];
            policy = std::str::from_utf8(text).unwrap_or("");
        }
        at = at.checked_add(length)?;
    }
    let positive = |v: &i64| u64::try_from(*v).unwrap_or(0);
    let sum_of = |f: &dyn Fn(&str) -> bool| -> u64 {
        longs
            .iter()
            .filter(|(name, _)| f(name))
            .map(|(_, v)| positive(v))
            .fold(0u64, u64::saturating_add)
    };
    let generation_max = |name: &str| {
        name.starts_with("sun.gc.generation.")
            && name.ends_with(".maxCapacity")
            && !name.contains(".space.")
    };
    // G1's generations each report the whole heap as their maximum; the others' add up.
    let heap_max = if policy.contains("GarbageFirst") {
        longs
            .iter()
            .filter(|(name, _)| generation_max(name))
            .map(|(_, v)| positive(v))
            .max()
            .unwrap_or(0)
    } else {
        sum_of(&|name: &str| generation_max(name))
    };
    let space_used = |name: &str| name.starts_with("sun.gc.generation.") && name.ends_with(".used");
    let heap_used = sum_of(&space_used);
    let old_used = sum_of(&|name: &str| {
        name.starts_with("sun.gc.generation.1.space.") && name.ends_with(".used")
    });
    let collector = |suffix: &'static str| {
        move |name: &str| name.starts_with("sun.gc.collector.") && name.ends_with(suffix)
    };
    let gc_count = sum_of(&collector(".invocations"));
    let ticks = sum_of(&collector(".time"));
    let frequency = longs.get("sun.os.hrt.frequency").map_or(0, positive).max(1);
    let gc_ms = u64::try_from(u128::from(ticks) * 1000 / u128::from(frequency)).unwrap_or(u64::MAX);
    Some(JvmCounters {
        heap_max,
        heap_used,
        old_used,
        gc_count,
        gc_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A perfdata image with the given long counters, as HotSpot lays it out.
    fn image(counters: &[(&str, i64)], policy: &str) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_be_bytes());
        out.extend_from_slice(&[1, 2, 0, 1]);
        out.extend_from_slice(&[0; 16]);
        out.extend_from_slice(&32i32.to_le_bytes());
        out.extend_from_slice(&((counters.len() + 1) as i32).to_le_bytes());
        let mut entry = |name: &str, kind: u8, data: &[u8], vector: usize| {
            let name_offset = ENTRY_HEADER;
            let data_offset = (name_offset + name.len() + 1).div_ceil(8) * 8;
            let length = data_offset + data.len();
            let mut e = Vec::new();
            e.extend_from_slice(&(length as i32).to_le_bytes());
            e.extend_from_slice(&(name_offset as i32).to_le_bytes());
            e.extend_from_slice(&(vector as i32).to_le_bytes());
            e.extend_from_slice(&[kind, 0, 0, 0]);
            e.extend_from_slice(&(data_offset as i32).to_le_bytes());
            e.extend_from_slice(name.as_bytes());
            e.resize(data_offset, 0);
            e.extend_from_slice(data);
            out.extend_from_slice(&e);
        };
        entry("sun.gc.policy.name", b'B', policy.as_bytes(), policy.len());
        for (name, value) in counters {
            entry(name, b'J', &value.to_le_bytes(), 0);
        }
        out
    }

    #[test]
    fn g1_counters_give_the_heap_and_the_collections() {
        let bytes = image(
            &[
                ("sun.gc.generation.0.maxCapacity", 128 << 20),
                ("sun.gc.generation.1.maxCapacity", 128 << 20),
                ("sun.gc.generation.0.space.0.used", 4 << 20),
                ("sun.gc.generation.1.space.0.used", 100 << 20),
                ("sun.gc.collector.0.invocations", 17),
                ("sun.gc.collector.0.time", 114_000_000),
                ("sun.gc.collector.2.invocations", 3),
                ("sun.gc.collector.2.time", 6_000_000),
                ("sun.os.hrt.frequency", 1_000_000_000),
            ],
            "GarbageFirst",
        );
        let c = parse(&bytes).unwrap();
        assert_eq!(c.heap_max, 128 << 20);
        assert_eq!(c.heap_used, 104 << 20);
        assert_eq!(c.old_used, 100 << 20);
        assert_eq!(c.gc_count, 20);
        assert_eq!(c.gc_ms, 120);
    }

    #[test]
    fn a_hostile_file_is_refused_not_read_out_of_bounds() {
        let good = image(&[("sun.os.hrt.frequency", 1)], "Serial");
        for cut in 0..good.len() {
            let _ = parse(&good[..cut]);
        }
        let mut bad = good.clone();
        bad[32..36].copy_from_slice(&i32::MAX.to_le_bytes());
        assert_eq!(parse(&bad), None);
        assert_eq!(parse(b"not a perf file"), None);
    }
}
