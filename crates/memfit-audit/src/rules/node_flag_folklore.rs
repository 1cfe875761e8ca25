use super::Rule;
use crate::context::Context;
use crate::dockerfile::shell;
use crate::dockerfile::Span;
use crate::finding::{Edit, Finding, Severity};
use crate::project::Kind;
use crate::runtime::{node_flags, NodeOptions, Origin};

pub const RULE: Rule = Rule {
    id: "node-flag-folklore",
    severity: Severity::Warning,
    summary: "Node flags from OOM guides that do nothing (--gc-interval), cost speed (--optimize-for-size) or go unused (--expose-gc)",
    doc: r#"## What it does
Finds Node flags that memory guides recommend but that do not do what the guides say:
- `--gc-interval=N`: a V8 testing flag, compiled only with V8_ENABLE_ALLOCATION_TIMEOUT,
  which release Node does not set. Measured: 28 GC events with no flag, 27 with
  `--gc-interval=100` and with `--gc-interval=1`. It does nothing.
- `--optimize-for-size`: a real trade-off, not a free win. Measured on an allocation-heavy
  loop: max RSS 183 → 73 MiB, but 345 GC events instead of 28 and 3× the run time.
- `--expose-gc` with no `gc()` call anywhere in the project's sources: it only exposes a
  function nobody calls.

Every npm script is checked: the ones the production start command runs at the rule's
severity, the others (a worker, a cron job, a script run in CI) as `info`.

## Why is this bad?
They give a false sense that memory is handled, and `--optimize-for-size` makes every request
slower.

## Example
```dockerfile
ENV NODE_OPTIONS="--max-old-space-size=384 --gc-interval=100 --optimize-for-size"
```

## Use instead
```dockerfile
ENV NODE_OPTIONS="--max-old-space-size=384"
```
Keep `--optimize-for-size` only where a measurement (`memfit run`) shows the container
cannot fit otherwise.

## References
- V8's flag definitions (`gc_interval` takes effect only with V8_ENABLE_ALLOCATION_TIMEOUT):
  https://github.com/v8/v8/blob/main/src/flags/flag-definitions.h
- Node's V8 build features (V8_ENABLE_ALLOCATION_TIMEOUT only with `v8_enable_test_features`,
  off by default): https://github.com/nodejs/node/blob/main/tools/v8_gypfiles/features.gypi
- The measurements above: `bench/node_flag_effects.sh` (GC events counted with `--trace-gc`),
  Node 20.20.
"#,
    check,
};

fn calls_gc(ctx: &Context) -> bool {
    ctx.project.of_kind(Kind::Script).any(|(_, f)| {
        let t = &f.source.text;
        t.contains("gc()") || t.contains("global.gc") || t.contains("globalThis.gc")
    })
}

/// An edit that removes a flag (and one space beside it) from a setting's text.
fn removal(ctx: &Context, options: &NodeOptions, flag: &str) -> Option<Edit> {
    let file = ctx.file(options.file);
    let text = &file.source.text;
    let region = text.get(options.span.start..options.span.end)?;
    let pos = region.find(flag)?;
    let start = options.span.start + pos;
    let mut end = start + flag.len();
    end += text[end..]
        .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ']' || c == ',')
        .unwrap_or(text.len() - end);
    let (start, end) = if text[end..].starts_with(' ') {
        (start, end + 1)
    } else if text[..start].ends_with(' ') {
        (start - 1, end)
    } else {
        (start, end)
    };
    Some(Edit::replace(
        file.source.path.clone(),
        Span::new(start, end),
        "",
    ))
}

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    let mut gc_called = None;
    for options in &ctx.runtime.node_options {
        check_options(ctx, options, RULE.severity, &mut gc_called, out);
    }
    // Every other npm script: users run them elsewhere (a worker, a cron job, CI), so their
    // folklore is reported too, one step lower.
    for options in other_scripts(ctx) {
        check_options(ctx, &options, Severity::Info, &mut gc_called, out);
    }
}

/// Node options in the package.json scripts the start command does not run.
fn other_scripts(ctx: &Context) -> Vec<NodeOptions> {
    let mut out = Vec::new();
    for (id, _) in ctx.project.of_kind(Kind::PackageJson) {
        let Some(scripts) = ctx.project.json(id).and_then(|p| p.get("scripts")) else {
            continue;
        };
        for (name, _, node) in scripts.entries() {
            let place = format!("package.json scripts.{name}");
            let started = ctx
                .runtime
                .start
                .iter()
                .any(|s| s.file == id && s.place == place);
            let Some(text) = node.as_str() else { continue };
            if started {
                continue;
            }
            for command in shell::split(text) {
                let mut settings: Vec<(Origin, String)> = command
                    .assignments()
                    .filter(|(n, _)| *n == "NODE_OPTIONS")
                    .map(|(_, v)| (Origin::InlineEnv, v.to_string()))
                    .collect();
                if command.program() == Some("node") {
                    let flags: Vec<&str> = command
                        .args()
                        .iter()
                        .map(|w| w.text.as_str())
                        .take_while(|w| w.starts_with('-'))
                        .collect();
                    if !flags.is_empty() {
                        settings.push((Origin::CommandLine, flags.join(" ")));
                    }
                }
                for (origin, text) in settings {
                    out.push(NodeOptions {
                        origin,
                        place: format!("{place}, not the start command"),
                        file: id,
                        span: node.span,
                        flags: node_flags(&text),
                        text,
                        runtime: false,
                    });
                }
            }
        }
    }
    out
}

/// The findings of one place that sets Node options.
fn check_options(
    ctx: &Context,
    options: &NodeOptions,
    severity: Severity,
    gc_called: &mut Option<bool>,
    out: &mut Vec<Finding>,
) {
    for flag in options.flags.flags() {
        let name = flag.split('=').next().unwrap_or(flag).replace('_', "-");
        let finding = match name.as_str() {
            "--gc-interval" => {
                let f = Finding::new(RULE.id, severity, options.file, options.span, format!("{flag} ({}) does nothing in release Node: it is a V8 testing flag compiled only into test builds (measured: the same 60 GC events with and without it)", options.place));
                match removal(ctx, options, "--gc-interval").or_else(|| removal(ctx, options, "--gc_interval")) {
                    Some(edit) => f.fix_with("remove --gc-interval", vec![edit]),
                    None => f.advise("remove --gc-interval"),
                }
            }
            "--optimize-for-size" => Finding::new(RULE.id, severity, options.file, options.span, format!("--optimize-for-size ({}) trades speed for memory: measured 2.8× the run time and 9× the GC events for 33% less RSS", options.place))
                .advise("remove it unless `memfit run` shows the service cannot fit without it; cap the heap with --max-old-space-size instead"),
            "--expose-gc" => {
                let called = *gc_called.get_or_insert_with(|| calls_gc(ctx));
                if called {
                    continue;
                }
                let f = Finding::new(RULE.id, Severity::Info, options.file, options.span, format!("--expose-gc ({}) but no source file calls gc(): the flag exposes a function nobody calls", options.place));
                f.advise("remove --expose-gc; V8 collects on its own, and a forced gc() only adds pauses")
            }
            _ => continue,
        };
        out.push(finding);
    }
}
