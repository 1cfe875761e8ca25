//! One output convention for every command that reports (`run`, `bisect`, `explain`,
//! `audit`, `plan`, and any new one such as `compare`).
//!
//! The convention, as users see it:
//! - `--format human|json|sarif|github|markdown` (the ones that apply to the command; `run`
//!   also writes `svg` and `html`), and `-o/--output FILE`, where `-` is standard output.
//! - Commands whose standard output belongs to a wrapped command (`run`, `bisect`) take several
//!   `--format FORMAT=FILE` pairs at once; a bare `--format FORMAT` goes to `-o FILE`, else to
//!   standard output (the human summary alone stays on standard error by default).
//! - `--quiet`/`-q`: no summary or progress on standard error; reports are still written and
//!   errors still printed.
//! - Colour only on a terminal, as clap decides it through `anstream`: `NO_COLOR` (any
//!   non-empty value) turns it off, `CLICOLOR=0` too, `CLICOLOR_FORCE=1` turns it on
//!   (https://no-color.org, https://bixense.com/clicolors/).
//!
//! The API, small on purpose:
//! - [`Format`] and [`FormatSpec`] (`json`, `json=run.json`), parsed by [`parse_spec`] (a clap
//!   value parser); [`destinations`] resolves the `--format`/`-o`/alias flags of a command into
//!   the list of (format, destination) to write, refusing formats the command does not have.
//! - Writing a report (atomic file, or standard output for `-`) is `output::write_report` in the
//!   binary, which keeps the exit-status rules of `output.rs`.
//! - [`markdown_text`] escapes text from the input for markdown (pipes, backticks, HTML,
//!   emphasis, links); [`markdown_code`] fences a command line.
//! - [`github_annotation`] prints one GitHub workflow command with GitHub's escaping
//!   (https://docs.github.com/actions/reference/workflow-commands-for-github-actions), so text
//!   from a repository can never start a second command.
//! - [`colour`] says whether a stream gets colour; [`paint`] wraps text in an `anstyle` style.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anstyle::{AnsiColor, Style};

/// Every report form memfit writes; each command takes the ones that apply to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// The text a person reads (on a terminal: coloured).
    Human,
    /// Versioned JSON (`memfit.run/1`, `memfit.audit/1`, …).
    Json,
    /// SARIF 2.1.0, for code-scanning services.
    Sarif,
    /// GitHub Actions workflow commands: one annotation per finding.
    Github,
    /// Markdown tables, for PR comments and `$GITHUB_STEP_SUMMARY`.
    Markdown,
    /// An SVG timeline (`run`).
    Svg,
    /// A self-contained HTML report (`run`).
    Html,
}

impl Format {
    pub const ALL: [Format; 7] = [
        Format::Human,
        Format::Json,
        Format::Sarif,
        Format::Github,
        Format::Markdown,
        Format::Svg,
        Format::Html,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Human => "human",
            Format::Json => "json",
            Format::Sarif => "sarif",
            Format::Github => "github",
            Format::Markdown => "markdown",
            Format::Svg => "svg",
            Format::Html => "html",
        }
    }

    pub fn parse(text: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| {
            f.name().eq_ignore_ascii_case(text) || (*f == Format::Markdown && text == "md")
        })
    }
}

/// `--format FORMAT` or `--format FORMAT=FILE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatSpec {
    pub format: Format,
    pub path: Option<PathBuf>,
}

/// The clap value parser of `--format FORMAT[=FILE]`.
pub fn parse_spec(text: &str) -> Result<FormatSpec, String> {
    let (name, path) = match text.split_once('=') {
        Some((_, "")) => {
            return Err(format!(
                "`{text}` names no file: give FORMAT=FILE, e.g. json=run.json, or json=- for standard output"
            ))
        }
        Some((name, path)) => (name, Some(PathBuf::from(path))),
        None => (text, None),
    };
    let format = Format::parse(name).ok_or_else(|| {
        format!(
            "unknown format `{name}`: use one of {}, optionally =FILE (e.g. json=run.json)",
            Format::ALL.map(Format::name).join(", ")
        )
    })?;
    Ok(FormatSpec { format, path })
}

/// Where a report goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// The default place of the human summary of `run` and `bisect`.
    Stderr,
    /// A file, or standard output for `-`.
    Path(PathBuf),
}

impl Destination {
    pub fn is_stdout(&self) -> bool {
        matches!(self, Destination::Path(p) if p.as_os_str() == "-")
    }
}

/// Resolves a command's `--format` specs, its `-o/--output`, and its old flags (`--json FILE`,
/// given as `aliases`) into the reports to write, in order. `allowed` are the formats the
/// command has; `default` is what a bare `-o FILE` writes and what is written with no flag at
/// all (to `default_destination`). A format the command lacks, two bare formats, or two reports
/// into one file are errors that say what to do.
pub fn destinations(
    command: &str,
    specs: &[FormatSpec],
    output: Option<&Path>,
    aliases: &[(Format, PathBuf)],
    allowed: &[Format],
    default: Format,
    default_destination: Destination,
) -> Result<Vec<(Format, Destination)>, String> {
    let mut reports = Vec::new();
    let mut bare = None;
    for spec in specs {
        if !allowed.contains(&spec.format) {
            return Err(format!(
                "memfit {command} has no {} output: use --format {}",
                spec.format.name(),
                allowed
                    .iter()
                    .map(|f| f.name())
                    .collect::<Vec<_>>()
                    .join("|")
            ));
        }
        match &spec.path {
            Some(path) => reports.push((spec.format, Destination::Path(path.clone()))),
            None if bare.is_some() => {
                return Err(format!(
                    "two --format without a file: give each its own, e.g. --format json=run.json --format markdown=- (memfit {command})"
                ))
            }
            None => bare = Some(spec.format),
        }
    }
    for (format, path) in aliases {
        reports.push((*format, Destination::Path(path.clone())));
    }
    match (bare, output) {
        (Some(format), Some(path)) => reports.push((format, Destination::Path(path.into()))),
        (Some(Format::Human), None) => reports.push((Format::Human, default_destination.clone())),
        (Some(format), None) => reports.push((format, Destination::Path("-".into()))),
        (None, Some(path)) => reports.push((default, Destination::Path(path.into()))),
        (None, None) => {}
    }
    // A summary on stderr (run, bisect) stays beside the reports unless it was sent elsewhere.
    let summary_elsewhere = reports.iter().any(|(f, _)| *f == default);
    if reports.is_empty() || (default_destination == Destination::Stderr && !summary_elsewhere) {
        reports.push((default, default_destination));
    }
    let mut seen: Vec<&Destination> = Vec::new();
    for (_, destination) in &reports {
        if let Destination::Path(path) = destination {
            if seen.contains(&destination) {
                return Err(format!(
                    "two reports to {}: give each format its own file",
                    if destination.is_stdout() {
                        "standard output (-)".to_string()
                    } else {
                        path.display().to_string()
                    }
                ));
            }
            seen.push(destination);
        }
    }
    Ok(reports)
}

/// Escapes text from the input (file names, commands, log lines, messages) for markdown,
/// inline or in a table cell: HTML is shown, not rendered; `|` does not end a cell; backticks,
/// emphasis, links and images stay literal; line breaks become spaces; control characters are
/// shown escaped.
pub fn markdown_text(text: &str) -> String {
    let text = memfit_core::text::escape_control(text);
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '|' => out.push_str("\\|"),
            '\n' | '\r' | '\t' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '~' | '#' | '!' | '{' | '}' | '(' | ')' | '$' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A command line as a fenced code block, whatever backticks it holds (the fence is longer
/// than any run of backticks inside), control characters shown escaped.
pub fn markdown_code(text: &str) -> String {
    let text = memfit_core::text::escape_control(text);
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat((longest + 1).max(3));
    format!("{fence}sh\n{text}\n{fence}\n")
}

/// A markdown table: a header row and rows of cells already escaped with [`markdown_text`].
pub fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", header.join(" | "));
    let _ = writeln!(
        out,
        "|{}",
        header.iter().map(|_| " --- |").collect::<String>()
    );
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out
}

/// GitHub's escaping of a workflow command's message: `%`, `\r`, `\n` (actions/toolkit
/// `escapeData`).
pub fn github_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// GitHub's escaping of a workflow command's property: the message's, plus `:` and `,`
/// (actions/toolkit `escapeProperty`).
pub fn github_property(text: &str) -> String {
    github_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// Where an annotation points.
pub struct Location<'a> {
    pub file: &'a str,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
}

/// One workflow command, `::warning file=…,line=…,col=…,title=…::message`, ending in a
/// newline. `level` is `error`, `warning` or `notice`. Other control characters are shown
/// escaped, so nothing from the input reaches the log raw.
pub fn github_annotation(level: &str, at: &Location<'_>, title: &str, message: &str) -> String {
    let clean = |t: &str| memfit_core::text::escape_control(t).into_owned();
    let mut out = format!(
        "::{level} file={},line={},col={}",
        github_property(&clean(at.file)),
        at.line,
        at.column
    );
    if at.end_line >= at.line {
        let _ = write!(out, ",endLine={}", at.end_line);
        if at.end_line == at.line && at.end_column > at.column {
            let _ = write!(out, ",endColumn={}", at.end_column);
        }
    }
    let _ = writeln!(
        out,
        ",title={}::{}",
        github_property(&clean(title)),
        github_data(&clean(message))
    );
    out
}

/// Which stream a text is meant for.
#[derive(Clone, Copy, Debug)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Whether text for `stream` gets colour: a terminal with colour, unless `NO_COLOR` or
/// `CLICOLOR=0`; always with `CLICOLOR_FORCE` (anstream's rules, as clap's).
pub fn colour(stream: Stream) -> bool {
    let choice = match stream {
        Stream::Stdout => anstream::AutoStream::choice(&std::io::stdout()),
        Stream::Stderr => anstream::AutoStream::choice(&std::io::stderr()),
    };
    choice != anstream::ColorChoice::Never
}

/// The styles memfit uses.
pub mod style {
    use super::*;
    /// OOM, an error, a failed verdict.
    pub const BAD: Style = Style::new()
        .bold()
        .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Red)));
    /// A warning, an uncertain verdict.
    pub const WARN: Style = Style::new()
        .bold()
        .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Yellow)));
    /// A passing verdict.
    pub const GOOD: Style = Style::new()
        .bold()
        .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Green)));
    /// A note or info.
    pub const NOTE: Style = Style::new()
        .bold()
        .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Cyan)));
    /// A label.
    pub const LABEL: Style = Style::new().bold();
}

/// `text` in `style` (the caller decided, with [`colour`], that the stream takes colour).
pub fn paint(style: Style, text: &str) -> String {
    format!("{}{text}{}", style.render(), style.render_reset())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_github_message_cannot_start_a_second_command() {
        let at = Location {
            file: "a\n::error::x,y:z%0A",
            line: 3,
            column: 1,
            end_line: 3,
            end_column: 4,
        };
        let line = github_annotation("warning", &at, "rule", "bad\r\n::error::pwned %0A");
        assert_eq!(line.matches('\n').count(), 1);
        assert_eq!(
            line,
            "::warning file=a%0A%3A%3Aerror%3A%3Ax%2Cy%3Az%250A,line=3,col=1,endLine=3,endColumn=4,title=rule::bad%0D%0A::error::pwned %250A\n"
        );
    }

    #[test]
    fn markdown_text_is_inert() {
        assert_eq!(
            markdown_text("a|b `c` <script>*x*</script> [l](u)\nnext"),
            "a\\|b \\`c\\` &lt;script&gt;\\*x\\*&lt;/script&gt; \\[l\\]\\(u\\) next"
        );
        assert_eq!(markdown_code("a ``` b"), "````sh\na ``` b\n````\n");
    }

    #[test]
    fn specs_resolve_to_destinations() {
        let spec = |t: &str| parse_spec(t).unwrap();
        let all = [Format::Human, Format::Json, Format::Markdown];
        let got = destinations(
            "run",
            &[spec("json=a.json"), spec("markdown")],
            None,
            &[],
            &all,
            Format::Human,
            Destination::Stderr,
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                (Format::Json, Destination::Path("a.json".into())),
                (Format::Markdown, Destination::Path("-".into())),
                (Format::Human, Destination::Stderr),
            ]
        );
        assert!(destinations(
            "run",
            &[spec("json=-"), spec("markdown=-")],
            None,
            &[],
            &all,
            Format::Human,
            Destination::Stderr
        )
        .is_err());
        assert!(parse_spec("xml").is_err());
        assert!(parse_spec("json=").is_err());
    }
}
