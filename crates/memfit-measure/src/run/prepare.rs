//! Before the command starts: the CPUs it may use, its cgroup (or why there is none), and
//! what the chosen mode means for the report.

use std::sync::atomic::{AtomicU32, Ordering};

use memfit_sys::cgroup::{self, CgroupFiles, CgroupOwner, EnclosingLimit, Hierarchy, OwnedCgroup};
use memfit_sys::procfs;
use memfit_sys::CgroupVersion;

use std::ffi::OsString;
use std::path::PathBuf;

use super::{RunError, RunOptions};
use crate::build_owner::OwnSteps;
use crate::docker::{self, CgroupPathsBefore, DockerAction, DockerCommand};
use crate::report::{ContainerKind, Mode};
use crate::spawn::PidMode;

static RUN_SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// A docker command, and how its containers are brought under the run's cgroup.
pub(super) struct DockerRun {
    pub kind: ContainerKind,
    /// Where dockerd creates cgroups memfit adopts (BuildKit steps that ignore
    /// `--cgroup-parent`).
    pub adopt_roots: Vec<PathBuf>,
    /// What a step's cgroup name starts with there (see `WatchPlan::step_name_prefix`).
    pub step_name_prefix: String,
    /// The build's RUN steps: only those are adopted (`None`: its Dockerfile cannot be read).
    pub own_steps: Option<OwnSteps>,
    /// The `--cgroup-parent` path in the other cgroup hierarchies, where docker creates it.
    pub paths_before: CgroupPathsBefore,
    /// On cgroup v2, the leaf the docker CLI runs in, so that the run's cgroup can give its
    /// containers controllers of their own (see [`OwnedCgroup::create_command_leaf`]).
    pub command_leaf: Option<CgroupFiles>,
    /// For compose: memfit's compose file (removed when dropped, after the run).
    pub compose_dir: Option<tempfile::TempDir>,
    /// Variables the command gets where the user has not set them.
    pub env_defaults: Vec<(&'static str, &'static str)>,
    /// A directory put first on the command's PATH.
    pub path_prefix: Option<PathBuf>,
    /// The CLI that names the containers afterwards (`docker inspect`).
    pub inspect_with: OsString,
}

/// What the run has before its command starts.
pub(super) struct Prepared {
    /// The command to start: the user's, with `--cgroup-parent` added for docker.
    pub command: Vec<OsString>,
    pub docker: Option<DockerRun>,
    pub host_cpus: usize,
    /// CPUs the command sees: its cpuset, or every CPU memfit may use.
    pub visible_cpus: usize,
    pub cpu_set: Option<libc::cpu_set_t>,
    pub hierarchy: Option<Hierarchy>,
    pub cgroup: Option<OwnedCgroup>,
    /// On cgroup v1, the CPU hierarchy and the run's cgroup in it (for a quota).
    pub cpu_v1: Option<(Hierarchy, OwnedCgroup)>,
    /// The quota applied, in CPUs.
    pub cpu_quota: Option<f64>,
    /// A lower limit an enclosing cgroup sets.
    pub effective_limit: Option<EnclosingLimit>,
    pub mode: Mode,
    /// Why no cgroup is used, in measure-only mode.
    pub mode_reason: Option<String>,
    pub caveats: Vec<String>,
}

pub(super) fn prepare(options: &RunOptions) -> Result<Prepared, RunError> {
    let allowed_cpus = allowed_cpus();
    let host_cpus = allowed_cpus.len().max(1);
    if let Some(wanted) = options.cpu_quota {
        if !(0.01..=host_cpus as f64).contains(&wanted) {
            return Err(RunError::CpuQuotaOutOfRange {
                wanted,
                available: host_cpus,
            });
        }
    }
    if options.pid == PidMode::Init && options.init_program.is_none() {
        return Err(RunError::NoInitProgram);
    }
    let cpu_set = match &options.cpuset {
        Some(wanted) => {
            if let Some(&cpu) = wanted.iter().find(|cpu| !allowed_cpus.contains(cpu)) {
                return Err(RunError::CpuNotAvailable {
                    cpu,
                    available: cpu_list(&allowed_cpus),
                });
            }
            Some(cpu_set_of(wanted))
        }
        None => None,
    };
    let visible_cpus = options.cpuset.as_ref().map_or(host_cpus, Vec::len);

    let mut caveats = options.caveats.clone();
    // For a docker command, its engine: with the systemd cgroup driver the run's cgroup must
    // be a systemd slice (its containers' parent).
    let engine = (!options.measure_only)
        .then(|| docker_engine(&options.command))
        .flatten();
    let wants_slice = engine.as_ref().is_some_and(|e| {
        e.daemon
            .as_ref()
            .is_ok_and(|d| d.cgroup_driver == "systemd")
    });
    let mut slice_failure = None;
    let (hierarchy, cgroup, mode_reason) = if options.measure_only {
        (None, None, Some("--measure-only was given".to_string()))
    } else {
        match Hierarchy::detect() {
            Ok(hierarchy) if wants_slice => match create_slice(&hierarchy, options) {
                Ok((hierarchy, cgroup)) => (Some(hierarchy), Some(cgroup), None),
                Err(reason) => {
                    slice_failure = Some(reason);
                    let cgroup = create_cgroup(&hierarchy, options)?;
                    (Some(hierarchy), Some(cgroup), None)
                }
            },
            Ok(hierarchy) => {
                let cgroup = create_cgroup(&hierarchy, options)?;
                (Some(hierarchy), Some(cgroup), None)
            }
            Err(reason) => (None, None, Some(reason)),
        }
    };
    let is_slice = cgroup.as_ref().is_some_and(|c| c.systemd_unit().is_some());
    let mode = match cgroup.as_ref().map(|c| c.version()) {
        Some(CgroupVersion::V2) => Mode::CgroupV2,
        Some(CgroupVersion::V1) => Mode::CgroupV1,
        None => Mode::MeasureOnly,
    };
    if let Some(reason) = &mode_reason {
        caveats.push(format!(
            "measure-only: {reason}. No limit is enforced, the peak is sampled (Σ RSS counts shared pages once per process) and no OOM verdict is possible"
        ));
    }
    let (cpu_v1, cpu_quota) = match (options.cpu_quota, &cgroup) {
        // The slice holds the quota as its CPUQuota= property: systemd writes it.
        (Some(quota), Some(_)) if is_slice => (None, Some(quota)),
        (Some(quota), Some(memory)) => {
            let cpu_v1 = apply_cpu_quota(memory, hierarchy.as_ref(), quota)?;
            (cpu_v1, Some(quota))
        }
        (Some(quota), None) => {
            caveats.push(format!("--cpus {quota} is not applied without a cgroup: the command gets all the CPU time it can use"));
            (None, None)
        }
        (None, _) => (None, None),
    };
    match (cpu_quota, &options.cpuset) {
        (None, None) if host_cpus > 1 => caveats.push(format!(
            "the command runs on all {host_cpus} CPUs of this machine; a plan gives less CPU time (emulate it with --cpus, a quota as the platform applies), and tools that start a worker per CPU start as many as they see"
        )),
        (Some(quota), None) => caveats.push(format!(
            "the command sees all {visible_cpus} CPUs and gets {quota} CPU(s) of time, as under docker run --cpus: tools that start a worker per visible CPU (terser, jest, rustc before 1.61) start {visible_cpus}, as they would on the plan"
        )),
        _ => {}
    }
    let (command, docker) = match (&hierarchy, &cgroup) {
        (Some(hierarchy), Some(cgroup)) => prepare_docker(
            options,
            engine,
            slice_failure,
            hierarchy,
            cgroup,
            &mut caveats,
        ),
        _ => {
            if DockerCommand::recognize(&options.command).is_some() {
                caveats.push("the containers Docker starts are not measured without a cgroup: this measures the docker CLI alone".to_string());
            }
            (options.command.clone(), None)
        }
    };
    let effective_limit = cgroup
        .as_ref()
        .and_then(|c| c.enclosing_hard_limit())
        .filter(|e| options.limit.is_none_or(|own| e.bytes < own));
    let host_has_swap = procfs::meminfo("SwapTotal").unwrap_or(0) > 0;
    let swap_limitable = cgroup.as_ref().is_some_and(OwnedCgroup::swap_limitable);
    if host_has_swap && mode == Mode::CgroupV1 && !swap_limitable {
        caveats.push("this host has swap and the kernel has no swap accounting (memory.memsw.*): the command may swap instead of being OOM-killed".to_string());
    }
    Ok(Prepared {
        command,
        docker,
        host_cpus,
        visible_cpus,
        cpu_set,
        hierarchy,
        cgroup,
        cpu_v1,
        cpu_quota,
        effective_limit,
        mode,
        mode_reason,
        caveats,
    })
}

/// The engine a docker command talks to: which CLI answers for it, and what it says.
struct DockerEngine {
    docker: DockerCommand,
    compose: Option<crate::compose::ComposeCommand>,
    podman: bool,
    /// The CLI that names the containers afterwards (`docker inspect`).
    cli: OsString,
    daemon: Result<docker::DockerDaemon, String>,
}

fn docker_engine(command: &[OsString]) -> Option<DockerEngine> {
    let docker = DockerCommand::recognize(command)?;
    let compose = docker.compose(command);
    let podman = DockerCommand::is_podman(command);
    // docker-compose 1.x talks to dockerd itself; the docker CLI answers for that dockerd.
    let (cli, globals) = match &compose {
        Some(c) if c.v1 => (OsString::from("docker"), &[][..]),
        _ => (command[0].clone(), docker.global_options(command)),
    };
    let daemon = docker::daemon(&cli, globals);
    Some(DockerEngine {
        docker,
        compose,
        podman,
        cli,
        daemon,
    })
}

/// For a docker command: the command line with the run's cgroup as `--cgroup-parent`, and
/// where dockerd's BuildKit puts steps that ignore it. What cannot be measured is a caveat.
fn prepare_docker(
    options: &RunOptions,
    engine: Option<DockerEngine>,
    slice_failure: Option<String>,
    hierarchy: &Hierarchy,
    cgroup: &OwnedCgroup,
    caveats: &mut Vec<String>,
) -> (Vec<OsString>, Option<DockerRun>) {
    let unchanged = options.command.clone();
    let Some(DockerEngine {
        docker,
        compose,
        podman,
        cli: engine,
        daemon,
    }) = engine
    else {
        return (unchanged, None);
    };
    let not_measured =
        "the containers it starts are not measured: this measures the docker CLI alone";
    let daemon = match daemon {
        Ok(daemon) => daemon,
        Err(reason) => {
            caveats.push(format!("{reason}; {not_measured}"));
            return (unchanged, None);
        }
    };
    let who = if podman { "podman" } else { "dockerd" };
    // With the systemd driver the containers' parent is the run's slice, by its unit name.
    let slice = cgroup.systemd_unit().map(str::to_string);
    match (daemon.cgroup_driver.as_str(), &slice) {
        ("cgroupfs", None) | ("systemd", Some(_)) => {}
        ("systemd", None) => {
            caveats.push(format!(
                "{who} {} uses the systemd cgroup driver, where a container's cgroup parent must be a systemd slice, and memfit could not start one ({}); {not_measured}",
                daemon.server_version,
                slice_failure.as_deref().unwrap_or("no reason given")
            ));
            return (unchanged, None);
        }
        (driver, _) => {
            caveats.push(format!(
                "{who} {} uses the {driver} cgroup driver, which memfit does not know; {not_measured}",
                daemon.server_version
            ));
            return (unchanged, None);
        }
    }
    let relative = slice.clone().unwrap_or_else(|| {
        format!(
            "/{}",
            cgroup
                .path()
                .strip_prefix(&hierarchy.mount)
                .unwrap_or(cgroup.path())
                .display()
        )
    });
    // For compose: whether it may build, and the Dockerfiles' texts (see ComposePlan).
    let mut compose_builds: Option<(bool, Option<Vec<String>>)> = None;
    let (command, compose_dir, env_defaults, path_prefix, kind) = match &compose {
        Some(compose) => {
            if !compose.starts_containers(&options.command) {
                caveats.push(format!(
                    "docker compose {} creates no container memfit can place; {not_measured}",
                    compose
                        .subcommand(&options.command)
                        .unwrap_or("without a subcommand")
                ));
                return (unchanged, None);
            }
            let env = |name: &str| std::env::var(name).ok();
            match compose.plan(&options.command, &relative, &env) {
                Ok(plan) => {
                    caveats.extend(plan.notes);
                    compose_builds = Some((plan.builds, plan.dockerfiles));
                    let kind = if plan.builds_only {
                        ContainerKind::BuildStep
                    } else {
                        ContainerKind::Container
                    };
                    (
                        plan.command,
                        Some(plan.dir),
                        plan.env_defaults,
                        plan.path_prefix,
                        kind,
                    )
                }
                Err(reason) => {
                    caveats.push(format!("docker compose: {reason}; {not_measured}"));
                    return (unchanged, None);
                }
            }
        }
        None => {
            let Some(command) = docker.with_cgroup_parent(&options.command, &relative) else {
                caveats.push(format!(
                    "the command gives its own --cgroup-parent; {not_measured}"
                ));
                return (unchanged, None);
            };
            let kind = match docker.action {
                DockerAction::Build => ContainerKind::BuildStep,
                DockerAction::Container | DockerAction::Compose => ContainerKind::Container,
            };
            (command, None, Vec::new(), None, kind)
        }
    };
    let command_leaf = match hierarchy.version {
        CgroupVersion::V2 => match cgroup.create_command_leaf() {
            Ok(leaf) => Some(leaf),
            Err(e) => {
                caveats.push(format!("the run's cgroup cannot give its containers a memory controller of their own ({e}): they count in the run's peak and limit, but have no watermark or OOM count of their own"));
                None
            }
        },
        CgroupVersion::V1 => None,
    };
    // dockerd's embedded BuildKit ignores --cgroup-parent: its steps are adopted, only this
    // build's where its Dockerfiles can be read (another client's build on the same dockerd
    // puts its steps there too: see build_owner). Podman's builds honour --cgroup-parent.
    let reader = options.dockerfiles.as_deref();
    let (adopt, own_steps) = match (&compose_builds, reader) {
        _ if podman => (false, None),
        (None, reader) if docker.action == DockerAction::Build => (
            true,
            reader.and_then(|r| OwnSteps::of_command(&options.command, r)),
        ),
        (None, _) => (false, None),
        (Some((false, _)), _) => (false, None),
        (Some((true, texts)), reader) => {
            let own = texts
                .as_deref()
                .zip(reader)
                .and_then(|(texts, r)| OwnSteps::of_texts(texts, r));
            // `build` adopts every step where its own cannot be told apart, as `docker build`
            // does; `up`/`run`/`create`, which may run long beside other clients' builds, only
            // the project's own.
            match own {
                Some(own) => (true, Some(own)),
                None if kind == ContainerKind::BuildStep => (true, None),
                // compose 1.x's classic builds go through memfit's docker wrapper (measured);
                // with BuildKit its steps are not.
                None if compose.as_ref().is_some_and(|c| c.v1)
                    && std::env::var("DOCKER_BUILDKIT").as_deref() != Ok("1") =>
                {
                    (false, None)
                }
                None => {
                    caveats.push("docker compose: the RUN steps of builds it runs with BuildKit are not measured: the project's Dockerfiles cannot all be read (a remote context, or compose 1.x, which does not name them), and steps of other builds on the same dockerd could not be told apart; measure the build alone with `memfit run -- docker compose build`".to_string());
                    (false, None)
                }
            }
        }
    };
    let (adopt_roots, step_name_prefix) = if adopt {
        let steps = docker::buildkit_steps(&daemon.cgroup_driver, hierarchy.version);
        (
            vec![hierarchy.mount.join(steps.dir.trim_start_matches('/'))],
            steps.name_prefix,
        )
    } else {
        (Vec::new(), String::new())
    };
    (
        command,
        Some(DockerRun {
            kind,
            adopt_roots,
            step_name_prefix,
            own_steps,
            // A slice's too: systemd removes it where it manages the controller, but on v1 runc
            // makes the container's path in the others itself (freezer, net_cls, perf_event…)
            // and leaves the slice's directory there (seen in the hybrid guest).
            paths_before: CgroupPathsBefore::record(
                &slice
                    .as_ref()
                    .map_or_else(|| relative.clone(), |s| format!("/{s}")),
                &hierarchy.mount,
            ),
            command_leaf,
            compose_dir,
            env_defaults,
            path_prefix,
            inspect_with: engine,
        }),
    )
}

/// A fresh cgroup for this run, named after its owner (memfit's pid, start time and PID
/// namespace, so that a later memfit can tell when it is gone) and the run's sequence number.
fn create_cgroup(hierarchy: &Hierarchy, options: &RunOptions) -> Result<OwnedCgroup, RunError> {
    let owner = CgroupOwner::current();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let created = owner
            .cgroup_name(RUN_SEQUENCE.fetch_add(1, Ordering::Relaxed))
            .and_then(|name| OwnedCgroup::create(hierarchy, &name, options.limit, options.swap));
        match created {
            // Swept the instant it was made by a memfit in another PID namespace: a new name.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempts < 3 => continue,
            other => {
                return other.map_err(|source| RunError::Cgroup {
                    parent: hierarchy.parent.display().to_string(),
                    source,
                })
            }
        }
    }
}

/// The run's cgroup as a transient systemd slice at the top of the hierarchy (see
/// [`memfit_sys::cgroup::systemd`]), and the hierarchy it is in; `Err` says why not.
fn create_slice(
    hierarchy: &Hierarchy,
    options: &RunOptions,
) -> Result<(Hierarchy, OwnedCgroup), String> {
    let name = CgroupOwner::current()
        .cgroup_name(RUN_SEQUENCE.fetch_add(1, Ordering::Relaxed))
        .map_err(|e| e.to_string())?;
    let unit = cgroup::systemd::slice_name(&name);
    let at_top = Hierarchy {
        parent: hierarchy.mount.clone(),
        ..hierarchy.clone()
    };
    OwnedCgroup::create_slice(
        &at_top,
        &unit,
        options.limit,
        options.swap,
        options.cpu_quota,
    )
    .map(|cgroup| (at_top, cgroup))
    .map_err(|e| e.to_string())
}

/// Applies a CPU quota: on cgroup v2 in the run's own cgroup (the cpu controller enabled for
/// children of its parent), on v1 in a cgroup of the same name in the CPU hierarchy, returned
/// with that hierarchy.
fn apply_cpu_quota(
    memory: &OwnedCgroup,
    hierarchy: Option<&Hierarchy>,
    quota: f64,
) -> Result<Option<(Hierarchy, OwnedCgroup)>, RunError> {
    let cgroup_error = |parent: &std::path::Path, source| RunError::Cgroup {
        parent: parent.display().to_string(),
        source,
    };
    match memory.version() {
        CgroupVersion::V2 => {
            let parent = hierarchy.map_or(memory.path(), |h| h.parent.as_path());
            cgroup::enable_for_children(parent, "cpu")
                .and_then(|()| memory.set_cpu_quota(quota))
                .map_err(|e| cgroup_error(parent, e))?;
            Ok(None)
        }
        CgroupVersion::V1 => {
            let cpu = Hierarchy::detect_controller("cpu").map_err(|reason| RunError::Cgroup {
                parent: "the cpu hierarchy".to_string(),
                source: std::io::Error::other(reason),
            })?;
            let name = memory
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let owned =
                OwnedCgroup::create_empty(&cpu, &name).map_err(|e| cgroup_error(&cpu.parent, e))?;
            owned
                .set_cpu_quota(quota)
                .map_err(|e| cgroup_error(&cpu.parent, e))?;
            Ok(Some((cpu, owned)))
        }
    }
}

/// `0-3,6` as the kernel writes CPU lists.
fn cpu_list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The CPUs memfit itself may run on (its affinity mask), in order.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills a zeroed cpu_set_t.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

fn cpu_set_of(cpus: &[usize]) -> libc::cpu_set_t {
    // SAFETY: CPU_SET on a zeroed set with in-range indices.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        set
    }
}
