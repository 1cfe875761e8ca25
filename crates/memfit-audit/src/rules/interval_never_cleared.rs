use super::Rule;
use crate::context::Context;
use crate::finding::{Finding, Severity};
use crate::js::Handle;
use crate::js::JsFile;

pub const RULE: Rule = Rule {
    id: "interval-never-cleared",
    severity: Severity::Warning,
    summary: "A setInterval whose handle is never passed to clearInterval and never unref'd",
    doc: r#"## What it does
Finds `setInterval(…)` calls whose timer is never stopped: the handle is thrown away, or kept
in a variable or property that no `clearInterval`/`clearTimeout` and no `.unref()` ever
touches. Timers handed on (returned, passed to a function, pushed into a list) are left
alone: memfit cannot follow them. Intervals at the module scope of library code are
`timer-keeps-process-alive`'s.

## Why is this bad?
An interval keeps its callback and everything the callback closes over alive for as long as
the process runs. Made in a request handler or a function called per call, a new one starts
every time: the callbacks pile up, each holding its request's objects, and the service grows
until it is killed. Even one forgotten module-level interval keeps the process from exiting
on its own at shutdown.

## Example
```js
app.get("/price", (req, res) => {
  setInterval(() => refresh(req.query.symbol), 1000); // one more per request
  res.json(latest);
});
```

## Use instead
```js
const timer = setInterval(refreshAll, 1000);
timer.unref();
process.on("SIGTERM", () => clearInterval(timer));
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
        for timer in facts
            .timers
            .iter()
            .filter(|t| t.interval && !t.unref_chained)
        {
            if *library && timer.func.is_none() {
                continue;
            }
            let stopped = |h: &Handle| facts.cleared.contains(h) || facts.unrefd.contains(h);
            let why_never = match &timer.handle {
                Handle::Discarded => "its handle is not kept, so nothing can clear it".to_string(),
                Handle::Symbol(s) => {
                    if stopped(&timer.handle) || facts.escaped.contains(s) {
                        continue;
                    }
                    "its handle is never passed to clearInterval nor unref'd".to_string()
                }
                Handle::Member(name) => {
                    if stopped(&timer.handle) {
                        continue;
                    }
                    format!("`.{name}` is never passed to clearInterval nor unref'd")
                }
                Handle::Unknown => continue,
            };
            let place = match (timer.func, facts.repeated(timer.func)) {
                (_, Some(why)) => format!("inside {why}: a new interval starts every time it runs"),
                (Some(_), None) => "inside a function: each call starts another".to_string(),
                (None, None) => {
                    "at module scope: it runs, and holds its closure, for the life of the process"
                        .to_string()
                }
            };
            out.push(
                Finding::new(RULE.id, RULE.severity, *file, timer.span, format!("setInterval never cleared ({why_never}), {place}"))
                    .advise("keep the handle and clearInterval it when its work is done (or on shutdown), or call .unref() if it may run forever"),
            );
        }
    }
}
