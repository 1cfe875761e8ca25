//! The line scanner: directives, comments, continuations, heredocs, flags, forms.

use super::{Comment, Directive, Dockerfile, Flag, Heredoc, Instruction, Keyword, Problem, Span};

/// One physical line: its start offset and content without the line ending.
#[derive(Clone, Copy)]
struct Line<'a> {
    start: usize,
    content: &'a str,
}

fn split_lines(source: &str, base: usize) -> Vec<Line<'_>> {
    let mut lines = Vec::new();
    let mut start = base;
    for piece in source.split_inclusive('\n') {
        let content = piece.strip_suffix('\n').unwrap_or(piece);
        let content = content.strip_suffix('\r').unwrap_or(content);
        lines.push(Line { start, content });
        start += piece.len();
    }
    lines
}

/// Parses a Dockerfile. Never fails: what it cannot understand is in `problems`.
pub fn parse(source: &str) -> Dockerfile {
    // A UTF-8 byte order mark is skipped, as BuildKit does.
    let bom = if source.starts_with('\u{feff}') { 3 } else { 0 };
    let lines = split_lines(&source[bom..], bom);
    let mut file = Dockerfile {
        escape: '\\',
        ..Dockerfile::default()
    };
    let mut i = 0;
    // Parser directives: only at the very top, before any comment, blank line or
    // instruction; an unknown directive is a comment and ends them.
    while i < lines.len() {
        let line = lines[i];
        let Some((name, value)) = directive(line.content) else {
            break;
        };
        let lower = name.to_ascii_lowercase();
        if !matches!(lower.as_str(), "syntax" | "escape" | "check") {
            break;
        }
        let span = Span::new(line.start, line.start + line.content.len());
        if file.directives.iter().any(|d| d.name == lower) {
            file.problems.push(Problem {
                message: format!("the `{lower}` parser directive may appear only once"),
                span,
            });
        } else {
            if lower == "escape" {
                match value {
                    "\\" => file.escape = '\\',
                    "`" => file.escape = '`',
                    other => file.problems.push(Problem {
                        message: format!("invalid escape directive `{other}`: use \\ or `"),
                        span,
                    }),
                }
            }
            file.directives.push(Directive {
                name: lower,
                value: value.to_string(),
                span,
            });
        }
        i += 1;
    }

    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.content.trim_start();
        if trimmed.is_empty() {
            i += 1;
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            file.comments.push(Comment {
                text: comment.trim().to_string(),
                span: Span::new(line.start, line.start + line.content.len()),
            });
            i += 1;
            continue;
        }
        let (instruction, next) = read_instruction(&lines, i, file.escape, &mut file);
        file.instructions.extend(instruction);
        i = next;
    }
    file
}

/// `# key=value` → (key, value).
fn directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim_start().strip_prefix('#')?.trim_start();
    let key_len = rest
        .char_indices()
        .take_while(|(i, c)| {
            if *i == 0 {
                c.is_ascii_alphabetic()
            } else {
                c.is_ascii_alphanumeric()
            }
        })
        .count();
    if key_len == 0 {
        return None;
    }
    let (key, after) = rest.split_at(key_len);
    let value = after.trim_start().strip_prefix('=')?.trim();
    if value.is_empty() {
        return None;
    }
    Some((key, value))
}

/// Whether a line ends with the escape character (trailing blanks allowed), and where the
/// escape sits.
fn continuation(content: &str, escape: char) -> Option<usize> {
    let trimmed = content.trim_end_matches([' ', '\t']);
    trimmed
        .ends_with(escape)
        .then(|| trimmed.len() - escape.len_utf8())
}

/// Reads the instruction starting at line `first`; returns it and the next line to read. A
/// line continuation with nothing to continue (a line holding only `\`) is a problem, not an
/// instruction.
fn read_instruction(
    lines: &[Line<'_>],
    first: usize,
    escape: char,
    file: &mut Dockerfile,
) -> (Option<Instruction>, usize) {
    let mut text = String::new();
    let mut map = Vec::new();
    let mut i = first;
    let mut last_end;
    loop {
        let line = lines[i];
        let content = if i == first {
            let lead = line.content.len() - line.content.trim_start().len();
            (&line.content[lead..], line.start + lead)
        } else {
            (line.content, line.start)
        };
        last_end = line.start + line.content.len();
        i += 1;
        match continuation(content.0, escape) {
            Some(cut) => {
                push_mapped(&mut text, &mut map, &content.0[..cut], content.1);
                // Comment lines and blank lines inside a continuation are dropped.
                while i < lines.len() {
                    let t = lines[i].content.trim_start();
                    if t.starts_with('#') || t.is_empty() {
                        i += 1;
                    } else {
                        break;
                    }
                }
                if i >= lines.len() {
                    break;
                }
            }
            None => {
                push_mapped(&mut text, &mut map, content.0, content.1);
                break;
            }
        }
    }

    if text.trim().is_empty() {
        let start = lines[first].start;
        file.problems.push(Problem {
            message: format!("a line continuation (`{escape}`) with no instruction to continue"),
            span: Span::new(start, last_end.max(start + 1)),
        });
        return (None, i);
    }
    let keyword_len = text.find(|c: char| c.is_whitespace()).unwrap_or(text.len());
    let keyword = Keyword::parse(&text[..keyword_len]);
    let keyword_span = Span::new(map[0], map[keyword_len.max(1) - 1] + 1);
    let mut rest_start = keyword_len;
    while text[rest_start..].starts_with(|c: char| c.is_whitespace()) {
        rest_start += text[rest_start..].chars().next().map_or(1, char::len_utf8);
    }
    let body_text = text[rest_start..].to_string();
    let body_map = map[rest_start..].to_vec();

    if matches!(keyword, Keyword::Unknown(_)) {
        file.problems.push(Problem {
            message: format!(
                "unknown instruction `{}`: not one of BuildKit's instructions",
                &text[..keyword_len]
            ),
            span: keyword_span,
        });
    }

    let takes_heredocs = matches!(keyword, Keyword::Add | Keyword::Copy | Keyword::Run);
    let mut instruction = build(keyword, keyword_span, body_text, body_map, last_end, file);

    // Heredoc bodies follow the instruction's lines, in the order their markers appear.
    if takes_heredocs {
        let markers = heredoc_markers(instruction.args(), escape);
        for marker in markers {
            let marker_span = instruction.source_span(
                instruction.args_start + marker.start,
                instruction.args_start + marker.end,
            );
            let body_start = lines.get(i).map_or(last_end, |l| l.start);
            let mut body = String::new();
            let mut terminated = false;
            while i < lines.len() {
                let line = lines[i];
                i += 1;
                let content = if marker.strip_tabs {
                    line.content.trim_start_matches('\t')
                } else {
                    line.content
                };
                last_end = line.start + line.content.len();
                if content == marker.delimiter {
                    terminated = true;
                    break;
                }
                body.push_str(content);
                body.push('\n');
            }
            if !terminated {
                file.problems.push(Problem {
                    message: format!(
                        "heredoc <<{} has no terminating `{}` line: it runs to the end of the file",
                        marker.delimiter, marker.delimiter
                    ),
                    span: marker_span,
                });
            }
            instruction.heredocs.push(Heredoc {
                fd: marker.fd,
                strip_tabs: marker.strip_tabs,
                quoted: marker.quoted,
                delimiter: marker.delimiter,
                body,
                body_start,
                marker_span,
                terminated,
            });
        }
        instruction.span.end = last_end;
    }
    (Some(instruction), i)
}

fn push_mapped(text: &mut String, map: &mut Vec<usize>, piece: &str, source_start: usize) {
    text.push_str(piece);
    map.extend((0..piece.len()).map(|k| source_start + k));
}

/// Builds an instruction from its keyword and logical text (used for ONBUILD's inner one too).
fn build(
    keyword: Keyword,
    keyword_span: Span,
    text: String,
    text_map: Vec<usize>,
    end: usize,
    file: &mut Dockerfile,
) -> Instruction {
    let mut flags = Vec::new();
    let mut args_start = 0;
    // The instructions whose leading `--flags` BuildKit parses.
    if matches!(
        keyword,
        Keyword::Add | Keyword::Copy | Keyword::From | Keyword::Healthcheck | Keyword::Run
    ) {
        loop {
            let rest = &text[args_start..];
            if !rest.starts_with("--") {
                break;
            }
            let token_len = token_end(rest);
            let token = &rest[2..token_len];
            let (name, value) = match token.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(unquote(v))),
                None => (token.to_string(), None),
            };
            let span = span_of(&text_map, args_start, args_start + token_len, keyword_span);
            if name.is_empty() {
                break;
            }
            flags.push(Flag { name, value, span });
            args_start += token_len;
            // By characters: white space such as U+0085 takes more than one byte.
            let rest = &text[args_start..];
            args_start += rest.len() - rest.trim_start().len();
        }
    }
    let args = &text[args_start..];
    let exec = if matches!(
        keyword,
        Keyword::Run
            | Keyword::Cmd
            | Keyword::Entrypoint
            | Keyword::Shell
            | Keyword::Copy
            | Keyword::Add
            | Keyword::Volume
    ) && args.trim_start().starts_with('[')
    {
        serde_json::from_str::<Vec<String>>(args.trim()).ok()
    } else {
        None
    };
    if keyword == Keyword::Shell && exec.is_none() {
        file.problems.push(Problem {
            message: "SHELL takes a JSON array, e.g. SHELL [\"/bin/bash\", \"-c\"]".to_string(),
            span: keyword_span,
        });
    }
    let onbuild = if keyword == Keyword::Onbuild && !args.trim().is_empty() {
        let inner_len = args.find(|c: char| c.is_whitespace()).unwrap_or(args.len());
        let inner_keyword = Keyword::parse(&args[..inner_len]);
        let inner_span = span_of(&text_map, args_start, args_start + inner_len, keyword_span);
        if matches!(
            inner_keyword,
            Keyword::Onbuild | Keyword::From | Keyword::Maintainer
        ) {
            file.problems.push(Problem {
                message: format!("ONBUILD {inner_keyword} is not allowed"),
                span: inner_span,
            });
        }
        let after = &text[args_start + inner_len..];
        let inner_start = text.len() - after.trim_start().len();
        Some(Box::new(build(
            inner_keyword,
            inner_span,
            text[inner_start..].to_string(),
            text_map[inner_start..].to_vec(),
            end,
            file,
        )))
    } else {
        None
    };
    let start = keyword_span.start;
    Instruction {
        keyword,
        keyword_span,
        span: Span::new(start, end.max(start)),
        flags,
        text,
        text_map,
        args_start,
        exec,
        heredocs: Vec::new(),
        onbuild,
    }
}

fn span_of(map: &[usize], start: usize, end: usize, fallback: Span) -> Span {
    if map.is_empty() || start >= map.len() {
        return fallback;
    }
    Span::new(
        map[start],
        map[(end.max(start + 1) - 1).min(map.len() - 1)] + 1,
    )
}

/// The end of a whitespace-delimited token, quotes respected.
fn token_end(text: &str) -> usize {
    let mut quote: Option<char> = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => return i,
            _ => {}
        }
    }
    text.len()
}

fn unquote(value: &str) -> String {
    let v = value.trim();
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

struct Marker {
    start: usize,
    end: usize,
    fd: Option<u32>,
    strip_tabs: bool,
    quoted: bool,
    delimiter: String,
}

/// Heredoc markers in an instruction line: every unquoted word that starts with
/// `[n]<<[-]` directly followed by a delimiter word, optionally quoted (BuildKit; `<< EOF`
/// with a space and `<<<` are not heredocs).
fn heredoc_markers(args: &str, escape: char) -> Vec<Marker> {
    let bytes = args.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    let mut word_start = true;
    while i < bytes.len() {
        let c = bytes[i];
        if let Some(q) = quote {
            if c == q {
                quote = None;
            } else if c == escape as u8 && q == b'"' {
                i += 1;
            }
            i += 1;
            word_start = false;
            continue;
        }
        if c == b'"' || c == b'\'' {
            quote = Some(c);
            i += 1;
            word_start = false;
            continue;
        }
        if c.is_ascii_whitespace() || matches!(c, b';' | b'&' | b'|' | b'(') {
            word_start = true;
            i += 1;
            continue;
        }
        if word_start {
            if let Some(marker) = marker_at(args, i) {
                i = marker.end;
                out.push(marker);
                word_start = false;
                continue;
            }
        }
        word_start = false;
        i += 1;
    }
    out
}

fn marker_at(args: &str, start: usize) -> Option<Marker> {
    let bytes = args.as_bytes();
    let mut i = start;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    let fd = (i > start).then(|| args[start..i].parse().ok()).flatten();
    if !args[i..].starts_with("<<") || args[i..].starts_with("<<<") {
        return None;
    }
    i += 2;
    let strip_tabs = bytes.get(i) == Some(&b'-');
    if strip_tabs {
        i += 1;
    }
    let quote = match bytes.get(i) {
        Some(&q @ (b'"' | b'\'')) => {
            i += 1;
            Some(q)
        }
        _ => None,
    };
    let name_start = i;
    while i < bytes.len()
        && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'.' | b'-'))
    {
        i += 1;
    }
    if i == name_start {
        return None;
    }
    let delimiter = args[name_start..i].to_string();
    if let Some(q) = quote {
        if bytes.get(i) != Some(&q) {
            return None;
        }
        i += 1;
    }
    Some(Marker {
        start,
        end: i,
        fd,
        strip_tabs,
        quoted: quote.is_some(),
        delimiter,
    })
}
