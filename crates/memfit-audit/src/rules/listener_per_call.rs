use super::Rule;
use crate::context::Context;
use crate::finding::{Finding, Severity};
use crate::js::Handle;
use crate::js::JsFile;

pub const RULE: Rule = Rule {
    id: "listener-per-call",
    severity: Severity::Error,
    summary: "A listener added to a long-lived emitter inside a function that runs repeatedly, and never removed",
    doc: r#"## What it does
Finds `.on` / `.addListener` / `.addEventListener` / `.prependListener` on a long-lived
emitter — `process`, a module-scope object (a server, a database client, a socket made
outside the function), or a property of one — inside a function that runs repeatedly: a
route or request handler, a per-connection or per-event callback, an interval callback.
Listeners with a matching `off`/`removeListener`/`removeEventListener` (same emitter, event
and named handler), `removeAllListeners(event)`, `{ once: true }` or an AbortSignal are left
alone, and so are registrations under an `if` (often a run-once guard).

## Why is this bad?
Every call adds one more listener that closes over the call's objects; the emitter keeps
them all. Node warns "MaxListenersExceededWarning: Possible EventEmitter memory leak
detected" at 11, but the growth goes on until the process is killed. An inline handler can
never be removed.

## Example
```js
app.post("/jobs", (req, res) => {
  queue.on("completed", (job) => notify(req.user, job)); // one more per request
  res.sendStatus(202);
});
```

## Use instead
```js
queue.on("completed", (job) => notify(job.data.user, job)); // once, at module scope
app.post("/jobs", (req, res) => { queue.add({ user: req.user }); res.sendStatus(202); });
```
"#,
    check,
};

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    for JsFile { file, facts, .. } in &ctx.js {
        for l in &facts.listeners {
            if !(l.long_lived || l.outer_from.is_some()) || l.once_option || l.conditional {
                continue;
            }
            // A local of an enclosing function (a connection's socket) counts when something
            // between it and the listener runs repeatedly (each message on that socket).
            let stop = if l.long_lived { None } else { l.outer_from };
            let Some(why) = facts.repeated_below(l.func, stop) else {
                continue;
            };
            let removed = facts.removals.iter().any(|r| {
                r.emitter == l.emitter
                    && (r.event.is_none() || l.event.is_none() || r.event == l.event)
                    && (r.all
                        || (!l.inline_handler
                            && r.handler == l.handler
                            && !matches!(r.handler, Handle::Unknown)))
            });
            if removed {
                continue;
            }
            let event = l
                .event
                .as_deref()
                .map(|e| format!("'{e}' "))
                .unwrap_or_default();
            let handler = if l.inline_handler {
                "an inline handler that can never be removed"
            } else {
                "a handler nothing removes"
            };
            out.push(
                Finding::new(
                    RULE.id,
                    RULE.severity,
                    *file,
                    l.span,
                    format!("a {event}listener is added to `{}` inside {why}, with {handler}: one more every time it runs", l.emitter),
                )
                .advise("register the listener once at module scope, or remove it when the call is done (emitter.off with the same function), or use once"),
            );
        }
    }
}
