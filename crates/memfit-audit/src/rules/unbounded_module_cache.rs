use super::Rule;
use crate::context::Context;
use crate::finding::{Finding, Severity};
use crate::js::JsFile;

pub const RULE: Rule = Rule {
    id: "unbounded-module-cache",
    severity: Severity::Warning,
    summary:
        "A module-level Map, Set, object or array that request handlers add to and nothing bounds",
    doc: r#"## What it does
Finds a collection declared at module scope (`new Map()`, `new Set()`, `{}`, `[]`) that a
function running repeatedly (a request handler, an event or interval callback) adds to —
`set`, `add`, `push`, `unshift`, `obj[key] =` with a computed key — when nothing anywhere in
the file removes from it or bounds it: no `delete`, `clear`, `splice`, `shift`, `pop`,
`delete obj[key]`, no reassignment, no `length =`, no comparison on its `size`/`length`.
Writes with literal keys (a fixed set of entries) are left alone.

## Why is this bad?
Module scope lives as long as the process. A cache keyed by request data grows with traffic
and never shrinks: the classic slow leak that ends in an OOM kill after hours or days.

## Example
```js
const sessions = new Map();
app.post("/login", (req, res) => {
  sessions.set(req.body.user, { at: Date.now(), profile: req.body });
  res.sendStatus(204);
});
```

## Use instead
```js
const sessions = new LRUCache({ max: 10_000, ttl: 30 * 60_000 });
```
or delete entries when they expire, or check `sessions.size` before adding.
"#,
    check,
};

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    for JsFile { file, facts, .. } in &ctx.js {
        for c in &facts.collections {
            if facts.bounded.contains(&c.symbol) {
                continue;
            }
            let growing = facts
                .writes
                .iter()
                .filter(|w| w.symbol == c.symbol && !w.literal_key && w.func.is_some())
                .find_map(|w| facts.repeated(w.func).map(|why| (w, why)));
            let Some((write, why)) = growing else {
                continue;
            };
            let (line, _) = ctx.file(*file).source.line_col(write.span.start);
            out.push(
                Finding::new(
                    RULE.id,
                    RULE.severity,
                    *file,
                    c.span,
                    format!("module-level {} `{}` grows in {why} (line {line}) and nothing removes from it or bounds it", c.kind, c.name),
                )
                .advise("bound it: an LRU cache with max and ttl, delete entries when done, or check its size before adding"),
            );
        }
    }
}
