//! The RUN steps a builder executes, and which one a running container is: a builder starts
//! each RUN step as a container whose command is the stage's SHELL (`/bin/sh -c` by default,
//! reference.md "SHELL") with the instruction's text, or the exec form's argv. A shell that
//! runs a single simple command may exec it, so the container shows that command instead.

use super::{shell, Dockerfile, Keyword, LineIndex};

/// One RUN instruction, where it is and what it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStep {
    /// The stage's name (`FROM … AS build`), or its index.
    pub stage: String,
    /// 1-based line of the instruction.
    pub line: usize,
    /// Its position among the Dockerfile's instructions (1-based), and their count: the
    /// classic builder's "Step 4/9".
    pub index: usize,
    pub of: usize,
    /// `RUN` and its arguments' first logical line, white space folded.
    pub instruction: String,
    /// The argv the builder starts for it.
    pub argv: Vec<String>,
}

/// The default SHELL of a Linux stage.
const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

impl Dockerfile {
    /// Every RUN instruction of every stage, in order.
    pub fn run_steps(&self, source: &str) -> Vec<RunStep> {
        let lines = LineIndex::new(source);
        let of = self.instructions.len();
        let mut steps = Vec::new();
        for stage in self.stages() {
            let name = stage
                .name
                .clone()
                .unwrap_or_else(|| stage.index.to_string());
            let mut shell: Vec<String> = DEFAULT_SHELL.iter().map(|s| s.to_string()).collect();
            for index in stage.body.clone() {
                let instruction = &self.instructions[index];
                match instruction.keyword {
                    Keyword::Shell => {
                        if let Some(words) = &instruction.exec {
                            shell = words.clone();
                        }
                    }
                    Keyword::Run => {
                        let argv = match &instruction.exec {
                            Some(words) => words.clone(),
                            None => shell
                                .iter()
                                .cloned()
                                .chain(std::iter::once(instruction.args().to_string()))
                                .collect(),
                        };
                        let first_line = instruction.args().lines().next().unwrap_or("");
                        let words: Vec<&str> = first_line.split_whitespace().collect();
                        steps.push(RunStep {
                            stage: name.clone(),
                            line: lines.line_col(source, instruction.span.start).0,
                            index: index + 1,
                            of,
                            instruction: format!("RUN {}", words.join(" ")),
                            argv,
                        });
                    }
                    _ => {}
                }
            }
        }
        steps
    }
}

impl RunStep {
    /// Whether a container running `argv` is this step: the same argv, or — when the shell
    /// exec'd the step's single command — that command's words.
    pub fn is_run_by(&self, argv: &[String]) -> bool {
        if argv.is_empty() {
            return false;
        }
        let normalized = |words: &[String]| -> Vec<String> {
            words
                .iter()
                .map(|w| w.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect()
        };
        if normalized(argv) == normalized(&self.argv) {
            return true;
        }
        let Some(script) = self.argv.last().filter(|_| self.argv.len() > 1) else {
            return false;
        };
        let commands = shell::split(script);
        match commands.as_slice() {
            [only] => {
                let words: Vec<String> = only.words.iter().map(|w| w.text.clone()).collect();
                // A command known only from the kernel's OOM report is its text split at
                // spaces: compared as one line.
                let line = |words: &[String]| {
                    words
                        .join(" ")
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                normalized(&words) == normalized(argv) || line(&words) == line(argv)
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::dockerfile::parse;

    const DOCKERFILE: &str = "FROM node:20 AS build\nRUN npm ci \\\n    --no-audit\nRUN node -e 'console.log(1)'\nSHELL [\"/bin/bash\", \"-c\"]\nRUN echo $HOME\nFROM node:20-slim\nRUN [\"node\", \"x.js\"]\n";

    #[test]
    fn a_command_split_at_spaces_is_still_its_step() {
        let steps = parse(DOCKERFILE).run_steps(DOCKERFILE);
        let split: Vec<String> = "node -e console.log(1)"
            .split(' ')
            .map(str::to_string)
            .collect();
        assert!(steps[1].is_run_by(&split));
        assert!(!steps[0].is_run_by(&split));
    }

    #[test]
    fn every_run_step_with_its_line_stage_and_argv() {
        let steps = parse(DOCKERFILE).run_steps(DOCKERFILE);
        let summary: Vec<(usize, &str, &str, usize)> = steps
            .iter()
            .map(|s| (s.line, s.stage.as_str(), s.argv[0].as_str(), s.index))
            .collect();
        assert_eq!(
            summary,
            [
                (2, "build", "/bin/sh", 2),
                (4, "build", "/bin/sh", 3),
                (6, "build", "/bin/bash", 5),
                (8, "1", "node", 7)
            ]
        );
        assert_eq!(steps[0].instruction, "RUN npm ci --no-audit");
        assert_eq!(steps[0].of, 7);
    }

    #[test]
    fn a_container_is_matched_to_its_step_as_started_or_after_the_shells_exec() {
        let steps = parse(DOCKERFILE).run_steps(DOCKERFILE);
        let argv = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        assert!(steps[1].is_run_by(&argv(&["/bin/sh", "-c", "node -e 'console.log(1)'"])));
        assert!(steps[1].is_run_by(&argv(&["node", "-e", "console.log(1)"])));
        assert!(steps[0].is_run_by(&argv(&["npm", "ci", "--no-audit"])));
        assert!(!steps[0].is_run_by(&argv(&["node", "-e", "console.log(1)"])));
        assert!(steps[3].is_run_by(&argv(&["node", "x.js"])));
        assert!(!steps[3].is_run_by(&argv(&["runc", "init"])));
    }
}
