use std::path::Path;

use super::{mib, Rule};
use crate::context::{Context, DockerfileView};
use crate::dockerfile::Keyword;
use crate::finding::{Edit, Finding, Severity};
use crate::project::Kind;
use crate::runtime::service::value_after;

pub const RULE: Rule = Rule {
    id: "cargo-build-over-limit",
    severity: Severity::Error,
    summary: "`cargo build` in a Dockerfile runs more rustc jobs than the builder's memory holds",
    doc: r#"## What it does
When memfit.toml says what the builder has (`[build] limit = "4G"`, `cpus = 4`), estimates
each `cargo build` / `cargo install` of a Dockerfile RUN step: the jobs cargo runs at once
(`-j N`, `CARGO_BUILD_JOBS` inline or in ENV/ARG, `build.jobs` in `.cargo/config.toml`,
else one per builder CPU) × 1.5 GiB a rustc job, against the builder's memory. Fat LTO
(`lto = true`/`"fat"`) and `codegen-units = 1` in `[profile.release]` are named in the
finding: they make the final codegen and link one process that holds the whole program, on
top of the estimate.

memfit counts 1.5 GiB a job: the Agama project measured a `cargo build -j1` peak of 1.1 GB
and budgets 1.3 GB a job (agama-project/agama#1939); crater found all but ten of the top
1,000 crates build within 4 GB once the job count is limited, the ten having a link step
past 1.5 GB (rust-lang/crater#599). Measure yours with `memfit run -- cargo build
--release -j1` and `memfit bisect`.

## Why is this bad?
Cargo starts one rustc per CPU, whatever the memory: a 32-CPU runner with 128 GiB ran 32
rustc at ~5 GiB each and the kernel killed them (tsz-org/tsz#1387), and `CARGO_BUILD_JOBS=1`
fixed SIGKILLed Docker builds (tinyhumansai/openhuman#2420). More jobs than CPUs add
memory and no speed.

## Example
```toml
# memfit.toml
[build]
limit = "4G"
cpus = 8
```
```dockerfile
RUN cargo build --release   # 8 jobs × 1.5 GiB = 12 GiB on a 4 GB builder
```

## Use instead
```dockerfile
RUN cargo build --release -j 2
```

## References
- Cargo's `--jobs` and `build.jobs`: https://doc.rust-lang.org/cargo/reference/config.html#buildjobs
- Limiting parallelism by memory, cargo's open issue: https://github.com/rust-lang/cargo/issues/12912
- agama-project/agama#1939: https://github.com/agama-project/agama/pull/1939
- rust-lang/crater#599: https://github.com/rust-lang/crater/pull/599
"#,
    check,
};

/// memfit's figure for one rustc job (see the rule's documentation for the sources).
pub const RUSTC_JOB: u64 = 3 * 512 * 1024 * 1024;

/// `jobs = N` in the project's `.cargo/config.toml`.
fn config_jobs(ctx: &Context) -> Option<u32> {
    ["/.cargo/config.toml", "/.cargo/config"]
        .iter()
        .find_map(|p| {
            let bytes = crate::project::read_inside(
                &ctx.project.root,
                Path::new(p.trim_start_matches('/')),
            )
            .ok()?;
            let doc =
                toml_edit::Document::parse(String::from_utf8_lossy(&bytes).into_owned()).ok()?;
            doc.get("build")?
                .get("jobs")?
                .as_integer()
                .and_then(|n| u32::try_from(n).ok())
        })
}

/// `CARGO_BUILD_JOBS` from ENV/ARG in a stage or before the first FROM: (jobs, span of the
/// number).
fn env_jobs(
    ctx: &Context,
    view: &DockerfileView,
    stage: usize,
) -> Option<(u32, crate::dockerfile::Span)> {
    let text = &ctx.file(view.id).source.text;
    let globals = view
        .docker
        .instructions
        .iter()
        .take_while(|i| i.keyword != Keyword::From);
    let mut found = None;
    for i in globals.chain(view.docker.stage_instructions(&view.stages[stage])) {
        if !matches!(i.keyword, Keyword::Env | Keyword::Arg) {
            continue;
        }
        for (name, value, start, end) in crate::runtime::env_pairs(i.args()) {
            if name == "CARGO_BUILD_JOBS" {
                if let Ok(n) = value.parse() {
                    let span = i.source_span(i.args_start + start, i.args_start + end);
                    let number =
                        value_after(text, span, "CARGO_BUILD_JOBS=", |c| c.is_ascii_digit());
                    found = Some((n, number.unwrap_or(span)));
                }
            }
        }
    }
    found
}

/// Fat LTO and one codegen unit in `[profile.release]`, for the message.
fn release_profile(ctx: &Context) -> Vec<&'static str> {
    let mut out = Vec::new();
    for (id, _) in ctx.project.of_kind(Kind::CargoToml) {
        let Some(release) = ctx
            .project
            .toml(id)
            .and_then(|d| d.get("profile"))
            .and_then(|p| p.get("release"))
        else {
            continue;
        };
        let lto = release.get("lto");
        if lto.is_some_and(|l| l.as_bool() == Some(true) || l.as_str() == Some("fat"))
            && !out.contains(&"fat LTO")
        {
            out.push("fat LTO");
        }
        if release.get("codegen-units").and_then(|c| c.as_integer()) == Some(1)
            && !out.contains(&"codegen-units = 1")
        {
            out.push("codegen-units = 1");
        }
    }
    out
}

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    let Some(build) = ctx.build.clone() else {
        return;
    };
    let from_config = config_jobs(ctx);
    let profile = release_profile(ctx);
    for view in ctx.dockerfiles() {
        let text = &ctx.file(view.id).source.text;
        for stage in 0..view.stages.len() {
            let env = env_jobs(ctx, &view, stage);
            for run in view.stage_commands(stage) {
                let c = &run.command;
                if c.program() != Some("cargo")
                    || !matches!(c.subcommand(), Some("build" | "install"))
                {
                    continue;
                }
                let args: Vec<&str> = c.args().iter().map(|w| w.text.as_str()).collect();
                let flag = args.iter().enumerate().find_map(|(i, a)| {
                    let v = match *a {
                        "-j" | "--jobs" => args.get(i + 1).copied(),
                        _ => a
                            .strip_prefix("--jobs=")
                            .or_else(|| a.strip_prefix("-j").filter(|r| !r.is_empty())),
                    };
                    v.and_then(|v| v.parse::<u32>().ok())
                });
                let inline = c
                    .assignments()
                    .find(|(n, _)| *n == "CARGO_BUILD_JOBS")
                    .and_then(|(_, v)| v.parse::<u32>().ok());
                let span = run.command_span();
                // Where the number is written, when memfit can rewrite it.
                let (jobs, how, number) = if let Some(n) = flag {
                    let at = value_after(text, span, "--jobs", |c| c.is_ascii_digit())
                        .or_else(|| value_after(text, span, "-j", |c| c.is_ascii_digit()));
                    (n, format!("-j {n}"), at)
                } else if let Some(n) = inline {
                    let at = value_after(text, span, "CARGO_BUILD_JOBS=", |c| c.is_ascii_digit());
                    (n, format!("CARGO_BUILD_JOBS={n}"), at)
                } else if let Some((n, at)) = env {
                    (
                        n,
                        format!("CARGO_BUILD_JOBS={n} in the Dockerfile"),
                        Some(at),
                    )
                } else if let Some(n) = from_config {
                    (n, format!("build.jobs = {n} in .cargo/config.toml"), None)
                } else if let Some(n) = build.cpus {
                    (n, format!("no job limit: one per builder CPU ({n})"), None)
                } else {
                    continue;
                };
                let need = u64::from(jobs) * RUSTC_JOB;
                if need <= build.bytes {
                    continue;
                }
                let fit = (build.bytes / RUSTC_JOB).max(1) as u32;
                let over_cpus = match build.cpus {
                    Some(cpus) if jobs > cpus => {
                        format!("; {jobs} jobs on {cpus} CPUs add memory and no speed")
                    }
                    _ => String::new(),
                };
                let profile_note = if profile.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; {} in [profile.release] make the final codegen and link one process holding the whole program, on top of this",
                        profile.join(" and ")
                    )
                };
                let message = format!(
                    "`cargo {}` runs {jobs} rustc job(s) at once ({how}) × ~{} each = {}, more than the builder's {} ({}){over_cpus}{profile_note}",
                    c.subcommand().unwrap_or_default(),
                    mib(RUSTC_JOB),
                    mib(need),
                    mib(build.bytes),
                    build.description,
                );
                let finding = Finding::new(RULE.id, RULE.severity, view.id, span, message);
                let description = format!(
                    "run {fit} job(s): {fit} × ~{} fit in {} (measure with memfit bisect -- cargo build --release)",
                    mib(RUSTC_JOB),
                    mib(build.bytes)
                );
                out.push(match number {
                    Some(at) => finding.fix_with(
                        description,
                        vec![Edit::replace(
                            ctx.file(view.id).source.path.clone(),
                            at,
                            fit.to_string(),
                        )],
                    ),
                    None => finding.advise(format!(
                        "{description}: add -j {fit} to this command or ARG CARGO_BUILD_JOBS={fit}"
                    )),
                });
            }
        }
    }
}
