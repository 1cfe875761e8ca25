use memfit_core::node::{BASELINE_RSS, NATIVE_OVERHEAD};
use memfit_core::ByteSize;

use super::{mib, node_plan, node_version, Rule};
use crate::context::Context;
use crate::finding::{Finding, Severity};
use crate::runtime::Workers;

pub const RULE: Rule = Rule {
    id: "workers-times-heap-over-limit",
    severity: Severity::Error,
    summary: "Workers × (heap + native memory) exceed the container limit",
    doc: r#"## What it does
When the service runs several Node processes (`WEB_CONCURRENCY`, `pm2 -i N`), multiplies the
per-process need (the heap cap, or Node's default heap when there is none, plus the young
generation and ~55 MiB of native memory) by the worker count and compares it with the limit.

## Why is this bad?
Each worker is a separate process with its own heap: the heap cap applies per process, not to
the container. Heroku's buildpacks set `WEB_CONCURRENCY` from the dyno size for this reason
(heroku-buildpack-python#1547). Four workers with a 384 MiB cap on a 512 MB plan can use
1.7 GB before any of them collects.

## Example
```toml
[env]
WEB_CONCURRENCY = "4"
NODE_OPTIONS = "--max-old-space-size=384"   # fly.toml, 512 MB machine
```

## Use instead
`memfit plan --limit 512M --workers 2` prints a heap cap per worker that fits, or says how
many workers fit at all.
"#,
    check,
};

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    // WEB_CONCURRENCY also sizes Python servers (python-workers-over-limit).
    if !ctx.runtime.is_node {
        return;
    }
    let Some(limit) = ctx.limit_bytes() else {
        return;
    };
    let Some(Workers {
        count: workers,
        place,
        file,
        span,
    }) = ctx.runtime.workers.clone()
    else {
        return;
    };
    if workers < 2 {
        return;
    }
    let version = node_version(ctx);
    let young = 3 * version.default_semi_space(ByteSize(limit)).bytes();
    let heap = match ctx
        .runtime
        .effective_heap()
        .and_then(|o| o.flags.old_space_bytes(Some(limit)))
    {
        Some(old) => old + young,
        None => version.heap_size_limit(ByteSize(limit), None, None).bytes(),
    };
    let each = heap + NATIVE_OVERHEAD.bytes();
    let total = each * u64::from(workers) + BASELINE_RSS.bytes();
    if total <= limit {
        return;
    }
    let budget = node_plan(ctx, limit);
    let advice = if budget.fits() {
        let cap = budget
            .lines
            .iter()
            .find(|l| l.item.starts_with("old space"))
            .map(|l| l.bytes / (1024 * 1024))
            .unwrap_or_default();
        format!("cap each worker's heap at --max-old-space-size={cap} (memfit plan --workers {workers}), or run fewer workers")
    } else {
        budget.problems.join(" ")
    };
    out.push(
        Finding::new(
            RULE.id,
            RULE.severity,
            file,
            span,
            format!(
                "{workers} workers ({place}) × {} each (heap {} + native ~{}) + the primary = {}, more than the {} limit",
                mib(each),
                mib(heap),
                mib(NATIVE_OVERHEAD.bytes()),
                mib(total),
                mib(limit)
            ),
        )
        .advise(advice),
    );
}
