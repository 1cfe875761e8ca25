//! tsconfig.json through its `extends` chain, and the tsc invocations of a project.

use std::path::{Path, PathBuf};

use crate::dockerfile::shell;
use crate::json::{self, JsonNode};
use crate::project::{Kind, Project};
use crate::source::FileId;

/// A tsc run: which config it compiles, and where it is written.
#[derive(Debug, Clone)]
pub struct TscRun {
    /// The tsconfig, relative to the project root.
    pub config: PathBuf,
    /// e.g. `package.json scripts.build`.
    pub place: String,
}

/// One config of a chain: the project's own files have an id; package bases read from
/// node_modules do not.
pub struct ChainLink {
    pub file: Option<FileId>,
    pub json: JsonNode,
}

/// The config and the configs it extends, leaf first. `None` when a link cannot be read
/// (a package base not installed): the caller cannot know the effective options.
pub fn chain(project: &Project, config: &Path) -> Option<Vec<ChainLink>> {
    let mut out = Vec::new();
    let mut pending = vec![config.to_path_buf()];
    while let Some(path) = pending.pop() {
        if out.len() > 16 {
            break;
        }
        let shown = path.to_string_lossy().replace('\\', "/");
        let (file, node) = match project.find(&shown) {
            Some((id, _)) => (Some(id), project.json(id)?.clone()),
            None => {
                // Inside the project only: `extends: "/etc/…"` or a link out is not read.
                let bytes = crate::project::read_inside(&project.root, &path).ok()?;
                let text = String::from_utf8(bytes).ok()?;
                (None, json::parse(&text, true).ok()?)
            }
        };
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let extends: Vec<String> = match node.get("extends") {
            Some(e) => match e.as_str() {
                Some(s) => vec![s.to_string()],
                None => e
                    .items()
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect(),
            },
            None => Vec::new(),
        };
        out.push(ChainLink { file, json: node });
        // Later entries of an `extends` array win; the leaf wins over all.
        for base in extends.iter() {
            let resolved = if base.starts_with('.') || base.starts_with('/') {
                let p = normalize(&dir.join(base));
                if p.extension().is_none() {
                    p.with_extension("json")
                } else {
                    p
                }
            } else {
                let mut p = PathBuf::from("node_modules").join(base);
                if project.root.join(&p).is_dir() {
                    p = p.join("tsconfig.json");
                } else if p.extension().is_none() {
                    p = p.with_extension("json");
                }
                p
            };
            pending.push(resolved);
        }
    }
    Some(out)
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The first value of `compilerOptions.<key>` along a chain (leaf first).
pub fn compiler_option<'a>(chain: &'a [ChainLink], key: &str) -> Option<&'a JsonNode> {
    chain
        .iter()
        .find_map(|l| l.json.at(&["compilerOptions", key]))
}

/// The first top-level `key` along a chain.
pub fn top_level<'a>(chain: &'a [ChainLink], key: &str) -> Option<&'a JsonNode> {
    chain.iter().find_map(|l| l.json.get(key))
}

/// Every tsc run in package.json scripts.
pub fn tsc_runs(project: &Project) -> Vec<TscRun> {
    let mut out = Vec::new();
    for (id, _) in project.of_kind(Kind::PackageJson) {
        let Some(pkg) = project.json(id) else {
            continue;
        };
        let dir = project.dir_of(id);
        for (name, _, value) in pkg
            .get("scripts")
            .map(JsonNode::entries)
            .unwrap_or_default()
        {
            let Some(script) = value.as_str() else {
                continue;
            };
            for command in shell::split(script) {
                let argv: Vec<&str> = command.argv().iter().map(|w| w.text.as_str()).collect();
                let args: &[&str] = match argv.as_slice() {
                    ["tsc", rest @ ..] => rest,
                    ["npx" | "pnpx" | "bunx", "tsc", rest @ ..] => rest,
                    _ => continue,
                };
                if args.iter().any(|a| {
                    matches!(
                        *a,
                        "--noEmit" | "-w" | "--watch" | "--version" | "-v" | "--init"
                    )
                }) && name != "build"
                {
                    continue;
                }
                let project_arg = args
                    .iter()
                    .position(|a| matches!(*a, "-p" | "--project" | "-b" | "--build"))
                    .and_then(|i| args.get(i + 1))
                    .filter(|a| !a.starts_with('-'));
                let config = match project_arg {
                    Some(p) if p.ends_with(".json") => dir.join(p),
                    Some(p) => dir.join(p).join("tsconfig.json"),
                    None => dir.join("tsconfig.json"),
                };
                out.push(TscRun {
                    config: normalize(&config),
                    place: format!("{} scripts.{name}", project.file(id).source.display()),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extends_never_reads_outside_the_project() {
        let outside = tempfile::tempdir().unwrap();
        let base = outside.path().join("base.json");
        std::fs::write(&base, "{\"compilerOptions\": {\"skipLibCheck\": true}}").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("inner.json"), "{\"compilerOptions\": {}}").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("linked")).unwrap();
        for extends in [base.display().to_string(), "./linked/base.json".to_string()] {
            std::fs::write(
                dir.path().join("tsconfig.json"),
                format!("{{\"extends\": \"{extends}\"}}"),
            )
            .unwrap();
            let project = crate::project::load(dir.path()).unwrap();
            assert!(
                chain(&project, Path::new("tsconfig.json")).is_none(),
                "{extends} was read"
            );
        }
        // Inside the project, it is followed.
        std::fs::write(
            dir.path().join("tsconfig.json"),
            "{\"extends\": \"./inner.json\"}",
        )
        .unwrap();
        let project = crate::project::load(dir.path()).unwrap();
        assert_eq!(
            chain(&project, Path::new("tsconfig.json")).unwrap().len(),
            2
        );
    }
}
