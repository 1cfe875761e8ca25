//! The Go service: an image whose Dockerfile builds a Go binary (`go build`, a `golang`
//! stage), and the stage that ships it.

use crate::context::Context;
use crate::dockerfile::Span;
use crate::source::FileId;

/// A Go service built by the shipping Dockerfile.
#[derive(Debug, Clone)]
pub struct GoService {
    pub dockerfile: FileId,
    /// The FROM instruction of the final stage, where an `ENV GOMEMLIMIT` goes.
    pub final_from: Span,
}

/// Whether an image is the Go toolchain's.
fn is_golang_image(image: &str) -> bool {
    let name = image.split(['@', ':']).next().unwrap_or(image);
    name.rsplit('/').next() == Some("golang")
}

pub fn model(ctx: &Context) -> Option<GoService> {
    let id = ctx.runtime.dockerfile?;
    let view = ctx.dockerfiles().into_iter().find(|v| v.id == id)?;
    let builds_go = (0..view.stages.len()).any(|s| {
        is_golang_image(&view.stages[s].base)
            || view.stage_commands(s).iter().any(|c| {
                c.command.program() == Some("go")
                    && matches!(c.command.subcommand(), Some("build" | "install"))
            })
    });
    if !builds_go || ctx.runtime.is_node {
        return None;
    }
    let last = view.stages.last()?;
    Some(GoService {
        dockerfile: id,
        final_from: view.docker.instructions[last.from].span,
    })
}
