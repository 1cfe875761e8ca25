use super::Rule;
use crate::context::Context;
use crate::dockerfile::Span;
use crate::finding::{Edit, Finding, Severity};
use crate::project::Kind;

pub const RULE: Rule = Rule {
    id: "cargo-fat-lto-small-builder",
    severity: Severity::Warning,
    summary: "Fat LTO in the release profile of a Rust service built in a Dockerfile",
    doc: r#"## What it does
Reports `lto = true` or `lto = "fat"` in `[profile.release]` of a Cargo.toml when a
Dockerfile of the project runs `cargo build` (a container or PaaS builder, typically 2–8 GB).

## Why is this bad?
Fat LTO links the whole program as one unit: with `codegen-units = 1` and debug info, peak
linker memory went past about 20 GB (paradedb#4955), and LTO linking OOM-killed rustc in CI
(linera#5909). Thin LTO gets most of the speed for a fraction of the memory.

## Example
```toml
[profile.release]
lto = "fat"
codegen-units = 1
```

## Use instead
```toml
[profile.release]
lto = "thin"
```
"#,
    check,
};

fn builds_rust_in_docker(ctx: &Context) -> bool {
    ctx.dockerfiles().iter().any(|v| {
        (0..v.stages.len()).any(|s| {
            v.stage_commands(s).iter().any(|c| {
                c.command.program() == Some("cargo")
                    && matches!(c.command.subcommand(), Some("build" | "install"))
            })
        })
    })
}

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    if !builds_rust_in_docker(ctx) {
        return;
    }
    for (id, file) in ctx.project.of_kind(Kind::CargoToml) {
        let Some(doc) = ctx.project.toml(id) else {
            continue;
        };
        let Some(lto) = doc
            .get("profile")
            .and_then(|p| p.get("release"))
            .and_then(|r| r.get("lto"))
        else {
            continue;
        };
        let fat = lto.as_bool() == Some(true) || lto.as_str() == Some("fat");
        if !fat {
            continue;
        }
        let Some(range) = lto.span() else { continue };
        let span = Span::new(range.start, range.end);
        let units = doc
            .get("profile")
            .and_then(|p| p.get("release"))
            .and_then(|r| r.get("codegen-units"))
            .and_then(|c| c.as_integer());
        let extra = if units == Some(1) {
            " with codegen-units = 1"
        } else {
            ""
        };
        out.push(
            Finding::new(RULE.id, RULE.severity, id, span, format!("fat LTO{extra} in [profile.release]: linking can need many GB (past 20 GB in paradedb#4955) on a container builder"))
                .fix_with("use thin LTO: lto = \"thin\"", vec![Edit::replace(file.source.path.clone(), span, "\"thin\"")]),
        );
    }
}
