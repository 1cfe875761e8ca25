use super::Rule;
use crate::context::Context;
use crate::finding::{Finding, Severity};
use crate::js::Handle;
use crate::js::JsFile;

pub const RULE: Rule = Rule {
    id: "timer-keeps-process-alive",
    severity: Severity::Info,
    summary: "A module-level interval in library code without .unref()",
    doc: r#"## What it does
Finds `setInterval` at the module scope of library code (a package with an entry point and
no `start` script) whose timer is never `.unref()`'d.

## Why is this bad?
Importing the library starts a timer that keeps the event loop alive: the application's
process cannot exit on its own (tests hang, graceful shutdowns wait for a SIGKILL), and the
callback's closure lives forever.

## Example
```js
const sweep = setInterval(evictExpired, 60_000);
```

## Use instead
```js
const sweep = setInterval(evictExpired, 60_000);
sweep.unref();
```
"#,
    check,
};

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    for JsFile {
        file,
        facts,
        library,
    } in &ctx.js
    {
        if !library {
            continue;
        }
        for timer in facts
            .timers
            .iter()
            .filter(|t| t.interval && t.func.is_none() && !t.unref_chained)
        {
            if matches!(timer.handle, Handle::Unknown) || facts.unrefd.contains(&timer.handle) {
                continue;
            }
            if let Handle::Symbol(s) = &timer.handle {
                if facts.escaped.contains(s) {
                    continue;
                }
            }
            out.push(
                Finding::new(RULE.id, RULE.severity, *file, timer.span, "a module-level interval in library code keeps every importer's process alive: it is never unref'd")
                    .advise("call .unref() on the timer (and clear it in the library's close/shutdown function)"),
            );
        }
    }
}
