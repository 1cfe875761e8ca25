//! Files of the project, read once, with line indexes for spans.

use std::path::PathBuf;

use crate::dockerfile::{LineIndex, Span};

/// Index of a file in `Project::files`.
pub type FileId = usize;

/// A text file of the project.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Relative to the project root, `/`-separated.
    pub path: PathBuf,
    pub text: String,
    pub index: LineIndex,
}

impl SourceFile {
    pub fn new(path: PathBuf, text: String) -> SourceFile {
        let index = LineIndex::new(&text);
        SourceFile { path, text, index }
    }

    /// (line, column) of a byte offset, both from 1.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        self.index.line_col(&self.text, offset)
    }

    /// The span of a 1-based line.
    pub fn line_span(&self, line: usize) -> Span {
        self.index.line_span(&self.text, line)
    }

    /// The path as shown to users.
    pub fn display(&self) -> String {
        self.path.to_string_lossy().replace('\\', "/")
    }

    /// The first occurrence of `needle` at or after `from`, as a span.
    pub fn find(&self, needle: &str, from: usize) -> Option<Span> {
        self.text
            .get(from..)?
            .find(needle)
            .map(|p| Span::new(from + p, from + p + needle.len()))
    }
}
