use super::Rule;
use crate::context::Context;
use crate::finding::{Finding, Severity};
use crate::project::Kind;

pub const RULE: Rule = Rule {
    id: "ignore-scripts-breaks-native-modules",
    severity: Severity::Warning,
    summary: "Install scripts skipped (--ignore-scripts) while the lockfile has packages that build at install",
    doc: r#"## What it does
Finds `npm ci --ignore-scripts` (also `npm install`, `pnpm install`, `yarn install`) in a
Dockerfile, or `ignore-scripts=true` in `.npmrc`, when the lockfile marks production packages
as running an install script (`hasInstallScript` in package-lock.json, `requiresBuild` in
pnpm-lock.yaml) and the same stage does not `npm rebuild` them afterwards.

## Why is this bad?
OOM guides suggest skipping install scripts to save build memory. For packages such as
bcrypt, sharp, better-sqlite3 or argon2 the install script is what compiles or downloads the
native binary: without it the service fails at its first `require`. `ignore-scripts` applies
to every package at once (https://docs.npmjs.com/cli/using-npm/config#ignore-scripts); the
lockfile says which packages need their script (`hasInstallScript`,
https://docs.npmjs.com/cli/configuring-npm/package-lock-json).

## Example
```dockerfile
RUN npm ci --omit=dev --ignore-scripts      # package-lock.json: bcrypt has an install script
```

## Use instead
```dockerfile
RUN npm ci --omit=dev --ignore-scripts && npm rebuild bcrypt
```
"#,
    check,
};

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    let mut scripted: Vec<String> = ctx
        .lockfiles
        .iter()
        .flat_map(|l| l.packages.iter())
        .filter(|p| p.install_script && !p.dev && !p.optional)
        .map(|p| p.name.clone())
        .collect();
    scripted.sort();
    scripted.dedup();
    if scripted.is_empty() {
        return;
    }
    for view in ctx.dockerfiles() {
        for stage in 0..view.stages.len() {
            let commands = view.stage_commands(stage);
            for (n, run) in commands.iter().enumerate() {
                let c = &run.command;
                let installs = matches!(c.program(), Some("npm" | "pnpm" | "yarn"))
                    && matches!(c.subcommand(), None | Some("ci" | "install" | "i"));
                if !installs || !c.has_option(&["--ignore-scripts"]) {
                    continue;
                }
                let mut rebuilt_all = false;
                let mut rebuilt: Vec<&str> = Vec::new();
                for later in &commands[n + 1..] {
                    if matches!(later.command.program(), Some("npm" | "pnpm"))
                        && later.command.subcommand() == Some("rebuild")
                    {
                        let names: Vec<&str> = later.command.operands().skip(1).collect();
                        if names.is_empty() {
                            rebuilt_all = true;
                        }
                        rebuilt.extend(names);
                    }
                }
                let missing: Vec<&String> = scripted
                    .iter()
                    .filter(|p| !rebuilt_all && !rebuilt.contains(&p.as_str()))
                    .collect();
                if missing.is_empty() {
                    continue;
                }
                let list = missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                out.push(
                    Finding::new(RULE.id, RULE.severity, view.id, run.command_span(), format!("--ignore-scripts skips the install scripts that build {list}: they fail at their first require"))
                        .advise(format!("run `npm rebuild {list}` after the install in the same stage, or drop --ignore-scripts")),
                );
            }
        }
    }
    for (id, file) in ctx.project.of_kind(Kind::Npmrc) {
        for (n, line) in file.source.text.lines().enumerate() {
            let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            if compact == "ignore-scripts=true" {
                out.push(
                    Finding::new(
                        RULE.id,
                        RULE.severity,
                        id,
                        file.source.line_span(n + 1),
                        format!(
                            "ignore-scripts=true skips the install scripts that build {}",
                            scripted.join(" ")
                        ),
                    )
                    .advise(
                        "remove ignore-scripts=true, or rebuild these packages after every install",
                    ),
                );
            }
        }
    }
}
