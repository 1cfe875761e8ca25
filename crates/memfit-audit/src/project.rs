//! Reading a project: which files matter, read once, parsed by kind. A file that cannot be
//! read or parsed becomes a finding (`unreadable-file`, `malformed-file`); the rest goes on.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::dockerfile::{self, Dockerfile, Span};
use crate::finding::{Finding, Severity};
use crate::json::{self, JsonNode};
use crate::source::{FileId, SourceFile};
use crate::yaml::{self, YamlNode};

/// Directories never entered: dependencies, VCS data, build output.
pub const SKIPPED_DIRS: &[&str] = &[
    "node_modules",
    ".git",
    "target",
    "dist",
    "build",
    ".next",
    ".nuxt",
    ".output",
    "out",
    "coverage",
    ".turbo",
    ".cache",
    ".venv",
    "venv",
    "__pycache__",
    ".yarn",
    ".pnpm-store",
];

/// What a file is to the audit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Dockerfile,
    DockerIgnore,
    PackageJson,
    PackageLock,
    PnpmLock,
    YarnLock,
    BunLock,
    Npmrc,
    NodeVersionFile,
    TsConfig,
    CargoToml,
    FlyToml,
    RenderYaml,
    RailwayJson,
    RailwayToml,
    Procfile,
    AppJson,
    Compose,
    /// Any other YAML: a Kubernetes manifest when it has containers.
    Yaml,
    NextConfig,
    Prisma,
    MemfitToml,
    /// JavaScript and TypeScript sources.
    Script,
    /// Shell scripts (`*.sh`): the start scripts a CMD runs.
    ShellScript,
    /// gunicorn's configuration file (`gunicorn.conf.py`, read by default from the working
    /// directory).
    GunicornConf,
    /// Spring Boot's configuration (`application.properties`, `application-prod.yml`): the
    /// server's thread pool.
    SpringConfig,
}

/// Classifies a file by its name.
pub fn classify(name: &str) -> Option<Kind> {
    let lower = name.to_ascii_lowercase();
    let kind = match lower.as_str() {
        "package.json" => Kind::PackageJson,
        "package-lock.json" | "npm-shrinkwrap.json" => Kind::PackageLock,
        "pnpm-lock.yaml" => Kind::PnpmLock,
        "yarn.lock" => Kind::YarnLock,
        "bun.lock" => Kind::BunLock,
        ".npmrc" => Kind::Npmrc,
        ".nvmrc" | ".node-version" => Kind::NodeVersionFile,
        "cargo.toml" => Kind::CargoToml,
        "fly.toml" => Kind::FlyToml,
        "render.yaml" | "render.yml" => Kind::RenderYaml,
        "railway.json" => Kind::RailwayJson,
        "railway.toml" => Kind::RailwayToml,
        "procfile" => Kind::Procfile,
        "app.json" => Kind::AppJson,
        "memfit.toml" => Kind::MemfitToml,
        "gunicorn.conf.py" | "gunicorn_conf.py" | "gunicorn.config.py" => Kind::GunicornConf,
        _ if lower.ends_with(".sh") => Kind::ShellScript,
        _ if is_spring_config(&lower) => Kind::SpringConfig,
        _ if lower.ends_with(".dockerignore") => Kind::DockerIgnore,
        _ if lower == "dockerfile"
            || lower.starts_with("dockerfile.")
            || lower.starts_with("dockerfile-")
            || lower.ends_with(".dockerfile")
            || lower.starts_with("containerfile") =>
        {
            Kind::Dockerfile
        }
        _ if lower.starts_with("tsconfig") && lower.ends_with(".json") => Kind::TsConfig,
        _ if (lower.starts_with("docker-compose") || lower.starts_with("compose"))
            && (lower.ends_with(".yml") || lower.ends_with(".yaml")) =>
        {
            Kind::Compose
        }
        _ if lower.starts_with("next.config.") => Kind::NextConfig,
        _ if lower.ends_with(".prisma") => Kind::Prisma,
        _ if lower.ends_with(".yml") || lower.ends_with(".yaml") => Kind::Yaml,
        _ if !lower.ends_with(".d.ts")
            && [".js", ".mjs", ".cjs", ".ts", ".mts", ".cts", ".jsx", ".tsx"]
                .iter()
                .any(|e| lower.ends_with(e)) =>
        {
            Kind::Script
        }
        _ => return None,
    };
    Some(kind)
}

/// `application.properties`, `application.yml`, `application-<profile>.yaml`.
fn is_spring_config(lower: &str) -> bool {
    let Some(stem) = [".properties", ".yml", ".yaml"]
        .iter()
        .find_map(|ext| lower.strip_suffix(ext))
    else {
        return false;
    };
    stem == "application" || stem.starts_with("application-")
}

/// A parsed file.
#[derive(Debug, Clone)]
pub enum Parsed {
    Dockerfile(Dockerfile),
    Json(JsonNode),
    Yaml(Vec<YamlNode>),
    Toml(toml_edit::Document<String>),
    /// Kept as text (Procfile, .npmrc, .nvmrc, .dockerignore, yarn.lock, next.config, prisma).
    Text,
}

/// A file of the project and what it parsed to.
#[derive(Debug, Clone)]
pub struct ProjectFile {
    pub source: SourceFile,
    pub kind: Kind,
    pub parsed: Parsed,
}

/// Everything the rules look at.
#[derive(Debug, Default)]
pub struct Project {
    pub root: PathBuf,
    pub files: Vec<ProjectFile>,
    /// Findings about files themselves (unreadable, malformed).
    pub file_findings: Vec<Finding>,
}

impl Project {
    /// Files of one kind, with their ids.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = (FileId, &ProjectFile)> {
        self.files
            .iter()
            .enumerate()
            .filter(move |(_, f)| f.kind == kind)
    }

    pub fn file(&self, id: FileId) -> &ProjectFile {
        &self.files[id]
    }

    /// The file at a relative path.
    pub fn find(&self, path: &str) -> Option<(FileId, &ProjectFile)> {
        self.files
            .iter()
            .enumerate()
            .find(|(_, f)| f.source.display() == path)
    }

    pub fn dockerfiles(&self) -> impl Iterator<Item = (FileId, &ProjectFile, &Dockerfile)> {
        self.files
            .iter()
            .enumerate()
            .filter_map(|(id, f)| match &f.parsed {
                Parsed::Dockerfile(d) => Some((id, f, d)),
                _ => None,
            })
    }

    pub fn json(&self, id: FileId) -> Option<&JsonNode> {
        match &self.files[id].parsed {
            Parsed::Json(j) => Some(j),
            _ => None,
        }
    }

    pub fn yaml(&self, id: FileId) -> &[YamlNode] {
        match &self.files[id].parsed {
            Parsed::Yaml(docs) => docs,
            _ => &[],
        }
    }

    pub fn toml(&self, id: FileId) -> Option<&toml_edit::Document<String>> {
        match &self.files[id].parsed {
            Parsed::Toml(doc) => Some(doc),
            _ => None,
        }
    }

    /// The directory of a file, relative to the root ("" for the root).
    pub fn dir_of(&self, id: FileId) -> PathBuf {
        self.files[id]
            .source
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// The root package.json, else the shallowest one.
    pub fn root_package(&self) -> Option<(FileId, &JsonNode)> {
        self.of_kind(Kind::PackageJson)
            .filter_map(|(id, _)| self.json(id).map(|j| (id, j)))
            .min_by_key(|(id, _)| self.files[*id].source.path.components().count())
    }
}

/// Reads a project: the files of [`classify`]'s kinds under `root`, skipping [`SKIPPED_DIRS`]
/// and what .gitignore ignores.
pub fn load(root: &Path) -> std::io::Result<Project> {
    let meta = std::fs::metadata(root)?;
    if !meta.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a directory", root.display()),
        ));
    }
    let found: Mutex<Vec<(PathBuf, Kind)>> = Mutex::new(Vec::new());
    // Links with a name the audit reads: followed only when they stay in the project.
    let links: Mutex<Vec<(PathBuf, Kind)>> = Mutex::new(Vec::new());
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .ignore(false)
        .parents(false)
        .filter_entry(|entry| {
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            !(is_dir
                && entry.depth() > 0
                && SKIPPED_DIRS.contains(&entry.file_name().to_string_lossy().as_ref()))
        })
        .build_parallel();
    walker.run(|| {
        Box::new(|entry| {
            if let Ok(entry) = entry {
                let kind = entry.file_type();
                let is_file = kind.is_some_and(|t| t.is_file());
                let is_link = kind.is_some_and(|t| t.is_symlink());
                if is_file || is_link {
                    if let Some(kind) = classify(&entry.file_name().to_string_lossy()) {
                        let list = if is_file { &found } else { &links };
                        list.lock()
                            .expect("no panics while held")
                            .push((entry.into_path(), kind));
                    }
                }
            }
            ignore::WalkState::Continue
        })
    });
    let mut found = found.into_inner().expect("no panics while held");
    let mut links = links.into_inner().expect("no panics while held");
    links.sort();
    let mut outside = Vec::new();
    for (path, kind) in links {
        if path.is_file() && resolves_inside(root, &path) {
            found.push((path, kind));
        } else {
            outside.push((path, kind));
        }
    }
    found.sort();

    let loaded: Vec<Result<Option<ProjectFile>, Finding>> = found
        .par_iter()
        .map(|(path, kind)| load_file(root, path, *kind))
        .collect();
    let mut project = Project {
        root: root.to_path_buf(),
        ..Project::default()
    };
    for (result, (path, kind)) in loaded.into_iter().zip(&found) {
        match result {
            Ok(Some(file)) => {
                let id = project.files.len();
                let problems = file_problems(id, &file);
                project.files.push(file);
                project.file_findings.extend(problems);
            }
            Ok(None) => {}
            Err(mut finding) => {
                // An unreadable file is still a file of the project: its finding has a place.
                let id = project.files.len();
                project.files.push(ProjectFile {
                    source: SourceFile::new(relative(root, path), String::new()),
                    kind: *kind,
                    parsed: Parsed::Text,
                });
                finding.file = id;
                project.file_findings.push(finding);
            }
        }
    }
    for (path, kind) in outside {
        let id = project.files.len();
        let rel = relative(root, &path);
        project.file_findings.push(
            Finding::new(
                "unreadable-file",
                Severity::Warning,
                id,
                Span::default(),
                format!(
                    "{} is a symbolic link to a file outside the project (or to nothing): memfit neither reads nor writes it",
                    rel.display()
                ),
            )
            .advise("put the file itself in the project"),
        );
        project.files.push(ProjectFile {
            source: SourceFile::new(rel, String::new()),
            kind,
            parsed: Parsed::Text,
        });
    }
    Ok(project)
}

/// Reads `rel` under `root` without leaving it: every component must be a plain name, every
/// directory on the way a real directory and the file a regular file — a symbolic link
/// anywhere on the path is refused, not followed (a repository's `sub -> /etc` or
/// `.dockerignore -> /etc/shadow`).
pub fn read_inside(root: &Path, rel: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind};
    use std::os::unix::fs::OpenOptionsExt;
    let mut path = root.to_path_buf();
    let components: Vec<_> = rel.components().collect();
    for (i, component) in components.iter().enumerate() {
        let std::path::Component::Normal(name) = component else {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{} is not a path inside the project", rel.display()),
            ));
        };
        path.push(name);
        let meta = std::fs::symlink_metadata(&path)?;
        let last = i + 1 == components.len();
        if meta.file_type().is_symlink() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{} is a symbolic link: memfit does not follow links in a project",
                    relative(root, &path).display()
                ),
            ));
        }
        if (last && !meta.is_file()) || (!last && !meta.is_dir()) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{} is not a regular file", relative(root, &path).display()),
            ));
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes)?;
    Ok(bytes)
}

/// Whether `path` (a link) resolves to somewhere under `root`.
fn resolves_inside(root: &Path, path: &Path) -> bool {
    match (root.canonicalize(), path.canonicalize()) {
        (Ok(root), Ok(target)) => target.starts_with(root),
        _ => false,
    }
}

fn is_kubernetes(parsed: &Parsed) -> bool {
    match parsed {
        Parsed::Yaml(docs) => docs.iter().any(|d| {
            let mut nodes = Vec::new();
            d.walk(&mut nodes);
            d.get("kind").is_some() && nodes.iter().any(|n| n.get("containers").is_some())
        }),
        _ => false,
    }
}

fn relative(root: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(root).unwrap_or(path).to_path_buf()
}

fn load_file(root: &Path, path: &Path, mut kind: Kind) -> Result<Option<ProjectFile>, Finding> {
    let rel = relative(root, path);
    let bytes = std::fs::read(path).map_err(|e| {
        Finding::new(
            "unreadable-file",
            Severity::Error,
            0,
            Span::default(),
            format!("cannot read {}: {e}", rel.display()),
        )
        .advise("make the file readable, or exclude it in .gitignore")
    })?;
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    let source = SourceFile::new(rel, text);
    let parsed = match kind {
        Kind::Dockerfile => Parsed::Dockerfile(dockerfile::parse(&source.text)),
        Kind::PackageJson | Kind::RailwayJson | Kind::AppJson => json::parse(&source.text, false)
            .map(Parsed::Json)
            .unwrap_or(Parsed::Text),
        Kind::TsConfig | Kind::BunLock => json::parse(&source.text, true)
            .map(Parsed::Json)
            .unwrap_or(Parsed::Text),
        Kind::PackageLock => Parsed::Text,
        Kind::Yaml => {
            // Only Kubernetes manifests (a `kind` and containers) are of interest.
            if !(source.text.contains("kind:") && source.text.contains("containers")) {
                return Ok(None);
            }
            match yaml::parse(&source.text) {
                Ok(docs) => {
                    let parsed = Parsed::Yaml(docs);
                    if !is_kubernetes(&parsed) {
                        return Ok(None);
                    }
                    parsed
                }
                Err(_) => Parsed::Text,
            }
        }
        Kind::SpringConfig if !source.display().ends_with(".properties") => {
            let parsed = yaml::parse(&source.text)
                .map(Parsed::Yaml)
                .unwrap_or(Parsed::Text);
            // `application-deployment.yaml` can be a Kubernetes manifest.
            if is_kubernetes(&parsed) {
                kind = Kind::Yaml;
            }
            parsed
        }
        Kind::RenderYaml | Kind::Compose | Kind::PnpmLock => yaml::parse(&source.text)
            .map(Parsed::Yaml)
            .unwrap_or(Parsed::Text),
        Kind::CargoToml | Kind::FlyToml | Kind::RailwayToml | Kind::MemfitToml => {
            toml_edit::Document::parse(source.text.clone())
                .map(Parsed::Toml)
                .unwrap_or(Parsed::Text)
        }
        _ => Parsed::Text,
    };
    Ok(Some(ProjectFile {
        source,
        kind,
        parsed,
    }))
}

/// `malformed-file` findings: a structured file that did not parse, or a Dockerfile's
/// syntax problems.
fn file_problems(id: FileId, file: &ProjectFile) -> Vec<Finding> {
    let structured = matches!(
        file.kind,
        Kind::PackageJson
            | Kind::RailwayJson
            | Kind::AppJson
            | Kind::TsConfig
            | Kind::RenderYaml
            | Kind::Compose
            | Kind::Yaml
            | Kind::CargoToml
            | Kind::FlyToml
            | Kind::RailwayToml
            | Kind::MemfitToml
            | Kind::PnpmLock
            | Kind::BunLock
    );
    let mut out = Vec::new();
    let text = &file.source.text;
    let error = if text.trim().is_empty() {
        None
    } else if structured && matches!(file.parsed, Parsed::Text) {
        Some(
            match file.kind {
                Kind::PackageJson | Kind::RailwayJson | Kind::AppJson => {
                    json::parse(text, false).err()
                }
                Kind::TsConfig | Kind::BunLock => json::parse(text, true).err(),
                Kind::RenderYaml | Kind::Compose | Kind::Yaml | Kind::PnpmLock => {
                    yaml::parse(text).err()
                }
                _ => toml_edit::Document::parse(text.clone())
                    .err()
                    .map(|e| e.to_string()),
            }
            .unwrap_or_default(),
        )
    } else if file.kind == Kind::PackageLock {
        // Kept as text (lockfile.rs reads it with serde_json); checked the same way.
        serde_json::from_str::<serde::de::IgnoredAny>(text)
            .err()
            .map(|e| e.to_string())
    } else {
        None
    };
    if let Some(error) = error {
        let first_line = error.lines().next().unwrap_or("").to_string();
        out.push(
            Finding::new(
                "malformed-file",
                Severity::Error,
                id,
                file.source.line_span(1),
                format!(
                    "{} does not parse: {first_line}; memfit skipped it",
                    file.source.display()
                ),
            )
            .advise("fix the syntax: the tools that read this file will fail on it too"),
        );
    }
    if let Parsed::Dockerfile(d) = &file.parsed {
        for problem in &d.problems {
            out.push(Finding::new(
                "dockerfile-syntax",
                Severity::Warning,
                id,
                problem.span,
                problem.message.clone(),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_by_name() {
        assert_eq!(classify("Dockerfile"), Some(Kind::Dockerfile));
        assert_eq!(classify("Dockerfile.prod"), Some(Kind::Dockerfile));
        assert_eq!(classify("api.Dockerfile"), Some(Kind::Dockerfile));
        assert_eq!(classify("Containerfile"), Some(Kind::Dockerfile));
        assert_eq!(
            classify("Dockerfile.dockerignore"),
            Some(Kind::DockerIgnore)
        );
        assert_eq!(classify("tsconfig.build.json"), Some(Kind::TsConfig));
        assert_eq!(classify("docker-compose.prod.yml"), Some(Kind::Compose));
        assert_eq!(classify("index.d.ts"), None);
        assert_eq!(classify("server.mts"), Some(Kind::Script));
        assert_eq!(classify("README.md"), None);
    }

    #[test]
    fn a_file_that_cannot_be_read_is_an_unreadable_file_finding() {
        // Root reads any file whatever its mode; a directory where a file is expected fails
        // the same way for every user.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("package.json");
        std::fs::create_dir(&path).unwrap();
        let finding = load_file(dir.path(), &path, Kind::PackageJson).unwrap_err();
        assert_eq!(finding.rule, "unreadable-file");
        assert!(
            finding.message.contains("cannot read package.json"),
            "{}",
            finding.message
        );
    }
}
