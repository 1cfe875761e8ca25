//! `memfit fix`: the audit's safe fixes as minimal text edits, shown as a unified diff and
//! written atomically. What a fix does not touch keeps its bytes (formatting, comments, line
//! endings). Fixes whose edits overlap an earlier one wait for the next run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use memfit_sys::safe_write;

use crate::audit::Report;
use crate::finding::Edit;

/// The new contents of one file.
#[derive(Debug, Clone)]
pub struct FileChange {
    /// Relative to the project root.
    pub path: PathBuf,
    /// `None` when the fix creates the file.
    pub old: Option<String>,
    pub new: String,
    /// The rules whose fixes went in.
    pub rules: Vec<&'static str>,
}

impl FileChange {
    /// A unified diff, `a/` and `b/` prefixed as git prints them.
    pub fn diff(&self) -> String {
        let shown = self.path.to_string_lossy().replace('\\', "/");
        let old = self.old.as_deref().unwrap_or("");
        let diff = similar::TextDiff::from_lines(old, &self.new);
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

/// The changes the fixable findings of a report make.
pub fn plan(report: &Report) -> Vec<FileChange> {
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
    let mut changes = Vec::new();
    for (path, (mut edits, rules)) in by_path {
        let shown = path.to_string_lossy().replace('\\', "/");
        let old = match report.project.find(&shown) {
            Some((_, file)) => Some(file.source.text.clone()),
            None => std::fs::read_to_string(report.project.root.join(&path)).ok(),
        };
        let base = old.clone().unwrap_or_default();
        // Apply from the end so earlier offsets stay valid; equal starts keep their order.
        edits.sort_by(|a, b| b.start.cmp(&a.start).then(b.end.cmp(&a.end)));
        let mut new = base.clone();
        let mut valid = true;
        for edit in &edits {
            if edit.end > new.len()
                || edit.start > edit.end
                || !new.is_char_boundary(edit.start)
                || !new.is_char_boundary(edit.end)
            {
                valid = false;
                break;
            }
            new.replace_range(edit.start..edit.end, &edit.replacement);
        }
        if valid && Some(&new) != old.as_ref() {
            changes.push(FileChange {
                path,
                old,
                new,
                rules,
            });
        }
    }
    changes
}

/// Writes a change through memfit-sys's safe writer: never through a link, only over a regular
/// file (or a new one), keeping its owner, group and mode, and only if the file still holds
/// what the audit read.
pub fn apply(root: &Path, change: &FileChange) -> std::io::Result<()> {
    let target = root.join(&change.path);
    safe_write::replace(
        &target,
        change.new.as_bytes(),
        change.old.as_deref().map(str::as_bytes),
    )
    .map_err(std::io::Error::other)
}
