//! Rules whose findings come from reading the files themselves (see `project::load`).

use super::Rule;
use crate::context::Context;
use crate::finding::{Finding, Severity};

fn none(_: &Context, _: &mut Vec<Finding>) {}

pub const MALFORMED: Rule = Rule {
    id: "malformed-file",
    severity: Severity::Error,
    summary: "A configuration file that does not parse (package.json, tsconfig, YAML, TOML)",
    doc: r#"## What it does
Reports a package.json, tsconfig, render.yaml, compose file, Kubernetes manifest, fly.toml,
railway file or Cargo.toml that does not parse, with the parser's message. The audit skips
the file and goes on. (memfit.toml is memfit's own configuration: a problem there, a rule id
that does not exist included, stops the audit with exit 2, as ruff does for its own.)

## Why is this bad?
The tools that read it (npm, tsc, the platform) will fail on it too, usually at deploy time.
"#,
    check: none,
};

pub const UNREADABLE: Rule = Rule {
    id: "unreadable-file",
    severity: Severity::Error,
    summary: "A project file memfit could not read",
    doc: r#"## What it does
Reports a file of a kind the audit reads (a Dockerfile, a manifest, a config) that could not
be read: permissions, a broken symlink. The audit goes on without it.

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
