//! The RUN steps of a measured `docker build`, located in its Dockerfile: each container the
//! run measured is matched to the step that started it (by its command, else the next step
//! after the last one matched, for steps too short to be seen running). And the Dockerfile
//! reader memfit-measure is given to tell this build's BuildKit steps from another client's
//! (memfit-measure has no Dockerfile parser of its own: it is memfit-audit's).

use std::ffi::OsString;
use std::sync::Arc;

use memfit_audit::dockerfile::{self, RunStep};
use memfit_measure::build_owner::{DockerfileReader, RunInstruction};
use memfit_measure::docker::DockerCommand;
use memfit_measure::{BuildStep, ContainerKind, RunReport};

/// memfit-audit's Dockerfile parser, for the run's options.
#[derive(Debug)]
pub struct AuditDockerfiles;

/// A RUN step as memfit-audit reads it.
struct Step(RunStep);

impl RunInstruction for Step {
    fn instruction(&self) -> &str {
        &self.0.instruction
    }
    fn is_run_by(&self, argv: &[String]) -> bool {
        self.0.is_run_by(argv)
    }
}

impl DockerfileReader for AuditDockerfiles {
    fn run_steps(&self, source: &str) -> Option<Vec<Arc<dyn RunInstruction>>> {
        let parsed = dockerfile::parse(source);
        // A frontend image (`# syntax=`) or a RUN heredoc may start a step whose command is
        // not the instruction's text: then nothing is told apart.
        let run_heredoc = parsed
            .instructions
            .iter()
            .any(|i| i.keyword == dockerfile::Keyword::Run && !i.heredocs.is_empty());
        if run_heredoc || parsed.directives.iter().any(|d| d.name == "syntax") {
            return None;
        }
        Some(
            parsed
                .run_steps(source)
                .into_iter()
                .map(|step| Arc::new(Step(step)) as Arc<dyn RunInstruction>)
                .collect(),
        )
    }
}

/// The reader, as the run's options hold it.
pub fn reader() -> Option<Arc<dyn DockerfileReader>> {
    Some(Arc::new(AuditDockerfiles))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn the_audit_parser_tells_a_builds_steps_as_buildkit_starts_them() {
        let source = "FROM x\nRUN npm ci \\\n    --no-audit\nRUN [\"node\", \"b.js\"]\n";
        let steps = AuditDockerfiles.run_steps(source).unwrap();
        let instructions: Vec<&str> = steps.iter().map(|s| s.instruction()).collect();
        assert_eq!(
            instructions,
            ["RUN npm ci --no-audit", "RUN [\"node\", \"b.js\"]"]
        );
        // BuildKit joins a continued line as written.
        assert!(steps[0].is_run_by(&args(&["/bin/sh", "-c", "npm ci     --no-audit"])));
        assert!(steps[1].is_run_by(&args(&["node", "b.js"])));
        assert!(!steps[0].is_run_by(&args(&["/bin/sh", "-c", "node other.js"])));
    }

    #[test]
    fn steps_a_frontend_or_a_heredoc_may_rewrite_are_not_told_apart() {
        let syntax = "# syntax=docker/dockerfile:1\nFROM x\nRUN npm ci\n";
        assert!(AuditDockerfiles.run_steps(syntax).is_none());
        let heredoc = "FROM x\nRUN <<EOF\nnpm ci\nEOF\n";
        assert!(AuditDockerfiles.run_steps(heredoc).is_none());
    }
}
