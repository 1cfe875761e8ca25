//! The service as it runs: which Dockerfile ships, its start command (through npm scripts),
//! every place a Node heap flag is set and which one wins, the Node version, the workers.

pub mod go;
pub mod jvm;
pub mod python;
pub mod python_run;
pub mod service;

use memfit_core::node::NodeVersion;
use memfit_core::HeapFlags;

use crate::dockerfile::{shell, Dockerfile, Instruction, Keyword, Span, Stage};
use crate::json::JsonNode;
use crate::platform::{EnvSetting, PlatformFacts};
use crate::project::{Kind, Project};
use crate::source::FileId;

/// Where a heap setting comes from, lowest precedence first. Node: "Options on the command
/// line take precedence over options passed through NODE_OPTIONS"; a platform's environment
/// replaces the image's ENV; npm's `node-options` replaces NODE_OPTIONS for the scripts npm
/// runs (docs.npmjs.com/cli/using-npm/config#node-options).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    DockerfileEnv,
    PlatformEnv,
    Npmrc,
    InlineEnv,
    CommandLine,
}

/// One place that sets Node options.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeOptions {
    pub origin: Origin,
    /// e.g. `Dockerfile ENV`, `fly.toml [env]`, `package.json scripts.start`.
    pub place: String,
    pub file: FileId,
    pub span: Span,
    /// The options as written.
    pub text: String,
    /// The flags, as Node reads them.
    pub flags: HeapFlags,
    /// Whether it applies to the running service (not only to a build stage).
    pub runtime: bool,
}

/// A step of the start command: the command, and the npm script it runs, and so on.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandStep {
    pub command: String,
    pub place: String,
    pub file: FileId,
    pub span: Span,
}

/// Where the Node version comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionSource {
    pub version: Option<NodeVersion>,
    pub text: String,
    pub place: String,
    pub file: FileId,
    pub span: Span,
}

/// Workers sharing the limit (`WEB_CONCURRENCY`, `pm2 -i`), and where the count comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Workers {
    pub count: u32,
    /// e.g. `WEB_CONCURRENCY in fly.toml [env]`.
    pub place: String,
    pub file: FileId,
    pub span: Span,
}

/// The running service.
#[derive(Debug, Clone, Default)]
pub struct Runtime {
    /// The Dockerfile that builds the image (the root one first).
    pub dockerfile: Option<FileId>,
    /// The start command and what it expands to, outermost first.
    pub start: Vec<CommandStep>,
    /// Every place Node options are set, build stages included.
    pub node_options: Vec<NodeOptions>,
    pub node_version: Option<VersionSource>,
    /// Runtime environment (Dockerfile ENV of the shipped stages, then the platform's).
    pub env: Vec<EnvSetting>,
    pub workers: Option<Workers>,
    /// Whether the service runs Node at all (a node base image, a node start command or a
    /// package.json start script).
    pub is_node: bool,
}

impl Runtime {
    /// The runtime settings that set a heap cap, highest precedence first.
    pub fn heap_settings(&self) -> Vec<&NodeOptions> {
        let mut caps: Vec<&NodeOptions> = self
            .node_options
            .iter()
            .filter(|o| o.runtime && o.flags.has_heap_cap())
            .collect();
        caps.sort_by_key(|o| std::cmp::Reverse(o.origin));
        caps
    }

    /// The heap setting that wins at runtime.
    pub fn effective_heap(&self) -> Option<&NodeOptions> {
        self.heap_settings().first().copied()
    }

    pub fn env_value(&self, name: &str) -> Option<&EnvSetting> {
        self.env.iter().rev().find(|e| e.name == name)
    }
}

/// The flags of NODE_OPTIONS or a node command line written in a project file (shell quoting
/// as in a Dockerfile or an npm script).
pub fn node_flags(text: &str) -> HeapFlags {
    HeapFlags::from_words(
        shell::split(text)
            .into_iter()
            .flat_map(|c| c.words.into_iter().map(|w| w.text)),
    )
}

/// `ENV A=1 B="two words"` or `ENV A value` → (name, value, start, end in args).
pub fn env_pairs(args: &str) -> Vec<(String, String, usize, usize)> {
    let trimmed = args.trim_start();
    let offset = args.len() - trimmed.len();
    let first_word_end = trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
    if !trimmed[..first_word_end].contains('=') {
        // The legacy form: one variable, the rest of the line is its value.
        let name = &trimmed[..first_word_end];
        let value = trimmed[first_word_end..].trim();
        return vec![(name.to_string(), value.to_string(), offset, args.len())];
    }
    shell::split(args)
        .into_iter()
        .flat_map(|c| c.words)
        .filter_map(|w| {
            let (name, value) = w.text.split_once('=')?;
            Some((name.to_string(), value.to_string(), w.start, w.end))
        })
        .collect()
}

/// The npm script a command runs: `npm start`, `npm run build`, `yarn start`, `pnpm run x`,
/// `bun run x`.
pub fn npm_script_of(command: &shell::SimpleCommand) -> Option<String> {
    let program = command.program()?;
    let operands: Vec<&str> = command.operands().collect();
    match (program, operands.as_slice()) {
        ("npm" | "pnpm" | "bun", ["start", ..]) => Some("start".into()),
        ("npm" | "pnpm" | "bun", ["run" | "run-script", script, ..]) => Some(script.to_string()),
        ("yarn", ["run", script, ..]) => Some(script.to_string()),
        ("yarn", [script, ..])
            if !matches!(
                *script,
                "install" | "add" | "remove" | "workspace" | "workspaces" | "dlx" | "exec" | "node"
            ) =>
        {
            Some(script.to_string())
        }
        ("pnpm", [script, ..])
            if !matches!(
                *script,
                "install" | "i" | "add" | "exec" | "dlx" | "deploy" | "prune" | "fetch"
            ) =>
        {
            Some(script.to_string())
        }
        _ => None,
    }
}

/// Reads the Node version of an image reference: `node:20-alpine` → 20,
/// `gcr.io/distroless/nodejs22-debian12` → 22.
pub fn node_version_of_image(image: &str) -> Option<(Option<NodeVersion>, String)> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let (name, tag) = match without_digest.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, t),
        _ => (without_digest, "latest"),
    };
    let base = name.rsplit('/').next().unwrap_or(name);
    if base == "node" {
        let version = tag.split('-').next().unwrap_or(tag);
        return Some((version.parse().ok(), version.to_string()));
    }
    if let Some(rest) = base.strip_prefix("nodejs") {
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        return Some((digits.parse().ok(), base.to_string()));
    }
    None
}

/// Builds the runtime model.
pub fn model(project: &Project, platform: &PlatformFacts) -> Runtime {
    let mut runtime = Runtime::default();
    let root_package = project.root_package();
    if let Some((id, docker)) = shipping_dockerfile(project) {
        runtime.dockerfile = Some(id);
        read_dockerfile(project, id, docker, &mut runtime);
    }
    read_platform_env(platform, &mut runtime);
    let via_npm = read_start_command(root_package, platform, &mut runtime);
    for step in runtime.start.clone() {
        for command in shell::split(&step.command) {
            read_command(&step, &command, &mut runtime);
        }
    }
    read_npmrc(project, via_npm, &mut runtime);
    if runtime.workers.is_none() {
        runtime.workers = workers_from_env(&runtime);
    }
    // The shipped image's Node version, else .nvmrc / .node-version, else engines.
    if runtime.node_version.is_none() {
        runtime.node_version = node_version_file(project).or_else(|| engines_node(root_package));
    }
    if root_package.is_some_and(|(_, p)| p.at(&["scripts", "start"]).is_some())
        || runtime.node_version.is_some()
    {
        runtime.is_node = true;
    }
    runtime
}

/// Node options set at `place`.
fn options_at(
    origin: Origin,
    place: String,
    file: FileId,
    span: Span,
    text: &str,
    runtime: bool,
) -> NodeOptions {
    NodeOptions {
        origin,
        place,
        file,
        span,
        text: text.to_string(),
        flags: node_flags(text),
        runtime,
    }
}

/// The Dockerfile that ships: `Dockerfile` at the root, else the shallowest one.
fn shipping_dockerfile(project: &Project) -> Option<(FileId, &Dockerfile)> {
    project
        .dockerfiles()
        .min_by_key(|(id, f, _)| {
            (
                f.source.path.components().count(),
                project.file(*id).source.display() != "Dockerfile",
                *id,
            )
        })
        .map(|(id, _, docker)| (id, docker))
}

/// The platform's environment, which replaces the image's, and the Node options in it.
fn read_platform_env(platform: &PlatformFacts, runtime: &mut Runtime) {
    runtime.env.extend(platform.env.iter().cloned());
    for setting in platform.env.iter().filter(|s| s.name == "NODE_OPTIONS") {
        runtime.node_options.push(options_at(
            Origin::PlatformEnv,
            setting.origin.clone(),
            setting.file,
            setting.span,
            &setting.value,
            true,
        ));
    }
}

/// The start command: the platform's, else the image's CMD, followed through the npm
/// scripts it runs; else `npm start`. Returns whether npm runs the service.
fn read_start_command(
    root_package: Option<(FileId, &JsonNode)>,
    platform: &PlatformFacts,
    runtime: &mut Runtime,
) -> bool {
    if let Some(start) = platform.start.first() {
        runtime.start = vec![CommandStep {
            command: start.command.clone(),
            place: start.origin.clone(),
            file: start.file,
            span: start.span,
        }];
    }
    let Some((pkg_id, pkg)) = root_package else {
        return false;
    };
    let mut via_npm = follow_npm_scripts(pkg_id, pkg, &mut runtime.start);
    if runtime.start.is_empty() {
        // Buildpacks (Heroku, Render native) run `npm start` when nothing else is said.
        if let Some(step) = script_step(pkg_id, pkg, "start") {
            via_npm = true;
            runtime.start.push(step);
        }
    }
    via_npm
}

/// Follows `npm start`, `npm run x`… into package.json's scripts, at most five deep.
/// Returns whether it followed any.
fn follow_npm_scripts(pkg_id: FileId, pkg: &JsonNode, start: &mut Vec<CommandStep>) -> bool {
    let mut followed = false;
    for _ in 0..5 {
        let Some(last) = start.last() else {
            break;
        };
        let Some(script) = shell::split(&last.command).iter().find_map(npm_script_of) else {
            break;
        };
        let Some(step) = script_step(pkg_id, pkg, &script) else {
            break;
        };
        start.push(step);
        followed = true;
    }
    followed
}

/// The command of a package.json script.
fn script_step(pkg_id: FileId, pkg: &JsonNode, script: &str) -> Option<CommandStep> {
    let node = pkg.get("scripts")?.get(script)?;
    Some(CommandStep {
        command: node.as_str()?.to_string(),
        place: format!("package.json scripts.{script}"),
        file: pkg_id,
        span: node.span,
    })
}

/// Node options, workers and Node itself in one command of the start command.
fn read_command(step: &CommandStep, command: &shell::SimpleCommand, runtime: &mut Runtime) {
    let options_here = |origin, text: &str| {
        options_at(origin, step.place.clone(), step.file, step.span, text, true)
    };
    let workers_here = |count, place| Workers {
        count,
        place,
        file: step.file,
        span: step.span,
    };
    for (name, value) in command.assignments() {
        match name {
            "NODE_OPTIONS" => runtime
                .node_options
                .push(options_here(Origin::InlineEnv, value)),
            "WEB_CONCURRENCY" => {
                if let Ok(count) = value.parse() {
                    let place = format!("WEB_CONCURRENCY in {}", step.place);
                    runtime.workers = Some(workers_here(count, place));
                }
            }
            _ => {}
        }
    }
    if let Some(flags) = node_cli_flags(command) {
        runtime
            .node_options
            .push(options_here(Origin::CommandLine, &flags));
    }
    if let Some(count) = pm2_instances(command) {
        let place = format!("pm2 -i {count} in {}", step.place);
        runtime.workers = Some(workers_here(count, place));
    }
    if matches!(
        command.program(),
        Some("node" | "nodemon" | "ts-node" | "tsx" | "next" | "nest" | "pm2" | "pm2-runtime")
    ) {
        runtime.is_node = true;
    }
}

/// The flags before the script of a `node` command: `node --max-old-space-size=512 app.js`.
fn node_cli_flags(command: &shell::SimpleCommand) -> Option<String> {
    if command.program() != Some("node") {
        return None;
    }
    let flags: Vec<&str> = command
        .args()
        .iter()
        .map(|w| w.text.as_str())
        .take_while(|w| w.starts_with('-'))
        .collect();
    (!flags.is_empty()).then(|| flags.join(" "))
}

/// `pm2 start app.js -i 4`: the number of instances.
fn pm2_instances(command: &shell::SimpleCommand) -> Option<u32> {
    if !matches!(
        command.program(),
        Some("pm2" | "pm2-runtime" | "pm2-docker")
    ) {
        return None;
    }
    let args: Vec<&str> = command.args().iter().map(|w| w.text.as_str()).collect();
    let i = args
        .iter()
        .position(|a| *a == "-i" || *a == "--instances")?;
    args.get(i + 1)?.parse().ok()
}

/// npm's `node-options` in the root .npmrc: it replaces NODE_OPTIONS for the scripts npm
/// runs, so it applies when npm starts the service.
fn read_npmrc(project: &Project, via_npm: bool, runtime: &mut Runtime) {
    let root_npmrc = project
        .of_kind(Kind::Npmrc)
        .filter(|(id, _)| project.dir_of(*id).as_os_str().is_empty());
    for (id, file) in root_npmrc {
        for (n, line) in file.source.text.lines().enumerate() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            if key.trim() == "node-options" {
                runtime.node_options.push(options_at(
                    Origin::Npmrc,
                    ".npmrc node-options".to_string(),
                    id,
                    file.source.line_span(n + 1),
                    value.trim(),
                    via_npm,
                ));
            }
        }
    }
}

/// `WEB_CONCURRENCY` in the image's or the platform's environment.
fn workers_from_env(runtime: &Runtime) -> Option<Workers> {
    let setting = runtime.env_value("WEB_CONCURRENCY")?;
    Some(Workers {
        count: setting.value.parse().ok()?,
        place: format!("WEB_CONCURRENCY in {}", setting.origin),
        file: setting.file,
        span: setting.span,
    })
}

/// `.nvmrc` or `.node-version`.
fn node_version_file(project: &Project) -> Option<VersionSource> {
    let (id, file) = project.of_kind(Kind::NodeVersionFile).next()?;
    let text = file.source.text.trim().to_string();
    Some(VersionSource {
        version: text.parse().ok(),
        text: text.clone(),
        place: file.source.display(),
        file: id,
        span: file.source.line_span(1),
    })
}

/// `engines.node` of the root package.json.
fn engines_node(root_package: Option<(FileId, &JsonNode)>) -> Option<VersionSource> {
    let (id, pkg) = root_package?;
    let engines = pkg.at(&["engines", "node"])?;
    let text = engines.as_str()?;
    // ">=18" or "^20.3": the first number is the oldest allowed.
    let digits: String = text
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    Some(VersionSource {
        version: digits.trim_end_matches('.').parse().ok(),
        text: text.to_string(),
        place: "package.json engines.node".to_string(),
        file: id,
        span: engines.span,
    })
}

/// The image's Node version, Node options and environment, stage by stage, and its start
/// command.
fn read_dockerfile(project: &Project, id: FileId, docker: &Dockerfile, runtime: &mut Runtime) {
    let stages = docker.stages();
    let shipped = docker.shipped_stages(&stages);
    let place = project.file(id).source.display();
    for stage in &stages {
        let ships = shipped.contains(&stage.index);
        if ships {
            if let Some((version, tag)) = node_version_of_image(&stage.base) {
                runtime.is_node = true;
                if runtime.node_version.is_none() || stage.index == stages.len() - 1 {
                    runtime.node_version = Some(VersionSource {
                        version,
                        text: tag,
                        place: format!("{place} FROM {}", stage.base),
                        file: id,
                        span: docker.instructions[stage.from].span,
                    });
                }
            }
        }
        let env = docker
            .stage_instructions(stage)
            .iter()
            .filter(|i| i.keyword == Keyword::Env);
        for instruction in env {
            read_env_instruction(instruction, stage, ships, id, &place, runtime);
        }
    }
    if let Some(step) = image_start(docker, &stages, &shipped, id, &place) {
        runtime.start.push(step);
    }
}

/// An ENV instruction: the Node options it sets, and, in a stage that ships, the
/// environment.
fn read_env_instruction(
    instruction: &Instruction,
    stage: &Stage,
    ships: bool,
    id: FileId,
    place: &str,
    runtime: &mut Runtime,
) {
    for (name, value, start, end) in env_pairs(instruction.args()) {
        let span =
            instruction.source_span(instruction.args_start + start, instruction.args_start + end);
        if name == "NODE_OPTIONS" {
            let stage_name = stage
                .name
                .as_ref()
                .map(|n| format!(" (stage {n})"))
                .unwrap_or_default();
            runtime.node_options.push(options_at(
                Origin::DockerfileEnv,
                format!("{place} ENV{stage_name}"),
                id,
                span,
                &value,
                ships,
            ));
        }
        if ships {
            runtime.env.push(EnvSetting {
                name,
                value,
                file: id,
                span,
                origin: format!("{place} ENV"),
            });
        }
    }
}

/// ENTRYPOINT and CMD of the shipped stages (inherited ones from a FROM stage count too),
/// with entrypoint wrappers and `sh -c` looked through.
fn image_start(
    docker: &Dockerfile,
    stages: &[Stage],
    shipped: &[usize],
    id: FileId,
    place: &str,
) -> Option<CommandStep> {
    let mut entrypoint: Option<&Instruction> = None;
    let mut cmd: Option<&Instruction> = None;
    for index in shipped.iter().rev() {
        for instruction in docker.stage_instructions(&stages[*index]) {
            match instruction.keyword {
                Keyword::Cmd => cmd = Some(instruction),
                Keyword::Entrypoint => entrypoint = Some(instruction),
                _ => {}
            }
        }
    }
    let parts: Vec<&Instruction> = [entrypoint, cmd].into_iter().flatten().collect();
    let span = parts.first()?.span;
    let command: Vec<String> = parts.into_iter().map(instruction_command).collect();
    Some(CommandStep {
        command: without_wrappers(command.join(" ")),
        place: format!("{place} CMD"),
        file: id,
        span,
    })
}

/// The command of a CMD or ENTRYPOINT, exec-form words quoted where they hold a space.
fn instruction_command(instruction: &Instruction) -> String {
    match &instruction.exec {
        Some(words) => words
            .iter()
            .map(|w| {
                if w.contains(' ') {
                    format!("'{w}'")
                } else {
                    w.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
        None => instruction.args().to_string(),
    }
}

/// The command that entrypoint wrappers (tini, dumb-init) and `sh -c "…"` run.
fn without_wrappers(mut command: String) -> String {
    for wrapper in [
        "tini -- ",
        "/sbin/tini -- ",
        "dumb-init ",
        "/usr/bin/dumb-init ",
    ] {
        if let Some(rest) = command.strip_prefix(wrapper) {
            command = rest.to_string();
        }
    }
    for sh in ["sh -c ", "/bin/sh -c ", "bash -c ", "/bin/bash -c "] {
        if let Some(rest) = command.strip_prefix(sh) {
            command = rest.trim_matches(['\'', '"']).to_string();
        }
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_forms() {
        assert_eq!(
            env_pairs("NODE_ENV=production NODE_OPTIONS=\"--max-old-space-size=384 --expose-gc\"")
                .iter()
                .map(|(n, v, _, _)| (n.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
            vec![
                ("NODE_ENV", "production"),
                ("NODE_OPTIONS", "--max-old-space-size=384 --expose-gc")
            ]
        );
        assert_eq!(
            env_pairs("NODE_OPTIONS --max-old-space-size=200")[0].1,
            "--max-old-space-size=200"
        );
    }

    #[test]
    fn node_flags_and_caps() {
        let o = NodeOptions {
            origin: Origin::DockerfileEnv,
            place: String::new(),
            file: 0,
            span: Span::default(),
            text: String::new(),
            flags: node_flags("--max-old-space-size=384 --gc-interval=100 --max_semi_space_size 4"),
            runtime: true,
        };
        assert_eq!(o.flags.old_space_mib(), Some(384));
        assert_eq!(o.flags.semi_space_mib(), Some(4));
        assert_eq!(o.flags.value("gc-interval"), Some("100"));
    }

    #[test]
    fn images() {
        assert_eq!(
            node_version_of_image("node:20-alpine").unwrap().0,
            "20".parse().ok()
        );
        assert_eq!(
            node_version_of_image("docker.io/library/node:18.19.1-slim@sha256:abc")
                .unwrap()
                .0,
            "18.19.1".parse().ok()
        );
        assert_eq!(
            node_version_of_image("gcr.io/distroless/nodejs22-debian12")
                .unwrap()
                .0,
            "22".parse().ok()
        );
        assert_eq!(node_version_of_image("node:lts-alpine").unwrap().0, None);
        assert!(node_version_of_image("python:3.12").is_none());
    }

    #[test]
    fn npm_scripts() {
        let s = |t: &str| npm_script_of(&shell::split(t)[0]);
        assert_eq!(s("npm start").as_deref(), Some("start"));
        assert_eq!(s("npm run start:prod").as_deref(), Some("start:prod"));
        assert_eq!(s("yarn serve").as_deref(), Some("serve"));
        assert_eq!(s("pnpm install"), None);
        assert_eq!(s("node dist/index.js"), None);
    }
}
