//! `docker compose` (v2 plugin) and `docker-compose` (1.x): compose has no command-line
//! option that places its containers, but a service's `cgroup_parent` does (compose file
//! reference, "cgroup_parent"). memfit adds one more compose file of its own, after the
//! user's, that sets `cgroup_parent` to the run's cgroup for every service: compose merges it
//! over theirs (multiple `-f`, docs.docker.com/compose/multiple-compose-files/merge/), and
//! every container of `up`, `run` and `create` is created below the run's cgroup, counted
//! against its limit. The user's files are not touched; the extra file lives in a private
//! temporary directory for the run only. How v2 is read differs: see [`v2`].
//!
//! Builds (`build`, and `up`/`run`/`create` when a service is built):
//! * compose 1.29 builds through the Engine API with the classic builder, which has no
//!   cgroup-parent parameter there (docker-py's `build()`); with `COMPOSE_DOCKER_CLI_BUILD=1`
//!   it runs `docker build` from PATH instead, and memfit's `docker` wrapper first on PATH
//!   gives that build `<run's cgroup>/compose-build` as `--cgroup-parent`: each RUN step's
//!   container is created there, counted against the run's limit and reported as a build step.
//! * compose v2 builds with BuildKit through the Engine API (the buildx library, whatever
//!   `COMPOSE_DOCKER_CLI_BUILD` says); its classic builder, with `DOCKER_BUILDKIT=0`, sends
//!   no cgroup parent either (docker/compose pkg/compose/build_classic.go), and the compose
//!   file's `build` section has no `cgroup_parent`. dockerd's embedded BuildKit creates each
//!   RUN step's cgroup under `<dockerd's cgroup parent>/buildkit/` (moby/moby#45796): memfit
//!   adopts the steps there as for `docker build`, only those whose command is a RUN of the
//!   project's Dockerfiles (see [`crate::build_owner`]).

mod v2;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::units::BUILD_PARENT;

/// Compose's global options that take a value (docker-compose 1.29 `--help`, compose v2).
const GLOBAL_WITH_VALUE: [&str; 18] = [
    "-f",
    "--file",
    "-p",
    "--project-name",
    "--profile",
    "-c",
    "--context",
    "--env-file",
    "--project-directory",
    "-H",
    "--host",
    "--log-level",
    "--tlscacert",
    "--tlscert",
    "--tlskey",
    "--ansi",
    "--parallel",
    "--progress",
];

/// File names compose v2 looks for, in its order (compose-go `DefaultFileNames`; compose 1.29
/// finds its own and names them in its `--verbose` log), and the override files read beside
/// them.
const V2_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];
const OVERRIDES: [&str; 4] = [
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
    "compose.override.yml",
    "compose.override.yaml",
];

/// A compose command line: where its subcommand is and what it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeCommand {
    /// `docker-compose` 1.x (Python) rather than the `docker compose` plugin.
    pub v1: bool,
    /// Where compose's own global options start, and where its subcommand is.
    globals_at: usize,
    subcommand_at: usize,
    /// The `-f` files given, in order.
    files: Vec<String>,
    /// `--project-directory`.
    project_directory: Option<String>,
    /// `--env-file`, in order.
    env_files: Vec<String>,
}

/// What compose says of a project before it runs.
#[derive(Debug, Default)]
struct Project {
    /// Every service, in every profile.
    services: Vec<String>,
    /// The user's files as compose found them (when no `-f` was given; 1.x's log names them).
    files: Vec<String>,
    /// Some service is built.
    builds: bool,
    /// The text of every Dockerfile the services' builds read; `None` when one cannot be
    /// read (a remote context), or is not known (compose 1.x does not say).
    dockerfiles: Option<Vec<String>>,
}

/// What memfit does to a compose command.
#[derive(Debug)]
pub struct ComposePlan {
    /// The command line with memfit's compose file after the user's.
    pub command: Vec<OsString>,
    /// Holds memfit's compose file while the command runs.
    pub dir: tempfile::TempDir,
    /// The services placed.
    pub services: Vec<String>,
    /// Variables set for the command where the user has not set them.
    pub env_defaults: Vec<(&'static str, &'static str)>,
    /// A directory to put first on the command's PATH (memfit's `docker` wrapper).
    pub path_prefix: Option<PathBuf>,
    /// The subcommand builds images only (`build`).
    pub builds_only: bool,
    /// The subcommand may build images (`build`, or a service is built).
    pub builds: bool,
    /// The Dockerfiles' texts (see [`Project::dockerfiles`]), to tell this project's BuildKit
    /// steps from another client's.
    pub dockerfiles: Option<Vec<String>>,
    /// What the report should say.
    pub notes: Vec<String>,
}

impl ComposeCommand {
    /// `globals_at`: the index after `docker-compose` or after `docker … compose`.
    pub fn parse(argv: &[OsString], globals_at: usize) -> ComposeCommand {
        let v1 = Path::new(&argv[0])
            .file_name()
            .is_some_and(|n| n == "docker-compose");
        let words: Vec<&str> = argv.iter().map(|a| a.to_str().unwrap_or("")).collect();
        let mut files = Vec::new();
        let mut project_directory = None;
        let mut env_files = Vec::new();
        let mut i = globals_at;
        while let Some(word) = words.get(i) {
            let (name, inline) = match word.split_once('=') {
                Some((name, value)) if name.starts_with("--") => (name, Some(value)),
                _ => (*word, None),
            };
            if !word.starts_with('-') {
                break;
            }
            let value = if GLOBAL_WITH_VALUE.contains(&name) {
                match inline {
                    Some(value) => Some(value),
                    None => {
                        i += 1;
                        words.get(i).copied()
                    }
                }
            } else {
                None
            };
            match (name, value) {
                ("-f" | "--file", Some(file)) => files.push(file.to_string()),
                ("--project-directory", Some(dir)) => project_directory = Some(dir.to_string()),
                ("--env-file", Some(file)) => env_files.push(file.to_string()),
                _ => {}
            }
            i += 1;
        }
        ComposeCommand {
            v1,
            globals_at,
            subcommand_at: i,
            files,
            project_directory,
            env_files,
        }
    }

    pub fn subcommand<'a>(&self, argv: &'a [OsString]) -> Option<&'a str> {
        argv.get(self.subcommand_at).and_then(|s| s.to_str())
    }

    /// Whether the subcommand creates containers or builds images.
    pub fn starts_containers(&self, argv: &[OsString]) -> bool {
        matches!(
            self.subcommand(argv),
            Some("up" | "run" | "create" | "build")
        )
    }

    /// Prepares the run: reads compose's view of the project (`config`), writes memfit's
    /// compose file and returns the command line that uses it. `Err` says why the
    /// containers cannot be placed.
    pub fn plan(
        &self,
        argv: &[OsString],
        cgroup_parent: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ComposePlan, String> {
        if self.files.iter().any(|f| f == "-") {
            return Err("compose reads its file from stdin, which the command needs".to_string());
        }
        let project = if self.v1 {
            self.read_v1(argv)?
        } else {
            self.read_v2(argv, env)?
        };
        let Project {
            services,
            files: found,
            builds,
            dockerfiles,
        } = project;
        if services.is_empty() {
            return Err("compose's configuration lists no services".to_string());
        }
        let dir = tempfile::Builder::new()
            .prefix("memfit-compose-")
            .tempdir()
            .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
        let file = dir.path().join("memfit-cgroup-parent.yml");
        std::fs::write(&file, override_file(&services, cgroup_parent))
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        let mut command = argv[..self.subcommand_at].to_vec();
        for found in &found {
            command.push(OsString::from("-f"));
            command.push(OsString::from(found));
        }
        command.push(OsString::from("-f"));
        command.push(file.into_os_string());
        command.extend_from_slice(&argv[self.subcommand_at..]);

        let mut env_defaults = Vec::new();
        let mut path_prefix = None;
        let mut notes = vec![format!(
            "compose: memfit gave its {} service(s) the run's cgroup as cgroup_parent with a compose file of its own after yours (-f {}, removed after the run); your files are unchanged",
            services.len(),
            dir.path().join("memfit-cgroup-parent.yml").display()
        )];
        if self.v1 {
            match env("COMPOSE_DOCKER_CLI_BUILD").as_deref() {
                None | Some("1") => {
                    let docker = which("docker", env).ok_or("no docker CLI on PATH")?;
                    let build_parent = build_parent(cgroup_parent);
                    write_docker_shim(dir.path(), &docker, &build_parent)
                        .map_err(|e| format!("cannot write memfit's docker wrapper: {e}"))?;
                    env_defaults.push(("COMPOSE_DOCKER_CLI_BUILD", "1"));
                    path_prefix = Some(dir.path().to_path_buf());
                    notes.push(format!("compose builds with the docker CLI (COMPOSE_DOCKER_CLI_BUILD=1), through a wrapper of memfit's first on PATH that gives `docker build` a cgroup below the run's as --cgroup-parent ({build_parent}): compose 1.x's own API builder cannot be given one"));
                }
                _ => notes.push("compose builds through the Engine API here (COMPOSE_DOCKER_CLI_BUILD=0), which compose cannot give a cgroup parent: the RUN steps of its builds are not measured".to_string()),
            }
        }
        Ok(ComposePlan {
            command,
            dir,
            services,
            env_defaults,
            path_prefix,
            builds_only: self.subcommand(argv) == Some("build"),
            builds: builds || self.subcommand(argv) == Some("build"),
            dockerfiles,
            notes,
        })
    }

    /// `compose config` with these options before the subcommand and after it.
    fn config(
        &self,
        argv: &[OsString],
        globals: &[&str],
        after: &[&str],
    ) -> Result<(String, String), String> {
        let mut command = argv[..self.subcommand_at].to_vec();
        for (i, option) in globals.iter().enumerate() {
            command.insert(self.globals_at + i, OsString::from(option));
        }
        command.push(OsString::from("config"));
        command.extend(after.iter().map(OsString::from));
        let output = Command::new(&command[0])
            .args(&command[1..])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run `{} config`: {e}", argv[0].to_string_lossy()))?;
        let config = String::from_utf8_lossy(&output.stdout).into_owned();
        let log = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            let reason = log
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .chars()
                .take(300)
                .collect::<String>();
            return Err(format!("`compose config` failed: {reason}"));
        }
        Ok((config, log))
    }

    /// compose 1.x: its YAML model, and its debug log, which names the files it found.
    fn read_v1(&self, argv: &[OsString]) -> Result<Project, String> {
        let (config, log) = self.config(argv, &["--verbose"], &[])?;
        if config
            .lines()
            .any(|l| l.trim_start().starts_with("cgroup_parent:"))
        {
            return Err("a service sets its own cgroup_parent".to_string());
        }
        let files = if self.files.is_empty() {
            files_from_log(&log).ok_or("compose did not say which files it read")?
        } else {
            Vec::new()
        };
        Ok(Project {
            services: services_of(&config),
            files,
            builds: config.lines().any(|l| l.trim_start().starts_with("build:")),
            dockerfiles: None,
        })
    }

    /// compose v2: its JSON model with every profile's services, and the files it reads.
    fn read_v2(
        &self,
        argv: &[OsString],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Project, String> {
        let (config, _) = self.config(argv, &["--profile", "*"], &["--format", "json"])?;
        let mut project = v2::project_of(&config)?;
        if self.files.is_empty() {
            project.files = v2::files(self.project_directory.as_deref(), &self.env_files, env)?;
        }
        Ok(project)
    }
}

/// The service names of a `compose config` output (top-level `services:` mapping, whatever
/// the indentation).
fn services_of(config: &str) -> Vec<String> {
    let mut lines = config
        .lines()
        .skip_while(|l| l.trim_end() != "services:")
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' '));
    let Some(first) = lines.find(|l| !l.trim().is_empty()) else {
        return Vec::new();
    };
    let indent = first.len() - first.trim_start().len();
    std::iter::once(first)
        .chain(lines)
        .filter(|l| l.len() - l.trim_start().len() == indent)
        .filter_map(|l| l.trim().strip_suffix(':'))
        .map(|name| name.trim_matches(|c| c == '"' || c == '\'').to_string())
        .filter(|name| !name.is_empty())
        .collect()
}

/// `compose.config.config.find: Using configuration files: a,b` (compose 1.x `--verbose`).
fn files_from_log(log: &str) -> Option<Vec<String>> {
    let line = log
        .lines()
        .find_map(|l| l.split_once("Using configuration files: "))?;
    let files: Vec<String> = line
        .1
        .trim()
        .split(',')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect();
    (!files.is_empty()).then_some(files)
}

/// Compose's search: the first of `names` in `start` or the nearest parent that has one, and
/// the override file beside it.
fn discover(start: &Path, names: &[&str]) -> Option<Vec<PathBuf>> {
    let start = std::fs::canonicalize(start).ok()?;
    for dir in start.ancestors() {
        if let Some(file) = names.iter().map(|n| dir.join(n)).find(|p| p.is_file()) {
            let mut files = vec![file];
            files.extend(OVERRIDES.iter().map(|n| dir.join(n)).find(|p| p.is_file()));
            return Some(files);
        }
    }
    None
}

/// `program` on the PATH `env` gives.
fn which(program: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    std::env::split_paths(&env("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// A `docker` that adds `--cgroup-parent` to `docker build` (compose 1.x runs `docker build`
/// from PATH with COMPOSE_DOCKER_CLI_BUILD=1) and runs the real one otherwise. `--force-rm`
/// too: the classic builder keeps a failed step's container, and a step the run's limit
/// killed would otherwise be left behind by memfit.
fn write_docker_shim(dir: &Path, docker: &Path, cgroup_parent: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let docker = quote(&docker.to_string_lossy());
    let parent = quote(&format!("--cgroup-parent={cgroup_parent}"));
    let script = format!(
        "#!/bin/sh\n# written by memfit run for this run only\nif [ \"$1\" = build ]; then shift; exec {docker} build {parent} --force-rm \"$@\"; fi\nexec {docker} \"$@\"\n"
    );
    let path = dir.join("docker");
    std::fs::write(&path, script)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
}

/// memfit's compose file: every service's `cgroup_parent`. Names and the path are written
/// as JSON strings, which YAML reads as they are.
fn override_file(services: &[String], cgroup_parent: &str) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut text = String::from("# written by memfit run for this run only\nservices:\n");
    for service in services {
        text.push_str(&format!(
            "  {}:\n    cgroup_parent: {}\n",
            quote(service),
            quote(cgroup_parent)
        ));
    }
    text
}

/// The `--cgroup-parent` of compose 1.x's CLI builds: a cgroup below the run's, or, when the
/// run's is a systemd slice (the systemd cgroup driver, where a parent must be a slice), a
/// slice below it (`<run>-compose_build.slice`: systemd nests slices by their dashes).
fn build_parent(cgroup_parent: &str) -> String {
    match cgroup_parent.strip_suffix(".slice") {
        Some(slice) => format!("{slice}-{}.slice", BUILD_PARENT.replace('-', "_")),
        None => format!("{cgroup_parent}/{BUILD_PARENT}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_build_parent_is_a_child_slice_of_a_slice() {
        assert_eq!(
            super::build_parent("/memfit-1/x"),
            "/memfit-1/x/compose-build"
        );
        assert_eq!(
            super::build_parent("memfit_1_2.slice"),
            "memfit_1_2-compose_build.slice"
        );
    }

    use super::*;

    fn argv(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn global_options_and_the_subcommand() {
        let words = argv(&[
            "docker-compose",
            "-p",
            "x",
            "--file=a.yml",
            "-f",
            "b.yml",
            "--verbose",
            "up",
            "-d",
        ]);
        let compose = ComposeCommand::parse(&words, 1);
        assert_eq!(compose.subcommand(&words), Some("up"));
        assert_eq!(compose.files, ["a.yml", "b.yml"]);
        assert!(compose.v1);
        let words = argv(&["docker", "compose", "--project-directory", "p", "build"]);
        let compose = ComposeCommand::parse(&words, 2);
        assert_eq!(compose.subcommand(&words), Some("build"));
        assert_eq!(compose.project_directory.as_deref(), Some("p"));
        assert!(!compose.v1);
        assert!(compose.starts_containers(&words));
        let words = argv(&["docker-compose", "down"]);
        assert!(!ComposeCommand::parse(&words, 1).starts_containers(&words));
    }

    #[test]
    fn services_of_a_config() {
        let v1 = "services:\n  big:\n    command:\n    - node\n    image: x\n  small:\n    image: x\nversion: '3.8'\n";
        assert_eq!(services_of(v1), ["big", "small"]);
        let v2 = "name: p\nservices:\n    'a.b':\n        image: x\n    c:\n        image: y\nnetworks:\n    default: {}\n";
        assert_eq!(services_of(v2), ["a.b", "c"]);
        assert!(services_of("version: '3'\n").is_empty());
    }

    #[test]
    fn the_files_compose_read() {
        let log = "compose.config.config.find: Using configuration files: /p/docker-compose.yml,/p/docker-compose.override.yml\nother\n";
        assert_eq!(
            files_from_log(log).unwrap(),
            ["/p/docker-compose.yml", "/p/docker-compose.override.yml"]
        );
        assert!(files_from_log("nothing").is_none());
    }

    #[test]
    fn the_docker_wrapper_adds_the_cgroup_parent_to_builds_only() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("args");
        let fake = dir.path().join("real docker");
        std::fs::write(
            &fake,
            format!("#!/bin/sh\nprintf '%s|' \"$@\" >> '{}'\n", log.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o700)).unwrap();
        let shim_dir = tempfile::tempdir().unwrap();
        write_docker_shim(shim_dir.path(), &fake, "/m/memfit-1").unwrap();
        let shim = shim_dir.path().join("docker");
        let status = Command::new(&shim)
            .args(["build", "-t", "a b", "."])
            .status()
            .unwrap();
        assert!(status.success());
        Command::new(&shim).args(["ps", "-a"]).status().unwrap();
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "build|--cgroup-parent=/m/memfit-1|--force-rm|-t|a b|.|ps|-a|"
        );
    }

    #[test]
    fn the_override_file_quotes_what_it_writes() {
        let text = override_file(&["web".to_string()], "/a/memfit-1: x");
        assert!(text.contains("  \"web\":\n    cgroup_parent: \"/a/memfit-1: x\"\n"));
    }

    #[test]
    fn discovery_finds_the_file_and_its_override_in_a_parent() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("compose.yaml"), "services: {}\n").unwrap();
        std::fs::write(dir.path().join("docker-compose.yml"), "services: {}\n").unwrap();
        std::fs::write(dir.path().join("compose.override.yml"), "services: {}\n").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let found = discover(&dir.path().join("sub"), &V2_FILES).unwrap();
        let names: Vec<_> = found.iter().map(|p| p.file_name().unwrap()).collect();
        assert_eq!(names, ["compose.yaml", "compose.override.yml"]);
    }
}
