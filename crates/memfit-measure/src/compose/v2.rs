//! What compose v2 (the `docker compose` plugin, compose-go) says of a project, and where it
//! finds its files. v2 differs from 1.x where memfit depends on it:
//!
//! * `config` leaves out the services of profiles not enabled, which `run SERVICE` enables for
//!   the service it names (docs.docker.com/compose/how-tos/profiles/): memfit asks for every
//!   profile (`--profile '*'`), so that such a service is placed too. Naming a service in
//!   memfit's file does not enable its profile: compose-go applies profiles after the merge.
//! * `config --format json` gives the model as JSON (1.x has YAML only): services, their
//!   `cgroup_parent` and their builds' Dockerfiles are read from it, not from lines.
//! * No log names the files read: memfit finds them as compose-go does (`-f`, else
//!   `COMPOSE_FILE` from the environment or the project's `.env`, else the default names in
//!   the project directory or the nearest parent).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{discover, Project, V2_FILES};
use crate::build_owner;

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    services: BTreeMap<String, Service>,
}

#[derive(Deserialize)]
struct Service {
    #[serde(default)]
    build: Option<Build>,
    #[serde(default)]
    cgroup_parent: Option<String>,
}

#[derive(Deserialize)]
struct Build {
    #[serde(default)]
    context: Option<String>,
    #[serde(default)]
    dockerfile: Option<String>,
    #[serde(default)]
    dockerfile_inline: Option<String>,
}

/// The project from `config --format json`.
pub(super) fn project_of(json: &str) -> Result<Project, String> {
    let config: Config = serde_json::from_str(json)
        .map_err(|e| format!("cannot read `compose config --format json`: {e}"))?;
    if config.services.values().any(|s| s.cgroup_parent.is_some()) {
        return Err("a service sets its own cgroup_parent".to_string());
    }
    let builds: Vec<&Build> = config
        .services
        .values()
        .filter_map(|s| s.build.as_ref())
        .collect();
    let dockerfiles = builds
        .iter()
        .map(|b| dockerfile_text(b))
        .collect::<Option<Vec<String>>>();
    Ok(Project {
        services: config.services.keys().cloned().collect(),
        files: Vec::new(),
        builds: !builds.is_empty(),
        dockerfiles,
    })
}

/// The text of a build's Dockerfile: inline, or the file in a local context (`None` for a
/// remote context, or a file that cannot be read).
fn dockerfile_text(build: &Build) -> Option<String> {
    if let Some(text) = &build.dockerfile_inline {
        return Some(text.clone());
    }
    let context = build.context.as_deref().unwrap_or(".");
    if context.contains("://") || context.starts_with("git@") {
        return None;
    }
    let path = Path::new(context).join(build.dockerfile.as_deref().unwrap_or("Dockerfile"));
    build_owner::read_bounded(&path)
}

/// The files compose v2 reads when no `-f` is given.
pub(super) fn files(
    project_directory: Option<&str>,
    env_files: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    let start = Path::new(project_directory.unwrap_or("."));
    // The environment wins over the .env file (compose-go `WithDotEnv`, then os.Environ).
    let dotenv: Vec<PathBuf> = if env_files.is_empty() {
        vec![start.join(".env")]
    } else {
        env_files.iter().map(PathBuf::from).collect()
    };
    let variable = |name: &str| {
        env(name).or_else(|| {
            dotenv
                .iter()
                .rev()
                .find_map(|file| dotenv_value(&build_owner::read_bounded(file)?, name))
        })
    };
    if let Some(list) = variable("COMPOSE_FILE").filter(|l| !l.is_empty()) {
        let separator = variable("COMPOSE_PATH_SEPARATOR").unwrap_or_else(|| ":".to_string());
        return Ok(list
            .split(separator.as_str())
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect());
    }
    Ok(discover(start, &V2_FILES)
        .ok_or("no compose file found")?
        .iter()
        .map(|p| p.display().to_string())
        .collect())
}

/// `NAME=value` in a .env file: `export` allowed, quotes removed, comments skipped.
fn dotenv_value(text: &str, name: &str) -> Option<String> {
    text.lines().rev().find_map(|line| {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, value) = line.split_once('=')?;
        if key.trim() != name || key.starts_with('#') {
            return None;
        }
        let value = value.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q)?.strip_suffix(*q))
            .map(str::to_string);
        Some(unquoted.unwrap_or_else(|| {
            // An unquoted value ends at ` #` (a comment).
            value
                .split(" #")
                .next()
                .unwrap_or("")
                .trim_end()
                .to_string()
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_builds_and_their_dockerfiles_from_the_json_model() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile.app"), "FROM x\nRUN npm ci\n").unwrap();
        let json = serde_json::json!({
            "name": "p",
            "services": {
                "app": {"build": {"context": dir.path(), "dockerfile": "Dockerfile.app"}},
                "inline": {"build": {"context": ".", "dockerfile_inline": "FROM y\nRUN make\n"}},
                "db": {"image": "postgres", "profiles": ["tools"]}
            }
        })
        .to_string();
        let project = project_of(&json).unwrap();
        assert_eq!(project.services, ["app", "db", "inline"]);
        assert!(project.builds);
        assert_eq!(
            project.dockerfiles.unwrap(),
            ["FROM x\nRUN npm ci\n", "FROM y\nRUN make\n"]
        );
        let remote = r#"{"services": {"a": {"build": {"context": "https://github.com/o/r.git"}}}}"#;
        assert!(project_of(remote).unwrap().dockerfiles.is_none());
        let own = r#"{"services": {"a": {"image": "x", "cgroup_parent": "/mine"}}}"#;
        assert!(project_of(own).is_err());
        assert!(project_of("not json").is_err());
        let images = project_of(r#"{"services": {"a": {"image": "x"}}}"#).unwrap();
        assert!(!images.builds);
        assert_eq!(images.dockerfiles, Some(vec![]));
    }

    #[test]
    fn compose_file_from_the_environment_else_the_dot_env_else_the_default_names() {
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().to_str().unwrap();
        std::fs::write(dir.path().join("compose.yaml"), "services: {}\n").unwrap();
        let none = |_: &str| None;
        let found = files(Some(at), &[], &none).unwrap();
        assert_eq!(
            found,
            [dir.path().join("compose.yaml").display().to_string()]
        );
        std::fs::write(
            dir.path().join(".env"),
            "# settings\nexport COMPOSE_FILE=\"a.yml;b.yml\" \nCOMPOSE_PATH_SEPARATOR=;\n",
        )
        .unwrap();
        assert_eq!(files(Some(at), &[], &none).unwrap(), ["a.yml", "b.yml"]);
        let from_env = |name: &str| (name == "COMPOSE_FILE").then(|| "c.yml".to_string());
        assert_eq!(files(Some(at), &[], &from_env).unwrap(), ["c.yml"]);
        let other = dir.path().join("other.env");
        std::fs::write(&other, "COMPOSE_FILE=d.yml # the dev stack\n").unwrap();
        let given = [other.display().to_string()];
        assert_eq!(files(Some(at), &given, &none).unwrap(), ["d.yml"]);
    }
}
