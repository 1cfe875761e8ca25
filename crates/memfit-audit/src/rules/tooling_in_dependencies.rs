use super::Rule;
use crate::context::Context;
use crate::finding::{Finding, Severity};
use crate::project::Kind;

pub const RULE: Rule = Rule {
    id: "tooling-in-dependencies",
    severity: Severity::Warning,
    summary:
        "Build, test or lint tools listed in `dependencies`, so they ship even with --omit=dev",
    doc: r#"## What it does
Reports packages in `dependencies` that only development or the build needs: typescript,
ts-node, tsx, nodemon, jest, vitest, mocha, eslint, prettier, webpack, vite, rollup, esbuild
(as a bundler), `@types/*`, `@typescript-eslint/*`, husky, lint-staged.

## Why is this bad?
`npm ci --omit=dev` (or `NODE_ENV=production`) keeps everything in `dependencies`: TypeScript
alone is tens of MB on disk, and a test runner brings hundreds of packages.

## Example
```json
"dependencies": { "express": "^4.19.2", "typescript": "^5.4.0", "@types/express": "^4.17.21" }
```

## Use instead
```json
"dependencies": { "express": "^4.19.2" },
"devDependencies": { "typescript": "^5.4.0", "@types/express": "^4.17.21" }
```
Keep a tool in `dependencies` only when production runs it.
"#,
    check,
};

const TOOLS: &[&str] = &[
    "typescript",
    "ts-node",
    "tsx",
    "nodemon",
    "ts-node-dev",
    "jest",
    "ts-jest",
    "vitest",
    "mocha",
    "chai",
    "eslint",
    "prettier",
    "webpack",
    "webpack-cli",
    "vite",
    "rollup",
    "husky",
    "lint-staged",
    "@swc/cli",
    "supertest",
    "nyc",
    "c8",
];

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    // A tool the service runs at start is needed in production (dev-server-in-production
    // reports that separately).
    let started: Vec<String> = ctx
        .runtime
        .start
        .iter()
        .map(|s| s.command.clone())
        .collect();
    for (id, _) in ctx.project.of_kind(Kind::PackageJson) {
        let Some(pkg) = ctx.project.json(id) else {
            continue;
        };
        let Some(deps) = pkg.get("dependencies") else {
            continue;
        };
        let mut tools: Vec<(&str, crate::dockerfile::Span)> = Vec::new();
        for (name, key_span, _) in deps.entries() {
            let tool = TOOLS.contains(&name.as_str())
                || name.starts_with("@types/")
                || name.starts_with("@typescript-eslint/")
                || name.starts_with("eslint-plugin-")
                || name.starts_with("eslint-config-");
            if tool && !started.iter().any(|s| s.contains(name.as_str())) {
                tools.push((name, *key_span));
            }
        }
        for (name, span) in tools {
            out.push(
                Finding::new(RULE.id, RULE.severity, id, span, format!("`{name}` is a build/test tool in `dependencies`: it ships even with --omit=dev"))
                    .advise(format!("move `{name}` to devDependencies (npm install --save-dev {name})")),
            );
        }
    }
}
