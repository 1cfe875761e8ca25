//! How deep a JavaScript/TypeScript file can nest, read from its text before any parser sees
//! it. oxc's parser, its semantic pass and memfit's visitor all recurse once per level of the
//! syntax tree, with no limit of their own: a file of 100,000 `[` (or `!`, or `+ 1`) would
//! overflow the stack. The estimate counts what can add a level — brackets, operators,
//! `new`/`typeof`/`await`…, and statements that nest without braces (`if`, `else`, loops) —
//! and is never lower than the tree's depth, so a file under [`MAX_DEPTH`] is safe to parse on
//! a thread with [`STACK_BYTES`] of stack.

/// The deepest estimate parsed. Real code stays far below (a few dozen); minified bundles
/// reach a few hundred at most.
pub const MAX_DEPTH: usize = 2000;

/// The stack of a thread that parses and visits a file under [`MAX_DEPTH`].
pub const STACK_BYTES: usize = 256 * 1024 * 1024;

/// Levels one open bracket (or the top level) adds.
#[derive(Default)]
struct Frame {
    /// Operators since the last `,` or `;` (or line end, when the expression ends there).
    ops: usize,
    /// Statements nesting without braces, and `else` ladders.
    statements: usize,
    /// A `;` or a `}` ended a statement: the next word resets `statements` unless it is `else`.
    ended: bool,
    /// A template's `${`.
    template: bool,
}

struct Estimate {
    open: Vec<Frame>,
    outer: Frame,
    total: usize,
}

impl Estimate {
    fn frame(&mut self) -> &mut Frame {
        self.open.last_mut().unwrap_or(&mut self.outer)
    }

    fn depth(&self) -> usize {
        self.open.len() + self.total
    }

    fn op(&mut self) {
        self.frame().ops += 1;
        self.total += 1;
    }

    fn end_expression(&mut self) {
        let frame = self.frame();
        let ops = std::mem::take(&mut frame.ops);
        self.total -= ops;
    }

    fn end_statement(&mut self) {
        self.end_expression();
        self.frame().ended = true;
    }

    fn word(&mut self, word: &str) {
        let frame = self.frame();
        let reset = if frame.ended && word != "else" {
            std::mem::take(&mut frame.statements)
        } else {
            0
        };
        frame.ended = false;
        self.total -= reset;
        match word {
            "new" | "typeof" | "void" | "delete" | "await" | "yield" | "in" | "instanceof"
            | "keyof" | "as" | "satisfies" => self.op(),
            "if" | "else" | "for" | "while" | "do" | "with" => {
                self.frame().statements += 1;
                self.total += 1;
            }
            _ => {}
        }
    }

    /// Closes a bracket; a block's `}` ends a statement.
    fn close(&mut self, brace: bool) -> bool {
        match self.open.pop() {
            Some(frame) => {
                self.total -= frame.ops + frame.statements;
                if brace {
                    self.frame().ended = true;
                }
                frame.template
            }
            None => false,
        }
    }
}

fn is_operator(c: u8) -> bool {
    matches!(
        c,
        b'+' | b'-'
            | b'*'
            | b'%'
            | b'&'
            | b'|'
            | b'^'
            | b'!'
            | b'~'
            | b'<'
            | b'>'
            | b'='
            | b'?'
            | b'.'
            | b'/'
            | b':'
            | b'@'
    )
}

/// Where the estimate passed [`MAX_DEPTH`]: a byte offset.
pub fn too_deep(source: &str) -> Option<usize> {
    let bytes = source.as_bytes();
    let mut state = Estimate {
        open: Vec::new(),
        outer: Frame::default(),
        total: 0,
    };
    // After a line end: whether the line ended with an operator (the expression goes on).
    let mut line_end: Option<bool> = None;
    let mut last_was_operator = false;
    // The last thing read closed a bracket or a template.
    let mut after_close = false;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\n' {
            line_end = Some(last_was_operator);
            i += 1;
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let comment = c == b'/' && matches!(bytes.get(i + 1), Some(b'/' | b'*'));
        // `(`, `[` and a template go on the expression before them (no semicolon is inserted
        // before them): after a closing bracket, a call, an index or a tag, one level more.
        let continues = matches!(c, b'(' | b'[' | b'`');
        if let Some(ended_with_operator) = line_end.take() {
            // A line that neither ends nor starts with an operator ends its expression.
            if !comment && !ended_with_operator && !is_operator(c) && !continues {
                state.end_expression();
            } else if comment {
                line_end = Some(ended_with_operator);
            }
        }
        if !comment {
            if after_close && continues {
                state.op();
            }
            after_close = false;
            last_was_operator = false;
        }
        match c {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i = memchr(bytes, i, b'\n');
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = match source[i + 2..].find("*/") {
                    Some(p) => i + 2 + p + 2,
                    None => bytes.len(),
                };
                continue;
            }
            b'\'' | b'"' => {
                i = skip_string(bytes, i, c);
                continue;
            }
            b'`' => {
                let (next, opened) = skip_template(bytes, i + 1);
                if opened {
                    state.open.push(Frame {
                        template: true,
                        ..Frame::default()
                    });
                } else {
                    after_close = true;
                }
                i = next;
            }
            b'(' | b'[' | b'{' => {
                state.open.push(Frame::default());
                i += 1;
            }
            b')' | b']' | b'}' => {
                let template = state.close(c == b'}');
                i += 1;
                after_close = true;
                if template && c == b'}' {
                    let (next, opened) = skip_template(bytes, i);
                    if opened {
                        state.open.push(Frame {
                            template: true,
                            ..Frame::default()
                        });
                        after_close = false;
                    }
                    i = next;
                }
            }
            b',' => {
                state.end_expression();
                i += 1;
            }
            b';' => {
                state.end_statement();
                i += 1;
            }
            _ if is_operator(c) => {
                state.op();
                last_was_operator = true;
                i += 1;
            }
            _ if c == b'_' || c == b'$' || c.is_ascii_alphanumeric() => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i] == b'_' || bytes[i] == b'$' || bytes[i].is_ascii_alphanumeric())
                {
                    i += 1;
                }
                state.word(&source[start..i]);
            }
            _ => i += 1,
        }
        if state.depth() > MAX_DEPTH {
            return Some(i.min(bytes.len()));
        }
    }
    None
}

fn memchr(bytes: &[u8], from: usize, needle: u8) -> usize {
    bytes[from..]
        .iter()
        .position(|&b| b == needle)
        .map_or(bytes.len(), |p| from + p)
}

/// Past a quoted string (it ends at its quote, or at a line end: a stray quote in JSX text
/// costs one line).
fn skip_string(bytes: &[u8], start: usize, quote: u8) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'\n' => return i,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Past a template's text from `i`: (next offset, whether a `${` opened).
fn skip_template(bytes: &[u8], mut i: usize) -> (usize, bool) {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'`' => return (i + 1, false),
            b'$' if bytes.get(i + 1) == Some(&b'{') => return (i + 2, true),
            _ => i += 1,
        }
    }
    (bytes.len(), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_code_is_shallow_and_hostile_code_is_not() {
        let ordinary = "import x from 'y';\nconst s = `a ${b + `c ${d}`} e`;\nif (a) { f(1, 2, [3, {k: 'v)'}]); } else if (b) g(); // )))\n/* ((( */";
        assert_eq!(too_deep(ordinary), None);
        let many_statements = "a = b + c;\n".repeat(100_000);
        assert_eq!(too_deep(&many_statements), None);
        let long_array = format!("const a = [{}];", "1 + 2, ".repeat(100_000));
        assert_eq!(too_deep(&long_array), None);
        let no_semicolons = "const a = b.c(d) + e\nif (a) { f() }\n".repeat(100_000);
        assert_eq!(too_deep(&no_semicolons), None);
        for hostile in [
            "[".repeat(MAX_DEPTH + 1),
            format!("x = {}1;", "!".repeat(MAX_DEPTH + 1)),
            format!("x = 1{};", " + 1".repeat(MAX_DEPTH + 1)),
            format!("x = {}1;", "`${".repeat(MAX_DEPTH + 1)),
            format!("{}x();", "if (a) ".repeat(MAX_DEPTH + 1)),
            format!("x = 1{};", "\n+ 1".repeat(MAX_DEPTH + 1)),
            format!("if (a) {{}}{}", " else if (a) {}".repeat(MAX_DEPTH + 1)),
            format!("x = f{};", "(1)".repeat(MAX_DEPTH + 1)),
            format!("x = f{};", "\n[1]".repeat(MAX_DEPTH + 1)),
            format!("x = f{};", "`t`".repeat(MAX_DEPTH + 1)),
            format!("{}x();", "a: ".repeat(MAX_DEPTH + 1)),
        ] {
            assert!(too_deep(&hostile).is_some(), "{}", &hostile[..20]);
        }
    }
}
