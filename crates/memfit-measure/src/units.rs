//! The containers a run's command had Docker start: the child cgroups of the run's cgroup
//! (a container runtime's, given the run's cgroup as parent, or adopted BuildKit steps), each
//! with its own watermark, OOM kills, command and lifetime.

use std::collections::BTreeMap;

use memfit_sys::cgroup::{CgroupFiles, COMMAND_LEAF};
use memfit_sys::procfs;

use crate::report::{ContainerKind, ContainerRecord};

/// The name of a BuildKit step's cgroup once adopted below the run's: this prefix and the
/// name dockerd gave it.
pub(crate) const ADOPTED_PREFIX: &str = "buildkit-";

/// The cgroup below the run's that the builds of docker-compose 1.x are given as their
/// `--cgroup-parent` (by memfit's docker wrapper): each RUN step's container is a child of it,
/// told from the services' containers beside it.
pub(crate) const BUILD_PARENT: &str = "compose-build";

/// What `runc` shows before it execs the container's command.
pub(crate) fn is_runtime_init(argv: &[String]) -> bool {
    argv.first()
        .is_some_and(|p| p.ends_with("runc") || p.starts_with("runc:"))
        || argv.get(1).is_some_and(|a| a == "init")
}

struct Unit {
    files: CgroupFiles,
    record: ContainerRecord,
    /// The command is the container's own (after the runtime's init exec'd it).
    command_final: bool,
    /// The process the command was read from.
    command_pid: Option<i32>,
    /// It has held processes: once empty again it has ended, even while its cgroup stays (an
    /// adopted step's, which memfit removes at the end).
    populated: bool,
}

/// What the adopter saw of one step.
pub(crate) struct Seen {
    pub id: String,
    pub command: Vec<String>,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
}

/// Every child cgroup seen during the run.
#[derive(Default)]
pub(crate) struct Units {
    known: BTreeMap<String, Unit>,
}

impl Units {
    /// One tick: new child cgroups are recorded, live ones read, gone ones ended.
    pub fn sample(&mut self, run: &CgroupFiles, kind: ContainerKind, now_ms: u64) {
        // The docker CLI's own leaf (v2) is not a container, nor podman's monitor (conmon,
        // which podman puts in `<cgroup parent>/conmon` with the cgroupfs manager).
        let mut children: Vec<(CgroupFiles, ContainerKind)> = Vec::new();
        for child in run.children() {
            let name = child
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match name.as_str() {
                COMMAND_LEAF | "conmon" => {}
                _ if name == BUILD_PARENT || name.ends_with("-compose_build.slice") => children
                    .extend(
                        child
                            .children()
                            .into_iter()
                            .map(|step| (step, ContainerKind::BuildStep)),
                    ),
                _ if name.starts_with(ADOPTED_PREFIX) => {
                    children.push((child, ContainerKind::BuildStep))
                }
                _ => children.push((child, kind)),
            }
        }
        for (child, kind) in &children {
            let kind = *kind;
            let id = child
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let unit = self.known.entry(id.clone()).or_insert_with(|| Unit {
                files: child.clone(),
                record: ContainerRecord {
                    id,
                    name: None,
                    kind,
                    command: Vec::new(),
                    peak_bytes: 0,
                    oom_kills: 0,
                    started_ms: now_ms,
                    ended_ms: None,
                },
                command_final: false,
                command_pid: None,
                populated: false,
            });
            // A cgroup that empties between the steps it runs (buildah runs a build's steps one
            // after another in one) has not ended while another step runs in it.
            if unit.record.ended_ms.is_some() && !unit.files.pids_recursive().is_empty() {
                unit.record.ended_ms = None;
            }
            if unit.record.ended_ms.is_none() {
                unit.read();
            }
        }
        for unit in self.known.values_mut() {
            let emptied = unit.populated && unit.files.pids_recursive().is_empty();
            let gone = !children.iter().any(|(files, _)| *files == unit.files);
            if unit.record.ended_ms.is_none() && (emptied || gone) {
                unit.record.ended_ms = Some(now_ms);
            }
        }
    }

    /// How long ago the most recent container still running started; `None` when none runs.
    pub fn youngest_age_ms(&self, now_ms: u64) -> Option<u64> {
        self.known
            .values()
            .filter(|u| u.record.ended_ms.is_none())
            .map(|u| now_ms.saturating_sub(u.record.started_ms))
            .min()
    }

    /// What the adopter saw of the steps it moved, closer than the samples: the command a
    /// short step ran, and when each started and ended (in ms from the run's start).
    pub fn learn(&mut self, seen: impl IntoIterator<Item = Seen>) {
        for seen in seen {
            let Some(unit) = self.known.get_mut(&seen.id) else {
                continue;
            };
            if !unit.command_final && !seen.command.is_empty() {
                unit.command_final = !is_runtime_init(&seen.command);
                unit.record.command = seen.command;
            }
            unit.record.started_ms = seen.started_ms;
            if let Some(ended) = seen.ended_ms {
                unit.record.ended_ms = Some(ended);
            }
        }
    }

    pub fn finish(self, now_ms: u64) -> Vec<ContainerRecord> {
        let mut records: Vec<ContainerRecord> = self
            .known
            .into_values()
            .map(|mut unit| {
                unit.read();
                unit.record.ended_ms.get_or_insert(now_ms);
                unit.record
            })
            .collect();
        records.sort_by_key(|r| r.started_ms);
        records
    }
}

impl Unit {
    fn read(&mut self) {
        if let Some(peak) = self.files.peak() {
            self.record.peak_bytes = self.record.peak_bytes.max(peak);
        }
        self.record.oom_kills = self
            .record
            .oom_kills
            .max(self.files.oom_counters().oom_kill);
        let pids = self.files.pids_recursive();
        self.populated |= !pids.is_empty();
        // A container's command is its first process's, which lives as long as it does; a
        // builder that runs one step after another in one cgroup (buildah, under podman build)
        // starts a new first process for each step: the command is then the latest step's, the
        // one a kill at the limit hits (the first step's, when memfit happened to see it run,
        // named the wrong line).
        let first_gone = self.command_pid.is_some_and(|pid| !pids.contains(&pid));
        if !self.command_final || first_gone {
            if let Some(pid) = pids.iter().copied().min() {
                if let Some(argv) = procfs::read_argv(pid) {
                    let init = is_runtime_init(&argv);
                    if !self.command_final || !init {
                        self.command_final = !init;
                        self.record.command = argv;
                        self.command_pid = Some(pid);
                    }
                }
            }
        }
    }
}
