//! Just enough POSIX shell to find the commands a RUN executes: words (quotes removed, spans
//! kept), simple commands split at `&&`, `||`, `;`, `|`, `&`, newlines and parentheses,
//! comments dropped. Command substitutions stay inside their word.

/// A word with its quotes removed and its byte range in the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub start: usize,
    pub end: usize,
}

/// One simple command: assignments and words.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SimpleCommand {
    pub words: Vec<Word>,
    pub start: usize,
    pub end: usize,
}

impl SimpleCommand {
    /// The words after leading `NAME=value` assignments and wrappers that run another
    /// command (`sudo`, `env`, `time`, `nice`, `exec`, `command`).
    pub fn argv(&self) -> &[Word] {
        let mut i = 0;
        while i < self.words.len() {
            let w = &self.words[i].text;
            let assignment = w.split_once('=').is_some_and(|(n, _)| {
                !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            let wrapper = matches!(
                w.as_str(),
                "sudo" | "env" | "time" | "nice" | "exec" | "command" | "xargs"
            );
            let wrapper_flag = i > 0
                && w.starts_with('-')
                && {
                    let prev = &self.words[i - 1].text;
                    matches!(prev.as_str(), "sudo" | "env" | "nice" | "xargs")
                        || prev.starts_with('-')
                }
                && self.words[..i]
                    .iter()
                    .any(|p| matches!(p.text.as_str(), "sudo" | "env" | "nice" | "xargs"));
            if assignment || wrapper || wrapper_flag {
                i += 1;
            } else {
                break;
            }
        }
        &self.words[i..]
    }

    /// Leading `NAME=value` assignments.
    pub fn assignments(&self) -> impl Iterator<Item = (&str, &str)> {
        self.words
            .iter()
            .map_while(|w| w.text.split_once('='))
            .filter(|(n, _)| {
                !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
    }

    /// The program's base name (`/usr/bin/npm` → `npm`).
    pub fn program(&self) -> Option<&str> {
        self.argv()
            .first()
            .map(|w| w.text.rsplit('/').next().unwrap_or(&w.text))
    }

    /// The arguments after the program.
    pub fn args(&self) -> &[Word] {
        let argv = self.argv();
        if argv.is_empty() {
            argv
        } else {
            &argv[1..]
        }
    }

    /// Whether any argument is one of `names` (`--no-cache` or `--no-cache=…`), or a
    /// short-option cluster holding one of the single-letter `names` (`-y` in `-qy`).
    pub fn has_option(&self, names: &[&str]) -> bool {
        self.args().iter().any(|w| {
            let t = w.text.as_str();
            names.iter().any(|n| {
                t == *n
                    || (n.starts_with("--")
                        && t.strip_prefix(n).is_some_and(|r| r.starts_with('=')))
                    || (n.len() == 2
                        && n.starts_with('-')
                        && !n.starts_with("--")
                        && t.starts_with('-')
                        && !t.starts_with("--")
                        && t[1..].contains(&n[1..]))
            })
        })
    }

    /// The first non-option argument after the program (`npm ci` → `ci`).
    pub fn subcommand(&self) -> Option<&str> {
        self.args()
            .iter()
            .map(|w| w.text.as_str())
            .find(|t| !t.starts_with('-'))
    }

    /// Non-option arguments after the program.
    pub fn operands(&self) -> impl Iterator<Item = &str> {
        self.args()
            .iter()
            .map(|w| w.text.as_str())
            .filter(|t| !t.starts_with('-'))
    }
}

/// Splits a script into simple commands.
pub fn split(script: &str) -> Vec<SimpleCommand> {
    let bytes = script.as_bytes();
    let mut commands = Vec::new();
    let mut current = SimpleCommand::default();
    let mut word: Option<Word> = None;
    let mut i = 0;

    fn finish_word(word: &mut Option<Word>, current: &mut SimpleCommand, end: usize) {
        if let Some(mut w) = word.take() {
            w.end = end;
            if current.words.is_empty() {
                current.start = w.start;
            }
            current.end = end;
            current.words.push(w);
        }
    }
    fn finish_command(current: &mut SimpleCommand, commands: &mut Vec<SimpleCommand>) {
        if !current.words.is_empty() {
            commands.push(std::mem::take(current));
        }
    }

    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\\' if bytes.get(i + 1) == Some(&b'\n') => {
                i += 2;
            }
            b'\\' => {
                let w = word.get_or_insert_with(|| Word {
                    text: String::new(),
                    start: i,
                    end: i,
                });
                if let Some(ch) = script[i + 1..].chars().next() {
                    w.text.push(ch);
                    i += 1 + ch.len_utf8();
                } else {
                    i += 1;
                }
            }
            b'\'' => {
                let w = word.get_or_insert_with(|| Word {
                    text: String::new(),
                    start: i,
                    end: i,
                });
                let close = script[i + 1..]
                    .find('\'')
                    .map_or(bytes.len(), |p| i + 1 + p);
                w.text.push_str(&script[i + 1..close]);
                i = (close + 1).min(bytes.len());
            }
            b'"' => {
                let w = word.get_or_insert_with(|| Word {
                    text: String::new(),
                    start: i,
                    end: i,
                });
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\'
                        && i + 1 < bytes.len()
                        && matches!(bytes[i + 1], b'"' | b'\\' | b'$' | b'`')
                    {
                        i += 1;
                    }
                    let ch = script[i..].chars().next().unwrap_or(' ');
                    w.text.push(ch);
                    i += ch.len_utf8();
                }
                i = (i + 1).min(bytes.len());
            }
            b'$' if bytes.get(i + 1) == Some(&b'(') => {
                // $( … ) with nesting stays in the word.
                let w = word.get_or_insert_with(|| Word {
                    text: String::new(),
                    start: i,
                    end: i,
                });
                let mut depth = 0;
                let start = i;
                while i < bytes.len() {
                    match bytes[i] {
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                i += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                w.text.push_str(&script[start..i]);
            }
            b'`' => {
                let w = word.get_or_insert_with(|| Word {
                    text: String::new(),
                    start: i,
                    end: i,
                });
                let close = script[i + 1..].find('`').map_or(bytes.len(), |p| i + 1 + p);
                w.text.push_str(&script[i..(close + 1).min(bytes.len())]);
                i = (close + 1).min(bytes.len());
            }
            b'#' if word.is_none() => {
                finish_word(&mut word, &mut current, i);
                let end = script[i..].find('\n').map_or(bytes.len(), |p| i + p);
                i = end;
            }
            b' ' | b'\t' | b'\r' => {
                finish_word(&mut word, &mut current, i);
                i += 1;
            }
            b'\n' | b';' | b'&' | b'|' | b'(' | b')' => {
                finish_word(&mut word, &mut current, i);
                finish_command(&mut current, &mut commands);
                i += 1;
            }
            b'>' | b'<' => {
                // A redirection ends the word; its target is the next word, kept as one.
                finish_word(&mut word, &mut current, i);
                let start = i;
                while i < bytes.len() && matches!(bytes[i], b'>' | b'<' | b'&' | b'-') {
                    i += 1;
                }
                word = Some(Word {
                    text: script[start..i].to_string(),
                    start,
                    end: i,
                });
                finish_word(&mut word, &mut current, i);
            }
            _ => {
                let ch = script[i..].chars().next().unwrap_or(' ');
                let w = word.get_or_insert_with(|| Word {
                    text: String::new(),
                    start: i,
                    end: i,
                });
                w.text.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    finish_word(&mut word, &mut current, bytes.len());
    finish_command(&mut current, &mut commands);
    // `{` and `}` group commands; they are not programs.
    for command in &mut commands {
        command.words.retain(|w| w.text != "{" && w.text != "}");
    }
    commands.retain(|c| !c.words.is_empty());
    commands
}

#[cfg(test)]
mod tests {
    use super::*;

    fn programs(script: &str) -> Vec<Vec<String>> {
        split(script)
            .iter()
            .map(|c| c.argv().iter().map(|w| w.text.clone()).collect())
            .collect()
    }

    #[test]
    fn splits_at_operators_and_keeps_quotes_together() {
        assert_eq!(
            programs("apt-get update && apt-get install -y \"build essential\" || true; echo 'a && b' | tee x"),
            vec![
                vec!["apt-get", "update"],
                vec!["apt-get", "install", "-y", "build essential"],
                vec!["true"],
                vec!["echo", "a && b"],
                vec!["tee", "x"],
            ]
        );
    }

    #[test]
    fn assignments_and_wrappers_are_not_the_program() {
        let c = &split("NODE_ENV=production sudo -E npm ci --omit=dev")[0];
        assert_eq!(c.program(), Some("npm"));
        assert_eq!(c.subcommand(), Some("ci"));
        assert!(c.has_option(&["--omit"]));
        assert_eq!(
            c.assignments().collect::<Vec<_>>(),
            vec![("NODE_ENV", "production")]
        );
    }

    #[test]
    fn comments_substitutions_and_continuations() {
        assert_eq!(
            programs("# setup\ncd $(dirname \"$0\") && \\\n  make -j`nproc` # build"),
            vec![vec!["cd", "$(dirname \"$0\")"], vec!["make", "-j`nproc`"]]
        );
    }

    #[test]
    fn word_spans_point_into_the_script() {
        let script = "npm install --production";
        let c = &split(script)[0];
        let w = &c.words[1];
        assert_eq!(&script[w.start..w.end], "install");
    }

    #[test]
    fn short_option_clusters() {
        let c = &split("apt-get install -qy curl")[0];
        assert!(c.has_option(&["-y", "--yes"]));
        assert!(!c.has_option(&["--no-install-recommends"]));
    }
}
