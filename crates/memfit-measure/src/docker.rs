//! Measuring what Docker runs for a command. `docker build` and `docker run` only ask dockerd
//! to run containers, outside the CLI's cgroup: a run that measured the CLI alone would call
//! a 300 MiB build step "11 MiB". So the containers are brought under the run's cgroup:
//!
//! * `docker run`/`create` and `docker build` (the classic builder, and BuildKit from buildx
//!   0.11.1, docker/buildx#1913) take `--cgroup-parent`: memfit adds the run's cgroup, and
//!   every container or RUN step is created inside it, counted against its limit with
//!   parallel stages together.
//! * dockerd's embedded BuildKit before that ignores it (moby/moby#45796) and creates each RUN
//!   step's cgroup under `<dockerd's cgroup parent>/buildkit/`: memfit watches that directory
//!   (inotify) and moves each new step's processes into a cgroup of its own below the run's
//!   the moment they appear, before the step's command runs — only the steps this build's
//!   Dockerfile runs: another client's build on the same dockerd is left alone (see
//!   [`crate::build_owner`]).
//!
//! * `docker compose` / `docker-compose`: a compose file of memfit's own sets every
//!   service's `cgroup_parent` (see [`crate::compose`]).
//! * `podman run`/`create`/`build` take `--cgroup-parent` as docker's do (cgroupfs manager).
//!
//! Docker's configuration is never changed. What cannot be measured (the systemd cgroup
//! driver) is said in the report. The mechanism is documented in docs/fidelity.md.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use memfit_sys::mountinfo;

/// What a docker command line asks dockerd to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DockerAction {
    /// `docker run`, `docker create`, `docker container run|create`.
    Container,
    /// `docker build`, `docker image build`, `docker builder build`, `docker buildx build`.
    Build,
    /// `docker compose …` (and `docker-compose`): memfit's compose file places its
    /// containers (see [`crate::compose`]).
    Compose,
}

/// A recognised docker command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerCommand {
    pub action: DockerAction,
    /// Where the subcommand's own options start in argv.
    options_at: usize,
    /// The user gave `--cgroup-parent` themselves.
    has_cgroup_parent: bool,
    /// Where the engine's global options end (the subcommand's first word).
    globals_end: usize,
}

/// Docker's global options that take a value (`docker --help`), and podman's (`podman --help`).
const GLOBAL_WITH_VALUE: [&str; 23] = [
    "--cgroup-manager",
    "--conmon",
    "--connection",
    "--events-backend",
    "--hooks-dir",
    "--identity",
    "--network-cmd-path",
    "--network-config-dir",
    "--root",
    "--runroot",
    "--runtime",
    "--storage-driver",
    "--storage-opt",
    "--tmpdir",
    "--url",
    "--volumepath",
    "--config",
    "-c",
    "--context",
    "-H",
    "--host",
    "-l",
    "--log-level",
];

impl DockerCommand {
    /// Recognises `docker …` / `podman …` commands that start containers.
    pub fn recognize(argv: &[OsString]) -> Option<DockerCommand> {
        let program = Path::new(argv.first()?).file_name()?.to_str()?;
        let words: Vec<&str> = argv.iter().map(|a| a.to_str().unwrap_or("")).collect();
        if program == "docker-compose" {
            return Some(DockerCommand {
                action: DockerAction::Compose,
                options_at: 1,
                has_cgroup_parent: false,
                globals_end: 1,
            });
        }
        if program != "docker" && program != "podman" {
            return None;
        }
        let mut i = 1;
        while let Some(word) = words.get(i) {
            if GLOBAL_WITH_VALUE.contains(word)
                || matches!(*word, "--tlscacert" | "--tlscert" | "--tlskey")
            {
                i += 2;
            } else if word.starts_with('-') {
                i += 1;
            } else {
                break;
            }
        }
        let (action, consumed) = match (words.get(i).copied(), words.get(i + 1).copied()) {
            (Some("run" | "create"), _) => (DockerAction::Container, 1),
            (Some("container"), Some("run" | "create")) => (DockerAction::Container, 2),
            (Some("build"), _) => (DockerAction::Build, 1),
            (Some("image" | "builder" | "buildx"), Some("build")) => (DockerAction::Build, 2),
            (Some("compose"), _) => (DockerAction::Compose, 1),
            _ => return None,
        };
        let options_at = i + consumed;
        let has_cgroup_parent = words[options_at..]
            .iter()
            .take_while(|w| **w != "--")
            .any(|w| *w == "--cgroup-parent" || w.starts_with("--cgroup-parent="));
        Some(DockerCommand {
            action,
            options_at,
            has_cgroup_parent,
            globals_end: i,
        })
    }

    /// The compose command line of `docker compose …` / `docker-compose …`.
    pub fn compose(&self, argv: &[OsString]) -> Option<crate::compose::ComposeCommand> {
        (self.action == DockerAction::Compose)
            .then(|| crate::compose::ComposeCommand::parse(argv, self.options_at))
    }

    /// Whether the engine is podman (no dockerd: containers are started by podman itself).
    pub fn is_podman(argv: &[OsString]) -> bool {
        argv.first()
            .and_then(|p| Path::new(p).file_name())
            .is_some_and(|n| n == "podman")
    }

    /// The engine's own global options (`-H …`, podman's `--cgroup-manager …`), to ask it
    /// about itself the same way.
    pub fn global_options<'a>(&self, argv: &'a [OsString]) -> &'a [OsString] {
        &argv[1.min(self.globals_end)..self.globals_end]
    }

    /// The command line with `--cgroup-parent=PARENT` added to the subcommand's options, or
    /// `None` where it cannot be (compose, or the user set their own).
    pub fn with_cgroup_parent(&self, argv: &[OsString], parent: &str) -> Option<Vec<OsString>> {
        if self.action == DockerAction::Compose || self.has_cgroup_parent {
            return None;
        }
        let mut out = argv[..self.options_at].to_vec();
        out.push(OsString::from(format!("--cgroup-parent={parent}")));
        out.extend_from_slice(&argv[self.options_at..]);
        Some(out)
    }
}

/// `docker build` options that take a value (`docker buildx build --help`), so that the
/// context is told from an option's value.
const BUILD_WITH_VALUE: [&str; 37] = [
    "-t",
    "--tag",
    "-f",
    "--file",
    "--build-arg",
    "--target",
    "--network",
    "--platform",
    "--progress",
    "--cache-from",
    "--cache-to",
    "--label",
    "--iidfile",
    "--secret",
    "--ssh",
    "-o",
    "--output",
    "--cgroup-parent",
    "-m",
    "--memory",
    "--memory-swap",
    "--cpu-shares",
    "--cpu-period",
    "--cpu-quota",
    "--cpuset-cpus",
    "--cpuset-mems",
    "--shm-size",
    "--ulimit",
    "--add-host",
    "--isolation",
    "--security-opt",
    "--build-context",
    "--metadata-file",
    "--builder",
    "--allow",
    "--attest",
    "--call",
];

impl DockerCommand {
    /// Whether a build may reuse cached layers (no `--no-cache`): then tries after the first
    /// run none of the steps they would measure.
    pub fn may_use_build_cache(&self, argv: &[OsString]) -> bool {
        self.action == DockerAction::Build
            && !argv[self.options_at..]
                .iter()
                .any(|a| a == "--no-cache" || a == "--no-cache=true")
    }

    /// The Dockerfile a build reads: `-f/--file` (relative to the working directory), else
    /// `Dockerfile` in the context directory. `None` for builds from stdin or a URL.
    pub fn dockerfile(&self, argv: &[OsString]) -> Option<PathBuf> {
        if self.action != DockerAction::Build {
            return None;
        }
        let words: Vec<&str> = argv.iter().map(|a| a.to_str().unwrap_or("")).collect();
        let mut file = None;
        let mut context = None;
        let mut i = self.options_at;
        while let Some(word) = words.get(i) {
            if let Some(value) = word.strip_prefix("--file=") {
                file = Some(value);
            } else if *word == "-f" || *word == "--file" {
                file = words.get(i + 1).copied();
                i += 1;
            } else if BUILD_WITH_VALUE.contains(word) {
                i += 1;
            } else if !word.starts_with('-') && context.is_none() {
                context = Some(*word);
            }
            i += 1;
        }
        match (file, context) {
            (Some("-"), _) | (None, Some("-")) => None,
            (Some(file), _) => Some(PathBuf::from(file)),
            (None, Some(context)) if !context.contains("://") && !context.starts_with("git@") => {
                Some(Path::new(context).join("Dockerfile"))
            }
            _ => None,
        }
    }
}

/// What dockerd says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerDaemon {
    pub cgroup_driver: String,
    pub server_version: String,
}

/// Asks dockerd through the same CLI and global options (`docker info`), or podman (`podman
/// info`: its cgroup manager); `Err` with the reason when it cannot.
pub fn daemon(program: &OsStr, global_options: &[OsString]) -> Result<DockerDaemon, String> {
    let podman = Path::new(program)
        .file_name()
        .is_some_and(|n| n == "podman");
    let format = if podman {
        "{{.Host.CgroupManager}} {{.Version.Version}}"
    } else {
        "{{.CgroupDriver}} {{.ServerVersion}}"
    };
    let output = Command::new(program)
        .args(global_options)
        .args(["info", "--format", format])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `{} info`: {e}", program.to_string_lossy()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut words = text.split_whitespace();
    match (output.status.success(), words.next(), words.next()) {
        (true, Some(driver), Some(version)) => Ok(DockerDaemon {
            cgroup_driver: driver.to_string(),
            server_version: version.to_string(),
        }),
        _ => Err(format!(
            "`{} info` failed: {}",
            program.to_string_lossy(),
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    }
}

/// The compose service (else the container name) of each container still known to the
/// engine, by the cgroup name the run saw (`<id>`, podman's `libpod-<id>`).
pub fn container_names(
    program: &OsStr,
    cgroup_names: &[&str],
) -> std::collections::HashMap<String, String> {
    let ids: Vec<(&str, &str)> = cgroup_names
        .iter()
        .map(|name| (*name, name.strip_prefix("libpod-").unwrap_or(name)))
        .filter(|(_, id)| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    let mut names = std::collections::HashMap::new();
    if ids.is_empty() {
        return names;
    }
    let output = Command::new(program)
        .args(["inspect", "--type", "container", "--format"])
        .arg("{{.Id}}\t{{index .Config.Labels \"com.docker.compose.service\"}}\t{{.Name}}")
        .args(ids.iter().map(|(_, id)| id))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    // Containers removed meanwhile (`--rm`) are missing, the others printed.
    let Ok(output) = output else {
        return names;
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let mut fields = line.split('\t');
        let (Some(id), Some(service), Some(name)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Some((cgroup_name, _)) = ids.iter().find(|(_, known)| *known == id) else {
            continue;
        };
        let chosen = match service {
            "" | "<no value>" => name.trim_start_matches('/'),
            service => service,
        };
        if !chosen.is_empty() {
            names.insert(cgroup_name.to_string(), chosen.chars().take(128).collect());
        }
    }
    names
}

/// Where dockerd's embedded BuildKit puts its RUN steps' cgroups, which ignore
/// `--cgroup-parent` (moby/buildkit#593).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildkitSteps {
    /// The directory, relative to the hierarchy's mount point.
    pub dir: String,
    /// What a step's cgroup name starts with there (`""`: every new cgroup is a step).
    pub name_prefix: String,
}

/// Where dockerd's BuildKit steps appear, by its cgroup driver: with cgroupfs,
/// `<cgroup parent>/buildkit/<id>` (the parent `/docker` unless dockerd's `--cgroup-parent` or
/// daemon.json's `cgroup-parent` says otherwise, moby cmd/dockerd/daemon_unix.go
/// `newCgroupParent`); with systemd, BuildKit hands runc
/// `<parent slice>:docker:<id>` (the slice `system.slice` by default) without systemd's
/// driver, and runc takes it as a name relative to its own cgroup's parent: a cgroup named
/// `system.slice:docker:<id>` beside `docker.service` on cgroup v2 and inside it on v1, as seen
/// with Docker 20.10 (tests/vm/run.sh --cgroup-driver systemd, both layouts).
pub fn buildkit_steps(driver: &str, version: memfit_sys::CgroupVersion) -> BuildkitSteps {
    let dockerd = find_dockerd();
    let configured = dockerd
        .as_ref()
        .and_then(|(_, args)| {
            args.iter().enumerate().find_map(|(i, a)| {
                a.strip_prefix("--cgroup-parent=")
                    .map(str::to_string)
                    .or_else(|| (a == "--cgroup-parent").then(|| args.get(i + 1).cloned())?)
            })
        })
        .or_else(|| {
            let text = fs::read_to_string("/etc/docker/daemon.json").ok()?;
            let value: serde_json::Value = serde_json::from_str(&text).ok()?;
            value.get("cgroup-parent")?.as_str().map(str::to_string)
        });
    if driver != "systemd" {
        let parent = configured.unwrap_or_else(|| "/docker".to_string());
        return BuildkitSteps {
            dir: format!("/{}/buildkit", parent.trim_matches('/')),
            name_prefix: String::new(),
        };
    }
    let slice = configured.unwrap_or_else(|| "system.slice".to_string());
    let own = dockerd
        .and_then(|(pid, _)| fs::read_to_string(format!("/proc/{pid}/cgroup")).ok())
        .and_then(|text| own_cgroup_path(&text, version));
    // runc resolves a relative cgroup name against its own cgroup (dockerd's): on v1 below
    // it (runc libcontainer/cgroups/fs/paths.go, `subsysPath`), on v2 beside it (its parent,
    // libcontainer/cgroups/fs2/defaultpath.go).
    let dir = match version {
        memfit_sys::CgroupVersion::V1 => own.clone(),
        memfit_sys::CgroupVersion::V2 => own
            .as_deref()
            .and_then(|p| Path::new(p).parent())
            .map(|p| p.display().to_string()),
    }
    .unwrap_or_else(|| match version {
        memfit_sys::CgroupVersion::V1 => "/system.slice/docker.service".to_string(),
        memfit_sys::CgroupVersion::V2 => "/system.slice".to_string(),
    });
    BuildkitSteps {
        dir,
        name_prefix: format!("{slice}:docker:"),
    }
}

/// A process's cgroup path from its `/proc/PID/cgroup`: v2's `0::` line, or v1's memory one.
fn own_cgroup_path(text: &str, version: memfit_sys::CgroupVersion) -> Option<String> {
    text.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let wanted = match version {
            memfit_sys::CgroupVersion::V2 => controllers.is_empty(),
            memfit_sys::CgroupVersion::V1 => controllers.split(',').any(|c| c == "memory"),
        };
        wanted.then(|| path.to_string())
    })
}

/// The running dockerd: its pid and command line.
fn find_dockerd() -> Option<(i32, Vec<String>)> {
    fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
        let raw = fs::read(entry.path().join("cmdline")).ok()?;
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        args.first()?.ends_with("dockerd").then_some((pid, args))
    })
}

/// Which of a path's prefixes exist in every cgroup hierarchy but the one memfit owns: docker
/// creates the `--cgroup-parent` path in each v1 hierarchy, and what it creates there is
/// removed after the run.
#[derive(Debug, Default)]
pub struct CgroupPathsBefore {
    /// (mount point, the prefixes of the path that did not exist yet), deepest last.
    missing: Vec<(PathBuf, Vec<PathBuf>)>,
}

impl CgroupPathsBefore {
    pub fn record(relative: &str, except: &Path) -> CgroupPathsBefore {
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let missing = mountinfo::parse(&mounts)
            .into_iter()
            .filter(|m| (m.fstype == "cgroup" || m.fstype == "cgroup2") && m.mount_point != except)
            .map(|m| {
                let mut prefix = m.mount_point.clone();
                let mut missing = Vec::new();
                for part in relative.split('/').filter(|p| !p.is_empty()) {
                    prefix.push(part);
                    if !prefix.exists() {
                        missing.push(prefix.clone());
                    }
                }
                (m.mount_point, missing)
            })
            .collect();
        CgroupPathsBefore { missing }
    }

    /// Removes what appeared since, deepest first, where empty. Returns how many were removed.
    pub fn remove_created(&self) -> usize {
        let mut removed = 0;
        for (_, missing) in &self.missing {
            for dir in missing.iter().rev() {
                if dir.exists() {
                    remove_tree(dir, 0);
                    if fs::remove_dir(dir).is_ok() {
                        removed += 1;
                    }
                }
            }
        }
        removed
    }
}

/// Removes empty child cgroups below `dir` (bounded depth; cgroupfs directories are removed
/// with rmdir, their files with them).
fn remove_tree(dir: &Path, depth: usize) {
    if depth > 16 {
        return;
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path(), depth + 1);
                let _ = fs::remove_dir(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn a_process_cgroup_is_read_for_either_version() {
        let v2 = "0::/system.slice/docker.service\n";
        let v1 = "12:pids:/system.slice/docker.service\n5:memory:/system.slice/docker.service\n1:name=systemd:/system.slice/docker.service\n";
        use memfit_sys::CgroupVersion::{V1, V2};
        assert_eq!(
            own_cgroup_path(v2, V2).as_deref(),
            Some("/system.slice/docker.service")
        );
        assert_eq!(
            own_cgroup_path(v1, V1).as_deref(),
            Some("/system.slice/docker.service")
        );
        assert_eq!(own_cgroup_path(v1, V2), None);
        assert_eq!(own_cgroup_path("garbage", V1), None);
    }

    #[test]
    fn docker_commands_that_start_containers_are_recognised() {
        let cases = [
            (&["docker", "build", "."][..], Some(DockerAction::Build), 2),
            (
                &[
                    "/usr/bin/docker",
                    "-H",
                    "unix:///x.sock",
                    "run",
                    "--rm",
                    "img",
                ],
                Some(DockerAction::Container),
                4,
            ),
            (
                &["docker", "buildx", "build", "--load", "."],
                Some(DockerAction::Build),
                3,
            ),
            (
                &["docker", "container", "create", "img"],
                Some(DockerAction::Container),
                3,
            ),
            (
                &["docker", "--debug", "image", "build", "."],
                Some(DockerAction::Build),
                4,
            ),
            (&["docker", "compose", "up"], Some(DockerAction::Compose), 2),
            (&["docker", "ps"], None, 0),
            (&["npm", "run", "build"], None, 0),
        ];
        for (words, action, at) in cases {
            let found = DockerCommand::recognize(&argv(words));
            assert_eq!(found.as_ref().map(|c| c.action), action, "{words:?}");
            if let Some(found) = found {
                assert_eq!(found.options_at, at, "{words:?}");
            }
        }
    }

    #[test]
    fn the_dockerfile_of_a_build() {
        let file = |words: &[&str]| {
            let argv = argv(words);
            DockerCommand::recognize(&argv).unwrap().dockerfile(&argv)
        };
        assert_eq!(
            file(&["docker", "build", "."]),
            Some(PathBuf::from("./Dockerfile"))
        );
        assert_eq!(
            file(&[
                "docker",
                "build",
                "-t",
                "app",
                "--file",
                "ops/Dockerfile.prod",
                "src"
            ]),
            Some(PathBuf::from("ops/Dockerfile.prod"))
        );
        assert_eq!(
            file(&["docker", "build", "app", "-t", "x"]),
            Some(PathBuf::from("app/Dockerfile"))
        );
        assert_eq!(file(&["docker", "build", "-"]), None);
        assert_eq!(file(&["docker", "run", "img"]), None);
    }

    #[test]
    fn the_cgroup_parent_goes_among_the_subcommands_options() {
        let words = argv(&[
            "docker",
            "run",
            "--rm",
            "img",
            "node",
            "--max-old-space-size=64",
        ]);
        let command = DockerCommand::recognize(&words).unwrap();
        let rewritten = command.with_cgroup_parent(&words, "/a/memfit-1-0").unwrap();
        assert_eq!(
            rewritten,
            argv(&[
                "docker",
                "run",
                "--cgroup-parent=/a/memfit-1-0",
                "--rm",
                "img",
                "node",
                "--max-old-space-size=64"
            ])
        );
        let own = argv(&["docker", "build", "--cgroup-parent", "/mine", "."]);
        assert!(DockerCommand::recognize(&own)
            .unwrap()
            .with_cgroup_parent(&own, "/x")
            .is_none());
    }
}
