//! The Python side of the runtime view (`memfit run --python-tracemalloc`): a `sitecustomize`
//! (`sitecustomize.py`) in a zip put first on PYTHONPATH, and its report lines. A zip rather
//! than a directory: Python never writes bytecode caches (`__pycache__`) for what it imports
//! from a zip, so nothing appears beside the FIFO whoever the command runs as.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// The variable the `sitecustomize` is injected through.
pub const PYTHONPATH: &str = "PYTHONPATH";

/// What one Python process said at one moment: `tracemalloc.get_traced_memory()` and
/// `tracemalloc.get_tracemalloc_memory()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PythonReport {
    /// In memfit's PID namespace (the `sitecustomize` reads `/proc/self`).
    pub pid: i32,
    /// Memory in blocks tracemalloc traces now, and at most since it started (or since the
    /// fork, for a forked child).
    pub current: u64,
    pub peak: u64,
    /// tracemalloc's own memory (its tables of traces): there only because of the view.
    pub overhead: u64,
    /// The process's last report, at its exit.
    pub end: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    kind: Kind,
    pid: i32,
    current: u64,
    peak: u64,
    overhead: u64,
    end: bool,
}

#[derive(Deserialize)]
enum Kind {
    #[serde(rename = "python")]
    Python,
}

/// No Python process traces this much (1 PiB): a larger number is not a measurement.
const MAX_PLAUSIBLE: u64 = 1 << 50;

impl PythonReport {
    pub fn parse(line: &[u8]) -> Option<PythonReport> {
        let l: Line = serde_json::from_slice(line).ok()?;
        let Kind::Python = l.kind;
        let sizes = [l.current, l.peak, l.overhead];
        if l.pid <= 0 || sizes.iter().any(|&s| s > MAX_PLAUSIBLE) {
            return None;
        }
        Some(PythonReport {
            pid: l.pid,
            current: l.current,
            // A peak below the current value is not tracemalloc's.
            peak: l.peak.max(l.current),
            overhead: l.overhead,
            end: l.end,
        })
    }
}

/// The zip's file in the view's directory, and the module's name inside it.
pub(super) const ZIP_NAME: &str = "memfit-python-view.zip";
const MODULE_NAME: &str = "sitecustomize.py";

/// The `sitecustomize` reporting to `fifo` every `period`, as a zip.
pub(super) fn sitecustomize_zip(fifo: &str, period: Duration) -> serde_json::Result<Vec<u8>> {
    // A JSON string is a Python string literal.
    let source = include_str!("sitecustomize.py")
        .replace("__MEMFIT_FIFO__", &serde_json::to_string(fifo)?)
        .replace(
            "__MEMFIT_INTERVAL_S__",
            &format!("{:.3}", period.as_secs_f64()),
        );
    Ok(stored_zip(MODULE_NAME, source.as_bytes()))
}

/// PYTHONPATH with the zip first and the command's own entries after it, unchanged (an empty
/// value stays out: an empty entry would add the working directory).
pub fn python_path(zip: &Path, existing: Option<&OsStr>) -> OsString {
    let mut value = zip.as_os_str().to_os_string();
    if let Some(existing) = existing.filter(|e| !e.is_empty()) {
        value.push(":");
        value.push(existing);
    }
    value
}

/// A zip archive of one file, stored (not compressed): what `zipimport` reads without zlib.
/// The format: PKWARE's APPNOTE.TXT, https://pkware.cachefly.net/webdocs/casestudies/APPNOTE.TXT
fn stored_zip(name: &str, data: &[u8]) -> Vec<u8> {
    const VERSION: u16 = 20;
    // 1980-01-01 00:00 in MS-DOS form: zipimport reads the time only for bytecode.
    const DOS_TIME: u16 = 0;
    const DOS_DATE: u16 = (1 << 5) | 1;
    let crc = crc32(data);
    let size = data.len() as u32;
    let name = name.as_bytes();
    let mut zip = Vec::with_capacity(data.len() + 2 * name.len() + 128);
    let u16le = |zip: &mut Vec<u8>, v: u16| zip.extend_from_slice(&v.to_le_bytes());
    let u32le = |zip: &mut Vec<u8>, v: u32| zip.extend_from_slice(&v.to_le_bytes());
    // Local file header.
    u32le(&mut zip, 0x0403_4b50);
    for v in [VERSION, 0, 0, DOS_TIME, DOS_DATE] {
        u16le(&mut zip, v);
    }
    for v in [crc, size, size] {
        u32le(&mut zip, v);
    }
    u16le(&mut zip, name.len() as u16);
    u16le(&mut zip, 0);
    zip.extend_from_slice(name);
    zip.extend_from_slice(data);
    // Central directory.
    let directory_offset = zip.len() as u32;
    u32le(&mut zip, 0x0201_4b50);
    for v in [VERSION, VERSION, 0, 0, DOS_TIME, DOS_DATE] {
        u16le(&mut zip, v);
    }
    for v in [crc, size, size] {
        u32le(&mut zip, v);
    }
    for v in [name.len() as u16, 0, 0, 0, 0] {
        u16le(&mut zip, v);
    }
    u32le(&mut zip, 0);
    u32le(&mut zip, 0);
    zip.extend_from_slice(name);
    let directory_size = zip.len() as u32 - directory_offset;
    // End of central directory.
    u32le(&mut zip, 0x0605_4b50);
    for v in [0, 0, 1, 1] {
        u16le(&mut zip, v);
    }
    u32le(&mut zip, directory_size);
    u32le(&mut zip, directory_offset);
    u16le(&mut zip, 0);
    zip
}

/// CRC-32 (IEEE 802.3, reflected, as zip uses): bit by bit, for a few KiB once per run.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// Whether `entry` (`NAME=value`) sets `name`.
pub(super) fn sets(entry: &OsStr, name: &str) -> bool {
    entry
        .as_bytes()
        .strip_prefix(name.as_bytes())
        .is_some_and(|rest| rest.first() == Some(&b'='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_of_the_check_string() {
        // The CRC-32 catalogue's check value: https://reveng.sourceforge.io/crc-catalogue/17plus.htm
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn report_lines_are_parsed_defensively() {
        let ok = br#"{"kind":"python","pid":7,"current":10,"peak":20,"overhead":3,"end":true}"#;
        assert_eq!(
            PythonReport::parse(ok),
            Some(PythonReport {
                pid: 7,
                current: 10,
                peak: 20,
                overhead: 3,
                end: true
            })
        );
        for bad in [
            &br#"{"kind":"node","pid":7,"current":10,"peak":20,"overhead":3,"end":true}"#[..],
            br#"{"kind":"python","pid":0,"current":10,"peak":20,"overhead":3,"end":true}"#,
            br#"{"kind":"python","pid":7,"current":1e300,"peak":20,"overhead":3,"end":true}"#,
            br#"{"kind":"python","pid":7,"current":10,"peak":20,"overhead":3,"end":true,"x":1}"#,
            br#"{"kind":"python","pid":7,"current":10,"peak":2251799813685249,"overhead":3,"end":true}"#,
        ] {
            assert_eq!(PythonReport::parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn pythonpath_puts_the_zip_first_and_keeps_the_users_entries() {
        let zip = Path::new("/tmp/v/memfit-python-view.zip");
        assert_eq!(
            python_path(zip, Some(OsStr::new("/a:/b c"))),
            OsString::from("/tmp/v/memfit-python-view.zip:/a:/b c")
        );
        assert_eq!(
            python_path(zip, Some(OsStr::new(""))),
            OsString::from("/tmp/v/memfit-python-view.zip")
        );
        assert!(sets(OsStr::new("PYTHONPATH=/x"), PYTHONPATH));
        assert!(!sets(OsStr::new("PYTHONPATHX=/x"), PYTHONPATH));
    }
}
