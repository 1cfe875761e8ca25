//! What a rule reports: a finding with a span, a message, and where safe a fix.

use std::path::PathBuf;

use serde::Serialize;

use crate::dockerfile::Span;
use crate::source::FileId;

/// error = likely OOM, warning = real waste, info = a hint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        match text.to_ascii_lowercase().as_str() {
            "info" => Some(Severity::Info),
            "warning" | "warn" => Some(Severity::Warning),
            "error" => Some(Severity::Error),
            _ => None,
        }
    }
}

/// A replacement of a byte range of a file (the finding's own, or another: a
/// `.dockerignore` to create, a tsconfig to extend). An edit at 0..0 of a file that does not
/// exist creates it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Edit {
    /// Relative to the project root.
    pub path: PathBuf,
    pub start: usize,
    pub end: usize,
    pub replacement: String,
    /// An insertion that goes after the others at the same offset (` && npm cache clean`
    /// after ` --omit=dev`, which extends the command).
    #[serde(skip)]
    pub trailing: bool,
}

impl Edit {
    pub fn replace(path: impl Into<PathBuf>, span: Span, replacement: impl Into<String>) -> Edit {
        Edit {
            path: path.into(),
            start: span.start,
            end: span.end,
            replacement: replacement.into(),
            trailing: false,
        }
    }

    pub fn insert(path: impl Into<PathBuf>, at: usize, text: impl Into<String>) -> Edit {
        Edit {
            path: path.into(),
            start: at,
            end: at,
            replacement: text.into(),
            trailing: false,
        }
    }

    /// An insertion that chains something after what is at `at` (goes after the insertions
    /// that extend it).
    pub fn append(path: impl Into<PathBuf>, at: usize, text: impl Into<String>) -> Edit {
        Edit {
            trailing: true,
            ..Edit::insert(path, at, text)
        }
    }
}

/// How to fix a finding. With edits, `memfit fix` applies it; without, it is advice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fix {
    pub description: String,
    /// Edits applied together; empty for advice only.
    pub edits: Vec<Edit>,
}

/// The longest message a finding prints, in characters: messages quote the project's files
/// (a command line, a script), which can be megabytes long.
pub const MAX_MESSAGE_CHARS: usize = 1000;

fn bounded(mut message: String) -> String {
    if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
        message.truncate(cut);
        message.push('…');
    }
    message
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub file: FileId,
    pub span: Span,
    pub message: String,
    pub fix: Option<Fix>,
}

impl Finding {
    pub fn new(
        rule: &'static str,
        severity: Severity,
        file: FileId,
        span: Span,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            rule,
            severity,
            file,
            span,
            message: bounded(message.into()),
            fix: None,
        }
    }

    /// Advice without an automatic edit.
    pub fn advise(mut self, description: impl Into<String>) -> Finding {
        self.fix = Some(Fix {
            description: description.into(),
            edits: Vec::new(),
        });
        self
    }

    /// A fix `memfit fix` applies.
    pub fn fix_with(mut self, description: impl Into<String>, edits: Vec<Edit>) -> Finding {
        self.fix = Some(Fix {
            description: description.into(),
            edits,
        });
        self
    }

    pub fn fixable(&self) -> bool {
        self.fix.as_ref().is_some_and(|f| !f.edits.is_empty())
    }
}
