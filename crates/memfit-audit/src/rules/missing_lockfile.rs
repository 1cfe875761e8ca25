use super::Rule;
use crate::context::Context;
use crate::finding::{Finding, Severity};
use crate::project::Kind;

pub const RULE: Rule = Rule {
    id: "missing-lockfile",
    severity: Severity::Warning,
    summary: "A package.json with dependencies and no lockfile beside it or above it",
    doc: r#"## What it does
Reports a `package.json` that declares dependencies when neither its directory nor any
parent up to the project root has a lockfile (`package-lock.json`, `npm-shrinkwrap.json`,
`pnpm-lock.yaml`, `yarn.lock`, `bun.lock`, `bun.lockb`).

## Why is this bad?
Without a lockfile every install resolves the whole tree again, which is the memory-hungry
step ("npm 10.4.0+ running out of memory with no package-lock.json", npm/cli#7276), and
`npm ci` cannot be used. Builds are not reproducible.

## Example
A project with `package.json` and no `package-lock.json` committed.

## Use instead
Run `npm install` once, commit `package-lock.json`, and install with `npm ci`.
"#,
    check,
};

const LOCKFILES: &[&str] = &[
    "package-lock.json",
    "npm-shrinkwrap.json",
    "pnpm-lock.yaml",
    "yarn.lock",
    "bun.lock",
    "bun.lockb",
];

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    for (id, _) in ctx.project.of_kind(Kind::PackageJson) {
        let Some(pkg) = ctx.project.json(id) else {
            continue;
        };
        let declares = ["dependencies", "devDependencies"]
            .iter()
            .any(|s| pkg.get(s).is_some_and(|d| !d.entries().is_empty()));
        if !declares {
            continue;
        }
        let mut dir = Some(ctx.project.dir_of(id));
        let mut found = false;
        while let Some(d) = dir {
            if LOCKFILES
                .iter()
                .any(|l| ctx.project.root.join(&d).join(l).is_file())
            {
                found = true;
                break;
            }
            dir = d.parent().map(|p| p.to_path_buf());
        }
        if found {
            continue;
        }
        let span = pkg
            .key_span("dependencies")
            .or_else(|| pkg.key_span("devDependencies"))
            .unwrap_or(pkg.span);
        out.push(
            Finding::new(RULE.id, RULE.severity, id, span, "no lockfile: every install resolves the dependency tree again (memory-hungry, not reproducible)")
                .advise("run `npm install` once, commit package-lock.json, and install with `npm ci`"),
        );
    }
}
