use std::path::Path;

use super::Rule;
use crate::context::Context;
use crate::dockerfile::Keyword;
use crate::finding::{Edit, Finding, Severity};
use crate::project::Kind;

pub const RULE: Rule = Rule {
    id: "copy-context-without-dockerignore",
    severity: Severity::Warning,
    summary: "`COPY . .` with no .dockerignore, or one that does not exclude node_modules and .git",
    doc: r#"## What it does
Finds `COPY . <dest>` / `ADD . <dest>` in a Dockerfile whose build context has no
`.dockerignore` (nor a `<Dockerfile>.dockerignore` beside it), or whose `.dockerignore` does
not exclude `node_modules` (in a Node project) or `.git`.

## Why is this bad?
The whole directory goes into the build context and the layer: the host's `node_modules`
(built for another OS, and large), the git history, local build output. It also overwrites
the `node_modules` an earlier `npm ci` installed in the image (droast DF007, dockerfile-roast#16).

## Example
```dockerfile
COPY . .
```
with no `.dockerignore`.

## Use instead
A `.dockerignore` beside the Dockerfile:
```
node_modules
.git
npm-debug.log*
coverage
```
"#,
    check,
};

const DEFAULT_IGNORE: &str = "node_modules\n.git\nnpm-debug.log*\ncoverage\n";

fn excludes(patterns: &str, name: &str) -> bool {
    patterns.lines().map(str::trim).any(|l| {
        let l = l
            .trim_start_matches("**/")
            .trim_start_matches('/')
            .trim_end_matches('/');
        l == name || l == format!("{name}/**") || l == "*" || l == "**"
    })
}

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    let node_project = ctx.project.of_kind(Kind::PackageJson).next().is_some();
    for view in ctx.dockerfiles() {
        let copies_context = view.docker.instructions.iter().find(|i| {
            matches!(i.keyword, Keyword::Copy | Keyword::Add)
                && i.flag("from").is_none()
                && i.heredocs.is_empty()
                && {
                    let words: Vec<&str> = i.args().split_whitespace().collect();
                    words.len() >= 2
                        && words[..words.len() - 1]
                            .iter()
                            .any(|w| matches!(*w, "." | "./" | "./*" | "*"))
                }
        });
        let Some(copy) = copies_context else { continue };
        let dir = ctx.project.dir_of(view.id);
        let dockerfile_name = ctx
            .file(view.id)
            .source
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let specific = dir.join(format!("{dockerfile_name}.dockerignore"));
        let general = dir.join(".dockerignore");
        let ignore = [specific, general.clone()].into_iter().find_map(|p| {
            ctx.project
                .find(&p.to_string_lossy().replace('\\', "/"))
                .map(|(id, f)| (id, f, p))
        });
        match ignore {
            None => out.push(
                Finding::new(
                    RULE.id,
                    RULE.severity,
                    view.id,
                    copy.span,
                    "`COPY .` sends the whole directory (node_modules, .git, local builds) into the image: there is no .dockerignore",
                )
                .fix_with(
                    format!("create {} excluding node_modules, .git, logs and coverage", display(&general)),
                    vec![Edit::insert(general, 0, DEFAULT_IGNORE)],
                ),
            ),
            Some((id, file, path)) => {
                // A link out of the project is reported as such (unreadable-file) and not
                // read: nothing to say about what it excludes.
                if ctx
                    .project
                    .file_findings
                    .iter()
                    .any(|f| f.file == id && f.rule == "unreadable-file")
                {
                    continue;
                }
                let text = &file.source.text;
                let mut missing = Vec::new();
                if node_project && !excludes(text, "node_modules") {
                    missing.push("node_modules");
                }
                if !excludes(text, ".git") {
                    missing.push(".git");
                }
                if missing.is_empty() {
                    continue;
                }
                let mut addition = String::new();
                if !text.is_empty() && !text.ends_with('\n') {
                    addition.push('\n');
                }
                for m in &missing {
                    addition.push_str(m);
                    addition.push('\n');
                }
                out.push(
                    Finding::new(
                        RULE.id,
                        RULE.severity,
                        view.id,
                        copy.span,
                        format!("`COPY .` copies {} into the image: {} does not exclude it", missing.join(" and "), display(&path)),
                    )
                    .fix_with(format!("add {} to {}", missing.join(", "), display(&path)), vec![Edit::insert(path.clone(), text.len(), addition)]),
                );
            }
        }
    }
}

fn display(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}
