use memfit_core::node::NATIVE_OVERHEAD;
use memfit_core::ByteSize;

use super::{mib, node_version, recommended_old_space_mib, Rule, ASSUMED_NODE};
use crate::context::Context;
use crate::dockerfile::{Keyword, Span};
use crate::finding::{Edit, Finding, Severity};
use crate::runtime::env_pairs;

pub const RULE: Rule = Rule {
    id: "heap-unset-small-limit",
    severity: Severity::Error,
    summary: "No heap cap where Node's default heap cannot fit: a small container, or a Node version that ignores cgroup v2 limits",
    doc: r#"## What it does
Fires when a Node service sets no `--max-old-space-size` anywhere (Dockerfile ENV or CMD,
package.json scripts, .npmrc, the platform's environment) and either
- the container is so small that Node's default heap does not fit in it, or
- the Node version does not read cgroup v2 limits and sizes its heap from the host's RAM.

## Why is this bad?
V8 gives the old generation half the memory it sees but never less than 256 MiB. Measured
under real cgroup limits (docs/node-heap.md): Node 18–25 report a 259 MiB heap limit in 128,
256 and 512 MiB containers, Node 26 262–268 MiB. In a 256 MiB container the heap may grow past
the container itself, so the kernel kills the process (exit 137) before V8 collects hard.
Node before 20.3 (libuv < 1.45) does not read cgroup v2 limits at all (nodejs/node#47259):
on a 16 GiB host it allows a 4 GiB heap in any container.

## Example
```dockerfile
FROM node:18-alpine        # on Fly.io's default 256 MB machine
CMD ["node", "server.js"]
```

## Use instead
```dockerfile
FROM node:18-alpine
ENV NODE_OPTIONS="--max-old-space-size=144"
CMD ["node", "server.js"]
```
`memfit plan --limit 256M --node-version 18` prints the whole budget.
"#,
    check,
};

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    if !ctx.runtime.is_node || ctx.runtime.effective_heap().is_some() {
        return;
    }
    let version = node_version(ctx);
    let version_text = ctx
        .runtime
        .node_version
        .as_ref()
        .map(|v| format!("Node {} ({})", v.text, v.place))
        .unwrap_or_else(|| format!("Node (version not found; assumed {ASSUMED_NODE})"));
    let cgroup_blind = ctx.node_version().is_some() && !version.sees_limit(ctx.cgroup());
    let limit = ctx.limit_bytes();
    let default_heap = limit.map(|l| version.heap_size_limit(ByteSize(l), None, None).bytes());
    let too_small = match (limit, default_heap) {
        (Some(l), Some(h)) => h + NATIVE_OVERHEAD.bytes() > l,
        _ => false,
    };
    if !(too_small || cgroup_blind) {
        return;
    }
    let source = ctx
        .limit
        .as_ref()
        .map(|l| l.description.clone())
        .unwrap_or_default();
    let message = if cgroup_blind {
        format!(
            "no heap cap, and {version_text} does not read cgroup v2 limits: it sizes the heap from the host's RAM (a 4 GiB heap on a 16 GiB host){}",
            limit.map(|l| format!(", far above the {} limit ({source})", mib(l))).unwrap_or_default()
        )
    } else {
        format!(
            "no heap cap: {version_text} allows a {} heap in this {} container ({source}); with ~{} of native memory beside it, the kernel kills the process before V8 collects",
            mib(default_heap.unwrap_or_default()),
            mib(limit.unwrap_or_default()),
            mib(NATIVE_OVERHEAD.bytes())
        )
    };
    // Where to report: the shipped stage's CMD, else the start command, else the version.
    let (file, span) = ctx
        .runtime
        .start
        .first()
        .map(|s| (s.file, s.span))
        .or_else(|| ctx.runtime.node_version.as_ref().map(|v| (v.file, v.span)))
        .unwrap_or((0, Span::default()));
    if ctx.project.files.is_empty() {
        return;
    }
    let mut finding = Finding::new(RULE.id, RULE.severity, file, span, message);
    let rec = limit.and_then(|l| recommended_old_space_mib(ctx, l));
    let flag = match rec {
        Some(rec) => format!("--max-old-space-size={rec}"),
        None => "--max-old-space-size=<75% of the limit in MiB>".to_string(),
    };
    finding = match (rec, dockerfile_edit(ctx, &flag)) {
        (Some(_), Some(edit)) => finding.fix_with(format!("set NODE_OPTIONS=\"{flag}\" in the image (memfit plan's budget)"), vec![edit]),
        _ => finding.advise(format!("set NODE_OPTIONS=\"{flag}\" where the service's environment is defined (`memfit plan` prints it)")),
    };
    out.push(finding);
}

/// Adds the flag to the final stage: to its NODE_OPTIONS ENV if it has one, else as a new
/// ENV line before the stage's CMD/ENTRYPOINT (or at its end).
fn dockerfile_edit(ctx: &Context, flag: &str) -> Option<Edit> {
    let (id, docker) = ctx.dockerfile()?;
    let path = ctx.file(id).source.path.clone();
    let stages = docker.stages();
    let last = stages.last()?;
    let body = docker.stage_instructions(last);
    for instruction in body.iter().filter(|i| i.keyword == Keyword::Env) {
        for (name, value, start, end) in env_pairs(instruction.args()) {
            if name == "NODE_OPTIONS" {
                let span = instruction
                    .source_span(instruction.args_start + start, instruction.args_start + end);
                return Some(Edit::replace(
                    path,
                    span,
                    format!("NODE_OPTIONS=\"{} {flag}\"", value.trim()),
                ));
            }
        }
    }
    let anchor = body
        .iter()
        .find(|i| matches!(i.keyword, Keyword::Cmd | Keyword::Entrypoint))
        .map(|i| i.span.start)
        .or_else(|| {
            body.last().map(|i| {
                let text = &ctx.file(id).source.text;
                text[i.span.end..]
                    .find('\n')
                    .map_or(text.len(), |p| i.span.end + p + 1)
            })
        })?;
    let text = &ctx.file(id).source.text;
    let line_start = text[..anchor].rfind('\n').map_or(0, |p| p + 1);
    let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
    Some(Edit::insert(
        path,
        line_start,
        format!("ENV NODE_OPTIONS=\"{flag}\"{newline}"),
    ))
}
