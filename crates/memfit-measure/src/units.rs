//! The containers a run's command had Docker start: the child cgroups of the run's cgroup
//! (a container runtime's, given the run's cgroup as parent, or adopted BuildKit steps), each
//! with its own watermark, OOM kills, command and lifetime.

use std::collections::BTreeMap;

use memfit_sys::cgroup::CgroupFiles;
use memfit_sys::procfs;

use crate::report::{ContainerKind, ContainerRecord};

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
}

/// Every child cgroup seen during the run.
#[derive(Default)]
pub(crate) struct Units {
    known: BTreeMap<String, Unit>,
}

impl Units {
    /// One tick: new child cgroups are recorded, live ones read, gone ones ended.
    pub fn sample(&mut self, run: &CgroupFiles, kind: ContainerKind, now_ms: u64) {
        let children = run.children();
        for child in &children {
            let id = child
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let unit = self.known.entry(id.clone()).or_insert_with(|| Unit {
                files: child.clone(),
                record: ContainerRecord {
                    id,
                    kind,
                    command: Vec::new(),
                    peak_bytes: 0,
                    oom_kills: 0,
                    started_ms: now_ms,
                    ended_ms: None,
                },
                command_final: false,
            });
            unit.read();
        }
        for unit in self.known.values_mut() {
            if unit.record.ended_ms.is_none() && !children.contains(&unit.files) {
                unit.record.ended_ms = Some(now_ms);
            }
        }
    }

    /// Commands the adopter read while the steps ran, for steps too short for the samples.
    pub fn learn_commands(&mut self, commands: impl IntoIterator<Item = (String, Vec<String>)>) {
        for (id, command) in commands {
            if let Some(unit) = self.known.get_mut(&id) {
                if !unit.command_final && !command.is_empty() {
                    unit.command_final = !is_runtime_init(&command);
                    unit.record.command = command;
                }
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
        if !self.command_final {
            if let Some(argv) = self
                .files
                .pids_recursive()
                .into_iter()
                .min()
                .and_then(procfs::read_argv)
            {
                self.command_final = !is_runtime_init(&argv);
                self.record.command = argv;
            }
        }
    }
}
