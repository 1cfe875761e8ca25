//! `/proc/self/mountinfo`, the one parser of it (proc(5): "36 35 98:0 /mnt1 /mnt2 rw,noatime
//! master:1 - ext3 /dev/root rw,errors=continue").

use std::path::PathBuf;

/// One mount, with the fields memfit uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The directory of the filesystem that forms this mount's root (field 4): for a cgroup
    /// mount, the cgroup the mount starts at.
    pub root: String,
    /// Where it is mounted (field 5).
    pub mount_point: PathBuf,
    /// The filesystem type after the ` - ` separator, e.g. `cgroup2`.
    pub fstype: String,
    /// The per-superblock options, e.g. `rw,memory` (v1) or `rw,nsdelegate` (v2).
    pub super_options: String,
}

impl MountEntry {
    /// Parses one line; `None` for a line that is not a mountinfo record.
    pub fn parse(line: &str) -> Option<MountEntry> {
        // The optional fields end at the lone "-"; splitting on " - " would also split a
        // path that contains " - " if the kernel did not escape spaces (it does: \040).
        let (before, after) = line.split_once(" - ")?;
        let fields: Vec<&str> = before.split_whitespace().collect();
        let mut after = after.split_whitespace();
        let fstype = after.next()?;
        let _source = after.next();
        Some(MountEntry {
            root: unescape(fields.get(3)?),
            mount_point: PathBuf::from(unescape(fields.get(4)?)),
            fstype: unescape(fstype),
            super_options: after.next().map(unescape).unwrap_or_default(),
        })
    }

    /// Whether the superblock options list `option` (e.g. `memory` on a v1 cgroup mount).
    pub fn has_option(&self, option: &str) -> bool {
        self.super_options.split(',').any(|o| o == option)
    }
}

/// Every mount of a mountinfo text, in order; lines that do not parse are skipped.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(MountEntry::parse).collect()
}

/// The kernel escapes space, tab, newline and backslash in mountinfo as three octal digits
/// (`\040`, `\011`, `\012`, `\134`; fs/proc_namespace.c `mangle`). Decodes every such escape
/// and leaves anything else as written.
pub fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let octal = std::str::from_utf8(&bytes[i + 1..i + 4]).ok();
            if let Some(v) = octal.and_then(|o| u8::from_str_radix(o, 8).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_octal_escape_is_decoded() {
        assert_eq!(unescape("/mnt/with\\040space"), "/mnt/with space");
        assert_eq!(unescape("/a\\011tab\\012nl\\134bs"), "/a\ttab\nnl\\bs");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/trailing\\04"), "/trailing\\04");
    }

    /// The guard's former parser decoded only `\040`, and only in the mount point: a cgroup
    /// root with a tab or a backslash was compared escaped.
    #[test]
    fn escapes_are_decoded_in_the_root_field_too() {
        let line = "40 30 0:35 /kube\\134pods /sys/fs/cgroup\\040x rw - cgroup2 cgroup2 rw";
        let entry = MountEntry::parse(line).unwrap();
        assert_eq!(entry.root, "/kube\\pods");
        assert_eq!(entry.mount_point, PathBuf::from("/sys/fs/cgroup x"));
        assert_eq!(entry.fstype, "cgroup2");
    }

    #[test]
    fn optional_fields_and_super_options() {
        let line = "35 31 0:32 / /sys/fs/cgroup/memory rw,nosuid shared:15 master:2 - cgroup cgroup rw,memory";
        let entry = MountEntry::parse(line).unwrap();
        assert!(entry.has_option("memory"));
        assert!(!entry.has_option("cpu"));
        assert!(MountEntry::parse("garbage").is_none());
    }
}
