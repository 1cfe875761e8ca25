//! The JS/TS source rules, one rule at a time (as ruff's `LinterSettings::for_rule` tests),
//! on the leaking shapes of real services (the issue threads cited in the tests) and on the
//! near misses that must not fire.

use memfit_audit::audit::{self, Options};

/// What holds the source: an app (a `start` script) or a library (an entry point and no
/// `start` script).
#[derive(Clone, Copy)]
enum Package {
    App,
    Library,
}

/// Audits a project of `files` and a package.json: (file, line, message) of each finding in
/// the sources.
fn run(
    options: &Options,
    package: Package,
    files: &[(&str, &str)],
) -> Vec<(String, usize, String)> {
    let dir = tempfile::tempdir().unwrap();
    let pkg = match package {
        Package::App => r#"{"name":"app","scripts":{"start":"node server.js"}}"#,
        Package::Library => r#"{"name":"lib","main":"index.js"}"#,
    };
    std::fs::write(dir.path().join("package.json"), pkg).unwrap();
    std::fs::write(
        dir.path().join("package-lock.json"),
        r#"{"lockfileVersion":3,"packages":{}}"#,
    )
    .unwrap();
    for (file, source) in files {
        let path = dir.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, source).unwrap();
    }
    let report = audit::run(dir.path(), options).unwrap();
    report
        .findings
        .iter()
        .map(|f| {
            let source = &report.project.file(f.file).source;
            (
                source.display(),
                source.line_col(f.span.start).0,
                f.message.clone(),
            )
        })
        .filter(|(file, _, _)| files.iter().any(|(f, _)| f == file))
        .collect()
}

/// The lines where `rule`, run alone, reports in an app holding only `file`.
fn lines(rule: &str, file: &str, source: &str) -> Vec<usize> {
    lines_in(Package::App, rule, file, source)
}

fn lines_in(package: Package, rule: &str, file: &str, source: &str) -> Vec<usize> {
    run(&Options::for_rule(rule), package, &[(file, source)])
        .into_iter()
        .map(|(_, line, _)| line)
        .collect()
}

const NONE: Vec<usize> = Vec::new();

#[test]
fn interval_never_cleared_fires_per_request_and_for_a_discarded_module_interval() {
    let src = r#"
const express = require("express");
const app = express();
let latest = {};
app.get("/price", (req, res) => {
  setInterval(() => { latest[req.query.symbol] = Date.now(); }, 1000);
  res.json(latest);
});
setInterval(() => console.log("tick"), 5000);
"#;
    assert_eq!(lines("interval-never-cleared", "server.js", src), [6, 9]);
    // `latest` also grows by one key per symbol.
    assert_eq!(lines("unbounded-module-cache", "server.js", src), [4]);
}

#[test]
fn interval_never_cleared_leaves_intervals_that_are_cleared_unrefd_or_handed_on() {
    let src = r#"
const a = setInterval(flush, 1000);
process.on("SIGTERM", () => clearInterval(a));
const b = setInterval(flush, 1000);
b.unref();
setInterval(flush, 1000).unref();
class Poller {
  start() { this.timer = setInterval(() => this.poll(), 500); }
  stop() { clearInterval(this.timer); }
}
function every(ms, fn) { return setInterval(fn, ms); }
const timers = [];
function track() { const t = setInterval(flush, 10); timers.push(t); }
function flush() {}
"#;
    assert_eq!(lines("interval-never-cleared", "server.js", src), NONE);
}

#[test]
fn interval_never_cleared_fires_for_a_property_timer_nothing_clears() {
    let src = r#"
class Cache {
  constructor() { this.sweeper = setInterval(() => this.sweep(), 60000); }
  sweep() {}
}
module.exports = Cache;
"#;
    assert_eq!(lines("interval-never-cleared", "cache.js", src), [3]);
}

#[test]
fn listener_per_call_fires_for_listeners_added_per_request_to_long_lived_emitters() {
    let src = r#"
const http = require("http");
const EventEmitter = require("events");
const bus = new EventEmitter();
const server = http.createServer((req, res) => {
  process.on("uncaughtException", (err) => res.end(String(err)));
  bus.on("price", (p) => res.write(JSON.stringify(p)));
  res.end("ok");
});
server.listen(3000);
"#;
    assert_eq!(lines("listener-per-call", "server.js", src), [6, 7]);
}

#[test]
fn listener_per_call_fires_for_a_socket_made_outside_the_function_that_adds_listeners() {
    let src = r#"
const { Server } = require("socket.io");
const io = new Server(3000);
io.on("connection", (socket) => {
  socket.on("ping", () => socket.emit("pong"));            // per connection: fine
  socket.on("subscribe", (room) => {
    socket.on("disconnect", () => console.log(room));      // one more per subscribe
  });
});
function proxyRequest(req, res, ProxyServer) {
  const proxy = new ProxyServer({ target: req.url });      // per call, one request each
  proxy.on("proxyReq", (p) => {
    res.on("close", () => p.destroy());
  });
  req.on("end", () => {
    res.on("close", () => {});                             // 'end' fires once
  });
}
module.exports = proxyRequest;
"#;
    assert_eq!(lines("listener-per-call", "server.js", src), [7]);
}

#[test]
fn listener_per_call_leaves_once_removed_guarded_aborted_and_module_scope_listeners() {
    let src = r#"
const http = require("http");
const EventEmitter = require("events");
const bus = new EventEmitter();
process.on("SIGTERM", shutdown);                 // module scope: once
function shutdown() {}
function onPrice(p) {}
const server = http.createServer((req, res) => {
  req.on("data", (c) => {});                     // the request itself: per call, fine
  bus.once("price", (p) => res.end(String(p)));  // once
  bus.on("price", onPrice);                      // removed below
  req.on("close", () => bus.off("price", onPrice));
  if (!server.wired) { process.on("warning", console.warn); server.wired = true; } // guarded
  const controller = new AbortController();
  bus.addListener("tick", () => {}, { signal: controller.signal });
  res.end("ok");
});
function setup() { process.on("exit", () => {}); } // not per request
setup();
"#;
    assert_eq!(lines("listener-per-call", "server.js", src), NONE);
}

#[test]
fn a_named_handler_registered_as_a_route_runs_per_request() {
    let src = r#"
const express = require("express");
const app = express();
const clients = new Set();
function subscribe(req, res) {
  process.on("message", (m) => res.write(m));
}
async function stats(_q, s) { clients.add(s); s.end(); }
app.get("/subscribe", subscribe);
app.get("/stats", stats);
"#;
    assert_eq!(lines("listener-per-call", "server.js", src), [6]);
    assert_eq!(lines("unbounded-module-cache", "server.js", src), [4]);
}

#[test]
fn unbounded_module_cache_fires_for_a_map_an_array_and_an_object_grown_per_request() {
    let src = r#"
const express = require("express");
const app = express();
const sessions = new Map();
const seen = [];
const byId = {};
app.post("/login", (req, res) => {
  sessions.set(req.body.user, { at: Date.now() });
  seen.push(req.ip);
  byId[req.body.id] = req.body;
  res.sendStatus(204);
});
"#;
    assert_eq!(lines("unbounded-module-cache", "server.js", src), [4, 5, 6]);
}

#[test]
fn unbounded_module_cache_leaves_registries_filled_by_lifecycle_events() {
    // node-red's runtime/lib/library: plugins registered once each, by id.
    let src = r#"
const { events } = require("./util");
const libraryPlugins = {};
const sockets = new Set();
function onPluginAdded(id) { libraryPlugins[id] = { id }; }
events.on("registry:plugin-added", onPluginAdded);
events.on("connection", (s) => sockets.add(s));
"#;
    // A socket per connection, never removed: that one is a leak.
    assert_eq!(lines("unbounded-module-cache", "server.js", src), [4]);
}

#[test]
fn unbounded_module_cache_leaves_bounded_caches() {
    let src = r#"
const express = require("express");
const { LRUCache } = require("lru-cache");
const app = express();
const lru = new LRUCache({ max: 100 });
const recent = [];
const sessions = new Map();
const flags = new Map();
const registry = new Map();
function register(name, fn) { registry.set(name, fn); }   // not per request
register("a", () => {});
app.get("/x", (req, res) => {
  lru.set(req.url, 1);                                   // not a Map literal
  recent.push(req.ip);
  if (recent.length > 100) recent.shift();               // bounded
  sessions.set(req.query.id, 1);
  setTimeout(() => sessions.delete(req.query.id), 1000); // removed
  flags.set("ready", true);                              // literal key
  res.end();
});
"#;
    assert_eq!(lines("unbounded-module-cache", "server.js", src), NONE);
}

#[test]
fn unbounded_module_cache_reads_typescript_sources() {
    let src = r#"
import express, { Request, Response } from "express";
const app = express();
const cache: Map<string, Buffer> = new Map();
app.get("/img/:id", async (req: Request, res: Response) => {
  const data: Buffer = Buffer.alloc(1024);
  cache.set(req.params.id, data);
  res.send(data);
});
"#;
    assert_eq!(lines("unbounded-module-cache", "server.ts", src), [4]);
}

#[test]
fn unbounded_buffer_fires_for_a_large_body_limit_a_kept_data_chunk_and_a_request_chosen_file() {
    let src = r#"
const express = require("express");
const fs = require("fs");
const app = express();
app.use(express.json({ limit: "200mb" }));
app.use(express.urlencoded({ extended: true, limit: "1mb" }));
app.post("/upload", (req, res) => {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => res.json({ size: Buffer.concat(chunks).length }));
});
app.get("/file", (req, res) => {
  res.send(fs.readFileSync("/data/" + req.query.name));
});
"#;
    assert_eq!(lines("unbounded-buffer", "server.js", src), [5, 9, 13]);
}

#[test]
fn unbounded_buffer_fires_in_a_helper_handed_the_request() {
    // juspay/hyperswitch-control-center#4665 and ooples/token-optimizer-mcp#382: the body
    // is collected in a helper the handler calls, not in the handler itself.
    let src = r#"
import http from "node:http";
const getRequestBody = (req) =>
  new Promise((resolve) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk.toString()));
    req.on("end", () => resolve(JSON.parse(body)));
  });
function streamToBuffer(stream) {
  const parts = [];
  stream.on("data", (p) => parts.push(p));
  return new Promise((r) => stream.on("end", () => r(Buffer.concat(parts))));
}
http.createServer(async (req, res) => res.end(JSON.stringify(await getRequestBody(req)))).listen(8080);
"#;
    // The generic stream reader is not flagged: what it reads is not known here.
    assert_eq!(lines("unbounded-buffer", "server.mjs", src), [6]);
}

#[test]
fn unbounded_buffer_leaves_capped_buffers_and_the_default_limit() {
    let src = r#"
const express = require("express");
const fs = require("fs");
const app = express();
app.use(express.json());
const template = fs.readFileSync(__dirname + "/index.html");
app.post("/upload", (req, res) => {
  const chunks = [];
  let size = 0;
  req.on("data", (chunk) => {
    size += chunk.length;
    if (size > 1e6) return req.destroy();
    chunks.push(chunk);
  });
  res.end(template);
});
"#;
    assert_eq!(lines("unbounded-buffer", "server.js", src), NONE);
}

#[test]
fn client_per_request_fires_for_prisma_pg_mongoose_and_redis_clients_made_per_request() {
    let src = r#"
import express from "express";
import { PrismaClient } from "@prisma/client";
import { Pool } from "pg";
import mongoose from "mongoose";
import { createClient } from "redis";
const app = express();
app.get("/users", async (req, res) => {
  const prisma = new PrismaClient();
  const pool = new Pool({ connectionString: process.env.DATABASE_URL });
  await mongoose.connect(process.env.MONGO_URL);
  const redis = createClient();
  res.json(await prisma.user.findMany());
});
"#;
    assert_eq!(
        lines("client-per-request", "server.mjs", src),
        [9, 10, 11, 12]
    );
}

#[test]
fn client_per_request_fires_in_a_helper_called_per_request_but_not_for_lazy_singletons() {
    let src = r#"
const express = require("express");
const { PrismaClient } = require("@prisma/client");
const app = express();
async function getUsers() {
  const prisma = new PrismaClient();
  return prisma.user.findMany();
}
let cached;
function db() {
  if (!cached) cached = new PrismaClient();
  return cached;
}
function lazy() { return (cached ||= new PrismaClient()); }
const viaGlobal = () => globalThis.prisma ?? (globalThis.prisma = new PrismaClient());
app.get("/users", async (req, res) => res.json(await getUsers()));
app.get("/n", async (req, res) => res.json((await db().user.count()) + (await lazy().user.count()) + (await viaGlobal().user.count())));
"#;
    assert_eq!(lines("client-per-request", "server.js", src), [6]);
}

#[test]
fn client_per_request_leaves_clients_made_at_module_scope_or_in_a_factory() {
    let src = r#"
import express from "express";
import { PrismaClient } from "@prisma/client";
import { Pool } from "pg";
const prisma = new PrismaClient();
const pool = new Pool();
function makePool() { return new Pool(); }     // a factory, not per request
const app = express();
app.get("/users", async (req, res) => res.json(await prisma.user.findMany()));
"#;
    assert_eq!(lines("client-per-request", "server.mjs", src), NONE);
}

#[test]
fn client_per_request_names_the_call_from_another_module_that_repeats_it() {
    let server = r#"
const express = require("express");
const { db } = require("./lib/db");
const { mid } = require("./lib/mid");
const pool = require("./lib/pool");
const app = express();
function helper() { return db(); }
app.get("/a", (req, res) => { helper(); res.end(); });
app.get("/b", (req, res) => { mid(); pool(); res.end(); });
"#;
    let db = r#"
const { Pool } = require("pg");
function db() { return inner(); }
function inner() { return new Pool(); }
module.exports = { db };
"#;
    let mid = r#"
const { leaf } = require("./leaf");
function mid() { return step(); }
function step() { return leaf(); }
module.exports = { mid };
"#;
    let leaf = r#"
const { Pool } = require("pg");
function leaf() { return new Pool(); }
module.exports = { leaf };
"#;
    let pool = r#"
const { Client } = require("pg");
module.exports = function () { return new Client(); };
"#;
    let files = [
        ("server.js", server),
        ("lib/db.js", db),
        ("lib/mid.js", mid),
        ("lib/leaf.js", leaf),
        ("lib/pool.js", pool),
    ];
    let messages = run(
        &Options::for_rule("client-per-request"),
        Package::App,
        &files,
    );
    let said = |file: &str| {
        messages
            .iter()
            .find(|(f, _, _)| f == file)
            .map(|(_, _, m)| m.as_str())
            .unwrap_or_default()
    };
    // A local call before and after the call across modules.
    assert_eq!(
        said("lib/db.js"),
        "`new Pool()` inside a function called from `db()`, which server.js:7 calls from a \
         function called from a route handler: a new connection pool every time it runs"
    );
    // Two modules away: the last call across modules, and what repeats at the start.
    assert_eq!(
        said("lib/leaf.js"),
        "`new Pool()` inside `leaf()`, which lib/mid.js:4 calls from a route handler: a new \
         connection pool every time it runs"
    );
    assert_eq!(
        said("lib/pool.js"),
        "`new Client()` inside the module's default export, which server.js:9 calls from a \
         route handler: a new connection pool every time it runs"
    );
}

#[test]
fn timer_keeps_process_alive_fires_for_a_library_interval_and_interval_never_cleared_does_not() {
    let src = r#"
const sweep = setInterval(evict, 60000);
const quiet = setInterval(evict, 60000);
quiet.unref();
function evict() {}
module.exports = { evict };
"#;
    assert_eq!(
        lines_in(
            Package::Library,
            "timer-keeps-process-alive",
            "index.js",
            src
        ),
        [2]
    );
    assert_eq!(
        lines_in(Package::Library, "interval-never-cleared", "index.js", src),
        NONE
    );
}

#[test]
fn a_suppression_comment_silences_interval_never_cleared() {
    let src = r#"
// memfit-ignore interval-never-cleared the heartbeat runs for the life of the process
setInterval(() => console.log("alive"), 60000);
"#;
    assert_eq!(lines("interval-never-cleared", "server.js", src), NONE);
    let unsuppressed = src.replace("memfit-ignore", "note:");
    assert_eq!(
        lines("interval-never-cleared", "server.js", &unsuppressed),
        [3]
    );
}

#[test]
fn a_file_that_does_not_parse_is_skipped_by_every_rule() {
    // Only the parse problem itself is reported (issue 13: no parser error is silent).
    let src = "app.get('/', (req, res) => { setInterval(() => {}, 1) ";
    let every_rule = Options::default();
    let findings = run(&every_rule, Package::App, &[("broken.js", src)]);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].0, "broken.js");
    assert!(findings[0].2.contains("does not parse"), "{findings:?}");
}
