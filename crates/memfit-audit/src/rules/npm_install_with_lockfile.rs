use super::Rule;
use crate::context::Context;
use crate::finding::{Edit, Finding, Severity};

pub const RULE: Rule = Rule {
    id: "npm-install-with-lockfile",
    severity: Severity::Warning,
    summary: "`npm install` in a Dockerfile where a package-lock.json exists: use `npm ci`",
    doc: r#"## What it does
Finds `npm install` (or `npm i`) without package arguments in a Dockerfile RUN when the
project has a `package-lock.json` or `npm-shrinkwrap.json`.

## Why is this bad?
`npm install` builds the ideal dependency tree and may rewrite the lockfile: resolution is
the memory-hungry part of an install ("npm 10.4.0+ running out of memory with no
package-lock.json", npm/cli#7276), and the result is not reproducible. `npm ci` installs
exactly what the lockfile says, and fails if it is out of date.

## Example
```dockerfile
RUN npm install --omit=dev
```

## Use instead
```dockerfile
RUN npm ci --omit=dev
```
"#,
    check,
};

fn has_npm_lockfile(ctx: &Context) -> bool {
    ctx.project
        .of_kind(crate::project::Kind::PackageLock)
        .next()
        .is_some()
}

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    if !has_npm_lockfile(ctx) {
        return;
    }
    for view in ctx.dockerfiles() {
        let path = ctx.file(view.id).source.path.clone();
        for stage in 0..view.stages.len() {
            for run in view.stage_commands(stage) {
                let command = &run.command;
                if command.program() != Some("npm") {
                    continue;
                }
                let operands: Vec<&str> = command.operands().collect();
                if !matches!(operands.as_slice(), ["install"] | ["i"]) {
                    continue;
                }
                if command.has_option(&["-g", "--global"]) {
                    continue;
                }
                // The word to replace: the first operand after the program.
                let argv_offset = command.words.len() - command.argv().len();
                let index = command.argv()[1..]
                    .iter()
                    .position(|w| w.text == operands[0])
                    .map(|p| argv_offset + 1 + p);
                let mut finding = Finding::new(
                    RULE.id,
                    RULE.severity,
                    view.id,
                    run.command_span(),
                    "`npm install` resolves the dependency tree again although package-lock.json exists: more memory and a build that may differ from the lockfile",
                );
                finding = match index {
                    Some(i) if run.text_base.is_some() => finding.fix_with(
                        "use `npm ci`",
                        vec![Edit::replace(path.clone(), run.word_span(i), "ci")],
                    ),
                    _ => finding.advise("use `npm ci`"),
                };
                out.push(finding);
            }
        }
    }
}
