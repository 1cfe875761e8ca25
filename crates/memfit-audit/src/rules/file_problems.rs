//! Rules whose findings come from reading the files themselves (see `project::load`).

use super::Rule;
use crate::context::Context;
use crate::finding::{Finding, Severity};

fn none(_: &Context, _: &mut Vec<Finding>) {}

pub const MALFORMED: Rule = Rule {
    id: "malformed-file",
    severity: Severity::Error,
    summary: "A file that does not parse or nests too deep (package.json, tsconfig, lockfiles, YAML, TOML, JS/TS)",
    doc: r#"## What it does
Reports a package.json, tsconfig, render.yaml, compose file, Kubernetes manifest, fly.toml,
railway file, Cargo.toml or lockfile (package-lock.json, pnpm-lock.yaml, bun.lock) that
does not parse, with the parser's message, and (as a warning) a JavaScript/TypeScript source
the source rules could not parse. A file nested deeper than memfit reads (256 levels of YAML,
about 2,000 of JavaScript; the JSON and TOML parsers have limits of their own) is one too: the
readers recurse, and a limit keeps a hostile file from overflowing the stack. The audit skips
the file and goes on. (memfit.toml is memfit's own configuration: a problem there, a rule id
that does not exist included, stops the audit with exit 2, as ruff does for its own.)

## Why is this bad?
The tools that read it (npm, tsc, the platform) will fail on it too, usually at deploy time.
"#,
    check: sources_that_do_not_parse,
};

/// JS/TS sources worth analysing that did not parse (the configuration files' findings come
/// from `project::load`).
fn sources_that_do_not_parse(ctx: &Context, out: &mut Vec<Finding>) {
    for js in &ctx.js {
        let Some((problem, span)) = &js.facts.problem else {
            continue;
        };
        let source = &ctx.file(js.file).source;
        out.push(
            Finding::new(
                MALFORMED.id,
                Severity::Warning,
                js.file,
                *span,
                format!(
                    "{} does not parse: {problem}; memfit's source rules skipped it",
                    source.display()
                ),
            )
            .advise("fix the syntax, or exclude the file in .gitignore if it is generated"),
        );
    }
}

pub const UNREADABLE: Rule = Rule {
    id: "unreadable-file",
    severity: Severity::Error,
    summary: "A project file memfit could not read",
    doc: r#"## What it does
Reports a file of a kind the audit reads (a Dockerfile, a manifest, a config) that could not
be read: permissions, a broken symlink, or (as a warning) a symbolic link to a file outside
the project, which memfit neither reads nor writes (`memfit fix` leaves it alone). The audit
goes on without it.

## Why is this bad?
The findings that depend on it are missing; a build that needs it will fail too.
"#,
    check: none,
};

pub const DOCKERFILE_SYNTAX: Rule = Rule {
    id: "dockerfile-syntax",
    severity: Severity::Warning,
    summary: "Something in a Dockerfile BuildKit would refuse or misread (an unknown instruction, an unterminated heredoc)",
    doc: r#"## What it does
Reports what memfit's Dockerfile parser could not make sense of: an unknown instruction, a
heredoc with no terminator, a repeated or invalid parser directive, `SHELL` not in JSON form,
`ONBUILD ONBUILD`. Parsing goes on after each: unlike hadolint, a valid Dockerfile is never
refused, and an invalid one still gets its other findings.

## Why is this bad?
BuildKit stops at these, or reads the rest of the file differently from what was meant.
"#,
    check: none,
};
