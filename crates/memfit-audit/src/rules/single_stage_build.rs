use super::Rule;
use crate::context::Context;
use crate::finding::{Finding, Severity};

pub const RULE: Rule = Rule {
    id: "single-stage-build",
    severity: Severity::Warning,
    summary: "The stage that builds is the image that ships",
    doc: r#"## What it does
Reports a Dockerfile whose shipped stage runs the build itself (`npm run build`, `tsc`,
`next build`, `nest build`, `vite build`, `cargo build`, `go build`, `mvn package`…).

## Why is this bad?
Everything the build needed stays in the image and, for interpreted stacks, in the running
service's disk and often its memory: the compiler, devDependencies, build caches, sources.
A multi-stage build copies only the output into a small runtime stage. hadolint's
"suggest multi-stage builds" request has been open for years (hadolint#947); Next.js's
`output: 'standalone'` exists for the same reason.

## Example
```dockerfile
FROM node:20
WORKDIR /app
COPY . .
RUN npm ci && npm run build
CMD ["node", "dist/server.js"]
```

## Use instead
```dockerfile
FROM node:20 AS build
WORKDIR /app
COPY package*.json ./
RUN npm ci
COPY . .
RUN npm run build && npm prune --omit=dev

FROM node:20-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
CMD ["node", "dist/server.js"]
```
"#,
    check,
};

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    for view in ctx.dockerfiles() {
        if view.stages.len() != 1 {
            continue;
        }
        if let Some(build) = view.stage_builds(0) {
            let from = &view.docker.instructions[view.stages[0].from];
            out.push(
                Finding::new(
                    RULE.id,
                    RULE.severity,
                    view.id,
                    from.span,
                    format!("single-stage build: this stage runs `{build}` and is also the image that ships, so the toolchain, devDependencies and build caches ship with it"),
                )
                .advise("build in a first stage (FROM … AS build) and copy only the output and production dependencies into a slim final stage"),
            );
        }
    }
}
