use std::path::Path;

use super::Rule;
use crate::context::Context;
use crate::dockerfile::Keyword;
use crate::finding::{Finding, Severity};

pub const RULE: Rule = Rule {
    id: "cargo-unbounded-jobs-small-builder",
    severity: Severity::Warning,
    summary: "`cargo build` in a Dockerfile with no job limit: one rustc per builder CPU at once",
    doc: r#"## What it does
Finds `cargo build` / `cargo install` in a Dockerfile RUN with no `-j`/`--jobs`, no
`CARGO_BUILD_JOBS` (ENV, ARG or inline) and no `build.jobs` in `.cargo/config.toml`.

## Why is this bad?
Cargo runs one rustc per CPU the builder shows, and each can take gigabytes on large crates:
`CARGO_BUILD_JOBS=1` fixed SIGKILLed Docker builds (tinyhumansai/openhuman#2420), and an OOM
at `jobs=2` on a 24 GB host (rubentalstra/FerroEHR#2883). PaaS builders often show more
CPUs than their memory can feed.

## Example
```dockerfile
RUN cargo build --release
```

## Use instead
```dockerfile
ARG CARGO_BUILD_JOBS=2
RUN cargo build --release
```
`memfit bisect -- cargo build --release` finds the memory a given job count needs. With
`[build] limit` and `cpus` in memfit.toml, `cargo-build-over-limit` estimates the jobs
against the builder's memory instead of this rule.
"#,
    check,
};

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    // With the builder's CPUs and memory known (memfit.toml [build]),
    // cargo-build-over-limit estimates the jobs against the memory instead.
    if ctx.build.as_ref().is_some_and(|b| b.cpus.is_some()) {
        return;
    }
    let configured = ["/.cargo/config.toml", "/.cargo/config"].iter().any(|p| {
        crate::project::read_inside(&ctx.project.root, Path::new(p.trim_start_matches('/')))
            .is_ok_and(|t| String::from_utf8_lossy(&t).contains("jobs"))
    });
    if configured {
        return;
    }
    for view in ctx.dockerfiles() {
        for stage in 0..view.stages.len() {
            let env_jobs = {
                let mut found = false;
                for i in view
                    .docker
                    .stage_instructions(&view.stages[stage])
                    .iter()
                    .chain(
                        view.docker
                            .instructions
                            .iter()
                            .take_while(|i| i.keyword != Keyword::From),
                    )
                {
                    if matches!(i.keyword, Keyword::Env | Keyword::Arg)
                        && i.args().contains("CARGO_BUILD_JOBS")
                    {
                        found = true;
                    }
                }
                found
            };
            if env_jobs {
                continue;
            }
            for run in view.stage_commands(stage) {
                let c = &run.command;
                if c.program() != Some("cargo")
                    || !matches!(c.subcommand(), Some("build" | "install"))
                {
                    continue;
                }
                if c.has_option(&["-j", "--jobs"])
                    || c.args().iter().any(|w| w.text.starts_with("-j"))
                    || c.assignments().any(|(n, _)| n == "CARGO_BUILD_JOBS")
                {
                    continue;
                }
                out.push(
                    Finding::new(RULE.id, RULE.severity, view.id, run.command_span(), "`cargo build` runs one rustc per builder CPU at once, with no job limit")
                        .advise("limit the jobs to what the builder's memory holds: ARG CARGO_BUILD_JOBS=2 (measure with memfit bisect)"),
                );
            }
        }
    }
}
