//! The RUN steps of a measured `docker build`, located in its Dockerfile: each container the
//! run measured is matched to the step that started it (by its command, else the next step
//! after the last one matched, for steps too short to be seen running).

use std::ffi::OsString;

use memfit_audit::dockerfile::{self, RunStep};
use memfit_measure::docker::DockerCommand;
use memfit_measure::{BuildStep, ContainerKind, RunReport};

/// Fills `report.steps` for a docker build whose Dockerfile can be read.
pub fn locate(report: &mut RunReport, command: &[OsString]) {
    let Some(path) = DockerCommand::recognize(command).and_then(|c| c.dockerfile(command)) else {
        return;
    };
    // A Dockerfile is small; anything larger is not one worth reading here.
    let Ok(source) = std::fs::read_to_string(&path) else {
        return;
    };
    if source.len() > 4 * 1024 * 1024 {
        return;
    }
    let steps = dockerfile::parse(&source).run_steps(&source);
    let file = path.display().to_string();
    let mut taken = vec![false; steps.len()];
    let mut last = None;
    for container in report
        .containers
        .iter()
        .filter(|c| c.kind == ContainerKind::BuildStep)
    {
        // By its command among the steps not yet matched (parallel stages start in any
        // order), else the next step after the last one matched.
        let by_command =
            (0..steps.len()).find(|&i| !taken[i] && steps[i].is_run_by(&container.command));
        let by_order = || {
            let from = last.map_or(0, |l| l + 1);
            (from..steps.len()).find(|&i| !taken[i])
        };
        let Some(index) = by_command.or_else(by_order) else {
            continue;
        };
        taken[index] = true;
        last = Some(index);
        report
            .steps
            .push(step_record(&steps[index], &file, container));
    }
    report.steps.sort_by_key(|s| s.index);
}

fn step_record(
    step: &RunStep,
    file: &str,
    container: &memfit_measure::ContainerRecord,
) -> BuildStep {
    let oom_killed = container.oom_kills > 0;
    BuildStep {
        instruction: step.instruction.clone(),
        file: file.to_string(),
        line: step.line,
        stage: step.stage.clone(),
        index: step.index,
        of: step.of,
        peak_bytes: container.peak_bytes,
        oom_killed,
        // An OOM kill is a SIGKILL: the builder reports 137.
        exit: oom_killed.then_some(137),
        started_ms: container.started_ms,
        duration_ms: container
            .ended_ms
            .unwrap_or(container.started_ms)
            .saturating_sub(container.started_ms),
    }
}
