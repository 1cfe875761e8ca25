use super::Rule;
use crate::context::Context;
use crate::finding::{Finding, Severity};
use crate::project::Kind;
use crate::tsconfig;

pub const RULE: Rule = Rule {
    id: "tsconfig-broad-include",
    severity: Severity::Warning,
    summary: "The tsconfig the build compiles has no `include`/`files`, and tests or scripts sit beside the sources",
    doc: r#"## What it does
For each `tsc` in the project's scripts, reports a tsconfig (with its `extends` chain) that
has neither `include` nor `files` when the project has TypeScript test files or script
directories (`*.test.ts`, `*.spec.ts`, `test/`, `tests/`, `e2e/`, `scripts/`) that the
build then compiles too; and an `exclude` list that forgets `node_modules`.

## Why is this bad?
Without `include`, tsc walks the whole directory: tests, fixtures and scripts are parsed,
bound and type-checked in the production build, which "increase[s] compilation time and
memory overhead" (TypeScript wiki, Performance). Once `exclude` is set, `node_modules` is no
longer excluded by default.

## Example
```json
{ "compilerOptions": { "outDir": "dist" } }
```

## Use instead
```json
{ "compilerOptions": { "outDir": "dist" }, "include": ["src"], "exclude": ["**/*.test.ts"] }
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
        let Some(leaf_id) = chain[0].file else {
            continue;
        };
        let dir = run
            .config
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default();
        if let Some(exclude) = tsconfig::top_level(&chain, "exclude") {
            let lists_modules = exclude
                .items()
                .iter()
                .any(|i| i.as_str().is_some_and(|s| s.contains("node_modules")));
            if !lists_modules {
                let span = chain[0].json.key_span("exclude").unwrap_or(exclude.span);
                out.push(
                    Finding::new(RULE.id, RULE.severity, leaf_id, span, format!("`exclude` ({}) does not list node_modules: once exclude is set, tsc no longer skips it by default", run.place))
                        .advise("add \"**/node_modules\" to exclude"),
                );
                continue;
            }
        }
        if tsconfig::top_level(&chain, "include").is_some()
            || tsconfig::top_level(&chain, "files").is_some()
        {
            continue;
        }
        let extras: Vec<String> = ctx
            .project
            .of_kind(Kind::Script)
            .map(|(_, f)| f.source.path.clone())
            .filter(|p| p.starts_with(&dir))
            .filter(|p| {
                let s = p.to_string_lossy().replace('\\', "/");
                let is_ts = s.ends_with(".ts")
                    || s.ends_with(".tsx")
                    || s.ends_with(".mts")
                    || s.ends_with(".cts");
                is_ts
                    && (s.contains(".test.")
                        || s.contains(".spec.")
                        || ["test/", "tests/", "e2e/", "scripts/", "__tests__/"]
                            .iter()
                            .any(|d| s.contains(d)))
            })
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .collect();
        if extras.is_empty() {
            continue;
        }
        let leaf = &chain[0].json;
        out.push(
            Finding::new(
                RULE.id,
                RULE.severity,
                leaf_id,
                leaf.key_span("compilerOptions").unwrap_or(leaf.span),
                format!(
                    "no `include` or `files`: `tsc` ({}) also compiles {} test/script file(s) such as {}",
                    run.place,
                    extras.len(),
                    extras[0]
                ),
            )
            .advise("add \"include\": [\"src\"] (the directories the build needs) and exclude tests"),
        );
    }
}
