//! Platform configuration: the memory limit (fly.toml, render.yaml, app.json, compose,
//! Kubernetes), the environment it sets, and the start command it runs.

use memfit_core::{platform, ByteSize, Platform, MIB};

use crate::dockerfile::Span;
use crate::project::{Kind, Project};
use crate::source::FileId;
use crate::yaml::{Yaml, YamlNode};

/// A memory limit found in the project.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitSource {
    pub bytes: u64,
    /// Where it comes from, e.g. `fly.toml [[vm]] memory = "256mb"`.
    pub description: String,
    pub file: Option<FileId>,
    pub span: Span,
    /// The plan it is, where the source names one (`size = "shared-cpu-1x"`, a Heroku dyno
    /// size, `--platform`).
    pub platform: Option<&'static Platform>,
}

/// An environment variable a platform or a Dockerfile sets for the running service.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvSetting {
    pub name: String,
    pub value: String,
    pub file: FileId,
    pub span: Span,
    /// e.g. `fly.toml [env]`.
    pub origin: String,
}

/// A start command a platform runs.
#[derive(Debug, Clone, PartialEq)]
pub struct StartCommand {
    pub command: String,
    pub file: FileId,
    pub span: Span,
    pub origin: String,
}

/// What the platform configuration says.
#[derive(Debug, Clone, Default)]
pub struct PlatformFacts {
    pub limits: Vec<LimitSource>,
    pub env: Vec<EnvSetting>,
    pub start: Vec<StartCommand>,
    /// Facts worth saying (a default plan assumed, an unknown plan name).
    pub notes: Vec<String>,
}

/// Parses a Kubernetes quantity: `512Mi`, `1Gi`, `500M` (decimal), `1e9`, `128974848`.
pub fn parse_k8s_quantity(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| {
            !(c.is_ascii_digit() || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')
        })
        .unwrap_or(t.len());
    // "1e3" is a number; "1E" alone is the exa suffix.
    let (number, suffix) = if t[..split].ends_with(['e', 'E']) && split == t.len() {
        (&t[..split - 1], &t[split - 1..])
    } else {
        t.split_at(split)
    };
    let value: f64 = number.parse().ok()?;
    let scale: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "m" => 1e-3,
        _ => return None,
    };
    Some((value * scale) as u64)
}

fn line_span(project: &Project, file: FileId, line: usize) -> Span {
    project.file(file).source.line_span(line.max(1))
}

fn toml_span(item: Option<std::ops::Range<usize>>) -> Span {
    item.map(|r| Span::new(r.start, r.end)).unwrap_or_default()
}

/// Reads every platform file of the project.
pub fn read(project: &Project) -> PlatformFacts {
    let mut facts = PlatformFacts::default();
    for (id, _) in project.of_kind(Kind::FlyToml) {
        read_fly(project, id, &mut facts);
    }
    for (id, _) in project.of_kind(Kind::RenderYaml) {
        read_render(project, id, &mut facts);
    }
    for (id, _) in project.of_kind(Kind::AppJson) {
        read_app_json(project, id, &mut facts);
    }
    for (id, file) in project.of_kind(Kind::Procfile) {
        for (n, line) in file.source.text.lines().enumerate() {
            if let Some(command) = line.strip_prefix("web:") {
                facts.start.push(StartCommand {
                    command: command.trim().to_string(),
                    file: id,
                    span: line_span(project, id, n + 1),
                    origin: "Procfile web".to_string(),
                });
            }
        }
    }
    for (id, _) in project.of_kind(Kind::RailwayJson) {
        if let Some(start) = project
            .json(id)
            .and_then(|j| j.at(&["deploy", "startCommand"]))
        {
            if let Some(command) = start.as_str() {
                facts.start.push(StartCommand {
                    command: command.to_string(),
                    file: id,
                    span: start.span,
                    origin: "railway.json deploy.startCommand".to_string(),
                });
            }
        }
    }
    for (id, _) in project.of_kind(Kind::RailwayToml) {
        if let Some(doc) = project.toml(id) {
            if let Some(item) = doc.get("deploy").and_then(|d| d.get("startCommand")) {
                if let Some(command) = item.as_str() {
                    facts.start.push(StartCommand {
                        command: command.to_string(),
                        file: id,
                        span: toml_span(item.span()),
                        origin: "railway.toml [deploy] startCommand".to_string(),
                    });
                }
            }
        }
    }
    for (id, _) in project.of_kind(Kind::Compose) {
        read_compose(project, id, &mut facts);
    }
    for (id, _) in project.of_kind(Kind::Yaml) {
        read_kubernetes(project, id, &mut facts);
    }
    facts
}

fn read_fly(project: &Project, id: FileId, facts: &mut PlatformFacts) {
    let Some(doc) = project.toml(id) else { return };
    let vms: Vec<&toml_edit::Table> = match doc.get("vm") {
        Some(toml_edit::Item::ArrayOfTables(a)) => a.iter().collect(),
        Some(toml_edit::Item::Table(t)) => vec![t],
        _ => Vec::new(),
    };
    let mut found = false;
    for vm in vms {
        if let Some(item) = vm.get("memory") {
            let bytes = match item.as_str() {
                Some(text) => ByteSize::parse(text).ok().map(|b| b.bytes()),
                // A bare number is megabytes.
                None => item.as_integer().map(|mb| mb as u64 * MIB),
            };
            if let Some(bytes) = bytes {
                found = true;
                facts.limits.push(LimitSource {
                    bytes,
                    description: format!(
                        "fly.toml [[vm]] memory = {}",
                        item.as_value()
                            .map(|v| v.to_string().trim().to_string())
                            .unwrap_or_default()
                    ),
                    file: Some(id),
                    span: toml_span(item.span()),
                    platform: None,
                });
            }
        } else if let Some(item) = vm.get("memory_mb") {
            if let Some(mb) = item.as_integer() {
                found = true;
                facts.limits.push(LimitSource {
                    bytes: mb as u64 * MIB,
                    description: format!("fly.toml [[vm]] memory_mb = {mb}"),
                    file: Some(id),
                    span: toml_span(item.span()),
                    platform: None,
                });
            }
        } else if let Some(item) = vm.get("size") {
            if let Some(size) = item.as_str() {
                if let Some(plan) = platform::find(&format!("fly:{size}")) {
                    found = true;
                    facts.limits.push(LimitSource {
                        bytes: plan.memory.bytes(),
                        description: format!("fly.toml [[vm]] size = \"{size}\" ({})", plan.memory),
                        file: Some(id),
                        span: toml_span(item.span()),
                        platform: Some(plan),
                    });
                }
            }
        }
    }
    if !found {
        // Fly: without [[vm]] new Machines get shared-cpu-1x, 256 MB
        // (https://fly.io/docs/apps/scale-machine).
        facts.limits.push(LimitSource {
            bytes: 256 * MIB,
            description:
                "fly.toml has no [[vm]] memory: Fly's default Machine, shared-cpu-1x with 256 MB"
                    .to_string(),
            file: Some(id),
            span: project.file(id).source.line_span(1),
            platform: None,
        });
    }
    if let Some(env) = doc.get("env").and_then(|e| e.as_table_like()) {
        for (name, item) in env.iter() {
            if let Some(value) = item.as_str() {
                facts.env.push(EnvSetting {
                    name: name.to_string(),
                    value: value.to_string(),
                    file: id,
                    span: toml_span(item.span()),
                    origin: "fly.toml [env]".to_string(),
                });
            }
        }
    }
    if let Some(processes) = doc.get("processes").and_then(|p| p.as_table_like()) {
        for (name, item) in processes.iter() {
            if let Some(command) = item.as_str() {
                facts.start.push(StartCommand {
                    command: command.to_string(),
                    file: id,
                    span: toml_span(item.span()),
                    origin: format!("fly.toml [processes] {name}"),
                });
            }
        }
    }
}

fn render_plan(name: &str) -> Option<&'static platform::Platform> {
    platform::find(&format!("render:{}", name.replace('_', "-")))
}

fn read_render(project: &Project, id: FileId, facts: &mut PlatformFacts) {
    for doc in project.yaml(id) {
        for service in doc.get("services").map(YamlNode::items).unwrap_or_default() {
            let kind = service
                .get("type")
                .and_then(YamlNode::as_str)
                .unwrap_or("web");
            if !matches!(kind, "web" | "pserv" | "worker") {
                continue;
            }
            let name = service
                .get("name")
                .and_then(YamlNode::as_str)
                .unwrap_or(kind);
            match service.get("plan") {
                Some(plan) => match plan.as_str().and_then(render_plan) {
                    Some(p) => facts.limits.push(LimitSource {
                        bytes: p.memory.bytes(),
                        description: format!("render.yaml service {name}: plan {} ({})", plan.as_str().unwrap_or_default(), p.memory),
                        file: Some(id),
                        span: line_span(project, id, plan.line),
                        platform: Some(p),
                    }),
                    None => facts.notes.push(format!(
                        "render.yaml service {name}: plan `{}` is not in memfit's table; pass --limit",
                        plan.as_str().unwrap_or_default()
                    )),
                },
                None => {
                    // Render Blueprints default a new service to the starter plan.
                    if let Some(p) = render_plan("starter") {
                        facts.limits.push(LimitSource {
                            bytes: p.memory.bytes(),
                            description: format!("render.yaml service {name} names no plan: Render's default, starter ({})", p.memory),
                            file: Some(id),
                            span: line_span(project, id, service.line),
                            platform: Some(p),
                        });
                    }
                }
            }
            for var in service
                .get("envVars")
                .map(YamlNode::items)
                .unwrap_or_default()
            {
                if let (Some(key), Some(value)) =
                    (var.get("key").and_then(YamlNode::as_str), var.get("value"))
                {
                    if let Some(v) = value.as_str() {
                        facts.env.push(EnvSetting {
                            name: key.to_string(),
                            value: v.to_string(),
                            file: id,
                            span: line_span(project, id, value.line),
                            origin: format!("render.yaml service {name} envVars"),
                        });
                    }
                }
            }
            for key in ["startCommand", "dockerCommand"] {
                if let Some(command) = service.get(key) {
                    if let Some(c) = command.as_str() {
                        facts.start.push(StartCommand {
                            command: c.to_string(),
                            file: id,
                            span: line_span(project, id, command.line),
                            origin: format!("render.yaml service {name} {key}"),
                        });
                    }
                }
            }
        }
    }
}

fn read_app_json(project: &Project, id: FileId, facts: &mut PlatformFacts) {
    let Some(root) = project.json(id) else { return };
    if let Some(size) = root.at(&["formation", "web", "size"]) {
        if let Some(text) = size.as_str() {
            match platform::find(&format!("heroku:{}", text.to_ascii_lowercase())) {
                Some(p) => facts.limits.push(LimitSource {
                    bytes: p.memory.bytes(),
                    description: format!("app.json formation.web.size = \"{text}\" ({})", p.memory),
                    file: Some(id),
                    span: size.span,
                    platform: Some(p),
                }),
                None => facts.notes.push(format!(
                    "app.json: dyno size `{text}` is not in memfit's table; pass --limit"
                )),
            }
        }
    }
    if let Some(env) = root.get("env") {
        for (name, _, value) in env.entries() {
            let v = value
                .as_str()
                .or_else(|| value.get("value").and_then(|v| v.as_str()));
            if let Some(v) = v {
                facts.env.push(EnvSetting {
                    name: name.clone(),
                    value: v.to_string(),
                    file: id,
                    span: value.span,
                    origin: "app.json env".to_string(),
                });
            }
        }
    }
}

fn env_entries(node: &YamlNode) -> Vec<(String, String, usize)> {
    match &node.value {
        Yaml::Map(entries) => entries
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string(), v.line)))
            .collect(),
        Yaml::Seq(items) => items
            .iter()
            .filter_map(|i| {
                let text = i.as_str()?;
                let (k, v) = text.split_once('=')?;
                Some((k.to_string(), v.to_string(), i.line))
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn command_text(node: &YamlNode) -> Option<String> {
    match &node.value {
        Yaml::Scalar(s) => Some(s.clone()),
        Yaml::Seq(items) => Some(
            items
                .iter()
                .filter_map(YamlNode::as_str)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => None,
    }
}

fn read_compose(project: &Project, id: FileId, facts: &mut PlatformFacts) {
    let path = project.file(id).source.display();
    for doc in project.yaml(id) {
        for (name, service) in doc
            .get("services")
            .map(YamlNode::entries)
            .unwrap_or_default()
        {
            let memory = service
                .at(&["deploy", "resources", "limits", "memory"])
                .map(|n| (n, "deploy.resources.limits.memory"))
                .or_else(|| service.get("mem_limit").map(|n| (n, "mem_limit")));
            if let Some((node, key)) = memory {
                if let Some(bytes) = node.as_str().and_then(|t| ByteSize::parse(t).ok()) {
                    facts.limits.push(LimitSource {
                        bytes: bytes.bytes(),
                        description: format!(
                            "{path} service {name}: {key} {}",
                            node.as_str().unwrap_or_default()
                        ),
                        file: Some(id),
                        span: line_span(project, id, node.line),
                        platform: None,
                    });
                }
            }
            if let Some(env) = service.get("environment") {
                for (k, v, line) in env_entries(env) {
                    facts.env.push(EnvSetting {
                        name: k,
                        value: v,
                        file: id,
                        span: line_span(project, id, line),
                        origin: format!("{path} service {name} environment"),
                    });
                }
            }
            if let Some(command) = service.get("command") {
                if let Some(c) = command_text(command) {
                    facts.start.push(StartCommand {
                        command: c,
                        file: id,
                        span: line_span(project, id, command.line),
                        origin: format!("{path} service {name} command"),
                    });
                }
            }
        }
    }
}

fn read_kubernetes(project: &Project, id: FileId, facts: &mut PlatformFacts) {
    let path = project.file(id).source.display();
    for doc in project.yaml(id) {
        let mut nodes = Vec::new();
        doc.walk(&mut nodes);
        for containers in nodes.iter().filter_map(|n| n.get("containers")) {
            for container in containers.items() {
                let name = container
                    .get("name")
                    .and_then(YamlNode::as_str)
                    .unwrap_or("container");
                if let Some(memory) = container.at(&["resources", "limits", "memory"]) {
                    if let Some(bytes) = memory.as_str().and_then(parse_k8s_quantity) {
                        facts.limits.push(LimitSource {
                            bytes,
                            description: format!(
                                "{path} container {name}: resources.limits.memory {}",
                                memory.as_str().unwrap_or_default()
                            ),
                            file: Some(id),
                            span: line_span(project, id, memory.line),
                            platform: None,
                        });
                    }
                }
                for var in container
                    .get("env")
                    .map(YamlNode::items)
                    .unwrap_or_default()
                {
                    if let (Some(k), Some(v)) =
                        (var.get("name").and_then(YamlNode::as_str), var.get("value"))
                    {
                        if let Some(value) = v.as_str() {
                            facts.env.push(EnvSetting {
                                name: k.to_string(),
                                value: value.to_string(),
                                file: id,
                                span: line_span(project, id, v.line),
                                origin: format!("{path} container {name} env"),
                            });
                        }
                    }
                }
                let command: Vec<String> = ["command", "args"]
                    .iter()
                    .filter_map(|k| container.get(k).and_then(command_text))
                    .collect();
                if !command.is_empty() {
                    let line = container
                        .get("command")
                        .or_else(|| container.get("args"))
                        .map_or(container.line, |n| n.line);
                    facts.start.push(StartCommand {
                        command: command.join(" "),
                        file: id,
                        span: line_span(project, id, line),
                        origin: format!("{path} container {name} command"),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_quantities() {
        assert_eq!(parse_k8s_quantity("512Mi"), Some(512 * MIB));
        assert_eq!(parse_k8s_quantity("1Gi"), Some(1024 * MIB));
        assert_eq!(parse_k8s_quantity("500M"), Some(500_000_000));
        assert_eq!(parse_k8s_quantity("1e9"), Some(1_000_000_000));
        assert_eq!(parse_k8s_quantity("128974848"), Some(128_974_848));
        assert_eq!(parse_k8s_quantity("0.5Gi"), Some(512 * MIB));
        assert_eq!(parse_k8s_quantity("lots"), None);
    }
}
