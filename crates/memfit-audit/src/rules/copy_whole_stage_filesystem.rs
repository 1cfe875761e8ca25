use super::Rule;
use crate::context::Context;
use crate::dockerfile::Keyword;
use crate::finding::{Finding, Severity};

pub const RULE: Rule = Rule {
    id: "copy-whole-stage-filesystem",
    severity: Severity::Warning,
    summary: "`COPY --from=stage / …` copies a whole filesystem into the image",
    doc: r#"## What it does
Finds `COPY --from=X / <dest>`: the root of another stage or image copied wholesale.

## Why is this bad?
It brings the other stage's toolchain, caches and package manager along, which undoes the
point of a multi-stage build (hadolint DL3067, "Do not copy an entire filesystem from another
stage").

## Example
```dockerfile
COPY --from=build / /
```

## Use instead
```dockerfile
COPY --from=build /app/dist /app/dist
COPY --from=build /app/node_modules /app/node_modules
```
"#,
    check,
};

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    for view in ctx.dockerfiles() {
        for instruction in &view.docker.instructions {
            if instruction.keyword != Keyword::Copy || instruction.flag("from").is_none() {
                continue;
            }
            let words: Vec<&str> = match &instruction.exec {
                Some(w) => w.iter().map(String::as_str).collect(),
                None => instruction.args().split_whitespace().collect(),
            };
            if words.len() >= 2
                && words[..words.len() - 1]
                    .iter()
                    .any(|s| *s == "/" || *s == "/." || *s == "/*")
            {
                out.push(
                    Finding::new(
                        RULE.id,
                        RULE.severity,
                        view.id,
                        instruction.span,
                        format!("copies the whole filesystem of `{}`: its toolchain and caches come along", instruction.flag("from").unwrap_or_default()),
                    )
                    .advise("copy only the directories the runtime needs (the build output, production node_modules)"),
                );
            }
        }
    }
}
