//! The service as it runs: which Dockerfile ships, its start command (through npm scripts),
//! every place a Node heap flag is set and which one wins, the Node version, the workers.

use memfit_core::node::NodeVersion;

use crate::dockerfile::{shell, Dockerfile, Instruction, Span};
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
    pub flags: Vec<String>,
    /// Whether it applies to the running service (not only to a build stage).
    pub runtime: bool,
}

impl NodeOptions {
    fn value_of(&self, names: &[&str]) -> Option<&str> {
        self.flags.iter().rev().find_map(|f| {
            names
                .iter()
                .find_map(|n| f.strip_prefix(n).and_then(|r| r.strip_prefix('=')))
        })
    }

    /// `--max-old-space-size=N` (MiB).
    pub fn old_space_mib(&self) -> Option<u64> {
        self.value_of(&["--max-old-space-size", "--max_old_space_size"])
            .and_then(|v| v.parse().ok())
    }

    /// `--max-old-space-size-percentage=P`.
    pub fn old_space_percentage(&self) -> Option<f64> {
        self.value_of(&[
            "--max-old-space-size-percentage",
            "--max_old_space_size_percentage",
        ])
        .and_then(|v| v.parse().ok())
    }

    pub fn semi_space_mib(&self) -> Option<u64> {
        self.value_of(&["--max-semi-space-size", "--max_semi_space_size"])
            .and_then(|v| v.parse().ok())
    }

    pub fn has_heap_cap(&self) -> bool {
        self.old_space_mib().is_some() || self.old_space_percentage().is_some()
    }

    /// The old-space cap in bytes for a container of `limit` bytes.
    pub fn old_space_bytes(&self, limit: Option<u64>) -> Option<u64> {
        const MIB: u64 = 1024 * 1024;
        match (self.old_space_percentage(), limit) {
            (Some(p), Some(limit)) => Some((limit / MIB) * (p * 100.0) as u64 / 10_000 * MIB),
            (Some(_), None) => None,
            _ => self.old_space_mib().map(|m| m * MIB),
        }
    }
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
            .filter(|o| o.runtime && o.has_heap_cap())
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

/// Splits NODE_OPTIONS or a node argv into its `--flags`.
pub fn node_flags(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let words: Vec<String> = shell::split(text)
        .into_iter()
        .flat_map(|c| c.words.into_iter().map(|w| w.text))
        .collect();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        if w.starts_with("--") {
            // `--max-old-space-size 512` (a separate value) is accepted by node's CLI.
            if !w.contains('=')
                && words.get(i + 1).is_some_and(|n| n.parse::<f64>().is_ok())
                && w.contains("size")
            {
                out.push(format!("{w}={}", words[i + 1]));
                i += 2;
                continue;
            }
            out.push(w.clone());
        }
        i += 1;
    }
    out
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

fn package_scripts(pkg: &JsonNode) -> Option<&JsonNode> {
    pkg.get("scripts")
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

    // The Dockerfile that ships: `Dockerfile` at the root, else the shallowest one.
    let dockerfile = project.dockerfiles().min_by_key(|(id, f, _)| {
        (
            f.source.path.components().count(),
            project.file(*id).source.display() != "Dockerfile",
            *id,
        )
    });
    if let Some((id, _, docker)) = dockerfile {
        runtime.dockerfile = Some(id);
        read_dockerfile(project, id, docker, &mut runtime);
    }
    runtime.env.extend(platform.env.iter().cloned());
    for setting in &platform.env {
        if setting.name == "NODE_OPTIONS" {
            runtime.node_options.push(NodeOptions {
                origin: Origin::PlatformEnv,
                place: setting.origin.clone(),
                file: setting.file,
                span: setting.span,
                text: setting.value.clone(),
                flags: node_flags(&setting.value),
                runtime: true,
            });
        }
    }

    // The start command: the platform's, else the image's CMD.
    if let Some(start) = platform.start.first() {
        runtime.start.insert(
            0,
            CommandStep {
                command: start.command.clone(),
                place: start.origin.clone(),
                file: start.file,
                span: start.span,
            },
        );
        runtime.start.truncate(1);
    }
    // Through npm scripts.
    let mut via_npm = false;
    let mut depth = 0;
    while let Some(last) = runtime.start.last().cloned() {
        depth += 1;
        if depth > 5 {
            break;
        }
        let Some((pkg_id, pkg)) = root_package else {
            break;
        };
        let commands = shell::split(&last.command);
        let Some(script) = commands.iter().find_map(npm_script_of) else {
            break;
        };
        let Some(node) = package_scripts(pkg).and_then(|s| s.get(&script)) else {
            break;
        };
        let Some(text) = node.as_str() else { break };
        via_npm = true;
        runtime.start.push(CommandStep {
            command: text.to_string(),
            place: format!("package.json scripts.{script}"),
            file: pkg_id,
            span: node.span,
        });
    }
    if runtime.start.is_empty() {
        if let Some((pkg_id, pkg)) = root_package {
            if let Some(node) = package_scripts(pkg).and_then(|s| s.get("start")) {
                if let Some(text) = node.as_str() {
                    // Buildpacks (Heroku, Render native) run `npm start` when nothing else is said.
                    via_npm = true;
                    runtime.start.push(CommandStep {
                        command: text.to_string(),
                        place: "package.json scripts.start".to_string(),
                        file: pkg_id,
                        span: node.span,
                    });
                }
            }
        }
    }

    // Node options on the command lines.
    for step in &runtime.start {
        for command in shell::split(&step.command) {
            for (name, value) in command.assignments() {
                if name == "NODE_OPTIONS" {
                    runtime.node_options.push(NodeOptions {
                        origin: Origin::InlineEnv,
                        place: step.place.clone(),
                        file: step.file,
                        span: step.span,
                        text: value.to_string(),
                        flags: node_flags(value),
                        runtime: true,
                    });
                }
                if name == "WEB_CONCURRENCY" {
                    if let Ok(n) = value.parse() {
                        runtime.workers = Some(Workers {
                            count: n,
                            place: format!("WEB_CONCURRENCY in {}", step.place),
                            file: step.file,
                            span: step.span,
                        });
                    }
                }
            }
            if command.program() == Some("node") {
                let flags: Vec<String> = command
                    .args()
                    .iter()
                    .map(|w| w.text.clone())
                    .take_while(|w| w.starts_with('-'))
                    .collect();
                if !flags.is_empty() {
                    runtime.node_options.push(NodeOptions {
                        origin: Origin::CommandLine,
                        place: step.place.clone(),
                        file: step.file,
                        span: step.span,
                        text: flags.join(" "),
                        flags: node_flags(&flags.join(" ")),
                        runtime: true,
                    });
                }
            }
            if matches!(
                command.program(),
                Some("pm2" | "pm2-runtime" | "pm2-docker")
            ) {
                let args: Vec<&str> = command.args().iter().map(|w| w.text.as_str()).collect();
                if let Some(i) = args.iter().position(|a| *a == "-i" || *a == "--instances") {
                    if let Some(n) = args.get(i + 1).and_then(|n| n.parse::<u32>().ok()) {
                        runtime.workers = Some(Workers {
                            count: n,
                            place: format!("pm2 -i {n} in {}", step.place),
                            file: step.file,
                            span: step.span,
                        });
                    }
                }
            }
            if matches!(
                command.program(),
                Some(
                    "node"
                        | "nodemon"
                        | "ts-node"
                        | "tsx"
                        | "next"
                        | "nest"
                        | "pm2"
                        | "pm2-runtime"
                )
            ) {
                runtime.is_node = true;
            }
        }
    }
    // npm's node-options replaces NODE_OPTIONS for the scripts npm runs.
    for (id, file) in project.of_kind(Kind::Npmrc) {
        if project.dir_of(id).as_os_str().is_empty() {
            for (n, line) in file.source.text.lines().enumerate() {
                let Some((key, value)) = line.split_once('=') else {
                    continue;
                };
                if key.trim() == "node-options" {
                    runtime.node_options.push(NodeOptions {
                        origin: Origin::Npmrc,
                        place: ".npmrc node-options".to_string(),
                        file: id,
                        span: file.source.line_span(n + 1),
                        text: value.trim().to_string(),
                        flags: node_flags(value.trim()),
                        runtime: via_npm,
                    });
                }
            }
        }
    }
    if runtime.workers.is_none() {
        if let Some(setting) = runtime.env_value("WEB_CONCURRENCY") {
            if let Ok(n) = setting.value.parse() {
                runtime.workers = Some(Workers {
                    count: n,
                    place: format!("WEB_CONCURRENCY in {}", setting.origin),
                    file: setting.file,
                    span: setting.span,
                });
            }
        }
    }

    // The Node version: the shipped image's, else .nvmrc / .node-version / engines.
    if runtime.node_version.is_none() {
        if let Some((id, file)) = project.of_kind(Kind::NodeVersionFile).next() {
            let text = file.source.text.trim().to_string();
            runtime.node_version = Some(VersionSource {
                version: text.parse().ok(),
                text: text.clone(),
                place: file.source.display(),
                file: id,
                span: file.source.line_span(1),
            });
        }
    }
    if runtime.node_version.is_none() {
        if let Some((id, pkg)) = root_package {
            if let Some(engines) = pkg.at(&["engines", "node"]) {
                if let Some(text) = engines.as_str() {
                    // ">=18" or "^20.3": the first number is the oldest allowed.
                    let digits: String = text
                        .trim_start_matches(|c: char| !c.is_ascii_digit())
                        .chars()
                        .take_while(|c| c.is_ascii_digit() || *c == '.')
                        .collect();
                    runtime.node_version = Some(VersionSource {
                        version: digits.trim_end_matches('.').parse().ok(),
                        text: text.to_string(),
                        place: "package.json engines.node".to_string(),
                        file: id,
                        span: engines.span,
                    });
                }
            }
        }
    }
    if root_package.is_some_and(|(_, p)| p.at(&["scripts", "start"]).is_some())
        || runtime.node_version.is_some()
    {
        runtime.is_node = true;
    }
    runtime
}

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
        for instruction in docker.stage_instructions(stage) {
            if instruction.keyword == "ENV" {
                for (name, value, start, end) in env_pairs(instruction.args()) {
                    let span = instruction
                        .source_span(instruction.args_start + start, instruction.args_start + end);
                    if name == "NODE_OPTIONS" {
                        runtime.node_options.push(NodeOptions {
                            origin: Origin::DockerfileEnv,
                            place: format!(
                                "{place} ENV{}",
                                stage
                                    .name
                                    .as_ref()
                                    .map(|n| format!(" (stage {n})"))
                                    .unwrap_or_default()
                            ),
                            file: id,
                            span,
                            text: value.clone(),
                            flags: node_flags(&value),
                            runtime: ships,
                        });
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
        }
    }
    // CMD and ENTRYPOINT of the last stage (inherited ones from a FROM stage count too).
    let mut entrypoint: Option<&Instruction> = None;
    let mut cmd: Option<&Instruction> = None;
    for index in shipped.iter().rev() {
        for instruction in docker.stage_instructions(&stages[*index]) {
            match instruction.keyword.as_str() {
                "CMD" => cmd = Some(instruction),
                "ENTRYPOINT" => entrypoint = Some(instruction),
                _ => {}
            }
        }
    }
    let text_of = |i: &Instruction| match &i.exec {
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
        None => i.args().to_string(),
    };
    let mut parts = Vec::new();
    let mut span = None;
    for instruction in [entrypoint, cmd].into_iter().flatten() {
        parts.push(text_of(instruction));
        span.get_or_insert(instruction.span);
    }
    if let Some(span) = span {
        // `sh -c "…"` and entrypoint wrappers (tini, dumb-init) are looked through.
        let mut command = parts.join(" ");
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
        runtime.start.push(CommandStep {
            command,
            place: format!("{place} CMD"),
            file: id,
            span,
        });
    }
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
        assert_eq!(o.old_space_mib(), Some(384));
        assert_eq!(o.semi_space_mib(), Some(4));
        assert!(o.flags.contains(&"--gc-interval=100".to_string()));
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
