//! memfit audit on JS/TS sources: the leak rules across files, against the labelled corpus.

mod common;

use std::collections::BTreeSet;

use common::audit::*;
use common::*;
use serde_json::Value;

#[test]
fn ignore_scripts_with_native_modules_in_the_lockfile() {
    let lock = r#"{"name":"a","lockfileVersion":3,"packages":{"":{"name":"a"},
        "node_modules/bcrypt":{"version":"5.1.1","hasInstallScript":true},
        "node_modules/esbuild":{"version":"0.24.0","dev":true,"hasInstallScript":true},
        "node_modules/express":{"version":"4.21.2"}}}"#;
    let dockerfile = "FROM node:22-slim\nWORKDIR /app\nCOPY package.json package-lock.json ./\nRUN npm ci --omit=dev --ignore-scripts\nCMD [\"node\", \"server.js\"]\n";
    let dir = project(&[
        (
            "package.json",
            r#"{"name":"a","dependencies":{"bcrypt":"^5","express":"^4"},"devDependencies":{"esbuild":"^0.24"}}"#,
        ),
        ("package-lock.json", lock),
        ("Dockerfile", dockerfile),
    ]);
    let (_, report) = audit(dir.path(), &[]);
    let found: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "ignore-scripts-breaks-native-modules")
        .collect();
    assert_eq!(found.len(), 1, "{}", report["findings"]);
    let message = found[0]["message"].as_str().unwrap();
    assert!(
        message.contains("bcrypt") && !message.contains("esbuild"),
        "{message}"
    );
    // Rebuilt in the same stage: nothing to say.
    std::fs::write(
        dir.path().join("Dockerfile"),
        dockerfile.replace("--ignore-scripts", "--ignore-scripts && npm rebuild bcrypt"),
    )
    .unwrap();
    let (_, report) = audit(dir.path(), &[]);
    assert!(!rules(&report).contains(&"ignore-scripts-breaks-native-modules".to_string()));
}

/// bench/js_leak_corpus: leak shapes from real reports and their fixes, each file labelled
/// with the source rules it must trigger. The bench prints recall and precision on it; here
/// every label must hold.
#[test]
fn the_labelled_leak_corpus_gets_exactly_its_labels() {
    let dir = repo().join("bench/js_leak_corpus");
    let (_, report) = audit(&dir, &["--fail-on", "none"]);
    let source_rules = [
        "interval-never-cleared",
        "listener-per-call",
        "unbounded-module-cache",
        "unbounded-buffer",
        "client-per-request",
        "timer-keeps-process-alive",
    ];
    let mut found: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for f in report["findings"].as_array().unwrap() {
        let rule = f["rule"].as_str().unwrap();
        if source_rules.contains(&rule) {
            let file = f["file"].as_str().unwrap().rsplit('/').next().unwrap();
            found
                .entry(file.to_string())
                .or_default()
                .insert(rule.to_string());
        }
    }
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name == "package.json" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let label = text
            .lines()
            .find_map(|l| l.strip_prefix("// expect: "))
            .unwrap_or_else(|| panic!("{name} has no `// expect:` line"));
        let expected: BTreeSet<String> = if label.trim() == "none" {
            BTreeSet::new()
        } else {
            label.split(',').map(|r| r.trim().to_string()).collect()
        };
        let got = found.get(&name).cloned().unwrap_or_default();
        assert_eq!(got, expected, "{name}");
        checked += 1;
    }
    assert!(checked >= 27, "only {checked} corpus files");
}

/// A client factory in one module, called per request from another (prisma#2695's shape across
/// files): reported where the client is made, naming the caller; a cached factory and a call at
/// module scope are not.
#[test]
fn a_client_factory_called_per_request_from_another_file() {
    let dir = project(&[
        ("package.json", r#"{"name":"svc","scripts":{"start":"node server.js"}}"#),
        (
            "lib/db.ts",
            "import { PrismaClient } from \"@prisma/client\";\nexport const getDb = () => new PrismaClient();\nlet cached: PrismaClient | undefined;\nexport function shared() {\n  return (cached ??= new PrismaClient());\n}\n",
        ),
        (
            "lib/pool.js",
            "const { Pool } = require(\"pg\");\nmodule.exports = function makePool() {\n  return new Pool({ connectionString: process.env.DATABASE_URL });\n};\n",
        ),
        (
            "routes/users.ts",
            "import express from \"express\";\nimport { getDb, shared } from \"../lib/db\";\nexport const router = express.Router();\nconst once = getDb();\nrouter.get(\"/users\", async (req, res) => res.json(await getDb().user.findMany()));\nrouter.get(\"/n\", async (req, res) => res.json((await shared().user.count()) + (await once.user.count())));\n",
        ),
        (
            "lib/svc.js",
            "const { PrismaClient } = require(\"@prisma/client\");\nfunction makeClient() {\n  return new PrismaClient();\n}\nexports.listUsers = async function listUsers() {\n  return makeClient().user.findMany();\n};\n",
        ),
        (
            "server.js",
            "const express = require(\"express\");\nconst makePool = require(\"./lib/pool\");\nconst svc = require(\"./lib/svc\");\nconst app = express();\napp.get(\"/rows\", async (req, res) => res.json((await makePool().query(\"select 1\")).rows));\napp.get(\"/u\", async (req, res) => res.json(await svc.listUsers()));\napp.listen(3000);\n",
        ),
    ]);
    let (_, report) = audit(dir.path(), &["--fail-on", "none"]);
    let found = findings_where(&report, |f| f["rule"] == "client-per-request");
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!((found[0].1.as_str(), found[0].2), ("lib/db.ts", 2));
    assert!(found[0].3.contains("routes/users.ts:5"), "{}", found[0].3);
    assert_eq!((found[1].1.as_str(), found[1].2), ("lib/pool.js", 3));
    assert!(found[1].3.contains("server.js:5"), "{}", found[1].3);
    // Through a local helper of the exported function.
    assert_eq!((found[2].1.as_str(), found[2].2), ("lib/svc.js", 3));
    assert!(found[2].3.contains("server.js:6"), "{}", found[2].3);
}

/// A helper module whose functions leak when they run per request (`subscribe` adds a listener
/// to the module's bus, `remember` fills a module Map, `poll` starts an interval): each is
/// reported in the helper, naming the route that calls it; `setup()` at module scope is not.
#[test]
fn helpers_in_another_module_called_per_request() {
    let dir = project(&[
        ("package.json", r#"{"name":"svc","scripts":{"start":"node server.js"}}"#),
        (
            "lib/bus.js",
            "const { EventEmitter } = require(\"events\");\nconst bus = new EventEmitter();\nconst seen = new Map();\nfunction subscribe(cb) { bus.on(\"price\", cb); }\nfunction remember(k, v) { seen.set(k, v); }\nfunction poll(fn) { setInterval(fn, 1000); }\nfunction setup() { bus.on(\"ready\", () => {}); }\nmodule.exports = { subscribe, remember, poll, setup, bus };\n",
        ),
        (
            "server.js",
            "const express = require(\"express\");\nconst { subscribe, remember, poll, setup } = require(\"./lib/bus\");\nconst app = express();\nsetup();\napp.get(\"/q\", (req, res) => {\n  subscribe((p) => res.write(String(p)));\n  remember(req.url, Date.now());\n  poll(() => {});\n  res.end();\n});\napp.listen(3000);\n",
        ),
    ]);
    let (_, report) = audit(dir.path(), &["--fail-on", "none"]);
    let found = findings_where(&report, |f| {
        f["file"] == "lib/bus.js" || f["file"] == "server.js"
    });
    let got: Vec<(&str, &str, u64)> = found
        .iter()
        .map(|(r, f, l, _)| (r.as_str(), f.as_str(), *l))
        .collect();
    assert_eq!(
        got,
        [
            ("unbounded-module-cache", "lib/bus.js", 3),
            ("listener-per-call", "lib/bus.js", 4),
            ("interval-never-cleared", "lib/bus.js", 6),
        ],
        "{found:?}"
    );
    assert!(found[1].3.contains("server.js:6"), "{}", found[1].3);
}

/// Next.js App Router: `export async function GET` in `route.ts` runs per request, and a
/// tsconfig path alias (`@/lib/db`) leads to the factory it calls.
#[test]
fn next_route_handlers_and_tsconfig_path_aliases() {
    let dir = project(&[
        ("package.json", r#"{"name":"web","scripts":{"start":"next start"},"dependencies":{"next":"15"}}"#),
        ("tsconfig.json", r#"{"compilerOptions":{"baseUrl":".","paths":{"@/*":["./src/*"]}}}"#),
        (
            "src/lib/db.ts",
            "import { PrismaClient } from \"@prisma/client\";\nexport function getDb() {\n  return new PrismaClient();\n}\n",
        ),
        (
            "src/app/api/users/route.ts",
            "import { getDb } from \"@/lib/db\";\nexport async function GET(request: Request) {\n  return Response.json(await getDb().user.findMany());\n}\n",
        ),
        (
            "src/app/api/orders/route.ts",
            "import { PrismaClient } from \"@prisma/client\";\nexport async function POST(request: Request) {\n  const prisma = new PrismaClient();\n  return Response.json(await prisma.order.create({ data: await request.json() }));\n}\n",
        ),
        (
            "src/lib/helpers.ts",
            "import { PrismaClient } from \"@prisma/client\";\nexport async function GET() {\n  return new PrismaClient();\n}\n",
        ),
    ]);
    let (_, report) = audit(dir.path(), &["--fail-on", "none"]);
    let found: Vec<(String, u64)> = findings_where(&report, |f| f["rule"] == "client-per-request")
        .into_iter()
        .map(|(_, file, line, _)| (file, line))
        .collect();
    // helpers.ts exports a GET too, but it is not a route file.
    assert_eq!(
        found,
        [
            ("src/app/api/orders/route.ts".to_string(), 3),
            ("src/lib/db.ts".to_string(), 3)
        ]
    );
}
