//! The project model and the whole audit: the input is a small project, written to a
//! temporary directory and audited as `memfit audit DIR` does, then planned as `memfit fix`
//! does, and the fixes applied.
//!
//! Format: files separated by NUL bytes; each file is its relative path, a newline, and its
//! contents, e.g. `Dockerfile\nFROM node:20\n\0package.json\n{"name":"a"}`. A path that is
//! not a plain relative path (absolute, `..`, empty components, odd characters) is skipped.
#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use memfit_audit::audit::{self, Options};
use memfit_audit::{fix, report};

const MAX_FILES: usize = 12;

fn relative_path(name: &[u8]) -> Option<PathBuf> {
    let name = std::str::from_utf8(name).ok()?;
    let plain = |c: &str| {
        !c.is_empty()
            && c != "."
            && c != ".."
            && c.len() <= 64
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    let parts: Vec<&str> = name.split('/').collect();
    (parts.len() <= 3 && parts.iter().all(|c| plain(c))).then(|| PathBuf::from(name))
}

fn write_project(root: &Path, data: &[u8]) -> bool {
    let mut written = false;
    for file in data.split(|&b| b == 0).take(MAX_FILES) {
        let (name, contents) = match file.iter().position(|&b| b == b'\n') {
            Some(nl) => (&file[..nl], &file[nl + 1..]),
            None => (file, &[][..]),
        };
        let Some(path) = relative_path(name) else {
            continue;
        };
        let path = root.join(path);
        if let Some(dir) = path.parent() {
            if std::fs::create_dir_all(dir).is_err() {
                continue; // a file of the same name is in the way
            }
        }
        written |= std::fs::write(&path, contents).is_ok();
    }
    written
}

/// The audit, and the checks on what it found; `None` when memfit.toml stops it (a problem
/// in memfit's own configuration is exit 2 with its place, as `memfit audit` says it).
fn audit_and_check(root: &Path) -> Option<audit::Report> {
    let report = match audit::run(root, &Options::default()) {
        Ok(report) => report,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            assert!(e.to_string().starts_with("memfit.toml"), "{e}");
            return None;
        }
        Err(e) => panic!("the project directory exists: {e}"),
    };
    for finding in &report.findings {
        let source = &report.project.file(finding.file).source;
        // `memfit audit` prints a code frame from these lines, slicing the text with them.
        let (line, _, end_line, _) = report::position(&report, finding);
        assert!(line >= 1 && end_line >= line, "{finding:?}");
        if !source.text.is_empty() {
            for l in line..=end_line.min(line + 2) {
                let span = source.line_span(l);
                assert!(
                    source.text.get(span.start..span.end).is_some(),
                    "line {l} of {} ({span:?}) does not slice its text: {finding:?}",
                    source.display()
                );
            }
        }
    }
    let _ = report::to_json(&report).to_string();
    let _ = report::to_sarif(&report).to_string();
    let _ = report::counts(&report);
    Some(report)
}

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::Builder::new()
        .prefix("memfit-fuzz-")
        .tempdir()
        .expect("a temporary directory");
    if !write_project(dir.path(), data) {
        return;
    }
    let Some(report) = audit_and_check(dir.path()) else {
        return;
    };
    let plan = fix::plan(&report);
    for change in &plan.changes {
        let _ = change.diff();
    }
    // All files or none, as `memfit fix` applies them.
    let _ = fix::apply(dir.path(), &plan.changes);
    if !plan.changes.is_empty() {
        // The fixed project is a project too.
        audit_and_check(dir.path());
    }
});
