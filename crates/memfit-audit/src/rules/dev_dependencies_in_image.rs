use super::Rule;
use crate::context::{build_command, Context};
use crate::dockerfile::shell::SimpleCommand;
use crate::dockerfile::Keyword;
use crate::finding::{Edit, Finding, Severity};

pub const RULE: Rule = Rule {
    id: "dev-dependencies-in-image",
    severity: Severity::Warning,
    summary:
        "The shipped image installs devDependencies (no --omit=dev, NODE_ENV=production or prune)",
    doc: r#"## What it does
In the stages that ship, finds a full dependency install (`npm ci`, `npm install`, `yarn
install`, `pnpm install`) with no `--omit=dev` / `--production` / `--prod`, no
`NODE_ENV=production` in effect, and no later `npm prune --omit=dev`; and `COPY --from` of a
`node_modules` directory from a stage that installed that way.

## Why is this bad?
devDependencies (TypeScript, bundlers, test runners, linters, @types) are often larger than
the production tree; they ship in every image layer and are read from disk by every tool
that walks node_modules. `--omit=dev` saves disk and image size (the tree is still resolved;
docs.npmjs.com, npm-install-ci-test).

## Example
```dockerfile
FROM node:20-slim
COPY package*.json ./
RUN npm ci
```

## Use instead
```dockerfile
FROM node:20-slim
COPY package*.json ./
RUN npm ci --omit=dev
```
"#,
    check,
};

fn is_full_install(command: &SimpleCommand) -> Option<&'static str> {
    let program = command.program()?;
    let operands: Vec<&str> = command.operands().collect();
    match (program, operands.as_slice()) {
        ("npm", ["ci"] | ["install"] | ["i"]) => Some("npm"),
        ("yarn", [] | ["install"]) => Some("yarn"),
        ("pnpm", ["install"] | ["i"]) => Some("pnpm"),
        _ => None,
    }
}

fn omits_dev(command: &SimpleCommand) -> bool {
    command.has_option(&[
        "--omit=dev",
        "--production",
        "--prod",
        "-P",
        "--only=production",
        "--only=prod",
    ]) || command
        .assignments()
        .any(|(n, v)| n == "NODE_ENV" && v == "production")
        || command
            .args()
            .windows(2)
            .any(|w| w[0].text == "--omit" && w[1].text == "dev")
}

fn prunes(command: &SimpleCommand) -> bool {
    matches!(command.program(), Some("npm" | "pnpm" | "yarn"))
        && command.subcommand() == Some("prune")
        || (command.program() == Some("yarn") && command.has_option(&["--production"]))
}

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    for view in ctx.dockerfiles() {
        let path = ctx.file(view.id).source.path.clone();
        let production_env = view.shipped_env("NODE_ENV").as_deref() == Some("production");
        let commands = view.shipped_commands();
        let pruned = commands.iter().any(|(_, c)| prunes(&c.command));
        if !production_env && !pruned {
            for (n, (_, run)) in commands.iter().enumerate() {
                let Some(manager) = is_full_install(&run.command) else {
                    continue;
                };
                if omits_dev(&run.command) {
                    continue;
                }
                let builds_later = commands[n + 1..]
                    .iter()
                    .any(|(_, c)| build_command(&c.command).is_some());
                let mut finding = Finding::new(
                    RULE.id,
                    RULE.severity,
                    view.id,
                    run.command_span(),
                    format!(
                        "`{}` in the image that ships installs devDependencies too",
                        run.command
                            .argv()
                            .iter()
                            .map(|w| w.text.as_str())
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                );
                let ci_word = run.command.words.iter().position(|w| w.text == "ci");
                finding = match (manager, ci_word, builds_later, run.text_base) {
                    ("npm", Some(i), false, Some(_)) => {
                        let at = run.word_span(i).end;
                        finding.fix_with("install production dependencies only: `npm ci --omit=dev`", vec![Edit::insert(path.clone(), at, " --omit=dev")])
                    }
                    (_, _, true, _) => finding.advise("the build needs devDependencies: build in an earlier stage, or run `npm prune --omit=dev` after the build"),
                    _ => finding.advise(match manager {
                        "yarn" => "use `yarn install --production` (v1) or `yarn workspaces focus --production` (berry)",
                        "pnpm" => "use `pnpm install --prod`",
                        _ => "use `npm ci --omit=dev`",
                    }),
                };
                out.push(finding);
            }
        }
        // COPY --from=<stage> …node_modules… from a stage that installed everything.
        for &s in &view.shipped {
            for instruction in view.docker.stage_instructions(&view.stages[s]) {
                if instruction.keyword != Keyword::Copy {
                    continue;
                }
                let Some(from) = instruction.flag("from") else {
                    continue;
                };
                let crate::dockerfile::StageRef::Stage(source) =
                    view.docker.resolve(&view.stages, from)
                else {
                    continue;
                };
                // The directory the source stage installed into: its last WORKDIR.
                let workdir = view
                    .docker
                    .stage_instructions(&view.stages[source])
                    .iter()
                    .rev()
                    .find(|i| i.keyword == Keyword::Workdir)
                    .map(|i| i.args().trim().trim_end_matches('/').to_string());
                let words: Vec<String> = match &instruction.exec {
                    Some(w) => w.clone(),
                    None => instruction
                        .args()
                        .split_whitespace()
                        .map(str::to_string)
                        .collect(),
                };
                let sources = &words[..words.len().saturating_sub(1)];
                let copies_modules = sources.iter().any(|s| {
                    let s = s.trim_end_matches('/');
                    s.contains("node_modules")
                        || workdir
                            .as_deref()
                            .is_some_and(|w| !w.is_empty() && (s == w || s == format!("{w}/.")))
                });
                if !copies_modules {
                    continue;
                }
                let source_commands = view.stage_commands(source);
                let full = source_commands
                    .iter()
                    .any(|c| is_full_install(&c.command).is_some() && !omits_dev(&c.command));
                let cleaned = source_commands.iter().any(|c| prunes(&c.command));
                let env_prod = {
                    let mut v = None;
                    let mut chain = vec![source];
                    while let Some(b) = view.stages[*chain.last().unwrap_or(&source)].base_stage {
                        if chain.contains(&b) {
                            break;
                        }
                        chain.push(b);
                    }
                    for st in chain.iter().rev() {
                        for i in view.docker.stage_instructions(&view.stages[*st]) {
                            if i.keyword == Keyword::Env {
                                for (n, val, _, _) in crate::runtime::env_pairs(i.args()) {
                                    if n == "NODE_ENV" {
                                        v = Some(val);
                                    }
                                }
                            }
                        }
                    }
                    v.as_deref() == Some("production")
                };
                if full && !cleaned && !env_prod {
                    out.push(
                        Finding::new(
                            RULE.id,
                            RULE.severity,
                            view.id,
                            instruction.span,
                            format!("node_modules copied from stage `{from}`, which installed devDependencies and never pruned them"),
                        )
                        .advise(format!("run `npm prune --omit=dev` in stage `{from}` after its build, or install production dependencies in a separate stage")),
                    );
                }
            }
        }
    }
}
