//! Starting the command: the kernel's counters before it runs, the exit-record and kernel-log
//! listeners, the container view, and the child itself.

use std::sync::Arc;
use std::time::Instant;

use memfit_sys::cgroup::OomCounters;
use memfit_sys::{process, procfs};

use super::own_cost::OwnUsage;
use super::prepare::Prepared;
use super::{RunError, RunOptions};
use crate::container_view::{self, ViewOutcome};
use crate::docker::DockerCommand;
use crate::exec_events::ExecWatcher;
use crate::kmsg::KernelLog;
use crate::runtime_view::RuntimeView;
use crate::spawn::{self, SpawnPlan};
use crate::taskstats::ExitListener;
use crate::watch::{ContainerWatcher, WatchPlan};

/// The command, started, and what its supervision needs.
pub(super) struct Running {
    pub pid: i32,
    pub started: Instant,
    pub boot_ms_at_start: u64,
    pub own_usage_before: OwnUsage,
    /// The group's OOM counters before the command started.
    pub baseline: OomCounters,
    pub kernel_log: Option<KernelLog>,
    pub exit_listener: Option<ExitListener>,
    /// Command lines read at exec, for processes gone before a sample (root only).
    pub exec_watcher: Option<ExecWatcher>,
    /// Whether the command saw its cgroup as the root of /sys/fs/cgroup.
    pub container_view: bool,
    /// The host's runtime variables (NODE_OPTIONS…) that reached the command.
    pub inherited_env: Vec<String>,
    /// Watches the containers Docker starts, and adopts BuildKit's steps.
    pub watcher: Option<ContainerWatcher>,
    /// What the runtimes inside report (the Node preload's FIFO).
    pub runtime_view: Option<RuntimeView>,
}

const HOST_VIEW_EFFECT: &str = "runtimes that read the limit at the root of /sys/fs/cgroup (Node ≤ 20.2) size themselves from the host's RAM";

pub(super) fn start(options: &RunOptions, prepared: &mut Prepared) -> Result<Running, RunError> {
    let cgroup = prepared.cgroup.as_ref();
    let baseline = cgroup.map(|c| c.oom_counters()).unwrap_or_default();
    let kernel_log = cgroup.and_then(|_| KernelLog::open());
    let exit_listener = ExitListener::open().ok();
    let exec_watcher = exit_listener
        .as_ref()
        .and_then(|_| ExecWatcher::start().ok());
    if exit_listener.is_none() {
        prepared.caveats.push("no exit records (taskstats needs root): a process that lives and dies between two samples is missing from the process list, though its memory still counts in the charged peak".to_string());
    }
    // As subreaper, memfit adopts daemonized grandchildren, so they stay in the measured
    // tree (measure-only) and are reaped when killed.
    process::become_subreaper();

    // The command sees its cgroup as the root of the cgroup filesystem, as in a container.
    let view = match (&prepared.hierarchy, options.host_view) {
        (Some(memory), false) => {
            let mut hierarchies = vec![memory];
            hierarchies.extend(prepared.cpu_v1.as_ref().map(|(cpu, _)| cpu));
            match container_view::prepare(&hierarchies) {
                Ok((setup, report)) => Some((Arc::new(setup), report)),
                Err(error) => {
                    prepared.caveats.push(format!(
                        "the command sees the host's cgroup tree ({error}): {HOST_VIEW_EFFECT}"
                    ));
                    None
                }
            }
        }
        _ => None,
    };

    let mut environment = options.environment.build();
    // memfit's docker wrapper for compose's builds, first on PATH.
    if let Some(prefix) = prepared
        .docker
        .as_ref()
        .and_then(|d| d.path_prefix.as_ref())
    {
        let mut path = prefix.as_os_str().to_os_string();
        let existing = environment
            .entries
            .iter()
            .position(|e| e.as_encoded_bytes().starts_with(b"PATH="));
        match existing {
            Some(at) => {
                path.push(":");
                path.push(
                    <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(
                        &environment.entries[at].as_encoded_bytes()[5..],
                    ),
                );
                environment.entries.remove(at);
            }
            None => path.push(":/usr/local/bin:/usr/bin:/bin"),
        }
        let mut entry = std::ffi::OsString::from("PATH=");
        entry.push(path);
        environment.entries.push(entry);
    }
    // Compose's build path (COMPOSE_DOCKER_CLI_BUILD…), unless the user chose one.
    for (name, value) in prepared.docker.iter().flat_map(|d| &d.env_defaults) {
        let prefix = format!("{name}=");
        if !environment
            .entries
            .iter()
            .any(|e| e.as_encoded_bytes().starts_with(prefix.as_bytes()))
        {
            environment
                .entries
                .push(std::ffi::OsString::from(format!("{prefix}{value}")));
        }
    }
    // Containers do not inherit the environment: a docker command gets nothing injected.
    let docker = DockerCommand::recognize(&options.command).is_some();
    if docker && options.runtime_view && options.python_tracemalloc {
        prepared.caveats.push("--python-tracemalloc: nothing is injected into a docker command (containers do not inherit the environment), so its Python processes are not traced".to_string());
    }
    let runtime_view = if options.runtime_view && !docker {
        match RuntimeView::start(options.interval, options.python_tracemalloc) {
            Ok(view) => {
                view.inject(&mut environment.entries);
                Some(view)
            }
            Err(e) => {
                prepared.caveats.push(format!(
                    "no runtime view ({e}): the V8 heap and Buffers of Node processes are not told apart"
                ));
                None
            }
        }
    } else {
        None
    };
    let own_usage_before = OwnUsage::now();
    let boot_ms_at_start = procfs::boot_time_ms();
    let started = Instant::now();
    let watcher = match (&prepared.docker, cgroup) {
        (Some(docker), Some(cgroup)) => match ContainerWatcher::start(WatchPlan {
            run: (**cgroup).clone(),
            kind: docker.kind,
            started,
            adopt_roots: docker.adopt_roots.clone(),
            prefix: crate::units::ADOPTED_PREFIX,
            step_name_prefix: docker.step_name_prefix.clone(),
            own_steps: docker.own_steps.clone(),
        }) {
            Ok(watcher) => Some(watcher),
            Err(e) => {
                prepared.caveats.push(format!("cannot watch the containers Docker starts ({e}): they count in the run's peak but are not listed, and RUN steps of a builder that ignores --cgroup-parent are not measured"));
                None
            }
        },
        _ => None,
    };
    let spawned = spawn::spawn(&SpawnPlan {
        command: &prepared.command,
        stdio: options.stdio,
        memory_cgroup: cgroup,
        command_leaf: prepared
            .docker
            .as_ref()
            .and_then(|d| d.command_leaf.as_ref()),
        cpu_cgroup_v1: prepared.cpu_v1.as_ref().map(|(_, cgroup)| cgroup),
        cpu_set: prepared.cpu_set,
        view: view.as_ref().map(|(setup, _)| Arc::clone(setup)),
        pid: options.pid,
        init_program: options.init_program.as_deref(),
        env: &environment.entries,
    })?;
    prepared.caveats.extend(spawned.caveat);
    let container_view = match &view {
        Some((_, report)) => match report.outcome() {
            ViewOutcome::Entered => true,
            ViewOutcome::Failed(step) => {
                prepared.caveats.push(format!(
                    "the command sees the host's cgroup tree ({step} failed): {HOST_VIEW_EFFECT}"
                ));
                false
            }
        },
        None => false,
    };
    Ok(Running {
        pid: spawned.pid,
        started,
        boot_ms_at_start,
        own_usage_before,
        baseline,
        kernel_log,
        exit_listener,
        exec_watcher,
        container_view,
        inherited_env: environment.inherited_runtime,
        watcher,
        runtime_view,
    })
}
