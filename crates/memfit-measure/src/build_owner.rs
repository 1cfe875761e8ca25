//! Which of the BuildKit RUN steps dockerd starts belong to this run's build. dockerd's
//! embedded BuildKit puts every build's steps under the same `<parent>/buildkit/<id>`, whoever
//! asked for the build, so a run that adopted every new step would count — and limit, and
//! OOM-kill — another client's build running on the same dockerd at the same time.
//!
//! The signal used needs no change to Docker's configuration and is there before the step's
//! command runs: BuildKit's runc executor starts each step as `runc … run --bundle <dir> <id>`
//! (moby/buildkit executor/runcexecutor), and `<dir>/config.json` is the OCI spec whose
//! `process.args` is what the step runs — the stage's SHELL and the RUN instruction's text, or
//! the exec form. That is matched against the RUN instructions of the Dockerfile this build
//! reads (`-f`, or the context's; for compose, the Dockerfiles of the project's services),
//! with the same matcher that names a step in the report. A step that matches none is another
//! build's: it is left where dockerd put it, untouched.
//!
//! memfit-measure parses no Dockerfile itself: the caller passes a [`DockerfileReader`] in
//! the run's options (the CLI passes memfit-audit's parser), so that this crate stays free of
//! the audit's parsers.
//! Nothing in the spec names the build or its session, so a RUN text both Dockerfiles share
//! cannot be told apart: that is said in the report, not guessed silently.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memfit_sys::procfs;

use crate::docker::DockerCommand;

/// One RUN instruction of a Dockerfile, as the caller's parser read it.
pub trait RunInstruction: Send + Sync {
    /// `RUN npm ci`: its text, as the report names it.
    fn instruction(&self) -> &str;
    /// Whether a container that runs `argv` (the OCI spec's `process.args`) is this step.
    fn is_run_by(&self, argv: &[String]) -> bool;
}

/// Reads the RUN steps of a Dockerfile's text.
pub trait DockerfileReader: Send + Sync + fmt::Debug {
    /// Every RUN step of `source`, in order; `None` when a step's command cannot be told
    /// from its text (a `# syntax=` frontend, a RUN heredoc): then no step is told apart.
    fn run_steps(&self, source: &str) -> Option<Vec<Arc<dyn RunInstruction>>>;
}

/// The RUN steps of the Dockerfiles a build reads.
#[derive(Clone)]
pub struct OwnSteps {
    steps: Vec<Arc<dyn RunInstruction>>,
    /// How many times each step was adopted.
    taken: Vec<usize>,
}

impl fmt::Debug for OwnSteps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.steps.iter().map(|s| s.instruction()))
            .finish()
    }
}

/// What became of a step that appeared under BuildKit's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// One of this build's steps.
    Own,
    /// A step whose text this build's Dockerfile has, but which it started already as often
    /// as it has it: another build on the same dockerd runs the same text. Adopted, and said.
    Ambiguous(String),
    /// Another build's step: left alone (and its command, perhaps with a secret of its
    /// owner's in it, not repeated in this run's report).
    Foreign,
}

/// The largest Dockerfile or OCI spec read: anything larger is not one.
const MAX_FILE: u64 = 4 * 1024 * 1024;

impl OwnSteps {
    pub fn new(steps: Vec<Arc<dyn RunInstruction>>) -> OwnSteps {
        OwnSteps {
            taken: vec![0; steps.len()],
            steps,
        }
    }

    /// The RUN steps of the build `argv` runs, when its Dockerfile can be read (not from
    /// stdin or a URL) and its steps told apart.
    pub fn of_command(argv: &[OsString], reader: &dyn DockerfileReader) -> Option<OwnSteps> {
        let path = DockerCommand::recognize(argv)?.dockerfile(argv)?;
        OwnSteps::of_files(&[path], reader)
    }

    /// The RUN steps of all these Dockerfiles, when every one can be read and its steps told
    /// apart.
    pub fn of_files(paths: &[PathBuf], reader: &dyn DockerfileReader) -> Option<OwnSteps> {
        let texts = paths
            .iter()
            .map(|p| read_bounded(p))
            .collect::<Option<Vec<String>>>()?;
        OwnSteps::of_texts(&texts, reader)
    }

    /// The RUN steps of these Dockerfiles' texts (a compose project's), when each one's steps
    /// can be told apart.
    pub fn of_texts(texts: &[String], reader: &dyn DockerfileReader) -> Option<OwnSteps> {
        let mut steps = Vec::new();
        for text in texts {
            steps.extend(reader.run_steps(text)?);
        }
        Some(OwnSteps::new(steps))
    }

    /// Decides about a step that runs `args`, and counts it.
    pub fn judge(&mut self, args: &[String]) -> Verdict {
        let matching: Vec<usize> = (0..self.steps.len())
            .filter(|&i| self.steps[i].is_run_by(args))
            .collect();
        if let Some(&free) = matching.iter().find(|&&i| self.taken[i] == 0) {
            self.taken[free] += 1;
            return Verdict::Own;
        }
        match matching.first() {
            Some(&first) => {
                self.taken[first] += 1;
                Verdict::Ambiguous(self.steps[first].instruction().to_string())
            }
            None => Verdict::Foreign,
        }
    }
}

/// A small file's text (a Dockerfile, an OCI spec): `None` for anything else or larger.
pub(crate) fn read_bounded(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE {
        return None;
    }
    std::fs::read_to_string(path).ok()
}

/// What the BuildKit step in cgroup `cgroup_name` runs, from its OCI bundle: the processes
/// in the cgroup are `runc init` (then the step's command) whose parent is `runc … run
/// --bundle DIR NAME`. `None` when no process says so (another runtime, or gone).
pub fn step_args(cgroup_name: &str, pids: &[i32]) -> Option<Vec<String>> {
    pids.iter().find_map(|&pid| {
        let parent = procfs::read_status(pid)?.ppid;
        let argv = procfs::read_argv(parent)?;
        bundle_args(&argv, cgroup_name)
    })
}

/// `process.args` of the bundle a runc command line runs, if it runs container `name`.
fn bundle_args(runc: &[String], name: &str) -> Option<Vec<String>> {
    let program = Path::new(runc.first()?).file_name()?.to_str()?;
    if !program.starts_with("runc") || runc.last()? != name {
        return None;
    }
    let bundle = runc.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--bundle=")
            .or_else(|| a.strip_prefix("-b="))
            .map(str::to_string)
            .or_else(|| {
                matches!(a.as_str(), "--bundle" | "-b").then(|| runc.get(i + 1).cloned())?
            })
    })?;
    let spec: serde_json::Value =
        serde_json::from_str(&read_bounded(&Path::new(&bundle).join("config.json"))?).ok()?;
    spec.pointer("/process/args")?
        .as_array()?
        .iter()
        .map(|a| a.as_str().map(str::to_string))
        .collect::<Option<Vec<String>>>()
        .filter(|args| !args.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step run by exactly one argv.
    struct Exact(String, Vec<String>);

    impl RunInstruction for Exact {
        fn instruction(&self) -> &str {
            &self.0
        }
        fn is_run_by(&self, argv: &[String]) -> bool {
            argv == self.1
        }
    }

    /// Reads `RUN a b` lines as the exec form `["a", "b"]`; a `# syntax=` line hides them.
    #[derive(Debug)]
    struct Lines;

    impl DockerfileReader for Lines {
        fn run_steps(&self, source: &str) -> Option<Vec<Arc<dyn RunInstruction>>> {
            if source.contains("# syntax=") {
                return None;
            }
            let step = |line: &str| -> Arc<dyn RunInstruction> {
                let words = line[4..].split(' ').map(str::to_string).collect();
                Arc::new(Exact(line.to_string(), words))
            };
            Some(
                source
                    .lines()
                    .filter(|l| l.starts_with("RUN "))
                    .map(step)
                    .collect(),
            )
        }
    }

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn a_step_is_this_builds_when_one_of_its_dockerfiles_runs_that_text() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "FROM x\nRUN npm ci\n").unwrap();
        std::fs::write(&b, "FROM x\nRUN node b.js\n").unwrap();
        let mut steps = OwnSteps::of_files(&[a.clone(), b], &Lines).unwrap();
        assert_eq!(steps.judge(&args(&["npm", "ci"])), Verdict::Own);
        assert_eq!(steps.judge(&args(&["node", "b.js"])), Verdict::Own);
        assert_eq!(steps.judge(&args(&["node", "other.js"])), Verdict::Foreign);
        // The same text once more than these Dockerfiles run it.
        assert_eq!(
            steps.judge(&args(&["node", "b.js"])),
            Verdict::Ambiguous("RUN node b.js".into())
        );
        // One Dockerfile that cannot be read, or whose steps cannot be told apart: none are.
        let hidden = dir.path().join("hidden");
        std::fs::write(&hidden, "# syntax=docker/dockerfile:1\nRUN npm ci\n").unwrap();
        assert!(OwnSteps::of_files(&[a.clone(), hidden], &Lines).is_none());
        assert!(OwnSteps::of_files(&[a, dir.path().join("missing")], &Lines).is_none());
    }

    #[test]
    fn the_bundle_of_a_runc_command_line_for_that_container_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"process": {"args": ["/bin/sh", "-c", "echo hi"]}}"#,
        )
        .unwrap();
        let bundle = dir.path().to_str().unwrap();
        let runc = args(&["runc", "--log", "x.json", "run", "--bundle", bundle, "abc"]);
        assert_eq!(
            bundle_args(&runc, "abc"),
            Some(args(&["/bin/sh", "-c", "echo hi"]))
        );
        assert_eq!(bundle_args(&runc, "other"), None);
        let not_runc = args(&["sh", "--bundle", bundle, "abc"]);
        assert_eq!(bundle_args(&not_runc, "abc"), None);
        std::fs::write(dir.path().join("config.json"), "{\"process\": {}}").unwrap();
        assert_eq!(bundle_args(&runc, "abc"), None);
    }
}
