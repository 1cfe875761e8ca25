use super::{mib, Rule};
use crate::context::Context;
use crate::finding::{Finding, Severity};

pub const RULE: Rule = Rule {
    id: "heap-flag-conflict",
    severity: Severity::Warning,
    summary: "Several places set the Node heap cap to different values; only one wins at runtime",
    doc: r#"## What it does
Collects every place that sets a heap cap for the running service: Dockerfile `ENV
NODE_OPTIONS` of the shipped stages, the platform's environment (fly.toml `[env]`,
render.yaml `envVars`, app.json, compose, Kubernetes), `.npmrc` `node-options` (when the
service starts through npm), `NODE_OPTIONS=…` before a command, and `node
--max-old-space-size` on the command line. When they disagree it reports each one that loses,
and says which one wins.

## Why is this bad?
The value the user tuned is often not the one that applies. Precedence: node's command line
beats NODE_OPTIONS; an inline `NODE_OPTIONS=` beats the environment; npm's `node-options`
replaces NODE_OPTIONS for the scripts npm runs; a platform's environment replaces the image's
ENV. `--max-old-space-size-percentage` beats `--max-old-space-size`. A real case: a
package.json build script's NODE_OPTIONS overrode the Dockerfile's and a `next build` stalled
on an 8 GB builder (elizaOS #9778).

## Example
```dockerfile
ENV NODE_OPTIONS=--max-old-space-size=384
CMD ["npm", "start"]          # package.json: "start": "node --max-old-space-size=1024 dist/server.js"
```

## Use instead
Set the cap in one place, the one that wins (or the one that is easiest to change per plan:
the platform's environment).
"#,
    check,
};

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    let settings = ctx.runtime.heap_settings();
    let Some(winner) = settings.first() else {
        return;
    };
    let limit = ctx.limit_bytes();
    let value = |o: &crate::runtime::NodeOptions| match (
        o.flags.old_space_percentage(),
        o.flags.old_space_mib(),
    ) {
        (Some(p), _) => format!("--max-old-space-size-percentage={p}"),
        (None, Some(m)) => format!("--max-old-space-size={m}"),
        _ => String::new(),
    };
    for loser in settings.iter().skip(1) {
        let same = loser.flags.old_space_bytes(limit).is_some()
            && loser.flags.old_space_bytes(limit) == winner.flags.old_space_bytes(limit);
        if same && value(loser) == value(winner) {
            continue;
        }
        let why = match (winner.origin, loser.origin) {
            (crate::runtime::Origin::CommandLine, _) => {
                "node's command-line flags take precedence over NODE_OPTIONS"
            }
            (crate::runtime::Origin::InlineEnv, _) => {
                "an inline NODE_OPTIONS= replaces the environment's for that command"
            }
            (crate::runtime::Origin::Npmrc, _) => {
                "npm's node-options replaces NODE_OPTIONS for the scripts npm runs"
            }
            _ => "the platform's environment replaces the image's ENV",
        };
        let resolved = winner
            .flags
            .old_space_bytes(limit)
            .map(|b| format!(" ({})", mib(b)))
            .unwrap_or_default();
        out.push(
            Finding::new(
                RULE.id,
                RULE.severity,
                loser.file,
                loser.span,
                format!(
                    "{} here ({}) has no effect at runtime: {} in {} wins{resolved}, because {why}",
                    value(loser),
                    loser.place,
                    value(winner),
                    winner.place
                ),
            )
            .advise(format!(
                "set the heap cap in one place; remove it here or make it match {}",
                value(winner)
            )),
        );
    }
}
