use super::Rule;
use crate::context::Context;
use crate::dockerfile::Span;
use crate::finding::{Edit, Finding, Severity};
use crate::project::Kind;

pub const RULE: Rule = Rule {
    id: "omit-optional-breaks-native-binaries",
    severity: Severity::Warning,
    summary: "Optional dependencies omitted while esbuild, sharp, SWC or another package ships its binaries as optionalDependencies",
    doc: r#"## What it does
Finds `--omit=optional`, `--no-optional`, `--ignore-optional` in a Dockerfile RUN, and
`optional=false` / `omit=optional` in `.npmrc`, in a project that depends on a package whose
platform binaries are optionalDependencies: esbuild, sharp (`@img/*`), `@next/swc-*`,
`@swc/core`, `lightningcss`, `@rollup/rollup-*`, `@parcel/watcher`, turbo.

## Why is this bad?
Guides suggest omitting optional dependencies to save memory and disk. For these packages it
removes the binary for the platform: esbuild's maintainer, on `--no-optional`: it "break[s]
esbuild's primary and most widely-compatible installation strategy" (evanw/esbuild#1819).
The build then fails, or falls back to a slower WASM or JS path.

## Example
```dockerfile
RUN npm ci --omit=optional
```

## Use instead
```dockerfile
RUN npm ci
```
"#,
    check,
};

const NATIVE: &[&str] = &[
    "esbuild",
    "sharp",
    "@next/swc",
    "@swc/core",
    "lightningcss",
    "@rollup/rollup",
    "@parcel/watcher",
    "turbo",
    "@img/sharp",
    "@esbuild/",
];

fn native_packages(ctx: &Context) -> Vec<String> {
    let mut found = Vec::new();
    for (id, _) in ctx.project.of_kind(Kind::PackageJson) {
        let Some(pkg) = ctx.project.json(id) else {
            continue;
        };
        for section in ["dependencies", "devDependencies", "optionalDependencies"] {
            for (name, _, _) in pkg.get(section).map(|s| s.entries()).unwrap_or_default() {
                if NATIVE.iter().any(|n| name == n || name.starts_with(n)) {
                    found.push(name.clone());
                } else if name == "next" {
                    found.push("next (@next/swc-*)".to_string());
                } else if name == "vite" {
                    found.push("vite (esbuild, @rollup/rollup-*)".to_string());
                }
            }
        }
    }
    // Pulled in further down the tree (vite → esbuild, rollup).
    for lock in &ctx.lockfiles {
        for package in &lock.packages {
            let name = package.name.as_str();
            if !package.dev
                && (name == "esbuild"
                    || name == "sharp"
                    || name == "lightningcss"
                    || name == "@swc/core")
            {
                found.push(name.to_string());
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    let natives = native_packages(ctx);
    if natives.is_empty() {
        return;
    }
    let list = natives.join(", ");
    for view in ctx.dockerfiles() {
        let path = ctx.file(view.id).source.path.clone();
        for stage in 0..view.stages.len() {
            for run in view.stage_commands(stage) {
                if !matches!(run.command.program(), Some("npm" | "yarn" | "pnpm")) {
                    continue;
                }
                let Some(i) = run.command.words.iter().position(|w| {
                    matches!(
                        w.text.as_str(),
                        "--omit=optional" | "--no-optional" | "--ignore-optional"
                    )
                }) else {
                    continue;
                };
                let word = run.word_span(i);
                let f = Finding::new(RULE.id, RULE.severity, view.id, word, format!("`{}` removes the platform binaries of {list} (shipped as optionalDependencies)", run.command.words[i].text));
                let text = &ctx.file(view.id).source.text;
                let start = if text[..word.start].ends_with(' ') {
                    word.start - 1
                } else {
                    word.start
                };
                out.push(if run.text_base.is_some() {
                    f.fix_with(
                        "keep optional dependencies",
                        vec![Edit::replace(path.clone(), Span::new(start, word.end), "")],
                    )
                } else {
                    f.advise("keep optional dependencies")
                });
            }
        }
    }
    for (id, file) in ctx.project.of_kind(Kind::Npmrc) {
        for (n, line) in file.source.text.lines().enumerate() {
            let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            if compact == "optional=false"
                || compact == "omit=optional"
                || compact == "omit[]=optional"
            {
                let span = file.source.line_span(n + 1);
                let end = file.source.text[span.end..]
                    .find('\n')
                    .map_or(span.end, |p| span.end + p + 1);
                out.push(
                    Finding::new(RULE.id, RULE.severity, id, span, format!("`{}` removes the platform binaries of {list} (shipped as optionalDependencies)", line.trim()))
                        .fix_with("remove the line", vec![Edit::replace(file.source.path.clone(), Span::new(span.start, end), "")]),
                );
            }
        }
    }
}
