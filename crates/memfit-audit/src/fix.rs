//! `memfit fix`: the audit's safe fixes as minimal edits, shown as a unified diff and written
//! all or nothing. Edits are byte ranges of the original bytes, spliced in: what a fix does not
//! touch keeps its bytes (formatting, comments, line endings, bytes that are not UTF-8). Fixes
//! whose edits overlap an earlier one wait for the next run. Nothing outside the project root
//! is read or written: a path through a symbolic link is refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use memfit_sys::safe_write;

use crate::audit::Report;
use crate::finding::Edit;
use crate::project::read_inside;

/// The new contents of one file.
#[derive(Debug, Clone)]
pub struct FileChange {
    /// Relative to the project root.
    pub path: PathBuf,
    /// The bytes read; `None` when the fix creates the file.
    pub old: Option<Vec<u8>>,
    pub new: Vec<u8>,
    /// The rules whose fixes went in.
    pub rules: Vec<&'static str>,
}

/// What `fix` would do: the changes, and the files it leaves alone with the reason.
#[derive(Debug, Default)]
pub struct Plan {
    pub changes: Vec<FileChange>,
    pub refused: Vec<String>,
}

impl FileChange {
    /// A unified diff, `a/` and `b/` prefixed as git prints them (bytes that are not UTF-8
    /// are shown as U+FFFD; the file gets its own).
    pub fn diff(&self) -> String {
        let shown = self.path.to_string_lossy().replace('\\', "/");
        let old = String::from_utf8_lossy(self.old.as_deref().unwrap_or(b""));
        let new = String::from_utf8_lossy(&self.new);
        let diff = similar::TextDiff::from_lines(old.as_ref(), new.as_ref());
        let from = if self.old.is_some() {
            format!("a/{shown}")
        } else {
            "/dev/null".to_string()
        };
        diff.unified_diff()
            .context_radius(3)
            .header(&from, &format!("b/{shown}"))
            .to_string()
    }
}

/// Byte offsets of the original file for offsets of its lossy UTF-8 decoding (which the
/// audit's spans are): each invalid sequence became one U+FFFD.
struct OffsetMap {
    /// (text offset, byte offset, whether it starts a U+FFFD standing for invalid bytes).
    segments: Vec<(usize, usize, bool)>,
}

impl OffsetMap {
    fn new(bytes: &[u8]) -> OffsetMap {
        let mut segments = vec![(0, 0, false)];
        let (mut text, mut byte) = (0, 0);
        for chunk in bytes.utf8_chunks() {
            text += chunk.valid().len();
            byte += chunk.valid().len();
            if !chunk.invalid().is_empty() {
                segments.push((text, byte, true));
                text += char::REPLACEMENT_CHARACTER.len_utf8();
                byte += chunk.invalid().len();
                segments.push((text, byte, false));
            }
        }
        OffsetMap { segments }
    }

    /// `None` inside a U+FFFD that stands for invalid bytes.
    fn byte(&self, text: usize) -> Option<usize> {
        let i = self.segments.partition_point(|s| s.0 <= text) - 1;
        let (t, b, replaced) = self.segments[i];
        match (replaced, text - t) {
            (_, 0) => Some(b),
            (true, _) => None,
            (false, d) => Some(b + d),
        }
    }
}

/// The changes the fixable findings of a report make.
pub fn plan(report: &Report) -> Plan {
    let mut by_path: BTreeMap<PathBuf, (Vec<Edit>, Vec<&'static str>)> = BTreeMap::new();
    for finding in report.findings.iter().filter(|f| f.fixable()) {
        let Some(fix) = &finding.fix else { continue };
        // All of a finding's edits, or none.
        let clashes = fix.edits.iter().any(|e| {
            by_path.get(&e.path).is_some_and(|(accepted, _)| {
                accepted.iter().any(|a| {
                    let overlap = e.start < a.end && a.start < e.end;
                    let same_insert = e.start == e.end
                        && a.start == a.end
                        && e.start == a.start
                        && e.replacement == a.replacement;
                    overlap || same_insert
                })
            })
        });
        if clashes {
            continue;
        }
        for edit in &fix.edits {
            let entry = by_path.entry(edit.path.clone()).or_default();
            entry.0.push(edit.clone());
            if !entry.1.contains(&finding.rule) {
                entry.1.push(finding.rule);
            }
        }
    }
    let mut plan = Plan::default();
    for (path, (edits, rules)) in by_path {
        match change(report, &path, edits) {
            Ok(Some(new)) => plan.changes.push(FileChange {
                path,
                old: new.0,
                new: new.1,
                rules,
            }),
            Ok(None) => {}
            Err(why) => plan.refused.push(why),
        }
    }
    plan
}

/// (old bytes, new bytes) of one file, `None` when nothing changes.
#[allow(clippy::type_complexity)]
fn change(
    report: &Report,
    path: &Path,
    mut edits: Vec<Edit>,
) -> Result<Option<(Option<Vec<u8>>, Vec<u8>)>, String> {
    let shown = path.to_string_lossy().replace('\\', "/");
    let root = &report.project.root;
    let old = match read_inside(root, path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("{shown} left alone: {e}")),
    };
    if let (Some((_, file)), Some(bytes)) = (report.project.find(&shown), &old) {
        if String::from_utf8_lossy(bytes) != file.source.text {
            return Err(format!(
                "{shown} left alone: it changed while memfit was working; run again"
            ));
        }
    }
    let base = old.as_deref().unwrap_or(b"");
    let map = OffsetMap::new(base);
    let text_len = String::from_utf8_lossy(base).len();
    // In file order; at one offset, an edit that extends a command goes before one that
    // chains another after it, then the findings' order.
    edits.sort_by_key(|e| (e.start, e.trailing));
    let mut new = Vec::with_capacity(base.len() + 64);
    let mut cursor = 0;
    for edit in &edits {
        let range = (edit.start <= edit.end && edit.end <= text_len)
            .then(|| map.byte(edit.start).zip(map.byte(edit.end)))
            .flatten();
        let Some((start, end)) = range.filter(|(s, _)| *s >= cursor) else {
            return Err(format!(
                "{shown} left alone: an edit does not fit the file; run again"
            ));
        };
        new.extend_from_slice(&base[cursor..start]);
        new.extend_from_slice(edit.replacement.as_bytes());
        cursor = end;
    }
    new.extend_from_slice(&base[cursor..]);
    Ok((Some(&new) != old.as_ref()).then_some((old, new)))
}

/// Writes the changes all or nothing, through memfit-sys's safe writer: never through a link,
/// only over a regular file (or a new one), keeping owner, group and mode, and only if every
/// file still holds what the audit read. On an error nothing has changed; it names the file.
pub fn apply(root: &Path, changes: &[FileChange]) -> Result<(), safe_write::WriteError> {
    let mut staged = Vec::with_capacity(changes.len());
    for change in changes {
        // The directories on the way must be the project's own (no link out).
        if let Some(parent) = change.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            check_dirs_inside(root, parent).map_err(|source| safe_write::WriteError::Io {
                path: root.join(&change.path),
                source,
            })?;
        }
        staged.push(safe_write::stage(
            &root.join(&change.path),
            &change.new,
            change.old.as_deref(),
        )?);
    }
    safe_write::commit(staged)
}

fn check_dirs_inside(root: &Path, rel: &Path) -> std::io::Result<()> {
    let mut path = root.to_path_buf();
    for component in rel.components() {
        let std::path::Component::Normal(name) = component else {
            return Err(std::io::Error::other("not a path inside the project"));
        };
        path.push(name);
        let meta = std::fs::symlink_metadata(&path)?;
        if !meta.is_dir() {
            return Err(std::io::Error::other(format!(
                "{} is not a directory of the project (a link?)",
                rel.display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_of_the_lossy_text_map_to_the_original_bytes() {
        let bytes = b"# caf\xe9\r\nRUN x\xff\xfey\n";
        let map = OffsetMap::new(bytes);
        let text = String::from_utf8_lossy(bytes);
        let run = text.find("RUN").unwrap();
        assert_eq!(&bytes[map.byte(run).unwrap()..][..3], b"RUN");
        let y = text.find('y').unwrap();
        assert_eq!(bytes[map.byte(y).unwrap()], b'y');
        assert_eq!(map.byte(text.len()), Some(bytes.len()));
        // Inside a U+FFFD: no byte offset.
        assert_eq!(map.byte(text.find('\u{fffd}').unwrap() + 1), None);
    }
}
