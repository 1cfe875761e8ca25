use memfit_core::plan::{self, PlanInput, Runtime as PlanRuntime};
use memfit_core::ByteSize;

use super::{mib, node_version, Rule};
use crate::context::Context;
use crate::finding::{Edit, Finding, Severity};
use crate::runtime::{go, service};

pub const RULE: Rule = Rule {
    id: "gomemlimit-unset",
    severity: Severity::Warning,
    summary:
        "A Go service on a small container limit without GOMEMLIMIT, or with GOGC and no GOMEMLIMIT",
    doc: r#"## What it does
For a service whose Dockerfile builds a Go binary (`go build` or a `golang` stage), looks
for `GOMEMLIMIT` in the image's ENV, the platform's environment, the start command and the
scripts it runs. It reports:
- no `GOMEMLIMIT` on a container limit of 2 GiB or less,
- `GOGC` set (including `GOGC=off`) without `GOMEMLIMIT`, whatever the limit.

## Why is this bad?
The Go runtime does not read the container limit. Without a memory limit its GC lets the
heap grow to (1 + GOGC/100) × the live heap before collecting: twice the live data with the
default GOGC=100. A service whose live heap is 60% of the limit is killed at the next
growth, though a collection would have freed it. `GOMEMLIMIT` (Go 1.19+) makes the GC
collect harder as the total approaches the limit. Lowering `GOGC` alone only trades CPU for
a smaller multiple; `GOGC=off` without a limit never collects.

## Example
```toml
[env]
  GOGC = "50"   # fly.toml, 256 MB machine, no GOMEMLIMIT
```

## Use instead
```dockerfile
ENV GOMEMLIMIT=230MiB   # memfit plan --runtime go --limit 256M: 90% of the limit
```

## References
- The Go GC guide, "Memory limit" (leave 5–10% headroom):
  https://go.dev/doc/gc-guide#Memory_limit
- `runtime/debug.SetMemoryLimit`: https://pkg.go.dev/runtime/debug#SetMemoryLimit
"#,
    check,
};

/// memfit's choice: at or below this limit a Go service without `GOMEMLIMIT` is reported.
/// Above it the GC's doubling usually has room; `memfit plan --runtime go` still gives the
/// setting.
pub const SMALL_LIMIT: u64 = 2 * 1024 * 1024 * 1024;

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    let Some(service) = go::model(ctx) else {
        return;
    };
    let commands = service::commands(ctx);
    if service::env(ctx, &commands, "GOMEMLIMIT").is_some() {
        return;
    }
    let limit = ctx.limit_bytes();
    let soft = limit.and_then(|l| {
        plan::plan(&PlanInput {
            limit: ByteSize(l),
            runtime: PlanRuntime::Go,
            node_version: node_version(ctx),
            cgroup: ctx.cgroup(),
            workers: None,
            cpus: None,
            worker_size: None,
        })
        .promised_heap_bytes
    });
    let setting = soft.map(|s| format!("GOMEMLIMIT={}MiB", s / (1024 * 1024)));
    let advice = match &setting {
        Some(s) => format!("set {s} (memfit plan --runtime go: 90% of the limit, the Go GC guide's headroom)"),
        None => "set GOMEMLIMIT to about 90% of the container limit (memfit plan --runtime go --limit …)".to_string(),
    };
    if let Some(gogc) = service::env(ctx, &commands, "GOGC") {
        let what = if gogc.value.trim().eq_ignore_ascii_case("off") {
            "GOGC=off without GOMEMLIMIT: the GC never runs and the heap grows until the kernel kills the service".to_string()
        } else {
            format!("GOGC={} without GOMEMLIMIT: the GC still lets the heap grow to {}% over the live data whatever the container limit, and the kernel kills the service (exit 137) instead of the GC collecting harder near it", gogc.value.trim(), gogc.value.trim())
        };
        out.push(
            Finding::new(
                RULE.id,
                RULE.severity,
                gogc.file,
                gogc.span,
                format!("{what} ({})", gogc.place),
            )
            .advise(advice),
        );
        return;
    }
    let Some(limit) = limit.filter(|&l| l <= SMALL_LIMIT) else {
        return;
    };
    let source = ctx
        .limit
        .as_ref()
        .map(|l| l.description.clone())
        .unwrap_or_default();
    let finding = Finding::new(
        RULE.id,
        RULE.severity,
        service.dockerfile,
        service.final_from,
        format!(
            "a Go service on a {} limit ({source}) without GOMEMLIMIT: Go does not read the container limit, and its GC lets the heap grow to twice the live data (GOGC=100) before collecting",
            mib(limit)
        ),
    );
    out.push(match setting {
        Some(s) => finding.fix_with(
            advice,
            vec![Edit::insert(
                ctx.file(service.dockerfile).source.path.clone(),
                service.final_from.end,
                format!("\nENV {s}"),
            )],
        ),
        None => finding.advise(advice),
    });
}
