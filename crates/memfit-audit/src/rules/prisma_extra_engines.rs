use super::Rule;
use crate::context::Context;
use crate::dockerfile::Span;
use crate::finding::{Finding, Severity};
use crate::project::Kind;

pub const RULE: Rule = Rule {
    id: "prisma-extra-engines",
    severity: Severity::Info,
    summary: "The Prisma client generator ships several query engines, or runs the engine as a separate binary",
    doc: r#"## What it does
Reads `schema.prisma` and reports a `generator client` with more than one `binaryTargets`
entry, or with `engineType = "binary"`.

## Why is this bad?
Every binary target is a Rust query engine downloaded and shipped in the image; only the one
for the container's platform is used. With `engineType = "binary"` the engine runs as a
separate process with its own memory beside Node, and it grows on bulk queries
(prisma/prisma-engines#2072). Prisma's JS-only `queryCompiler` + driver adapters mode ships
no Rust engine at all (prisma/web#7066).

## Example
```prisma
generator client {
  provider      = "prisma-client-js"
  binaryTargets = ["native", "debian-openssl-3.0.x", "linux-musl-openssl-3.0.x", "rhel-openssl-1.0.x"]
}
```

## Use instead
```prisma
generator client {
  provider      = "prisma-client-js"
  binaryTargets = ["native", "debian-openssl-3.0.x"]
}
```
(`native` for development, plus the container's own platform.)
"#,
    check,
};

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    for (id, file) in ctx.project.of_kind(Kind::Prisma) {
        let text = &file.source.text;
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            let trimmed = line.trim();
            let span = Span::new(offset, offset + line.trim_end().len());
            offset += line.len();
            if let Some(rest) = trimmed.strip_prefix("binaryTargets") {
                let targets = rest.matches('"').count() / 2;
                if targets > 2 {
                    out.push(
                        Finding::new(RULE.id, RULE.severity, id, span, format!("{targets} binaryTargets: each is a query engine downloaded and shipped, and the container uses one"))
                            .advise("keep \"native\" and the container's platform only (e.g. \"debian-openssl-3.0.x\" for node:*-slim)"),
                    );
                }
            }
            if trimmed.starts_with("engineType") && trimmed.contains("\"binary\"") {
                out.push(
                    Finding::new(RULE.id, RULE.severity, id, span, "engineType = \"binary\" runs the query engine as a separate process, with its own memory beside Node")
                        .advise("use the default library engine (or the JS queryCompiler with a driver adapter)"),
                );
            }
        }
    }
}
