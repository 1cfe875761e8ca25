//! The JS/TS source rules on the leaking shapes from real services (the last guide in
//! shared/seeds/, issue threads) and on the near misses that must not fire.

use memfit_audit::audit::{self, Options};

/// Audits one source file in an app (or, with `library`, a package) and returns
/// (rule, line) of the source findings.
fn findings(file: &str, source: &str, library: bool) -> Vec<(String, usize)> {
    let dir = tempfile::tempdir().unwrap();
    let pkg = if library {
        r#"{"name":"lib","main":"index.js"}"#
    } else {
        r#"{"name":"app","scripts":{"start":"node server.js"}}"#
    };
    std::fs::write(dir.path().join("package.json"), pkg).unwrap();
    std::fs::write(
        dir.path().join("package-lock.json"),
        r#"{"lockfileVersion":3,"packages":{}}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join(file), source).unwrap();
    let report = audit::run(dir.path(), &Options::default()).unwrap();
    report
        .findings
        .iter()
        .filter(|f| report.project.file(f.file).source.display() == file)
        .map(|f| {
            (
                f.rule.to_string(),
                report.project.file(f.file).source.line_col(f.span.start).0,
            )
        })
        .collect()
}

fn rules(file: &str, source: &str) -> Vec<String> {
    findings(file, source, false)
        .into_iter()
        .map(|(r, _)| r)
        .collect()
}

#[test]
fn interval_per_request_and_discarded_module_intervals() {
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
    // `latest` also grows by one key per symbol: the cache rule sees it too.
    assert_eq!(
        findings("server.js", src, false),
        vec![
            ("unbounded-module-cache".into(), 4),
            ("interval-never-cleared".into(), 6),
            ("interval-never-cleared".into(), 9)
        ]
    );
}

#[test]
fn intervals_that_are_cleared_unrefd_or_handed_on_do_not_fire() {
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
    assert_eq!(rules("server.js", src), Vec::<String>::new());
}

#[test]
fn a_property_timer_never_cleared_fires() {
    let src = r#"
class Cache {
  constructor() { this.sweeper = setInterval(() => this.sweep(), 60000); }
  sweep() {}
}
module.exports = Cache;
"#;
    assert_eq!(rules("cache.js", src), vec!["interval-never-cleared"]);
}

#[test]
fn listeners_added_per_request_to_long_lived_emitters() {
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
    assert_eq!(
        findings("server.js", src, false),
        vec![
            ("listener-per-call".into(), 6),
            ("listener-per-call".into(), 7)
        ]
    );
}

#[test]
fn a_socket_made_outside_the_function_that_adds_listeners() {
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
    assert_eq!(
        findings("server.js", src, false),
        vec![("listener-per-call".into(), 7)]
    );
}

#[test]
fn listener_near_misses() {
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
    assert_eq!(rules("server.js", src), Vec::<String>::new());
}

#[test]
fn a_named_handler_registered_as_a_route_counts_as_per_request() {
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
    assert_eq!(
        findings("server.js", src, false),
        vec![
            ("unbounded-module-cache".into(), 4),
            ("listener-per-call".into(), 6)
        ]
    );
}

#[test]
fn module_caches_that_grow_per_request() {
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
    assert_eq!(
        findings("server.js", src, false),
        vec![
            ("unbounded-module-cache".into(), 4),
            ("unbounded-module-cache".into(), 5),
            ("unbounded-module-cache".into(), 6)
        ]
    );
}

#[test]
fn registries_filled_by_lifecycle_events_do_not_fire() {
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
    assert_eq!(
        findings("server.js", src, false),
        vec![("unbounded-module-cache".into(), 4)]
    );
}

#[test]
fn bounded_caches_do_not_fire() {
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
    assert_eq!(rules("server.js", src), Vec::<String>::new());
}

#[test]
fn unbounded_buffers_and_body_limits() {
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
    assert_eq!(
        findings("server.js", src, false),
        vec![
            ("unbounded-buffer".into(), 5),
            ("unbounded-buffer".into(), 9),
            ("unbounded-buffer".into(), 13)
        ]
    );
}

#[test]
fn a_helper_handed_the_request_reads_its_body_per_request() {
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
    assert_eq!(
        findings("server.mjs", src, false),
        vec![("unbounded-buffer".into(), 6)]
    );
}

#[test]
fn capped_buffers_and_default_limits_do_not_fire() {
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
    assert_eq!(rules("server.js", src), Vec::<String>::new());
}

#[test]
fn clients_created_per_request() {
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
        findings("server.mjs", src, false),
        vec![
            ("client-per-request".into(), 9),
            ("client-per-request".into(), 10),
            ("client-per-request".into(), 11),
            ("client-per-request".into(), 12)
        ]
    );
}

#[test]
fn a_helper_called_per_request_makes_a_client_but_lazy_singletons_do_not_fire() {
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
    assert_eq!(
        findings("server.js", src, false),
        vec![("client-per-request".into(), 6)]
    );
}

#[test]
fn clients_at_module_scope_do_not_fire() {
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
    assert_eq!(rules("server.mjs", src), Vec::<String>::new());
}

#[test]
fn typescript_sources_are_read() {
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
    assert_eq!(
        findings("server.ts", src, false),
        vec![("unbounded-module-cache".into(), 4)]
    );
}

#[test]
fn library_module_timers_are_keep_alive_hints_not_leaks() {
    let src = r#"
const sweep = setInterval(evict, 60000);
const quiet = setInterval(evict, 60000);
quiet.unref();
function evict() {}
module.exports = { evict };
"#;
    assert_eq!(
        findings("index.js", src, true),
        vec![("timer-keeps-process-alive".into(), 2)]
    );
}

#[test]
fn suppression_comment_in_source() {
    let src = r#"
// memfit-ignore interval-never-cleared the heartbeat runs for the life of the process
setInterval(() => console.log("alive"), 60000);
"#;
    assert_eq!(rules("server.js", src), Vec::<String>::new());
}

#[test]
fn a_file_that_does_not_parse_is_skipped_without_findings() {
    assert_eq!(
        rules(
            "broken.js",
            "app.get('/', (req, res) => { setInterval(() => {}, 1) "
        ),
        Vec::<String>::new()
    );
}
