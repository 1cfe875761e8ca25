use super::Rule;
use crate::context::Context;
use crate::finding::{Finding, Severity};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

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
per request from another file of the project is reported where the client is made.

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

/// The file a relative import names: `./db` → `db.ts`, `db.js`, `db/index.js`…
fn resolve(from: &Path, specifier: &str, files: &HashMap<PathBuf, usize>) -> Option<usize> {
    let mut path = from.parent().unwrap_or(Path::new("")).to_path_buf();
    for part in specifier.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                path.pop();
            }
            p => path.push(p),
        }
    }
    const EXT: &[&str] = &["ts", "tsx", "js", "mjs", "cjs", "mts", "cts", "jsx"];
    let mut candidates = vec![path.clone()];
    // `./db.js` in TypeScript sources names `db.ts`.
    if let Some(stem) = path.file_stem() {
        if path.extension().is_some() {
            candidates.extend(
                EXT.iter()
                    .map(|e| path.with_file_name(stem).with_extension(e)),
            );
        }
    }
    candidates.extend(EXT.iter().map(|e| {
        let mut p = path.clone().into_os_string();
        p.push(format!(".{e}"));
        PathBuf::from(p)
    }));
    candidates.extend(EXT.iter().map(|e| path.join(format!("index.{e}"))));
    candidates.iter().find_map(|c| files.get(c).copied())
}

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    // Client factories exported by one file and called per request from another.
    let files: HashMap<PathBuf, usize> = ctx
        .js
        .iter()
        .enumerate()
        .map(|(i, (id, _, _))| (ctx.project.file(*id).source.path.clone(), i))
        .collect();
    let mut reported: HashSet<(usize, usize)> = HashSet::new();
    for (caller_file, facts, _) in &ctx.js {
        for call in &facts.imported_calls {
            let Some(why) = facts.repeated(call.func) else {
                continue;
            };
            let caller = &ctx.project.file(*caller_file).source;
            let Some(target) = resolve(&caller.path, &call.specifier, &files) else {
                continue;
            };
            let (factory_file, factory_facts, _) = &ctx.js[target];
            for f in factory_facts
                .factories
                .iter()
                .filter(|f| f.export == call.name)
            {
                let (client, _) = &factory_facts.clients[f.client];
                // Already reported where it is made, or from another caller.
                if factory_facts.repeated(client.func).is_some()
                    || !reported.insert((target, f.client))
                {
                    continue;
                }
                let (line, _) = caller.line_col(call.span.start);
                out.push(
                    Finding::new(RULE.id, RULE.severity, *factory_file, client.span, format!("`{}` inside `{}()`, which {}:{line} calls from {why}: a new connection pool every time it runs", client.what, f.function, caller.display()))
                        .advise("create the client once at module scope and export it (or cache it in the factory) instead of making it per call"),
                );
            }
        }
    }
    for (file, facts, _) in &ctx.js {
        for (c, lazy) in &facts.clients {
            // `if (!pool) pool = new Pool()`, `client ??= createClient()`: made once, kept.
            if *lazy {
                continue;
            }
            if let Some(why) = facts.repeated(c.func) {
                out.push(
                    Finding::new(RULE.id, RULE.severity, *file, c.span, format!("`{}` inside {why}: a new connection pool every time it runs", c.what))
                        .advise("create the client once at module scope (or in a module that exports it) and reuse it"),
                );
            }
        }
    }
}
