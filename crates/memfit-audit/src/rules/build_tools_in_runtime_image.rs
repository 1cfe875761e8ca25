use super::Rule;
use crate::context::Context;
use crate::finding::{Finding, Severity};

pub const RULE: Rule = Rule {
    id: "build-tools-in-runtime-image",
    severity: Severity::Warning,
    summary: "Compilers, headers or global build CLIs installed in the image that ships",
    doc: r#"## What it does
In the stages that ship, finds system packages that only a build needs (`build-essential`,
`gcc`, `g++`, `make`, `cmake`, `*-dev` headers, `git`, and `python3` for node-gyp in a Node
image) installed with apt, apk, dnf, yum or microdnf, and global installs of build CLIs
(`npm install -g typescript`, `@nestjs/cli`, `node-gyp`).

## Why is this bad?
They make the image hundreds of MB larger and serve no purpose at runtime: native modules
are compiled once, at build time. No Dockerfile linter covers this ("Do not install
unnecessary packages" is marked "Not supported" in dockle, CIS-DI-0003).

## Example
```dockerfile
FROM node:20-slim
RUN apt-get update && apt-get install -y build-essential python3 && npm ci --omit=dev
```

## Use instead
Install the toolchain and compile native modules in a build stage; copy `node_modules` into
a final stage that has only the runtime libraries.
"#,
    check,
};

const BUILD_PACKAGES: &[&str] = &[
    "build-essential",
    "build-base",
    "gcc",
    "g++",
    "gcc-c++",
    "make",
    "cmake",
    "clang",
    "autoconf",
    "automake",
    "libtool",
    "git",
    "node-gyp",
    "musl-dev",
    "libc6-dev",
    "linux-headers",
];

const GLOBAL_CLIS: &[&str] = &[
    "typescript",
    "ts-node",
    "@nestjs/cli",
    "node-gyp",
    "webpack",
    "webpack-cli",
    "@angular/cli",
    "turbo",
    "nodemon",
];

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    for view in ctx.dockerfiles() {
        // A single-stage build needs its toolchain; single-stage-build says what to change.
        if view.stages.len() == 1 && view.stage_builds(0).is_some() {
            continue;
        }
        for (_, run) in view.shipped_commands() {
            let command = &run.command;
            let program = command.program().unwrap_or_default();
            let installs = match program {
                "apt-get" | "apt" | "dnf" | "yum" | "microdnf" | "zypper" => {
                    command.subcommand() == Some("install")
                }
                "apk" => command.subcommand() == Some("add"),
                _ => false,
            };
            let mut found: Vec<String> = Vec::new();
            if installs {
                for operand in command.operands().skip(1) {
                    let name = operand.split(['=', '>', '<']).next().unwrap_or(operand);
                    let python_for_gyp =
                        ctx.runtime.is_node && matches!(name, "python3" | "python" | "python3-dev");
                    if BUILD_PACKAGES.contains(&name)
                        || python_for_gyp
                        || (name.ends_with("-dev") || name.ends_with("-devel"))
                    {
                        found.push(name.to_string());
                    }
                }
            }
            if matches!(program, "npm" | "pnpm" | "yarn") && command.has_option(&["-g", "--global"])
                || (program == "yarn" && command.subcommand() == Some("global"))
            {
                for operand in command.operands() {
                    let name = operand
                        .rsplit_once('@')
                        .filter(|(n, _)| !n.is_empty())
                        .map_or(operand, |(n, _)| n);
                    if GLOBAL_CLIS.contains(&name) {
                        found.push(name.to_string());
                    }
                }
            }
            if found.is_empty() {
                continue;
            }
            out.push(
                Finding::new(
                    RULE.id,
                    RULE.severity,
                    view.id,
                    run.command_span(),
                    format!("build tools in the image that ships: {}", found.join(", ")),
                )
                .advise("install them in a build stage, compile there, and copy the result into a final stage without them"),
            );
        }
    }
}
