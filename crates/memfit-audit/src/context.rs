//! What every rule sees: the project, its platform facts, the runtime model and the limit.

use memfit_core::node::NodeVersion;
use memfit_core::CgroupVersion;

use crate::dockerfile::{shell, Dockerfile, Instruction, Keyword, Span};
use crate::platform::{self, LimitSource, PlatformFacts};
use crate::project::{Project, ProjectFile};
use crate::runtime::{self, Runtime};
use crate::source::FileId;

pub struct Context<'a> {
    pub project: &'a Project,
    pub platform: PlatformFacts,
    pub runtime: Runtime,
    /// The container limit and where it comes from.
    pub limit: Option<LimitSource>,
    pub lockfiles: Vec<crate::lockfile::Lockfile>,
    /// Facts of every JS/TS source.
    pub js: Vec<crate::js::JsFile>,
    /// The machine `docker build` runs on, from memfit.toml's `[build]`.
    pub build: Option<BuildLimit>,
    /// A `memfit run` report of the service (`--from`): what it measured.
    pub measured: Option<crate::runtime::python_run::Measured>,
}

/// The builder's memory and CPUs (memfit.toml `[build]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildLimit {
    pub bytes: u64,
    pub cpus: Option<u32>,
    /// Where it is said, for messages.
    pub description: String,
}

/// A Dockerfile, its stages, and which of them ship.
pub struct DockerfileView<'a> {
    pub id: FileId,
    pub docker: &'a Dockerfile,
    pub stages: Vec<crate::dockerfile::Stage>,
    pub shipped: Vec<usize>,
}

impl<'a> DockerfileView<'a> {
    /// The RUN commands of a stage.
    pub fn stage_commands(&self, stage: usize) -> Vec<RunCommand<'a>> {
        Context::run_commands(self.docker.stage_instructions(&self.stages[stage]))
    }

    /// The RUN commands of the stages that ship.
    pub fn shipped_commands(&self) -> Vec<(usize, RunCommand<'a>)> {
        self.shipped
            .iter()
            .flat_map(|&s| self.stage_commands(s).into_iter().map(move |c| (s, c)))
            .collect()
    }

    /// ENV values set in the shipped stages (later ones win).
    pub fn shipped_env(&self, name: &str) -> Option<String> {
        let mut value = None;
        for &s in self.shipped.iter().rev() {
            for i in self.docker.stage_instructions(&self.stages[s]) {
                if i.keyword == Keyword::Env || i.keyword == Keyword::Arg {
                    for (n, v, _, _) in crate::runtime::env_pairs(i.args()) {
                        if n == name {
                            value = Some(v);
                        }
                    }
                }
            }
        }
        value
    }

    /// Whether a stage runs a build (npm run build, tsc, next build, cargo build…).
    pub fn stage_builds(&self, stage: usize) -> Option<String> {
        self.stage_commands(stage)
            .iter()
            .find_map(|c| build_command(&c.command))
    }
}

/// Names a build step: `npm run build`, `tsc`, `next build`, `cargo build`…
pub fn build_command(command: &shell::SimpleCommand) -> Option<String> {
    let program = command.program()?;
    let sub = command.subcommand();
    let npx_target = || {
        command
            .args()
            .iter()
            .map(|w| w.text.as_str())
            .find(|a| !a.starts_with('-'))
    };
    match program {
        "npm" | "yarn" | "pnpm" | "bun" => {
            let script = crate::runtime::npm_script_of(command)?;
            (script.starts_with("build") || script == "compile")
                .then(|| format!("{program} run {script}"))
        }
        "tsc" | "webpack" | "esbuild" | "rollup" | "turbo"
            if program != "turbo" || sub == Some("build") =>
        {
            Some(program.to_string())
        }
        "npx" | "pnpx" | "bunx" => {
            let t = npx_target()?;
            matches!(t, "tsc" | "webpack" | "next" | "nest" | "vite" | "esbuild")
                .then(|| format!("{program} {t}"))
        }
        "next" | "nest" | "vite" | "ng" | "nuxt" | "nuxi" | "astro" | "remix" | "svelte-kit"
            if sub == Some("build") =>
        {
            Some(format!("{program} build"))
        }
        "cargo" if matches!(sub, Some("build" | "install")) => {
            Some(format!("cargo {}", sub.unwrap_or_default()))
        }
        "go" if sub == Some("build") => Some("go build".to_string()),
        "mvn" | "./mvnw" | "gradle" | "./gradlew"
            if matches!(sub, Some("package" | "install" | "build" | "bootJar")) =>
        {
            Some(format!("{program} {}", sub.unwrap_or_default()))
        }
        _ => None,
    }
}

/// A shell command a Dockerfile runs, with where it is.
pub struct RunCommand<'a> {
    pub instruction: &'a Instruction,
    pub command: shell::SimpleCommand,
    /// Where the script's offsets point: `Some(offset)` into the instruction's logical text,
    /// or `None` when the script is a heredoc body (`source_base` then applies).
    pub text_base: Option<usize>,
    pub source_base: Option<usize>,
}

impl RunCommand<'_> {
    /// The source span of a byte range of the script.
    pub fn span(&self, start: usize, end: usize) -> Span {
        match (self.text_base, self.source_base) {
            (Some(base), _) => self.instruction.source_span(base + start, base + end),
            (None, Some(base)) => Span::new(base + start, base + end),
            _ => self.instruction.span,
        }
    }

    /// The span of the whole command.
    pub fn command_span(&self) -> Span {
        self.span(self.command.start, self.command.end)
    }

    /// The span of the `n`th word.
    pub fn word_span(&self, n: usize) -> Span {
        let w = &self.command.words[n];
        self.span(w.start, w.end)
    }
}

impl<'a> Context<'a> {
    pub fn new(project: &'a Project, limit_override: Option<LimitSource>) -> Context<'a> {
        let platform = platform::read(project);
        let runtime = runtime::model(project, &platform);
        let limit =
            limit_override.or_else(|| platform.limits.iter().min_by_key(|l| l.bytes).cloned());
        Context {
            project,
            platform,
            runtime,
            limit,
            lockfiles: crate::lockfile::read(project),
            js: crate::js::analyze_project(project),
            build: None,
            measured: None,
        }
    }

    pub fn limit_bytes(&self) -> Option<u64> {
        self.limit.as_ref().map(|l| l.bytes)
    }

    pub fn file(&self, id: FileId) -> &ProjectFile {
        self.project.file(id)
    }

    /// The cgroup version the service's hosts run: the plan's where documented (Heroku dynos
    /// are cgroup v1), else v2, which current Kubernetes, Render, Railway and Fly run.
    pub fn cgroup(&self) -> CgroupVersion {
        self.limit
            .as_ref()
            .and_then(|l| l.platform?.cgroup)
            .unwrap_or(CgroupVersion::V2)
    }

    pub fn node_version(&self) -> Option<NodeVersion> {
        self.runtime.node_version.as_ref().and_then(|v| v.version)
    }

    /// The shipping Dockerfile.
    pub fn dockerfile(&self) -> Option<(FileId, &Dockerfile)> {
        let id = self.runtime.dockerfile?;
        match &self.project.file(id).parsed {
            crate::project::Parsed::Dockerfile(d) => Some((id, d)),
            _ => None,
        }
    }

    /// Every Dockerfile with its stages and the indices of the stages that ship.
    pub fn dockerfiles(&self) -> Vec<DockerfileView<'a>> {
        self.project
            .dockerfiles()
            .map(|(id, _, docker)| {
                let stages = docker.stages();
                let shipped = docker.shipped_stages(&stages);
                DockerfileView {
                    id,
                    docker,
                    stages,
                    shipped,
                }
            })
            .collect()
    }

    /// Every shell command of RUN instructions in the given instructions (ONBUILD's included).
    pub fn run_commands<'i>(
        instructions: impl IntoIterator<Item = &'i Instruction>,
    ) -> Vec<RunCommand<'i>> {
        let mut out = Vec::new();
        for instruction in instructions {
            let target = instruction.onbuild.as_deref().unwrap_or(instruction);
            for script in target.scripts() {
                let (text_base, source_base) = match script.origin {
                    crate::dockerfile::ScriptOrigin::Text(offset) => (Some(offset), None),
                    crate::dockerfile::ScriptOrigin::Source(offset) => (None, Some(offset)),
                    crate::dockerfile::ScriptOrigin::Exec => (None, None),
                };
                for command in shell::split(&script.text) {
                    out.push(RunCommand {
                        instruction: target,
                        command,
                        text_base,
                        source_base,
                    });
                }
            }
        }
        out
    }
}
