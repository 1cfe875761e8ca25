use super::Rule;
use crate::context::Context;
use crate::finding::{Edit, Finding, Severity};
use crate::tsconfig;

pub const RULE: Rule = Rule {
    id: "tsc-without-skiplibcheck",
    severity: Severity::Info,
    summary: "The build runs tsc with a tsconfig that type-checks every .d.ts in node_modules",
    doc: r#"## What it does
For each `tsc` in the project's scripts, follows the tsconfig it compiles through its
`extends` chain and reports when `compilerOptions.skipLibCheck` is not true.

## Why is this bad?
Without it tsc type-checks every declaration file of every dependency, on every build: more
time and more memory on a small builder. The TypeScript wiki's Performance page lists it;
the PR that added the option reports compile times "reduced 5x" (microsoft/TypeScript#8735).
Errors in your own code are still reported.

## Example
```json
{ "compilerOptions": { "outDir": "dist", "strict": true } }
```

## Use instead
```json
{ "compilerOptions": { "skipLibCheck": true, "outDir": "dist", "strict": true } }
```
"#,
    check,
};

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    let mut seen = Vec::new();
    for run in tsconfig::tsc_runs(ctx.project) {
        if seen.contains(&run.config) {
            continue;
        }
        seen.push(run.config.clone());
        let Some(chain) = tsconfig::chain(ctx.project, &run.config) else {
            continue;
        };
        if tsconfig::compiler_option(&chain, "skipLibCheck").and_then(|v| v.as_bool()) == Some(true)
        {
            continue;
        }
        let Some(leaf_id) = chain[0].file else {
            continue;
        };
        let leaf = &chain[0].json;
        let file = ctx.file(leaf_id);
        let message = format!(
            "`tsc` ({}) type-checks every .d.ts in node_modules: skipLibCheck is not set in {}",
            run.place,
            file.source.display()
        );
        let finding = match leaf.get("compilerOptions") {
            Some(options) => {
                let span = leaf.key_span("compilerOptions").unwrap_or(options.span);
                let brace = options.span.start + 1;
                let indent = guess_indent(&file.source.text, options);
                Finding::new(RULE.id, RULE.severity, leaf_id, span, message).fix_with(
                    "set \"skipLibCheck\": true",
                    vec![Edit::insert(
                        file.source.path.clone(),
                        brace,
                        format!("\n{indent}\"skipLibCheck\": true,"),
                    )],
                )
            }
            None => Finding::new(RULE.id, RULE.severity, leaf_id, leaf.span, message).fix_with(
                "add \"compilerOptions\": { \"skipLibCheck\": true }",
                vec![Edit::insert(
                    file.source.path.clone(),
                    leaf.span.start + 1,
                    "\n  \"compilerOptions\": { \"skipLibCheck\": true },",
                )],
            ),
        };
        out.push(finding);
    }
}

/// The indentation of the first entry of an object, or two more spaces than its line.
fn guess_indent(text: &str, object: &crate::json::JsonNode) -> String {
    if let Some((_, key, _)) = object.entries().first() {
        let line_start = text[..key.start].rfind('\n').map_or(0, |p| p + 1);
        let indent: String = text[line_start..key.start]
            .chars()
            .take_while(|c| c.is_whitespace())
            .collect();
        if line_start > object.span.start {
            return indent;
        }
    }
    let line_start = text[..object.span.start].rfind('\n').map_or(0, |p| p + 1);
    let base: String = text[line_start..]
        .chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .collect();
    format!("{base}  ")
}
