use super::Rule;
use crate::context::Context;
use crate::finding::{Finding, Severity};
use crate::js::JsFile;

pub const RULE: Rule = Rule {
    id: "client-per-request",
    severity: Severity::Error,
    summary: "A database or cache client (a connection pool) created inside a request handler",
    doc: r#"## What it does
Finds `new PrismaClient()`, `new Pool()` / `new Client()` (pg, mysql2), `new MongoClient()`,
`mongoose.connect()` / `createConnection()`, Redis `createClient()` / `new Redis()`,
`new Sequelize()`, `knex()` and `mysql.createPool()` inside a function that runs per request
or per event, or in a function of the same file that such a function calls. A client made
lazily into a variable or property that outlives the call (`if (!pool) pool = new Pool()`,
`globalThis.prisma ??= new PrismaClient()`) is made once and does not count. Across files: an
exported function that makes a client (`export const db = () => new PrismaClient()`) called
per request from another module of the project is reported where the client is made.

## Why is this bad?
Each of these opens a connection pool with its own buffers, prepared statements and (for
Prisma's engine) native memory. Made per request, the pools pile up faster than they are
collected, connections run out, and memory grows until the process is killed.

## Example
```js
app.get("/users", async (req, res) => {
  const prisma = new PrismaClient();
  res.json(await prisma.user.findMany());
});
```

## Use instead
```js
const prisma = new PrismaClient(); // once, at module scope
app.get("/users", async (req, res) => res.json(await prisma.user.findMany()));
```
"#,
    check,
};

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    for JsFile { file, facts, .. } in &ctx.js {
        for c in &facts.clients {
            // `if (!pool) pool = new Pool()`, `client ??= createClient()`: made once, kept.
            if c.lazy {
                continue;
            }
            if let Some(why) = facts.repeated(c.func) {
                out.push(
                    Finding::new(RULE.id, RULE.severity, *file, c.span, format!("`{}` inside {why}: a new connection pool every time it runs", c.call))
                        .advise("create the client once at module scope (or in a module that exports it) and reuse it"),
                );
            }
        }
    }
}
