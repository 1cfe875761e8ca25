//! A Dockerfile parser that never refuses a valid Dockerfile.
//!
//! It follows the BuildKit reference
//! (https://github.com/moby/buildkit/blob/master/frontend/dockerfile/docs/reference.md):
//! parser directives (`syntax`, `escape`, `check`) at the top only, continuation lines with
//! either escape character, comment lines inside continuations dropped, heredocs anywhere in
//! RUN/COPY/ADD (several per instruction, `<<-`, quoted delimiters, file-descriptor prefixes),
//! JSON and shell forms, every flag kept as data (unknown ones included: hadolint's hard
//! failures on `ADD --keep-git-dir` and `--unpack`, hadolint/hadolint#951 and #1145, are its
//! users' first complaint), ARG before FROM, stage aliases, ONBUILD, CRLF.
//!
//! What it cannot make sense of becomes a [`Problem`] with a span, and parsing goes on:
//! an unknown instruction is kept as one, an unterminated heredoc runs to the end of the file.
//!
//! Every instruction keeps its logical text (continuations and comment lines removed) with a
//! map from each of its bytes back to the source, so that rules report exact spans and fixes
//! edit the file in place.

mod parse;
mod run_steps;
pub mod shell;
mod stages;

pub use parse::parse;
pub use run_steps::RunStep;
pub use stages::{Stage, StageRef};

/// A byte range in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, Default)]
pub struct Dockerfile {
    pub directives: Vec<Directive>,
    /// The escape character: `\` unless `# escape=`` ` `` says otherwise.
    pub escape: char,
    pub instructions: Vec<Instruction>,
    /// Comment lines (outside directives), in order: suppression comments are among them.
    pub comments: Vec<Comment>,
    /// What could not be understood; parsing went on.
    pub problems: Vec<Problem>,
}

/// `# syntax=docker/dockerfile:1`, `# escape=``, `# check=skip=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Lower case.
    pub name: String,
    pub value: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    /// The text after `#`, trimmed.
    pub text: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub message: String,
    pub span: Span,
}

/// An instruction's keyword: BuildKit's instructions (reference.md, "Overview"), compared
/// in upper case as BuildKit does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keyword {
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    Stopsignal,
    User,
    Volume,
    Workdir,
    /// Not one of BuildKit's instructions, upper-cased: kept, and reported as a problem.
    Unknown(String),
}

impl Keyword {
    pub fn parse(word: &str) -> Keyword {
        match word.to_ascii_uppercase().as_str() {
            "ADD" => Keyword::Add,
            "ARG" => Keyword::Arg,
            "CMD" => Keyword::Cmd,
            "COPY" => Keyword::Copy,
            "ENTRYPOINT" => Keyword::Entrypoint,
            "ENV" => Keyword::Env,
            "EXPOSE" => Keyword::Expose,
            "FROM" => Keyword::From,
            "HEALTHCHECK" => Keyword::Healthcheck,
            "LABEL" => Keyword::Label,
            "MAINTAINER" => Keyword::Maintainer,
            "ONBUILD" => Keyword::Onbuild,
            "RUN" => Keyword::Run,
            "SHELL" => Keyword::Shell,
            "STOPSIGNAL" => Keyword::Stopsignal,
            "USER" => Keyword::User,
            "VOLUME" => Keyword::Volume,
            "WORKDIR" => Keyword::Workdir,
            other => Keyword::Unknown(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Keyword::Add => "ADD",
            Keyword::Arg => "ARG",
            Keyword::Cmd => "CMD",
            Keyword::Copy => "COPY",
            Keyword::Entrypoint => "ENTRYPOINT",
            Keyword::Env => "ENV",
            Keyword::Expose => "EXPOSE",
            Keyword::From => "FROM",
            Keyword::Healthcheck => "HEALTHCHECK",
            Keyword::Label => "LABEL",
            Keyword::Maintainer => "MAINTAINER",
            Keyword::Onbuild => "ONBUILD",
            Keyword::Run => "RUN",
            Keyword::Shell => "SHELL",
            Keyword::Stopsignal => "STOPSIGNAL",
            Keyword::User => "USER",
            Keyword::Volume => "VOLUME",
            Keyword::Workdir => "WORKDIR",
            Keyword::Unknown(word) => word,
        }
    }
}

impl std::fmt::Display for Keyword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One instruction, with its continuation lines and heredoc bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub keyword: Keyword,
    pub keyword_span: Span,
    /// From the keyword to the end of its last line or heredoc terminator.
    pub span: Span,
    pub flags: Vec<Flag>,
    /// The logical text after the keyword: continuations joined, comment lines removed,
    /// flags included.
    pub text: String,
    /// For each byte of `text`, its offset in the source.
    pub text_map: Vec<usize>,
    /// Where the arguments (after the flags) start in `text`.
    pub args_start: usize,
    /// The arguments in exec (JSON) form, when they are a JSON array of strings.
    pub exec: Option<Vec<String>>,
    pub heredocs: Vec<Heredoc>,
    /// The instruction an ONBUILD wraps.
    pub onbuild: Option<Box<Instruction>>,
}

/// `--name` or `--name=value`, kept whether BuildKit knows it or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub name: String,
    pub value: Option<String>,
    pub span: Span,
}

/// A heredoc of RUN, COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// `3<<EOF` → 3.
    pub fd: Option<u32>,
    /// `<<-`: leading tabs are stripped from the body and the terminator.
    pub strip_tabs: bool,
    /// `<<"EOF"` / `<<'EOF'`: no expansion in the body.
    pub quoted: bool,
    pub delimiter: String,
    /// The body, each line ending in `\n`, tabs stripped for `<<-`.
    pub body: String,
    /// Where the body starts in the source (its first line).
    pub body_start: usize,
    /// The marker in the instruction line, e.g. `<<-"EOF"`.
    pub marker_span: Span,
    /// Whether a terminator line was found.
    pub terminated: bool,
}

impl Instruction {
    /// The arguments after the flags, as written (logical text).
    pub fn args(&self) -> &str {
        &self.text[self.args_start..]
    }

    /// The source span of a byte range of `text`.
    pub fn source_span(&self, start: usize, end: usize) -> Span {
        if self.text_map.is_empty() {
            return self.keyword_span;
        }
        let s = self.text_map[start.min(self.text_map.len() - 1)];
        let e = if end == 0 {
            s
        } else {
            self.text_map[(end - 1).min(self.text_map.len() - 1)] + 1
        };
        Span::new(s, e.max(s))
    }

    /// The value of the last flag `--name`, if given (`Some("")` for a bare `--link`).
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|f| f.name == name)
            .map(|f| f.value.as_deref().unwrap_or(""))
    }

    /// All values of a repeatable flag (`--mount`).
    pub fn flag_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.flags
            .iter()
            .filter(move |f| f.name == name)
            .map(|f| f.value.as_deref().unwrap_or(""))
    }

    /// Whether the command is in shell form (RUN/CMD/ENTRYPOINT without a JSON array).
    pub fn is_shell_form(&self) -> bool {
        self.exec.is_none()
    }

    /// The shell scripts this instruction runs: the shell-form arguments, and the bodies of
    /// heredocs fed to a shell (`RUN <<EOF` alone, or `RUN bash <<EOF`). Each with the offset
    /// of its text: in `text` (`Some`) or in the source (heredoc bodies, `None`).
    pub fn scripts(&self) -> Vec<Script> {
        let mut out = Vec::new();
        if self.keyword != Keyword::Run {
            return out;
        }
        if let Some(words) = &self.exec {
            // RUN ["sh", "-c", "…"]: the script is the argument after -c.
            if let Some(i) = words.iter().position(|w| w == "-c") {
                if words.first().is_some_and(|w| w.ends_with("sh")) {
                    if let Some(script) = words.get(i + 1) {
                        out.push(Script {
                            text: script.clone(),
                            origin: ScriptOrigin::Exec,
                        });
                    }
                }
            }
            return out;
        }
        out.push(Script {
            text: self.args().to_string(),
            origin: ScriptOrigin::Text(self.args_start),
        });
        let line = self.args().trim();
        let alone = self.heredocs.len() == 1 && line.starts_with("<<") && !line.contains(' ');
        let shells = ["sh", "bash", "ash", "dash", "zsh", "/bin/sh", "/bin/bash"];
        let fed_to_shell = |doc: &Heredoc| {
            let marker = &self.text[self.text_offset(doc.marker_span.start)..];
            let before = &self.args()[..self.args().len() - marker.len().min(self.args().len())];
            before
                .split_whitespace()
                .last()
                .is_some_and(|w| shells.contains(&w))
        };
        for doc in &self.heredocs {
            let shebang_shell = doc
                .body
                .lines()
                .next()
                .map(|l| !l.starts_with("#!") || shells.iter().any(|s| l.ends_with(s)))
                .unwrap_or(true);
            if (alone && shebang_shell) || fed_to_shell(doc) {
                out.push(Script {
                    text: doc.body.clone(),
                    origin: ScriptOrigin::Source(doc.body_start),
                });
            }
        }
        out
    }

    fn text_offset(&self, source: usize) -> usize {
        self.text_map
            .iter()
            .position(|&s| s >= source)
            .unwrap_or(self.text.len())
    }
}

/// A shell script an instruction runs.
#[derive(Debug, Clone)]
pub struct Script {
    pub text: String,
    pub origin: ScriptOrigin,
}

/// Where a script's text sits, for spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptOrigin {
    /// At this offset of the instruction's logical text.
    Text(usize),
    /// At this offset of the source (a heredoc body, verbatim apart from `<<-` tabs).
    Source(usize),
    /// Inside a JSON string: no exact span.
    Exec,
}

/// Byte offsets to 1-based lines and columns (columns count characters).
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(source: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// (line, column), both from 1.
    pub fn line_col(&self, source: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(source.len());
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let start = self.starts[line];
        let col = source
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(offset - start);
        (line + 1, col + 1)
    }

    /// The byte range of a 1-based line, without its line ending.
    pub fn line_span(&self, source: &str, line: usize) -> Span {
        let start = self.starts.get(line - 1).copied().unwrap_or(source.len());
        let mut end = self.starts.get(line).map(|e| e - 1).unwrap_or(source.len());
        if end > start && source.as_bytes().get(end - 1) == Some(&b'\r') {
            end -= 1;
        }
        Span::new(start, end.max(start))
    }
}
