//! `memfit audit` rules for the JVM, Python and Go, and one finding per problem, through the
//! binary on projects shaped as users write them (issue 15).

mod common;

use std::path::Path;

use common::audit::{audit, rules};
use common::*;
use serde_json::Value;

fn findings<'a>(report: &'a Value, rule: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == rule)
        .collect()
}

fn fix(dir: &Path) {
    let output = memfit().arg("fix").arg(dir).output().unwrap();
    assert!(
        output.status.code().unwrap() <= 1,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

const RENDER_STARTER: &str =
    "services:\n  - type: web\n    name: api\n    runtime: docker\n    plan: starter\n";

#[test]
fn java_xmx_1g_on_a_render_starter_is_an_error_and_fix_sets_the_planned_heap() {
    let dir = project(&[
        ("render.yaml", RENDER_STARTER),
        (
            "Dockerfile",
            "FROM eclipse-temurin:21-jre\nWORKDIR /app\nCOPY target/app.jar app.jar\nEXPOSE 8080\nCMD [\"java\",\"-Xmx1g\",\"-jar\",\"app.jar\"]\n",
        ),
    ]);
    let (code, report) = audit(dir.path(), &[]);
    assert_eq!(code, 1, "{}", report["findings"]);
    let jvm = findings(&report, "jvm-heap-over-limit");
    assert_eq!(jvm.len(), 1, "{}", report["findings"]);
    assert_eq!(jvm[0]["file"], "Dockerfile");
    assert_eq!(jvm[0]["line"], 5);
    let message = jvm[0]["message"].as_str().unwrap();
    assert!(
        message.contains("1 GiB") && message.contains("512 MiB"),
        "{message}"
    );
    fix(dir.path());
    assert_eq!(
        read(dir.path(), "Dockerfile"),
        "FROM eclipse-temurin:21-jre\nWORKDIR /app\nCOPY target/app.jar app.jar\nEXPOSE 8080\nCMD [\"java\",\"-Xmx340m\",\"-jar\",\"app.jar\"]\n"
    );
    let (code, report) = audit(dir.path(), &[]);
    assert_eq!((code, rules(&report)), (0, vec![]));
}

const FLY_256: &str =
    "app = \"orders\"\nprimary_region = \"ams\"\n\n[[vm]]\n  memory = \"256mb\"\n  cpus = 1\n";

const JAVA_NO_FLAGS: &str = "FROM eclipse-temurin:17-jre\nCOPY target/app.jar /app.jar\nENTRYPOINT [\"java\", \"-jar\", \"/app.jar\"]\n";

#[test]
fn a_jvm_without_heap_flags_on_a_256_mb_machine_is_warned_with_the_xmx_that_fits() {
    // No flag: HotSpot's default heap in 256 MiB is not 25% of it but its 126 MiB floor
    // (measured: `memfit run --limit 256M -- java -XX:+PrintFlagsFinal -version`), which with
    // the ~170 MiB beside it is over the machine.
    let dir = project(&[("fly.toml", FLY_256), ("Dockerfile", JAVA_NO_FLAGS)]);
    let (_, report) = audit(dir.path(), &[]);
    let jvm = findings(&report, "jvm-heap-over-limit");
    assert_eq!(jvm.len(), 1, "{}", report["findings"]);
    assert_eq!(jvm[0]["severity"], "warning", "{}", jvm[0]);
    assert_eq!(jvm[0]["file"], "Dockerfile");
    assert_eq!(jvm[0]["line"], 3);
    let message = jvm[0]["message"].as_str().unwrap();
    assert!(
        message.contains("no heap option")
            && message.contains("126 MiB")
            && message.contains("256 MiB"),
        "{message}"
    );
    let fix_text = jvm[0]["fix"].as_str().unwrap_or_default();
    assert!(fix_text.contains("-Xmx84m"), "{}", jvm[0]);
    // Tuned: the heap the advice names is silent; so is the same service on 512 MiB, where
    // the default (128 MiB) leaves room.
    let tuned = project(&[
        ("fly.toml", FLY_256),
        (
            "Dockerfile",
            JAVA_NO_FLAGS
                .replace("\"java\", ", "\"java\", \"-Xmx84m\", ")
                .as_str(),
        ),
    ]);
    assert!(findings(&audit(tuned.path(), &[]).1, "jvm-heap-over-limit").is_empty());
    let roomy = project(&[
        ("fly.toml", FLY_256.replace("256mb", "512mb").as_str()),
        ("Dockerfile", JAVA_NO_FLAGS),
    ]);
    assert!(findings(&audit(roomy.path(), &[]).1, "jvm-heap-over-limit").is_empty());
}

const SPRING_DOCKERFILE: &str = "FROM eclipse-temurin:21-jre\nCOPY target/app.jar /app.jar\nEXPOSE 8080\nENTRYPOINT [\"java\", \"-Xmx384m\", \"-jar\", \"/app.jar\"]\n";

#[test]
fn jvm_non_heap_is_itemised_with_the_thread_pool_of_the_spring_config() {
    // -Xmx384m is 75% of 512 MiB, but the service's 400 Tomcat threads, its metaspace, code
    // cache and GC need more than the 128 MiB left.
    let dir = project(&[
        ("render.yaml", RENDER_STARTER),
        ("Dockerfile", SPRING_DOCKERFILE),
        (
            "src/main/resources/application.properties",
            "spring.application.name=orders\nserver.port=8080\nserver.tomcat.threads.max=400\n",
        ),
        // The tests' configuration is not the service's.
        (
            "src/test/resources/application.properties",
            "server.tomcat.threads.max=2000\n",
        ),
    ]);
    let (code, report) = audit(dir.path(), &[]);
    assert_eq!(code, 1, "{}", report["findings"]);
    let jvm = findings(&report, "jvm-heap-over-limit");
    assert_eq!(jvm.len(), 1, "{}", report["findings"]);
    let message = jvm[0]["message"].as_str().unwrap();
    for part in [
        "heap 384 MiB",
        "metaspace ~83 MiB",
        "code cache ~16 MiB",
        "400 thread stacks ~42.2 MiB",
        "server.tomcat.threads.max in src/main/resources/application.properties",
        "GC and other ~50 MiB",
        "= 575.2 MiB",
        "512 MiB",
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
    // The fix leaves room for those 400 threads: 512 - 83 - 16 - 42.2 - 50 = 320.8 MiB, written
    // as -Xmx320m (the JVM aligns the heap up to 2 MiB).
    fix(dir.path());
    assert!(
        read(dir.path(), "Dockerfile").contains("\"-Xmx320m\""),
        "{}",
        read(dir.path(), "Dockerfile")
    );
    assert!(findings(&audit(dir.path(), &[]).1, "jvm-heap-over-limit").is_empty());

    // Spring reads SERVER_TOMCAT_THREADS_MAX before application.properties.
    let dir = project(&[
        ("render.yaml", RENDER_STARTER),
        (
            "Dockerfile",
            SPRING_DOCKERFILE
                .replace("EXPOSE", "ENV SERVER_TOMCAT_THREADS_MAX=1000\nEXPOSE")
                .as_str(),
        ),
        (
            "src/main/resources/application.properties",
            "server.tomcat.threads.max=20\n",
        ),
    ]);
    let report = audit(dir.path(), &[]).1;
    let message = findings(&report, "jvm-heap-over-limit")[0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("1000 thread stacks")
            && message.contains("SERVER_TOMCAT_THREADS_MAX in Dockerfile ENV"),
        "{message}"
    );
}

#[test]
fn a_tuned_jvm_with_capped_metaspace_and_a_small_pool_is_silent() {
    // A 368 MiB heap fits when the service says what it needs beside it: a 64 MiB metaspace
    // cap, 20 threads (application.yml): 368 + 64 + 16 + 2.1 + 50 = 500.1 MiB (with the
    // measured defaults, 368 + 170.1 would not).
    let dir = project(&[
        ("render.yaml", RENDER_STARTER),
        (
            "Dockerfile",
            SPRING_DOCKERFILE
                .replace("-Xmx384m\"", "-Xmx368m\", \"-XX:MaxMetaspaceSize=64m\"")
                .as_str(),
        ),
        (
            "src/main/resources/application.yml",
            "spring:\n  application:\n    name: orders\nserver:\n  port: 8080\n  tomcat:\n    threads:\n      max: 20\n",
        ),
    ]);
    let (code, report) = audit(dir.path(), &[]);
    assert_eq!(
        (code, rules(&report)),
        (0, vec![]),
        "{}",
        report["findings"]
    );
    // A 128 MiB metaspace cap is budgeted whole: 368 + 128 + 16 + 2.1 + 50 > 512.
    std::fs::write(
        dir.path().join("Dockerfile"),
        SPRING_DOCKERFILE.replace("-Xmx384m\"", "-Xmx368m\", \"-XX:MaxMetaspaceSize=128m\""),
    )
    .unwrap();
    let report = audit(dir.path(), &[]).1;
    let jvm = findings(&report, "jvm-heap-over-limit");
    assert_eq!(jvm.len(), 1, "{}", report["findings"]);
    let message = jvm[0]["message"].as_str().unwrap();
    assert!(
        message.contains("metaspace ~128 MiB (-XX:MaxMetaspaceSize)")
            && message.contains("20 thread stacks"),
        "{message}"
    );
}

#[test]
fn jvm_options_from_platform_env_and_a_start_script() {
    // JAVA_TOOL_OPTIONS in fly.toml [env] with MaxRAMPercentage=90 on a 1 GB machine.
    let dir = project(&[
        (
            "fly.toml",
            "app = \"orders\"\nprimary_region = \"ams\"\n\n[env]\n  JAVA_TOOL_OPTIONS = \"-XX:MaxRAMPercentage=90.0 -XX:+UseSerialGC\"\n\n[[vm]]\n  memory = \"1gb\"\n  cpus = 1\n",
        ),
        (
            "Dockerfile",
            "FROM eclipse-temurin:17-jdk AS build\nWORKDIR /src\nCOPY . .\nRUN ./mvnw -q package -DskipTests\n\nFROM eclipse-temurin:17-jre\nCOPY --from=build /src/target/*.jar /app.jar\nENTRYPOINT [\"java\", \"-jar\", \"/app.jar\"]\n",
        ),
    ]);
    let (_, report) = audit(dir.path(), &[]);
    let jvm = findings(&report, "jvm-heap-over-limit");
    assert_eq!(jvm.len(), 1, "{}", report["findings"]);
    assert_eq!(jvm[0]["file"], "fly.toml");
    assert!(jvm[0]["message"].as_str().unwrap().contains("90"));
    fix(dir.path());
    assert!(read(dir.path(), "fly.toml")
        .contains("JAVA_TOOL_OPTIONS = \"-XX:MaxRAMPercentage=75.0 -XX:+UseSerialGC\""));
    assert!(findings(&audit(dir.path(), &[]).1, "jvm-heap-over-limit").is_empty());

    // JAVA_OPTS in the image, read by the start script the CMD runs; a command-line -Xmx
    // in the script wins over it.
    let dir = project(&[
        ("render.yaml", RENDER_STARTER),
        (
            "Dockerfile",
            "FROM eclipse-temurin:21-jre-alpine\nCOPY build/libs/app.jar /app/app.jar\nCOPY docker/entrypoint.sh /entrypoint.sh\nENV JAVA_OPTS=\"-Xms256m -Xmx256m\"\nENTRYPOINT [\"/entrypoint.sh\"]\n",
        ),
        (
            "docker/entrypoint.sh",
            "#!/bin/sh\nset -e\nexec java $JAVA_OPTS -Xmx900m -jar /app/app.jar \"$@\"\n",
        ),
    ]);
    let (_, report) = audit(dir.path(), &[]);
    let jvm = findings(&report, "jvm-heap-over-limit");
    assert_eq!(jvm.len(), 1, "{}", report["findings"]);
    assert_eq!(jvm[0]["file"], "docker/entrypoint.sh");
    assert_eq!(jvm[0]["line"], 3);

    // Tuned: the same service with a heap that leaves room outside it.
    std::fs::write(
        dir.path().join("docker/entrypoint.sh"),
        "#!/bin/sh\nset -e\nexec java $JAVA_OPTS -jar /app/app.jar \"$@\"\n",
    )
    .unwrap();
    let (code, report) = audit(dir.path(), &[]);
    assert_eq!((code, rules(&report)), (0, vec![]));
}

#[test]
fn jdk8_before_8u191_does_not_see_the_container_limit() {
    let old = "FROM openjdk:8u181-jre-alpine\nCOPY app.jar /app.jar\nCMD [\"java\", \"-jar\", \"/app.jar\"]\n";
    let dir = project(&[("render.yaml", RENDER_STARTER), ("Dockerfile", old)]);
    let (_, report) = audit(dir.path(), &[]);
    let found = findings(&report, "jvm-no-container-support");
    assert_eq!(found.len(), 1, "{}", report["findings"]);
    assert_eq!(found[0]["line"], 1);
    assert!(found[0]["message"].as_str().unwrap().contains("8u181"));
    for tuned in [
        "openjdk:8u191-jre-alpine",
        "eclipse-temurin:8-jre",
        "openjdk:11-jre-slim",
    ] {
        std::fs::write(
            dir.path().join("Dockerfile"),
            old.replace("openjdk:8u181-jre-alpine", tuned),
        )
        .unwrap();
        let (_, report) = audit(dir.path(), &[]);
        assert!(
            findings(&report, "jvm-no-container-support").is_empty(),
            "{tuned}: {}",
            report["findings"]
        );
    }
}

#[test]
fn gunicorn_w_8_on_a_render_starter_and_fix_sets_the_workers_that_fit() {
    let dir = project(&[
        ("render.yaml", RENDER_STARTER),
        ("requirements.txt", "django==5.0.6\ngunicorn==22.0.0\n"),
        (".dockerignore", ".git\n.venv\n*.sqlite3\n"),
        (
            "Dockerfile",
            "FROM python:3.12-slim\nWORKDIR /app\nCOPY requirements.txt .\nRUN pip install --no-cache-dir -r requirements.txt\nCOPY . .\nCMD [\"gunicorn\", \"-w\", \"8\", \"-b\", \"0.0.0.0:8000\", \"mysite.wsgi:application\"]\n",
        ),
    ]);
    let (code, report) = audit(dir.path(), &[]);
    assert_eq!(code, 1, "{}", report["findings"]);
    let found = findings(&report, "python-workers-over-limit");
    assert_eq!(found.len(), 1, "{}", report["findings"]);
    assert_eq!(found[0]["line"], 6);
    let message = found[0]["message"].as_str().unwrap();
    assert!(
        message.contains("8 workers") && message.contains("512 MiB"),
        "{message}"
    );
    fix(dir.path());
    assert!(read(dir.path(), "Dockerfile").ends_with(
        "CMD [\"gunicorn\", \"-w\", \"2\", \"-b\", \"0.0.0.0:8000\", \"mysite.wsgi:application\"]\n"
    ));
    let (code, report) = audit(dir.path(), &[]);
    assert_eq!((code, rules(&report)), (0, vec![]));
}

#[test]
fn python_workers_from_web_concurrency_config_files_uvicorn_and_celery() {
    // WEB_CONCURRENCY in render.yaml, read by gunicorn: no Node rule about it.
    let render = format!(
        "{RENDER_STARTER}    envVars:\n      - key: WEB_CONCURRENCY\n        value: \"4\"\n"
    );
    let dir = project(&[
        ("render.yaml", render.as_str()),
        (".dockerignore", ".git\n.venv\n__pycache__\n"),
        (
            "Dockerfile",
            "FROM python:3.12-slim\nCOPY . /app\nCMD gunicorn app:app\n",
        ),
    ]);
    let (_, report) = audit(dir.path(), &[]);
    assert_eq!(
        rules(&report),
        vec!["python-workers-over-limit"],
        "{}",
        report["findings"]
    );
    assert_eq!(
        findings(&report, "python-workers-over-limit")[0]["file"],
        "render.yaml"
    );

    // gunicorn.conf.py's `workers =` wins over WEB_CONCURRENCY; --preload shares the app.
    let dir = project(&[
        ("render.yaml", RENDER_STARTER),
        ("gunicorn.conf.py", "import multiprocessing\n\nbind = \"0.0.0.0:8000\"\nworkers = 3\npreload_app = True\n"),
        (".dockerignore", ".git\n.venv\n"),
        ("Dockerfile", "FROM python:3.11-slim\nENV WEB_CONCURRENCY=1\nCOPY . /app\nCMD [\"gunicorn\", \"app.main:app\"]\n"),
    ]);
    let (_, report) = audit(dir.path(), &[]);
    let found = findings(&report, "python-workers-over-limit");
    assert_eq!(found.len(), 1, "{}", report["findings"]);
    assert_eq!(found[0]["file"], "gunicorn.conf.py");
    assert_eq!(found[0]["line"], 4);
    assert!(found[0]["message"].as_str().unwrap().contains("preload"));
    fix(dir.path());
    assert!(read(dir.path(), "gunicorn.conf.py").contains("\nworkers = 2\n"));
    assert!(findings(&audit(dir.path(), &[]).1, "python-workers-over-limit").is_empty());

    // uvicorn --workers and celery --concurrency from a Procfile on a 512 MB dyno.
    let dir = project(&[
        ("Procfile", "web: uvicorn main:app --host 0.0.0.0 --port $PORT --workers 4\nworker: celery -A tasks worker --concurrency=4 --loglevel=info\n"),
        ("app.json", r#"{"name":"a","formation":{"web":{"quantity":1,"size":"basic"}}}"#),
    ]);
    let (_, report) = audit(dir.path(), &[]);
    let found = findings(&report, "python-workers-over-limit");
    assert_eq!(found.len(), 2, "{}", report["findings"]);

    // Tuned: two uvicorn workers and celery -c 2.
    std::fs::write(dir.path().join("Procfile"), "web: uvicorn main:app --host 0.0.0.0 --port $PORT --workers 2\nworker: celery -A tasks worker -c 2\n").unwrap();
    let (code, report) = audit(dir.path(), &[]);
    assert_eq!((code, rules(&report)), (0, vec![]));
}

#[test]
fn pip_cache_in_the_image_is_one_finding_and_fix_adds_no_cache_dir() {
    let dir = project(&[
        (".dockerignore", ".git\n.venv\n"),
        (
            "Dockerfile",
            "FROM python:3.12-slim\nWORKDIR /app\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\nCOPY . .\nCMD [\"python\", \"main.py\"]\n",
        ),
    ]);
    let (_, report) = audit(dir.path(), &[]);
    assert_eq!(
        rules(&report),
        vec!["pip-cache-in-image"],
        "{}",
        report["findings"]
    );
    fix(dir.path());
    assert!(read(dir.path(), "Dockerfile")
        .contains("RUN pip install --no-cache-dir -r requirements.txt\n"));
    let (code, report) = audit(dir.path(), &[]);
    assert_eq!((code, rules(&report)), (0, vec![]));
    // PIP_NO_CACHE_DIR counts as the flag.
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM python:3.12-slim\nENV PIP_NO_CACHE_DIR=1\nRUN pip install flask\n",
    )
    .unwrap();
    assert!(findings(&audit(dir.path(), &[]).1, "pip-cache-in-image").is_empty());
}

#[test]
fn go_without_gomemlimit_on_a_small_limit_and_gogc_alone() {
    let docker = "FROM golang:1.22 AS build\nWORKDIR /src\nCOPY . .\nRUN CGO_ENABLED=0 go build -o /bin/server ./cmd/server\n\nFROM gcr.io/distroless/static-debian12\nCOPY --from=build /bin/server /server\nCMD [\"/server\"]\n";
    let dir = project(&[
        (
            "fly.toml",
            "app = \"api\"\n\n[[vm]]\n  memory = \"256mb\"\n",
        ),
        (".dockerignore", ".git\nbin/\n"),
        ("Dockerfile", docker),
    ]);
    let (_, report) = audit(dir.path(), &[]);
    let found = findings(&report, "gomemlimit-unset");
    assert_eq!(found.len(), 1, "{}", report["findings"]);
    fix(dir.path());
    assert_eq!(
        read(dir.path(), "Dockerfile"),
        docker.replace(
            "FROM gcr.io/distroless/static-debian12\n",
            "FROM gcr.io/distroless/static-debian12\nENV GOMEMLIMIT=230MiB\n"
        )
    );
    let (code, report) = audit(dir.path(), &[]);
    assert_eq!((code, rules(&report)), (0, vec![]));

    // GOGC set in the platform env without GOMEMLIMIT.
    std::fs::write(dir.path().join("Dockerfile"), docker).unwrap();
    std::fs::write(
        dir.path().join("fly.toml"),
        "app = \"api\"\n\n[env]\n  GOGC = \"50\"\n\n[[vm]]\n  memory = \"4gb\"\n",
    )
    .unwrap();
    let (_, report) = audit(dir.path(), &[]);
    let found = findings(&report, "gomemlimit-unset");
    assert_eq!(found.len(), 1, "{}", report["findings"]);
    assert_eq!(found[0]["file"], "fly.toml");
    assert!(found[0]["message"].as_str().unwrap().contains("GOGC"));
    // Tuned: both.
    std::fs::write(dir.path().join("fly.toml"), "app = \"api\"\n\n[env]\n  GOGC = \"50\"\n  GOMEMLIMIT = \"3600MiB\"\n\n[[vm]]\n  memory = \"4gb\"\n").unwrap();
    let (code, report) = audit(dir.path(), &[]);
    assert_eq!((code, rules(&report)), (0, vec![]));
}

#[test]
fn four_workers_of_a_300_mib_heap_in_512_mib_is_one_finding() {
    let dir = project(&[
        ("package.json", r#"{"name":"a","scripts":{"start":"node server.js"},"dependencies":{}}"#),
        ("package-lock.json", r#"{"name":"a","lockfileVersion":3,"packages":{}}"#),
        ("Dockerfile", "FROM node:22-slim\nWORKDIR /app\nCOPY server.js ./\nENV NODE_OPTIONS=--max-old-space-size=300\nCMD [\"node\", \"server.js\"]\n"),
        ("fly.toml", "app = \"a\"\n[env]\n  WEB_CONCURRENCY = \"4\"\n[[vm]]\n  memory = \"512mb\"\n"),
        ("server.js", "require('http').createServer((q, s) => s.end('ok')).listen(8080);\n"),
    ]);
    let (_, report) = audit(dir.path(), &[]);
    assert_eq!(
        rules(&report),
        vec!["workers-times-heap-over-limit"],
        "{}",
        report["findings"]
    );
}

#[test]
fn folklore_flags_in_scripts_the_start_command_does_not_run_are_reported_lower() {
    let dir = project(&[
        (
            "package.json",
            r#"{"name":"a","scripts":{"start":"node --gc-interval=100 server.js","worker":"NODE_OPTIONS='--optimize-for-size --gc-interval=100' node worker.js"},"dependencies":{}}"#,
        ),
        (
            "package-lock.json",
            r#"{"name":"a","lockfileVersion":3,"packages":{}}"#,
        ),
        (
            "server.js",
            "require('http').createServer((q, s) => s.end('ok')).listen(8080);\n",
        ),
    ]);
    let (_, report) = audit(dir.path(), &[]);
    let found: Vec<(String, String)> = findings(&report, "node-flag-folklore")
        .iter()
        .map(|f| {
            let m = f["message"].as_str().unwrap();
            let which = if m.contains("scripts.worker") {
                "worker"
            } else {
                "start"
            };
            (
                which.to_string(),
                f["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        found.contains(&("start".into(), "warning".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("worker".into(), "info".into())),
        "{found:?}"
    );
    assert_eq!(found.len(), 3, "{found:?}");
    fix(dir.path());
    assert_eq!(
        read(dir.path(), "package.json"),
        r#"{"name":"a","scripts":{"start":"node server.js","worker":"NODE_OPTIONS='--optimize-for-size' node worker.js"},"dependencies":{}}"#
    );
}

#[test]
fn the_new_rules_in_sarif_validate_and_suppressions_apply() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sarif-schema-2.1.0.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut ids = std::collections::BTreeSet::new();
    for name in ["jvm-render", "python-render", "go-fly", "rust-builder"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/audit")
            .join(name);
        let output = memfit()
            .arg("audit")
            .arg(&dir)
            .args(["--format", "sarif"])
            .output()
            .unwrap();
        let sarif: Value = serde_json::from_slice(&output.stdout).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&sarif)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:#?}");
        let results = sarif["runs"][0]["results"].as_array().unwrap();
        let (_, json) = audit(&dir, &[]);
        assert_eq!(results.len(), json["findings"].as_array().unwrap().len());
        let with_fixes = results.iter().filter(|r| r.get("fixes").is_some()).count();
        assert_eq!(
            with_fixes as u64,
            json["summary"]["fixable"].as_u64().unwrap()
        );
        ids.extend(
            results
                .iter()
                .map(|r| r["ruleId"].as_str().unwrap().to_string()),
        );
    }
    for id in [
        "jvm-heap-over-limit",
        "jvm-no-container-support",
        "python-workers-over-limit",
        "pip-cache-in-image",
        "gomemlimit-unset",
        "full-base-image",
        "cargo-build-over-limit",
    ] {
        assert!(ids.contains(id), "{id} in {ids:?}");
    }
    // A suppression comment on the line before silences one rule there.
    let copy = project(&[
        ("render.yaml", RENDER_STARTER),
        ("Dockerfile", "FROM python:3.12-slim\n# memfit ignore=python-workers-over-limit sized by a load test\nCMD gunicorn -w 8 app:app\n"),
    ]);
    let (_, report) = audit(copy.path(), &[]);
    assert!(findings(&report, "python-workers-over-limit").is_empty());
    assert_eq!(report["summary"]["suppressed"], 1);
}

#[test]
fn a_full_node_base_in_the_shipped_stage_and_fix_moves_it_to_slim() {
    let docker = "FROM node:20 AS build\nWORKDIR /app\nCOPY package*.json ./\nRUN npm ci\nCOPY . .\nRUN npm run build && npm prune --omit=dev\n\nFROM node:20\nWORKDIR /app\nENV NODE_ENV=production\nCOPY --from=build /app/node_modules ./node_modules\nCOPY --from=build /app/dist ./dist\nCMD [\"node\", \"dist/server.js\"]\n";
    let dir = project(&[
        (
            "package.json",
            r#"{"name":"a","scripts":{"build":"tsc","start":"node dist/server.js"},"dependencies":{}}"#,
        ),
        (
            "package-lock.json",
            r#"{"name":"a","lockfileVersion":3,"packages":{}}"#,
        ),
        (".dockerignore", "node_modules\n.git\n"),
        ("Dockerfile", docker),
    ]);
    let (_, report) = audit(dir.path(), &[]);
    let found = findings(&report, "full-base-image");
    assert_eq!(found.len(), 1, "{}", report["findings"]);
    assert_eq!(found[0]["line"], 8);
    let message = found[0]["message"].as_str().unwrap();
    assert!(
        message.contains("389.5 MB") && message.contains("76.15 MB"),
        "{message}"
    );
    fix(dir.path());
    assert_eq!(
        read(dir.path(), "Dockerfile"),
        docker.replace("\nFROM node:20\n", "\nFROM node:20-slim\n")
    );
    assert!(findings(&audit(dir.path(), &[]).1, "full-base-image").is_empty());

    // A shipped stage that installs keeps the advice, not an edit (slim has no compiler).
    std::fs::write(dir.path().join("Dockerfile"), "FROM python:3.12\nCOPY requirements.txt .\nRUN pip install --no-cache-dir -r requirements.txt\nCMD [\"python\", \"app.py\"]\n").unwrap();
    let (_, report) = audit(dir.path(), &[]);
    let found = findings(&report, "full-base-image");
    assert_eq!(found.len(), 1, "{}", report["findings"]);
    assert_eq!(found[0]["fixable"], false);

    // A single stage that builds is single-stage-build's finding alone.
    std::fs::write(dir.path().join("Dockerfile"), "FROM node:20\nWORKDIR /app\nCOPY . .\nRUN npm ci && npm run build\nCMD [\"node\", \"dist/server.js\"]\n").unwrap();
    let (_, report) = audit(dir.path(), &[]);
    assert!(
        findings(&report, "full-base-image").is_empty(),
        "{}",
        report["findings"]
    );
    assert_eq!(findings(&report, "single-stage-build").len(), 1);
}

#[test]
fn cargo_build_jobs_against_the_builder_memory_from_memfit_toml() {
    let cargo = "[package]\nname = \"ingest\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\ntokio = { version = \"1\", features = [\"full\"] }\n\n[profile.release]\nlto = \"fat\"\ncodegen-units = 1\n";
    let docker = "FROM rust:1.83-slim-bookworm AS build\nWORKDIR /src\nCOPY . .\nRUN cargo build --release -j 8\n\nFROM debian:bookworm-slim\nCOPY --from=build /src/target/release/ingest /usr/local/bin/ingest\nCMD [\"ingest\"]\n";
    let dir = project(&[
        ("Cargo.toml", cargo),
        ("src/main.rs", "fn main() {}\n"),
        (".dockerignore", "target\n.git\n"),
        ("memfit.toml", "[build]\nlimit = \"4G\"\ncpus = 4\n"),
        ("Dockerfile", docker),
    ]);
    let (code, report) = audit(dir.path(), &[]);
    assert_eq!(code, 1);
    let found = findings(&report, "cargo-build-over-limit");
    assert_eq!(found.len(), 1, "{}", report["findings"]);
    assert_eq!(found[0]["line"], 4);
    let message = found[0]["message"].as_str().unwrap();
    for part in [
        "8 rustc job(s)",
        "12 GiB",
        "4 GiB",
        "8 jobs on 4 CPUs",
        "fat LTO and codegen-units = 1",
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }
    fix(dir.path());
    assert_eq!(
        read(dir.path(), "Dockerfile"),
        docker.replace("-j 8", "-j 2")
    );
    assert!(findings(&audit(dir.path(), &[]).1, "cargo-build-over-limit").is_empty());

    // No job limit: one job per builder CPU, and only this rule says so.
    std::fs::write(dir.path().join("Dockerfile"), docker.replace(" -j 8", "")).unwrap();
    let (_, report) = audit(dir.path(), &[]);
    let found = findings(&report, "cargo-build-over-limit");
    assert_eq!(found.len(), 1, "{}", report["findings"]);
    assert!(found[0]["message"]
        .as_str()
        .unwrap()
        .contains("one per builder CPU (4)"));
    assert!(findings(&report, "cargo-unbounded-jobs-small-builder").is_empty());

    // CARGO_BUILD_JOBS in an ARG: fix rewrites it; two jobs stay silent.
    let with_arg = docker
        .replace(" -j 8", "")
        .replace("WORKDIR /src\n", "WORKDIR /src\nARG CARGO_BUILD_JOBS=6\n");
    std::fs::write(dir.path().join("Dockerfile"), &with_arg).unwrap();
    assert_eq!(
        findings(&audit(dir.path(), &[]).1, "cargo-build-over-limit").len(),
        1
    );
    fix(dir.path());
    assert_eq!(
        read(dir.path(), "Dockerfile"),
        with_arg.replace("CARGO_BUILD_JOBS=6", "CARGO_BUILD_JOBS=2")
    );
    assert!(findings(&audit(dir.path(), &[]).1, "cargo-build-over-limit").is_empty());

    // A [build] memfit cannot read: exit 2, one line that says what to write.
    std::fs::write(
        dir.path().join("memfit.toml"),
        "[build]\nlimit = \"lots\"\n",
    )
    .unwrap();
    let output = memfit().arg("audit").arg(dir.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("memfit.toml:2:9") && stderr.contains("[build] limit"),
        "{stderr}"
    );
}

#[test]
fn a_kubernetes_manifest_named_like_spring_config_still_gives_the_limit() {
    let dir = project(&[
        (
            "k8s/application-deployment.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: orders\nspec:\n  template:\n    spec:\n      containers:\n        - name: orders\n          image: orders\n          resources:\n            limits:\n              memory: 512Mi\n",
        ),
        ("Dockerfile", SPRING_DOCKERFILE),
    ]);
    let report = audit(dir.path(), &[]).1;
    let jvm = findings(&report, "jvm-heap-over-limit");
    assert_eq!(jvm.len(), 1, "{}", report["findings"]);
    assert!(
        jvm[0]["message"].as_str().unwrap().contains("512 MiB"),
        "{}",
        jvm[0]["message"]
    );
}
