//! `memfit audit` and `memfit fix` through the binary, on the example projects and on small
//! projects written by the tests.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::audit::*;
use common::*;
use serde_json::Value;

#[test]
fn the_render_api_gets_the_findings_a_reviewer_of_the_guides_would_make() {
    let (code, report) = audit(&repo().join("examples/render-api"), &[]);
    assert_eq!(report["schema"], "memfit.audit/1");
    assert_eq!(report["limit"]["bytes"], 512 * MIB);
    assert!(report["limit"]["source"]
        .as_str()
        .unwrap()
        .contains("render.yaml"));
    let expected: BTreeSet<String> = [
        "single-stage-build",
        "copy-context-without-dockerignore",
        "dev-dependencies-in-image",
        "npm-install-with-lockfile",
        "package-cache-left-in-image",
        "heap-flag-conflict",
        "node-flag-folklore",
        "tooling-in-dependencies",
        "prisma-extra-engines",
        "tsc-without-skiplibcheck",
        "tsconfig-broad-include",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(rule_set(&report), expected);
    // Both losing heap caps are named, with the winner.
    let conflicts: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "heap-flag-conflict")
        .collect();
    assert_eq!(conflicts.len(), 2);
    for c in &conflicts {
        assert!(c["message"].as_str().unwrap().contains(
            "--max-old-space-size=350 in package.json scripts.start:memory-optimized wins"
        ));
    }
    // The effective configuration.
    assert_eq!(
        report["runtime"]["heap"][0][0],
        "package.json scripts.start:memory-optimized"
    );
    assert_eq!(report["runtime"]["node_version"], "20");
    // Every finding has a position and a fix or advice.
    for f in report["findings"].as_array().unwrap() {
        assert!(
            f["line"].as_u64().unwrap() >= 1 && f["column"].as_u64().unwrap() >= 1,
            "{f}"
        );
        assert!(f["end_line"].as_u64() >= f["line"].as_u64());
        assert!(f["fix"].is_string(), "{f}");
    }
    // Only warnings and infos: the default --fail-on error passes, --fail-on warning fails.
    assert_eq!(code, 0);
    let (code, _) = audit(
        &repo().join("examples/render-api"),
        &["--fail-on", "warning"],
    );
    assert_eq!(code, 1);
}

#[test]
fn fix_then_audit_leaves_only_the_findings_that_need_a_person_and_a_second_fix_changes_nothing() {
    let dir = copy_project(&repo().join("examples/render-api"));
    let (_, before) = audit(dir.path(), &[]);
    let fixable: usize = before["summary"]["fixable"].as_u64().unwrap() as usize;
    assert!(fixable >= 5, "{}", before["summary"]);

    let output = memfit().arg("fix").arg(dir.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let diff = String::from_utf8_lossy(&output.stdout);
    assert!(
        diff.contains("-RUN npm install\n+RUN npm ci && npm cache clean --force"),
        "{diff}"
    );
    assert!(diff.contains("+++ b/.dockerignore"));
    assert!(diff.contains("+    \"skipLibCheck\": true,"));

    let (_, after) = audit(dir.path(), &[]);
    assert_eq!(after["summary"]["fixable"], 0, "{}", after["findings"]);
    let gone = [
        "copy-context-without-dockerignore",
        "npm-install-with-lockfile",
        "package-cache-left-in-image",
        "tsc-without-skiplibcheck",
    ];
    for rule in gone {
        assert!(
            !rules(&after).contains(&rule.to_string()),
            "{rule} still reported"
        );
    }
    // What needs a person stays.
    assert!(rules(&after).contains(&"single-stage-build".to_string()));
    assert_eq!(
        rules(&before).len() - rules(&after).len(),
        fixable,
        "exactly the fixable findings went"
    );
    // Formatting is kept: the tsconfig comment survives.
    let tsconfig = std::fs::read_to_string(dir.path().join("tsconfig.json")).unwrap();
    assert!(tsconfig.contains("// Compiled by `npm run build`"));

    let files = snapshot(dir.path());
    let again = memfit().arg("fix").arg(dir.path()).output().unwrap();
    assert_eq!(again.status.code(), Some(0));
    assert!(
        again.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    assert_eq!(files, snapshot(dir.path()), "a second fix changed files");
}

#[test]
fn dry_run_prints_the_diff_and_writes_nothing() {
    let dir = copy_project(&repo().join("examples/render-api"));
    let files = snapshot(dir.path());
    let output = memfit()
        .args(["fix", "--dry-run"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("+RUN npm ci"));
    assert_eq!(files, snapshot(dir.path()));
}

#[test]
fn the_clean_service_has_no_finding_at_all() {
    let (code, report) = audit(
        &repo().join("examples/clean-service"),
        &["--fail-on", "info"],
    );
    assert_eq!(
        report["findings"],
        Value::Array(vec![]),
        "{}",
        report["findings"]
    );
    assert_eq!(code, 0);
    assert_eq!(report["runtime"]["heap"][0][0], "fly.toml [env]");
}

#[test]
fn fly_node18_on_256mb_needs_a_heap_cap_and_fix_adds_the_planned_one() {
    let (code, report) = audit(&fixture("fly-node18"), &[]);
    assert_eq!(code, 1);
    assert_eq!(
        rule_set(&report),
        ["heap-unset-small-limit", "package-cache-left-in-image"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let heap = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "heap-unset-small-limit")
        .unwrap();
    assert!(heap["message"]
        .as_str()
        .unwrap()
        .contains("does not read cgroup v2 limits"));
    assert_eq!(heap["severity"], "error");

    let dir = copy_project(&fixture("fly-node18"));
    memfit().arg("fix").arg(dir.path()).output().unwrap();
    let dockerfile = std::fs::read_to_string(dir.path().join("Dockerfile")).unwrap();
    // memfit plan's budget for Node 18 in 256 MiB: old space 144 MiB.
    assert!(
        dockerfile.contains("ENV NODE_OPTIONS=\"--max-old-space-size=144\"\nCMD"),
        "{dockerfile}"
    );
    assert!(dockerfile.contains("apk add --no-cache curl"));
    let (code, after) = audit(dir.path(), &[]);
    assert_eq!(code, 0);
    assert!(
        after["findings"].as_array().unwrap().is_empty(),
        "{}",
        after["findings"]
    );
}

#[test]
fn a_nextjs_app_and_a_rust_service() {
    let (_, next) = audit(&fixture("nextjs-app"), &[]);
    assert_eq!(
        rule_set(&next),
        [
            "dev-server-in-production",
            "next-without-standalone",
            "omit-optional-breaks-native-binaries",
            "dev-dependencies-in-image"
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    );
    let (_, rust) = audit(&fixture("railway-rust"), &[]);
    assert_eq!(
        rule_set(&rust),
        [
            "cargo-fat-lto-small-builder",
            "cargo-unbounded-jobs-small-builder",
            "package-cache-left-in-image"
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    );
    let dir = copy_project(&fixture("railway-rust"));
    memfit().arg("fix").arg(dir.path()).output().unwrap();
    let cargo = std::fs::read_to_string(dir.path().join("Cargo.toml")).unwrap();
    assert!(
        cargo.contains("lto = \"thin\"\ncodegen-units = 1"),
        "{cargo}"
    );
}

#[test]
fn heap_over_the_limit_and_workers_times_heap() {
    let dir = project(&[
        ("package.json", r#"{"name":"a","scripts":{"start":"node server.js"},"dependencies":{}}"#),
        ("package-lock.json", r#"{"name":"a","lockfileVersion":3,"packages":{}}"#),
        ("Dockerfile", "FROM node:22-slim\nWORKDIR /app\nCOPY server.js ./\nENV NODE_OPTIONS=\"--max-old-space-size=512 --enable-source-maps\"\nCMD [\"node\", \"server.js\"]\n"),
        ("fly.toml", "app = \"a\"\n[[vm]]\n  memory = \"512mb\"\n"),
        ("server.js", "require('http').createServer((q, s) => s.end('ok')).listen(8080);\n"),
    ]);
    let (code, report) = audit(dir.path(), &[]);
    assert_eq!(code, 1);
    assert_eq!(rules(&report), vec!["heap-over-limit"]);
    memfit().arg("fix").arg(dir.path()).output().unwrap();
    let dockerfile = std::fs::read_to_string(dir.path().join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("--max-old-space-size=384 --enable-source-maps"),
        "{dockerfile}"
    );
    let (code, report) = audit(dir.path(), &[]);
    assert_eq!((code, rules(&report)), (0, vec![]));

    // Four workers of 384 MiB in 512 MiB.
    std::fs::write(
        dir.path().join("fly.toml"),
        "app = \"a\"\n[env]\n  WEB_CONCURRENCY = \"4\"\n[[vm]]\n  memory = \"512mb\"\n",
    )
    .unwrap();
    let (code, report) = audit(dir.path(), &[]);
    assert_eq!(code, 1);
    assert!(
        rules(&report).contains(&"workers-times-heap-over-limit".to_string()),
        "{}",
        report["findings"]
    );
}

#[test]
fn a_dev_server_from_the_procfile_and_folklore_flags_in_npmrc() {
    let dir = project(&[
        (
            "package.json",
            r#"{"name":"a","scripts":{"start":"node dist/index.js"},"dependencies":{"express":"^4"},"devDependencies":{"ts-node":"^10","typescript":"^5"}}"#,
        ),
        (
            "package-lock.json",
            r#"{"name":"a","lockfileVersion":3,"packages":{}}"#,
        ),
        (
            "Procfile",
            "web: npx ts-node src/index.ts\nworker: node dist/worker.js\n",
        ),
        (
            "app.json",
            r#"{"name":"a","formation":{"web":{"quantity":1,"size":"basic"}},"env":{"NODE_OPTIONS":{"value":"--max-old-space-size=300 --gc-interval=100"}}}"#,
        ),
    ]);
    let (_, report) = audit(dir.path(), &[]);
    assert!(report["limit"]["source"]
        .as_str()
        .unwrap()
        .contains("app.json"));
    let set = rule_set(&report);
    assert!(set.contains("dev-server-in-production"), "{set:?}");
    assert!(set.contains("node-flag-folklore"), "{set:?}");
    let dev = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "dev-server-in-production")
        .unwrap();
    assert_eq!(dev["file"], "Procfile");
    assert_eq!(dev["line"], 1);
}

#[test]
fn suppression_comments_and_memfit_toml() {
    let files: Vec<(&str, &str)> = vec![
        ("Dockerfile", "FROM alpine:3.20\n# memfit ignore=package-cache-left-in-image the index is needed at runtime\nRUN apk add curl\nRUN apk add jq\n"),
    ];
    let dir = project(&files);
    let (_, report) = audit(dir.path(), &[]);
    let cache: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "package-cache-left-in-image")
        .collect();
    assert_eq!(
        cache.len(),
        1,
        "only the unannotated RUN: {}",
        report["findings"]
    );
    assert_eq!(cache[0]["line"], 4);
    assert_eq!(report["summary"]["suppressed"], 1);

    std::fs::write(
        dir.path().join("memfit.toml"),
        "ignore = [\"package-cache-left-in-image\"]\n",
    )
    .unwrap();
    let (_, report) = audit(dir.path(), &[]);
    assert_eq!(report["summary"]["suppressed"], 2);
    assert!(report["findings"].as_array().unwrap().is_empty());

    std::fs::write(
        dir.path().join("memfit.toml"),
        "limit = \"256M\"\n[severity]\npackage-cache-left-in-image = \"error\"\n",
    )
    .unwrap();
    let (code, report) = audit(dir.path(), &[]);
    assert_eq!(code, 1);
    assert_eq!(report["findings"][0]["severity"], "error");
    assert_eq!(report["limit"]["bytes"], 256 * MIB);

    // A wrong memfit.toml is memfit's own configuration gone wrong: exit 2, as ruff does
    // (tests/arguments.rs has the details).
    std::fs::write(
        dir.path().join("memfit.toml"),
        "ignore = [\"no-such-rule\"]\nlimit = \"lots\"\n",
    )
    .unwrap();
    let output = memfit()
        .args(["audit", "--format", "json"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown rule `no-such-rule`"));
}

#[test]
fn malformed_files_are_findings_and_the_audit_goes_on() {
    let dir = project(&[
        ("package.json", "{ \"name\": \"a\", \"dependencies\": { \"express\": \"^4\" }, }"),
        ("tsconfig.json", "{ \"compilerOptions\": { \"strict\": true "),
        ("render.yaml", "services:\n  - type: web\n    plan: [starter\n"),
        ("fly.toml", "app = \"a\"\n[[vm]\n"),
        ("Dockerfile", "FROM alpine\nRUNN echo typo\nRUN <<EOF\napk add curl\n"),
        ("k8s/deploy.yaml", "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          resources: {limits: {memory: 512Mi\n"),
    ]);
    let (code, report) = audit(dir.path(), &[]);
    assert_eq!(code, 1, "malformed files are errors, never exit 2");
    let malformed: BTreeSet<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "malformed-file")
        .map(|f| f["file"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        malformed,
        [
            "package.json",
            "tsconfig.json",
            "render.yaml",
            "fly.toml",
            "k8s/deploy.yaml"
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    );
    assert_eq!(
        rules(&report)
            .iter()
            .filter(|r| *r == "dockerfile-syntax")
            .count(),
        2
    );
    // The Dockerfile's other findings are still there.
    assert!(rules(&report).contains(&"package-cache-left-in-image".to_string()));
}

#[test]
fn sarif_output_validates_against_the_official_schema() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sarif-schema-2.1.0.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for dir in [
        repo().join("examples/render-api"),
        fixture("fly-node18"),
        repo().join("examples/clean-service"),
        repo().join("examples/leaky-service"),
    ] {
        let output = memfit()
            .arg("audit")
            .arg(&dir)
            .args(["--format", "sarif"])
            .output()
            .unwrap();
        let sarif: Value = serde_json::from_slice(&output.stdout).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&sarif)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", dir.display());
        assert_eq!(sarif["version"], "2.1.0");
        let run = &sarif["runs"][0];
        assert_eq!(run["tool"]["driver"]["name"], "memfit");
        let results = run["results"].as_array().unwrap();
        let (_, json) = audit(&dir, &[]);
        assert_eq!(results.len(), json["findings"].as_array().unwrap().len());
        // Fixable findings carry SARIF fixes.
        let with_fixes = results.iter().filter(|r| r.get("fixes").is_some()).count();
        assert_eq!(
            with_fixes as u64,
            json["summary"]["fixable"].as_u64().unwrap()
        );
    }
    // A sample of the schema catching a broken log, so the check above can fail.
    let broken = serde_json::json!({"version": "2.1.0", "runs": [{"tool": {}}]});
    assert!(!validator.is_valid(&broken));
}

#[test]
fn human_output_has_code_frames_and_the_effective_configuration() {
    let output = memfit()
        .arg("audit")
        .arg(repo().join("examples/render-api"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("Dockerfile:4:5: warning[npm-install-with-lockfile]"),
        "{text}"
    );
    assert!(
        text.contains("4 | RUN npm install\n  |     ^^^^^^^^^^^"),
        "{text}"
    );
    assert!(text.contains("= fix (memfit fix): use `npm ci`"));
    assert!(text.contains("limit     512 MiB (render.yaml service fitness-api: plan starter"));
    assert!(text.contains("[package.json scripts.start:memory-optimized] wins"));
}

#[test]
fn bad_input_exits_2_with_one_line_that_says_what_to_do() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["audit".into(), "/nonexistent/project".into()],
            "does not exist",
        ),
        (
            vec!["audit".into(), file.path().display().to_string()],
            "is not a directory",
        ),
        (
            vec![
                "audit".into(),
                ".".into(),
                "--platform".into(),
                "render:huge".into(),
            ],
            "unknown platform",
        ),
        (
            vec!["audit".into(), ".".into(), "--limit".into(), "lots".into()],
            "invalid size",
        ),
        (
            vec!["fix".into(), "/nonexistent/project".into()],
            "does not exist",
        ),
    ];
    for (args, needle) in cases {
        let output = memfit().args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn node_modules_git_and_gitignored_files_are_not_read() {
    let dir = project(&[
        ("Dockerfile", "FROM alpine\n"),
        (
            "node_modules/pkg/Dockerfile",
            "FROM alpine\nRUN apk add curl\n",
        ),
        ("generated/Dockerfile", "FROM alpine\nRUN apk add curl\n"),
        (".gitignore", "generated/\n"),
        ("services/api/Dockerfile", "FROM alpine\nRUN apk add git\n"),
    ]);
    let (_, report) = audit(dir.path(), &[]);
    let files: BTreeSet<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["services/api/Dockerfile"].into_iter().collect());
}

#[test]
fn every_rule_fires_on_the_example_projects() {
    let sink = project(&[
        ("package.json", r#"{"name":"sink","scripts":{"start":"node server.js"},"dependencies":{"express":"^4"}}"#),
        ("svc/package.json", r#"{"name":"svc","dependencies":{"bcrypt":"^5"}}"#),
        ("svc/package-lock.json", r#"{"lockfileVersion":3,"packages":{"node_modules/bcrypt":{"version":"5.1.1","hasInstallScript":true}}}"#),
        ("svc/Dockerfile", "FROM node:22-slim\nRUN npm ci --ignore-scripts\n"),
        ("svc/db.mjs", "import { PrismaClient } from '@prisma/client';\nexport function route(app) {\n  app.get('/users', async (req, res) => res.json(await new PrismaClient().user.findMany()));\n}\n"),
        ("lib/package.json", r#"{"name":"lib","main":"index.js"}"#),
        ("lib/index.js", "const sweep = setInterval(() => {}, 60000);\nmodule.exports = {};\n"),
        ("Procfile", "web: npx tsx src/server.ts\n"),
        ("tsconfig.json", "{ \"compilerOptions\": "),
        ("fly.toml", "app = \"sink\"\n[env]\n  WEB_CONCURRENCY = \"4\"\n[[vm]]\n  memory = \"512mb\"\n"),
        (
            "Dockerfile",
            "FROM node:22 AS build\nWORKDIR /app\nRUN echo build\nFROM node:22-slim\nRUN apt-get update && apt-get install -y build-essential && rm -rf /var/lib/apt/lists/*\nCOPY --from=build / /\nENV NODE_OPTIONS=--max-old-space-size=600\nRUNN typo\n",
        ),
    ]);
    let mut fired: BTreeSet<String> = BTreeSet::new();
    let dirs = [
        repo().join("examples/render-api"),
        repo().join("examples/clean-service"),
        fixture("fly-node18"),
        fixture("nextjs-app"),
        fixture("railway-rust"),
        fixture("jvm-render"),
        fixture("python-render"),
        fixture("go-fly"),
        fixture("rust-builder"),
        repo().join("examples/leaky-service"),
        sink.path().to_path_buf(),
    ];
    for dir in &dirs {
        fired.extend(rule_set(&audit(dir, &[]).1));
    }
    let sarif: Value = serde_json::from_slice(
        &memfit()
            .arg("audit")
            .arg(sink.path())
            .args(["--format", "sarif"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let all: BTreeSet<String> = sarif["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert!(all.len() >= 25);
    // unreadable-file needs a file root cannot read: it is covered by memfit-audit's unit test.
    let missing: Vec<&String> = all
        .iter()
        .filter(|r| !fired.contains(*r) && *r != "unreadable-file")
        .collect();
    assert!(
        missing.is_empty(),
        "rules no example exercises: {missing:?}"
    );
}

#[test]
fn fix_keeps_a_files_owner_group_and_mode() {
    // memfit runs as root on a user's checkout: the files it edits stay the user's.
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = project(&[
        ("Dockerfile", "FROM node:20\nRUN npm install\n"),
        (
            "package.json",
            "{\"name\":\"x\",\"scripts\":{\"start\":\"node s.js\"}}",
        ),
        (
            "package-lock.json",
            "{\"lockfileVersion\":3,\"packages\":{}}",
        ),
    ]);
    let dockerfile = dir.path().join("Dockerfile");
    if std::os::unix::fs::chown(&dockerfile, Some(4242), Some(4343)).is_err() {
        eprintln!("skipping: chown needs root");
        return;
    }
    std::fs::set_permissions(&dockerfile, std::fs::Permissions::from_mode(0o640)).unwrap();
    let output = memfit().arg("fix").arg(dir.path()).output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    assert!(text.contains("npm ci"), "{text}");
    let meta = std::fs::metadata(&dockerfile).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o777),
        (4242, 4343, 0o640)
    );
}
