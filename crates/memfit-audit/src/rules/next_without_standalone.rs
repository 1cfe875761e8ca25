use super::Rule;
use crate::context::Context;
use crate::finding::{Finding, Severity};
use crate::project::Kind;

pub const RULE: Rule = Rule {
    id: "next-without-standalone",
    severity: Severity::Warning,
    summary: "A Next.js app built into a container without `output: 'standalone'`",
    doc: r#"## What it does
Reports a Next.js project (`next` in dependencies) with a Dockerfile whose `next.config.*`
does not set `output: 'standalone'`.

## Why is this bad?
Without it the image needs the whole `node_modules` to run `next start`. With it, `next build`
traces the files the server really uses and writes a minimal `.next/standalone` server with
only those parts of node_modules (nextjs.org/docs/app/api-reference/next-config-js/output).

## Example
```js
module.exports = { reactStrictMode: true }
```

## Use instead
```js
module.exports = { reactStrictMode: true, output: 'standalone' }
```
then copy `.next/standalone`, `.next/static` and `public` into the final stage and run
`node server.js`.
"#,
    check,
};

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    if ctx.project.dockerfiles().next().is_none() {
        return;
    }
    for (id, _) in ctx.project.of_kind(Kind::PackageJson) {
        let Some(pkg) = ctx.project.json(id) else {
            continue;
        };
        let Some(span) = pkg.get("dependencies").and_then(|d| d.key_span("next")) else {
            continue;
        };
        let dir = ctx.project.dir_of(id);
        let config = ctx
            .project
            .of_kind(Kind::NextConfig)
            .find(|(cid, _)| ctx.project.dir_of(*cid) == dir);
        match config {
            Some((cid, file)) => {
                if file.source.text.contains("standalone") {
                    continue;
                }
                out.push(
                    Finding::new(RULE.id, RULE.severity, cid, file.source.line_span(1), "next.config does not set output: 'standalone': the image needs all of node_modules to run `next start`")
                        .advise("set output: 'standalone' and ship .next/standalone, .next/static and public"),
                );
            }
            None => out.push(
                Finding::new(RULE.id, RULE.severity, id, span, "Next.js app in a container with no next.config setting output: 'standalone': the image needs all of node_modules")
                    .advise("add next.config.js with output: 'standalone' and ship .next/standalone"),
            ),
        }
    }
}
