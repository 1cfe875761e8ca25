use super::Rule;
use crate::context::Context;
use crate::dockerfile::Span;
use crate::finding::{Edit, Finding, Severity};

pub const RULE: Rule = Rule {
    id: "full-base-image",
    severity: Severity::Warning,
    summary: "The image ships on a full runtime base (node:20, node:lts, python:3.12, openjdk, rust, golang) where a slim, alpine or distroless variant would do",
    doc: r#"## What it does
Reads the base image of the stage that ships (following `FROM <stage>` to the image) and
reports:
- `node:<version>`, `node:lts`, `node:latest` and `node:<version>-bookworm` (full Debian)
  where `node:<version>-slim` would do,
- `python:<version>` (full Debian) where `python:<version>-slim` would do,
- a JDK (`openjdk:<version>`, `eclipse-temurin:<version>-jdk`) where a JRE would do,
- any `rust` image: the binary needs no compiler at runtime,
- any `golang` image: a Go binary built with `CGO_ENABLED=0` needs no toolchain, not even a
  libc (`gcr.io/distroless/static-debian12`).

A single-stage Dockerfile that builds in that stage is `single-stage-build`'s finding (the
multi-stage build it suggests ships a slim stage), not this rule's. The fix rewrites the tag
to its `-slim` variant only when the shipped stage installs nothing (no `npm ci`, `pip
install`, `apt-get install`…), where a missing compiler or header cannot break the build.

## Why is this bad?
The full images carry a whole Debian with compilers, headers and version control that the
service never runs: more to pull on every deploy and every new node, and more packages to
patch. The sizes memfit quotes, each from a public page that states it:
- node: on Docker Hub (linux/amd64, compressed, read 2026-12-01 on
  https://hub.docker.com/_/node/tags?name=22.23.4) `node:22.23.4` is 389.5 MB and
  `node:22.23.4-slim` 76.15 MB: 313 MB more.
- python: `python:3.8` 884 MB, `python:3.8.5-slim` 113 MB, `python:3.8-alpine` 43.3 MB
  (uncompressed, as `docker images` lists them; https://markneumann.xyz/blog/docker-python,
  2021-07-19). An old line, but the variants differ by the same Debian packages today.
- rust: a Rust hello-world image is 124 MB on `debian`, 80.8 MB on `debian:slim` and 23 MB
  on `gcr.io/distroless/cc` (uncompressed;
  https://github.com/tbillington/rust-docker-cheatsheet, README of 2022-11-26); the `rust`
  image adds the toolchain on top of Debian.
- eclipse-temurin (JDK against JRE) and golang (against distroless static): no public page
  found that states both sizes of the same release, so the finding gives none (Docker Hub's
  tag pages show them: https://hub.docker.com/_/eclipse-temurin/tags,
  https://hub.docker.com/_/golang/tags).

## Example
```dockerfile
FROM node:20
COPY --from=build /app/dist ./dist
CMD ["node", "dist/server.js"]
```

## Use instead
```dockerfile
FROM node:20-slim
```
`gcr.io/distroless/nodejs20-debian12`, `python:3.12-slim`, `eclipse-temurin:21-jre`,
`gcr.io/distroless/cc-debian12` (for a Rust binary) and `gcr.io/distroless/static-debian12`
(for a Go binary built with `CGO_ENABLED=0`) are the usual runtime bases.

## References
- The node image's variants: https://hub.docker.com/_/node ("node:<version>-slim")
- Compressed sizes per tag: https://hub.docker.com/_/node/tags?name=22.23.4
- Distroless images: https://github.com/GoogleContainerTools/distroless
- python sizes: https://markneumann.xyz/blog/docker-python (2021-07-19)
- Rust image sizes by base: https://github.com/tbillington/rust-docker-cheatsheet
"#,
    check,
};

/// Docker Hub, node tags page for 22.23.4, linux/amd64 compressed sizes, read 2026-12-01:
/// `node:22.23.4` 389.5 MB, `node:22.23.4-slim` 76.15 MB.
pub const NODE_FULL_MB: f64 = 389.5;
pub const NODE_SLIM_MB: f64 = 76.15;

/// `docker images` listing of 2021-07-19 (https://markneumann.xyz/blog/docker-python),
/// uncompressed: `python:3.8` 884 MB, `python:3.8.5-slim` 113 MB.
pub const PYTHON_FULL_MB: f64 = 884.0;
pub const PYTHON_SLIM_MB: f64 = 113.0;

/// A Rust hello world's image, uncompressed, by base (tbillington/rust-docker-cheatsheet,
/// README of 2022-11-26): `debian` 124 MB, `debian:slim` 80.8 MB, `gcr.io/distroless/cc` 23
/// MB.
pub const RUST_ON_DEBIAN_MB: f64 = 124.0;
pub const RUST_ON_DISTROLESS_CC_MB: f64 = 23.0;

/// What is wrong with a base image, and the variant to use.
struct Heavy {
    what: String,
    /// The tag to write instead, when a `-slim` tag of the same line exists.
    slim_tag: Option<String>,
    instead: String,
}

/// Whether a tag already names a light variant.
fn light(tag: &str) -> bool {
    ["slim", "alpine", "distroless", "jre", "minimal", "chiseled"]
        .iter()
        .any(|v| tag.contains(v))
}

fn heavy(image: &str) -> Option<Heavy> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let (name, tag) = match without_digest.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, t),
        _ => (without_digest, "latest"),
    };
    let base = name.rsplit('/').next().unwrap_or(name);
    let official = !name.contains('/') || name.starts_with("docker.io/library/");
    if !official || light(tag) {
        return None;
    }
    // `20-bookworm` → `20-bookworm-slim`; `20`, `lts` → `20-slim`, `lts-slim`.
    let slim = format!("{tag}-slim");
    match base {
        "node" => Some(Heavy {
            what: format!("`{image}` is the full Debian node image (node:22.23.4: {NODE_FULL_MB} MB compressed on Docker Hub, linux/amd64) where `-slim` ({NODE_SLIM_MB} MB) runs the same Node"),
            instead: format!("node:{slim}"),
            slim_tag: Some(slim),
        }),
        "python" => Some(Heavy {
            what: format!("`{image}` is the full Debian python image, with compilers and headers the service does not run (python:3.8: {PYTHON_FULL_MB} MB against {PYTHON_SLIM_MB} MB for -slim, uncompressed, in a 2021 listing)"),
            instead: format!("python:{slim}"),
            slim_tag: Some(slim),
        }),
        "openjdk" | "eclipse-temurin" | "amazoncorretto" => {
            let version: String = tag.chars().take_while(|c| c.is_ascii_digit()).collect();
            let version = if version.is_empty() { "21".to_string() } else { version };
            Some(Heavy {
                what: format!("`{image}` ships a full JDK (compiler, jlink, tools) to run a jar"),
                instead: format!("eclipse-temurin:{version}-jre"),
                slim_tag: None,
            })
        }
        "rust" => Some(Heavy {
            what: format!("`{image}` ships the Rust toolchain with the binary (a Rust hello world is {RUST_ON_DEBIAN_MB} MB on plain debian, before any toolchain, and {RUST_ON_DISTROLESS_CC_MB} MB on distroless/cc, uncompressed, in a 2022 comparison)"),
            instead: "gcr.io/distroless/cc-debian12 or debian:bookworm-slim, with the binary copied from the build stage".to_string(),
            slim_tag: None,
        }),
        "golang" => Some(Heavy {
            what: format!("`{image}` ships the Go toolchain with the binary"),
            instead: "gcr.io/distroless/static-debian12 (or scratch), with the binary built with CGO_ENABLED=0 and copied from the build stage".to_string(),
            slim_tag: None,
        }),
        _ => None,
    }
}

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    let Some(id) = ctx.runtime.dockerfile else {
        return;
    };
    let Some(view) = ctx.dockerfiles().into_iter().find(|v| v.id == id) else {
        return;
    };
    // The image the shipped stages start from: the last of `shipped` (FROM chain).
    let Some(&root) = view.shipped.last() else {
        return;
    };
    if view.stages.len() == 1 && view.stage_builds(0).is_some() {
        return;
    }
    let stage = &view.stages[root];
    let Some(found) = heavy(&stage.base) else {
        return;
    };
    let from = &view.docker.instructions[stage.from];
    let installs = view.shipped_commands().iter().any(|(_, c)| {
        let p = c.command.program().unwrap_or_default();
        let sub = c.command.subcommand().unwrap_or_default();
        matches!(
            p,
            "npm"
                | "yarn"
                | "pnpm"
                | "bun"
                | "pip"
                | "pip3"
                | "apt-get"
                | "apt"
                | "apk"
                | "gem"
                | "bundle"
        ) && matches!(sub, "ci" | "install" | "i" | "add" | "")
            || p.starts_with("python")
    });
    let finding = Finding::new(
        RULE.id,
        RULE.severity,
        view.id,
        from.span,
        format!("{}: use {}", found.what, found.instead),
    );
    let text = &ctx.file(view.id).source.text;
    let tag_span = found.slim_tag.as_ref().and_then(|_| {
        let region = text.get(from.span.start..from.span.end)?;
        let written = region.find(stage.base.as_str())?;
        let colon = stage.base.rfind(':')?;
        let start = from.span.start + written + colon + 1;
        let end = from.span.start + written + stage.base.len();
        Some(Span::new(start, end))
    });
    out.push(match (found.slim_tag, tag_span) {
        (Some(tag), Some(span)) if !installs => finding.fix_with(
            format!("ship on the -slim variant: {}", found.instead),
            vec![Edit::replace(
                ctx.file(view.id).source.path.clone(),
                span,
                tag,
            )],
        ),
        _ => finding.advise(format!(
            "ship on {} (check that nothing in the stage needs a compiler or the full OS)",
            found.instead
        )),
    });
}
