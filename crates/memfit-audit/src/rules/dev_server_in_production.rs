use super::Rule;
use crate::context::Context;
use crate::dockerfile::shell;
use crate::finding::{Finding, Severity};

pub const RULE: Rule = Rule {
    id: "dev-server-in-production",
    severity: Severity::Error,
    summary: "The service starts a development server or a TypeScript runner (ts-node, tsx, nodemon, next dev, npm run dev)",
    doc: r#"## What it does
Follows the service's start command (the platform's: Procfile, render.yaml `startCommand`,
railway, fly `[processes]`, compose, Kubernetes; else the image's CMD/ENTRYPOINT) through the
npm scripts it runs, and reports a development tool in it: `ts-node`, `tsx`, `nodemon`,
`next dev`, `vite` (dev server), `nest start --watch`, `node --watch`, `npm run dev`.

## Why is this bad?
A TypeScript runner keeps the compiler and every source file in memory: measured by a user,
`node dist` 3.4 MB vs `ts-node` 109.7 MB on Node 20 (TypeStrong/ts-node#104), "up to 10×
more memory" (snapshot-labs#94); staging boxes running ts-node from a Procfile hit OOM at
startup (hicommonwealth#4890). Watchers and dev servers add file watchers, source maps and
hot reload state.

## Example
```
web: npx ts-node src/server.ts
```

## Use instead
Compile in the build (`tsc`, or the framework's build) and start the output:
```
web: node dist/server.js
```
"#,
    check,
};

fn dev_tool(command: &shell::SimpleCommand) -> Option<String> {
    let program = command.program()?;
    let sub = command.subcommand();
    let args: Vec<&str> = command.args().iter().map(|w| w.text.as_str()).collect();
    let found = match program {
        "ts-node" | "ts-node-dev" | "tsx" | "nodemon" | "ts-node-esm" => Some(program.to_string()),
        "npx" | "pnpx" | "bunx" => {
            let target = args.iter().find(|a| !a.starts_with('-'))?;
            matches!(*target, "ts-node" | "tsx" | "nodemon" | "ts-node-dev")
                .then(|| format!("{program} {target}"))
        }
        "next" if sub == Some("dev") => Some("next dev".into()),
        "nuxt" | "nuxi" if sub == Some("dev") => Some(format!("{program} dev")),
        "vite" if sub.is_none() || sub == Some("dev") || sub == Some("serve") => {
            Some("vite (dev server)".into())
        }
        "nest" if sub == Some("start") && args.iter().any(|a| *a == "--watch" || *a == "-w") => {
            Some("nest start --watch".into())
        }
        "node"
            if args.iter().any(|a| {
                a.starts_with("--watch")
                    || *a == "--loader=ts-node/esm"
                    || a.contains("ts-node/register")
            }) =>
        {
            Some(format!(
                "node {}",
                args.iter()
                    .find(|a| a.starts_with("--watch") || a.contains("ts-node"))
                    .unwrap_or(&"")
            ))
        }
        "npm" | "yarn" | "pnpm" | "bun" => {
            let script = crate::runtime::npm_script_of(command)?;
            (script == "dev" || script == "develop" || script == "watch")
                .then(|| format!("{program} run {script}"))
        }
        _ => None,
    };
    found
}

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    for (depth, step) in ctx.runtime.start.iter().enumerate() {
        for command in shell::split(&step.command) {
            if let Some(tool) = dev_tool(&command) {
                let via = if depth > 0 {
                    format!(" (started through {})", ctx.runtime.start[0].place)
                } else {
                    String::new()
                };
                out.push(
                    Finding::new(
                        RULE.id,
                        RULE.severity,
                        step.file,
                        step.span,
                        format!("the service starts `{tool}` in production ({}{via}): {}", step.place, if tool.contains("ts-node") || tool.contains("tsx") {
                            "a TypeScript runner keeps the compiler and every source in memory (ts-node: 109.7 MB vs 3.4 MB for `node dist`, TypeStrong/ts-node#104)"
                        } else {
                            "a development server keeps compilers, file watchers, source maps and hot-reload state in memory"
                        }),
                    )
                    .advise("compile in the build stage (tsc or the framework's build) and start the compiled output with node"),
                );
                return;
            }
        }
    }
}
