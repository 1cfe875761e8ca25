use super::Rule;
use crate::context::{Context, RunCommand};
use crate::dockerfile::Instruction;
use crate::finding::{Edit, Finding, Severity};

pub const RULE: Rule = Rule {
    id: "package-cache-left-in-image",
    severity: Severity::Warning,
    summary:
        "A package manager's cache stays in the image that ships (apt lists, apk, npm, yarn, pnpm)",
    doc: r#"## What it does
In the stages that ship (the final stage and the stages it is built `FROM`; a stage only read
through `COPY --from` does not count), finds installs whose cache stays in the layer:
- `apt-get install` without `rm -rf /var/lib/apt/lists/*` in the same RUN,
- `apk add` without `--no-cache`,
- `npm ci` / `npm install` without `npm cache clean --force`,
- `yarn install` without `yarn cache clean`, `pnpm install` without `pnpm store prune`.

pip's cache has its own rule, `pip-cache-in-image`.

A RUN with a `--mount=type=cache` (or `tmpfs`) on the cache directory counts as clean: the
cache lives outside the image, and the next build reuses it (hadolint#1139 asks linters to
recommend exactly that).

## Why is this bad?
The cache is removed in a later layer at best, so every byte of it ships and is pulled on
every deploy: tens to hundreds of MB for apt lists and npm caches.

## Example
```dockerfile
RUN apk add curl
RUN npm ci
```

## Use instead
```dockerfile
RUN apk add --no-cache curl
RUN --mount=type=cache,target=/root/.npm npm ci
```
"#,
    check,
};

/// Whether the RUN mounts a cache or tmpfs at a target containing one of `dirs`.
pub(crate) fn cache_mounted(instruction: &Instruction, dirs: &[&str]) -> bool {
    instruction.flag_values("mount").any(|m| {
        let kind_ok = m.split(',').any(|p| p == "type=cache" || p == "type=tmpfs");
        let target = m
            .split(',')
            .find_map(|p| {
                p.strip_prefix("target=")
                    .or_else(|| p.strip_prefix("dst="))
                    .or_else(|| p.strip_prefix("destination="))
            })
            .unwrap_or_default();
        kind_ok && dirs.iter().any(|d| target.contains(d))
    })
}

fn cleans(commands: &[&RunCommand], program: &[&str], needle: &[&str]) -> bool {
    commands.iter().any(|c| {
        let p = c.command.program().unwrap_or_default();
        program.contains(&p) && {
            let args: Vec<&str> = c.command.args().iter().map(|w| w.text.as_str()).collect();
            needle.iter().all(|n| args.iter().any(|a| a.contains(n)))
        }
    })
}

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    for view in ctx.dockerfiles() {
        let path = ctx.file(view.id).source.path.clone();
        let commands = view.shipped_commands();
        // Group by instruction: cleanup counts only in the same RUN.
        let mut by_instruction: Vec<Vec<&RunCommand>> = Vec::new();
        for (_, c) in &commands {
            match by_instruction.last_mut() {
                Some(group) if std::ptr::eq(group[0].instruction, c.instruction) => group.push(c),
                _ => by_instruction.push(vec![c]),
            }
        }
        for group in &by_instruction {
            let instruction = group[0].instruction;
            let last = group.last().map(|c| c.command.end);
            for run in group {
                let command = &run.command;
                let program = command.program().unwrap_or_default();
                let sub = command.subcommand();
                let is_last = Some(command.end) == last && run.text_base.is_some();
                let append = |text: &str| {
                    Edit::append(path.clone(), run.command_span().end, text.to_string())
                };
                let finding = match (program, sub) {
                    ("apt-get" | "apt", Some("install")) => {
                        if cleans(group, &["rm"], &["/var/lib/apt/lists"])
                            || cache_mounted(instruction, &["/var/lib/apt", "/var/cache/apt"])
                        {
                            continue;
                        }
                        let f = Finding::new(RULE.id, RULE.severity, view.id, run.command_span(), "apt lists stay in the image: no `rm -rf /var/lib/apt/lists/*` in this RUN");
                        if is_last {
                            f.fix_with(
                                "remove the apt lists in the same RUN",
                                vec![append(" && rm -rf /var/lib/apt/lists/*")],
                            )
                        } else {
                            f.advise("end this RUN with `&& rm -rf /var/lib/apt/lists/*`, or mount a cache on /var/lib/apt/lists")
                        }
                    }
                    ("apk", Some("add")) => {
                        if command.has_option(&["--no-cache"])
                            || cleans(group, &["rm"], &["/var/cache/apk"])
                            || cache_mounted(instruction, &["/var/cache/apk", "/etc/apk/cache"])
                        {
                            continue;
                        }
                        let add = command.words.iter().position(|w| w.text == "add");
                        let f = Finding::new(
                            RULE.id,
                            RULE.severity,
                            view.id,
                            run.command_span(),
                            "`apk add` without --no-cache keeps the package index in the image",
                        );
                        match add {
                            Some(i) if run.text_base.is_some() => f.fix_with(
                                "use `apk add --no-cache`",
                                vec![Edit::insert(
                                    path.clone(),
                                    run.word_span(i).end,
                                    " --no-cache",
                                )],
                            ),
                            _ => f.advise("use `apk add --no-cache`"),
                        }
                    }
                    ("npm", Some("ci" | "install" | "i")) => {
                        if command.has_option(&["-g", "--global"]) && command.operands().count() > 1
                        {
                            continue;
                        }
                        if cleans(group, &["npm"], &["cache", "clean"])
                            || cleans(group, &["rm"], &[".npm"])
                            || cache_mounted(instruction, &[".npm"])
                            || command.has_option(&["--cache"])
                        {
                            continue;
                        }
                        let f = Finding::new(RULE.id, RULE.severity, view.id, run.command_span(), "the npm cache (~/.npm) stays in the image: no `npm cache clean --force` and no cache mount");
                        if is_last {
                            f.fix_with(
                                "clean the npm cache in the same RUN",
                                vec![append(" && npm cache clean --force")],
                            )
                        } else {
                            f.advise("add `&& npm cache clean --force`, or use RUN --mount=type=cache,target=/root/.npm")
                        }
                    }
                    ("yarn", None | Some("install")) => {
                        if cleans(group, &["yarn"], &["cache", "clean"])
                            || cache_mounted(instruction, &["yarn"])
                        {
                            continue;
                        }
                        let f = Finding::new(RULE.id, RULE.severity, view.id, run.command_span(), "the yarn cache stays in the image: no `yarn cache clean` and no cache mount");
                        if is_last {
                            f.fix_with(
                                "clean the yarn cache in the same RUN",
                                vec![append(" && yarn cache clean")],
                            )
                        } else {
                            f.advise("add `&& yarn cache clean`, or mount a cache on /usr/local/share/.cache/yarn")
                        }
                    }
                    ("pnpm", Some("install" | "i")) => {
                        if cleans(group, &["pnpm"], &["store", "prune"])
                            || cache_mounted(instruction, &["pnpm"])
                        {
                            continue;
                        }
                        Finding::new(RULE.id, RULE.severity, view.id, run.command_span(), "the pnpm store stays in the image: no `pnpm store prune` and no cache mount")
                            .advise("use RUN --mount=type=cache,id=pnpm,target=/pnpm/store, or `pnpm store prune` in the same RUN")
                    }
                    _ => continue,
                };
                out.push(finding);
            }
        }
    }
}
