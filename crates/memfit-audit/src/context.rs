//! What every rule sees: the project, its platform facts, the runtime model and the limit.

use memfit_core::node::NodeVersion;
use memfit_core::CgroupVersion;

use crate::dockerfile::{shell, Dockerfile, Instruction, Span};
use crate::platform::{self, LimitSource, PlatformFacts};
use crate::project::{Project, ProjectFile};
use crate::runtime::{self, Runtime};
use crate::source::FileId;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub struct Context<'a> {
    pub project: &'a Project,
    pub platform: PlatformFacts,
    pub runtime: Runtime,
    /// The container limit and where it comes from.
    pub limit: Option<LimitSource>,
    pub lockfiles: Vec<crate::lockfile::Lockfile>,
    /// Facts of every JS/TS source, analysed in parallel: (file, facts, library code?).
    pub js: Vec<(FileId, crate::js::JsFacts, bool)>,
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
                if i.keyword == "ENV" || i.keyword == "ARG" {
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
            js: analyze_sources(project),
        }
    }

    pub fn limit_bytes(&self) -> Option<u64> {
        self.limit.as_ref().map(|l| l.bytes)
    }

    pub fn file(&self, id: FileId) -> &ProjectFile {
        self.project.file(id)
    }

    /// The cgroup version the service's hosts run: Heroku dynos are cgroup v1 (their limit is
    /// read from memory.limit_in_bytes); current Kubernetes, Render, Railway and Fly use v2.
    pub fn cgroup(&self) -> CgroupVersion {
        match &self.limit {
            Some(l)
                if l.description.starts_with("app.json") || l.description.contains("heroku:") =>
            {
                CgroupVersion::V1
            }
            _ => CgroupVersion::V2,
        }
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

/// Analyses every JS/TS source in parallel.
fn analyze_sources(project: &Project) -> Vec<(FileId, crate::js::JsFacts, bool)> {
    use rayon::prelude::*;
    let packages: std::collections::HashMap<std::path::PathBuf, FileId> = project
        .of_kind(crate::project::Kind::PackageJson)
        .map(|(id, _)| (project.dir_of(id), id))
        .collect();
    let ids: Vec<FileId> = project
        .of_kind(crate::project::Kind::Script)
        .map(|(id, _)| id)
        .collect();
    let mut out: Vec<(FileId, crate::js::JsFacts, bool)> = ids
        .par_iter()
        .map(|&id| {
            let file = project.file(id);
            let facts = crate::js::analyze(&file.source.path, &file.source.text);
            (id, facts, is_library(project, &packages, id))
        })
        .collect();
    link_modules(project, &mut out);
    out
}

/// Library code: the nearest package.json above the file has no `start` script and declares
/// an entry point (`main`, `exports`, `module`): a package meant to be imported.
fn is_library(
    project: &Project,
    packages: &std::collections::HashMap<std::path::PathBuf, FileId>,
    id: FileId,
) -> bool {
    let mut dir = project.dir_of(id);
    loop {
        if let Some(&pkg_id) = packages.get(&dir) {
            let Some(pkg) = project.json(pkg_id) else {
                return false;
            };
            let starts = pkg.at(&["scripts", "start"]).is_some();
            let entry = ["main", "exports", "module"]
                .iter()
                .any(|k| pkg.get(k).is_some());
            return !starts && entry;
        }
        if !dir.pop() {
            return false;
        }
    }
}

/// Follows calls across modules. A file the prefilter skipped is parsed when it names a
/// function another file exports; then a function that a module calls from a repeated
/// function (`import { subscribe } from './bus'` called in a route) is repeated in its own
/// file too, to a fixed point, so every source rule sees it.
fn link_modules(project: &Project, out: &mut [(FileId, crate::js::JsFacts, bool)]) {
    use rayon::prelude::*;
    // Rounds, because a file parsed here may export what a further file calls.
    let mut seen: std::collections::HashSet<String> = Default::default();
    for _ in 0..4 {
        let mut names: Vec<String> = Vec::new();
        for (id, facts, _) in out.iter() {
            for export in facts.interesting_exports() {
                let mut wanted = Vec::new();
                if export == "default" {
                    // Called under any local name: look for an import path ending in the
                    // module's file stem (`require('./lib/pool')`), or its directory for an
                    // index file (`require('./lib')`, `require('..')`).
                    let path = &project.file(*id).source.path;
                    if let Some(stem) = path.file_stem() {
                        wanted.push(format!("/{}", stem.to_string_lossy()));
                        if stem == "index" {
                            wanted.push("..".to_string());
                            if let Some(dir) = path.parent().and_then(|d| d.file_name()) {
                                wanted.push(format!("/{}", dir.to_string_lossy()));
                            }
                        }
                    }
                } else {
                    wanted.push(format!("{export}("));
                }
                for name in wanted {
                    if seen.insert(name.clone()) {
                        names.push(name);
                    }
                }
            }
        }
        if names.is_empty() {
            break;
        }
        out.par_iter_mut().for_each(|(id, facts, _)| {
            let file = project.file(*id);
            if facts.skipped && names.iter().any(|n| file.source.text.contains(n.as_str())) {
                *facts = crate::js::analyze_all(&file.source.path, &file.source.text);
            }
        });
    }
    let files: HashMap<PathBuf, usize> = out
        .iter()
        .enumerate()
        .map(|(i, (id, _, _))| (project.file(*id).source.path.clone(), i))
        .collect();
    let aliases = aliases(project);
    for _ in 0..8 {
        let mut updates: Vec<(usize, usize, String)> = Vec::new();
        for (caller_id, facts, _) in out.iter() {
            let caller = &project.file(*caller_id).source;
            for call in &facts.imported_calls {
                let Some(why) = facts.repeated(call.func) else {
                    continue;
                };
                let Some(target) = resolve(&caller.path, &call.specifier, &files, &aliases) else {
                    continue;
                };
                let base = why.rsplit(" calls from ").next().unwrap_or(&why);
                let (line, _) = caller.line_col(call.span.start);
                for (export, i) in &out[target].1.exports {
                    let known = out[target].1.external_repeated.iter().any(|(j, _)| j == i)
                        || updates.iter().any(|(t, j, _)| *t == target && j == i);
                    if *export == call.name && !known {
                        let what = if call.name == "default" {
                            "the module's default export".to_string()
                        } else {
                            format!("`{}()`", call.name)
                        };
                        updates.push((
                            target,
                            *i,
                            format!(
                                "{what}, which {}:{line} calls from {base}",
                                caller.display()
                            ),
                        ));
                    }
                }
            }
        }
        if updates.is_empty() {
            break;
        }
        for (target, i, why) in updates {
            out[target].1.external_repeated.push((i, why));
            out[target].1.propagate_calls();
        }
    }
}

/// A `compilerOptions.paths` entry of a tsconfig: `"@/*": ["./src/*"]`, for the sources
/// under the config's directory.
struct Alias {
    scope: PathBuf,
    pattern: String,
    targets: Vec<PathBuf>,
}

/// The path aliases of every tsconfig of the project (`paths`, from `baseUrl` when set, else
/// from the config's directory; both read along the `extends` chain).
fn aliases(project: &Project) -> Vec<Alias> {
    let mut out = Vec::new();
    for (_, file) in project.of_kind(crate::project::Kind::TsConfig) {
        let config = &file.source.path;
        let dir = config.parent().unwrap_or(Path::new("")).to_path_buf();
        let Some(chain) = crate::tsconfig::chain(project, config) else {
            continue;
        };
        let Some(paths) = crate::tsconfig::compiler_option(&chain, "paths") else {
            continue;
        };
        let base =
            match crate::tsconfig::compiler_option(&chain, "baseUrl").and_then(|b| b.as_str()) {
                Some(b) => join(&dir, b),
                None => dir.clone(),
            };
        for (pattern, _, targets) in paths.entries() {
            out.push(Alias {
                scope: dir.clone(),
                pattern: pattern.clone(),
                targets: targets
                    .items()
                    .iter()
                    .filter_map(|t| t.as_str())
                    .map(|t| base.join(t))
                    .collect(),
            });
        }
    }
    out
}

/// `dir` joined with a `/`-separated relative path, `.` and `..` applied.
fn join(dir: &Path, relative: &str) -> PathBuf {
    let mut path = dir.to_path_buf();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                path.pop();
            }
            p => path.push(p),
        }
    }
    path
}

/// The file an import names: relative (`./db`, `../lib/prisma.js`) or through a tsconfig path
/// alias (`@/lib/db`); tries the TypeScript and JavaScript extensions and `index.*`.
fn resolve(
    from: &Path,
    specifier: &str,
    files: &HashMap<PathBuf, usize>,
    aliases: &[Alias],
) -> Option<usize> {
    if specifier.starts_with('.') {
        return find_module(
            &join(from.parent().unwrap_or(Path::new("")), specifier),
            files,
        );
    }
    for alias in aliases.iter().filter(|a| from.starts_with(&a.scope)) {
        let rest = match alias.pattern.strip_suffix('*') {
            Some(prefix) => match specifier.strip_prefix(prefix) {
                Some(rest) => rest,
                None => continue,
            },
            None if alias.pattern == specifier => "",
            None => continue,
        };
        for target in &alias.targets {
            let target = target.to_string_lossy().replace('*', rest);
            if let Some(found) = find_module(&join(Path::new(""), &target), files) {
                return Some(found);
            }
        }
    }
    None
}

fn find_module(path: &Path, files: &HashMap<PathBuf, usize>) -> Option<usize> {
    const EXT: &[&str] = &["ts", "tsx", "js", "mjs", "cjs", "mts", "cts", "jsx"];
    let mut candidates = vec![path.to_path_buf()];
    // `./db.js` in TypeScript sources names `db.ts`.
    if let Some(stem) = path.file_stem() {
        if path.extension().is_some() {
            candidates.extend(
                EXT.iter()
                    .map(|e| path.with_file_name(stem).with_extension(e)),
            );
        }
    }
    candidates.extend(EXT.iter().map(|e| {
        let mut p = path.to_path_buf().into_os_string();
        p.push(format!(".{e}"));
        PathBuf::from(p)
    }));
    candidates.extend(EXT.iter().map(|e| path.join(format!("index.{e}"))));
    candidates.iter().find_map(|c| files.get(c).copied())
}
