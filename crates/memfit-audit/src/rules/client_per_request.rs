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

/// A call as the source visitor sees it, for `makes_client`.
pub enum Call<'a> {
    /// `createClient()`, `knex()`.
    Function(&'a str),
    /// `mongoose.connect()`, `mysql.createPool()`: a method of an object, as written.
    Method { object: &'a str, method: &'a str },
    /// `new Pool()`, `new pg.Pool()`: the constructor's name, and the callee as written.
    New { name: &'a str, callee: &'a str },
}

/// Whether a call makes a database or cache client. `imports_any` says whether the file
/// imports one of the given modules: a `createClient()` is Redis's only in a file that
/// imports redis, a `new Pool()` pg's or mysql2's.
pub fn makes_client(call: &Call<'_>, imports_any: impl Fn(&[&str]) -> bool) -> bool {
    match *call {
        Call::Function("createClient") => imports_any(&["redis", "@redis/client"]),
        Call::Function("knex") => imports_any(&["knex"]),
        Call::Function("createPool" | "createConnection") => imports_any(&["mysql", "mysql2"]),
        Call::Function(_) => false,
        Call::Method {
            object: "mongoose",
            method: "connect" | "createConnection",
        } => true,
        Call::Method {
            object: "mysql" | "mysql2" | "redis",
            method: "createPool" | "createConnection" | "createClient",
        } => true,
        Call::Method { .. } => false,
        Call::New {
            name: "PrismaClient" | "MongoClient" | "Sequelize",
            ..
        } => true,
        Call::New {
            name: "Pool" | "Client",
            callee,
        } => {
            imports_any(&["pg", "mysql2", "@neondatabase/serverless"]) || callee.starts_with("pg.")
        }
        Call::New {
            name: "Redis" | "IORedis" | "Cluster",
            ..
        } => imports_any(&["ioredis", "redis"]),
        Call::New { .. } => false,
    }
}

/// Text found in a file that makes a client the usual way; the source prefilter parses no
/// file for this rule without one.
pub const TRIGGERS: &[&str] = &[
    "PrismaClient",
    "MongoClient",
    "new Pool",
    "new Client(",
    "createClient",
    "mongoose.connect",
    "mongoose.createConnection",
    "knex(",
    "Sequelize(",
    "createPool(",
    "createConnection(",
    "new Redis(",
];

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
