use memfit_core::node::NATIVE_OVERHEAD;

use super::{mib, node_plan, node_version, old_space_edit, recommended_old_space_mib, Rule};
use crate::context::Context;
use crate::finding::{Finding, Severity};

pub const RULE: Rule = Rule {
    id: "heap-over-limit",
    severity: Severity::Error,
    summary: "The Node heap cap is at or above the container limit, or leaves under a quarter of it for memory outside the heap",
    doc: r#"## What it does
Compares the heap cap that wins at runtime (`--max-old-space-size` or
`--max-old-space-size-percentage`, wherever it is set) with the container's memory limit
(fly.toml, render.yaml, app.json, compose, Kubernetes, or `--limit`). With several workers, a
cap that fits the limit but not times the workers is reported once, by
`workers-times-heap-over-limit`.

## Why is this bad?
The flag caps V8's old generation only. The young generation, code, stacks and every Buffer
live outside it: a process near a 200 MiB cap measured RSS = heapTotal + 34 MiB, and 300 MiB
of Buffers under a 64 MiB cap gave RSS 340 MiB with no V8 error (`bench/node_flag_effects.sh`,
Node 20.20).
A cap at or near the limit means the kernel kills the process (exit 137) before V8 ever
collects hard. The common practice, and Node's own docs (1536 MiB on a 2 GiB machine), leave
about 25% of the limit outside the heap.

## Example
```dockerfile
ENV NODE_OPTIONS=--max-old-space-size=512   # on Render's 512 MB starter plan
```

## Use instead
```dockerfile
ENV NODE_OPTIONS=--max-old-space-size=384   # memfit plan --platform render:starter
```

## References
- `memfit plan` prints the full budget for the limit.
- Node.js docs, `--max-old-space-size`: https://nodejs.org/api/cli.html#--max-old-space-sizesize-in-mib
- TryGhost/ActivityPub#2038: https://github.com/TryGhost/ActivityPub/pull/2038
"#,
    check,
};

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    let Some(limit) = ctx.limit_bytes() else {
        return;
    };
    let Some(effective) = ctx.runtime.effective_heap() else {
        return;
    };
    // One finding per problem: with several workers, a heap that fits the limit alone but
    // not times the workers is workers-times-heap-over-limit's finding.
    let Some(old) = effective.flags.old_space_bytes(Some(limit)) else {
        return;
    };
    // 80%: the common 75% plus rounding slack (384 MiB of 512 passes, 420 does not).
    if old * 100 <= limit * 80 {
        return;
    }
    let version = node_version(ctx);
    let young = 3 * version
        .default_semi_space(memfit_core::ByteSize(limit))
        .bytes();
    let total = old + young + NATIVE_OVERHEAD.bytes();
    let source = ctx
        .limit
        .as_ref()
        .map(|l| l.description.clone())
        .unwrap_or_default();
    let what = if old >= limit {
        "at or above"
    } else {
        "too close to"
    };
    let message = format!(
        "heap cap {} ({}) is {what} the {} container limit ({source}): with the young generation ({}) and native memory (~{}) the process needs ~{} before any Buffer, so the kernel kills it (exit 137) before V8 collects",
        mib(old),
        effective.place,
        mib(limit),
        mib(young),
        mib(NATIVE_OVERHEAD.bytes()),
        mib(total)
    );
    let mut finding = Finding::new(
        RULE.id,
        RULE.severity,
        effective.file,
        effective.span,
        message,
    );
    match recommended_old_space_mib(ctx, limit) {
        Some(rec) => {
            let description = format!("set --max-old-space-size={rec} (memfit plan: 75% of the share, the rest for young generation, native memory and Buffers)");
            finding = match (
                effective.flags.old_space_percentage(),
                old_space_edit(ctx, effective, rec),
            ) {
                (None, Some(edit)) => finding.fix_with(description, vec![edit]),
                _ => finding.advise(description),
            };
        }
        None => {
            let budget = node_plan(ctx, limit);
            finding = finding.advise(budget.problems.join(" "));
        }
    }
    out.push(finding);
}
