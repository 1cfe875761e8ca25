//! The audit's readers on hostile files (issue 13): nesting too deep for a recursive reader is a
//! finding, not a stack overflow, and a finding on a 50 MB line prints a bounded excerpt.

mod common;

use std::path::Path;
use std::process::Output;

use common::*;
use serde_json::Value;

fn audit(dir: &Path, format: &str) -> Output {
    memfit()
        .arg("audit")
        .arg(dir)
        .args(["--format", format])
        .output()
        .unwrap()
}

/// The audit of a project holding one hostile file ends normally and reports the file as a
/// `malformed-file` whose message says what is wrong.
fn assert_malformed(name: &str, text: String, needle: &str) {
    let dir = project(&[(name, text)]);
    let output = audit(dir.path(), "json");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "{name}: {:?} {stderr}",
        output.status
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["file"] == name && f["rule"] == "malformed-file")
        .unwrap_or_else(|| panic!("{name}: no malformed-file: {}", report["findings"]));
    let message = finding["message"].as_str().unwrap();
    assert!(message.contains(needle), "{name}: {message}");
}

#[test]
fn compact_nested_yaml_is_a_finding_not_a_stack_overflow() {
    let block = format!("{}1\n", "- ".repeat(5000));
    assert_malformed("docker-compose.yml", block, "nest");
    let flow = format!("services: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    // saphyr-parser limits flow nesting itself.
    assert_malformed("render.yaml", flow, "recursion limit");
}

#[test]
fn deeply_nested_json_is_a_finding_not_a_stack_overflow() {
    let arrays = format!(
        "{{\"name\": \"x\", \"a\": {}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_malformed("package.json", arrays, "nest");
    let objects = format!(
        "{{\"compilerOptions\": {}1{}}}",
        "{\"a\": ".repeat(50_000),
        "}".repeat(50_000)
    );
    assert_malformed("tsconfig.json", objects, "nest");
}

#[test]
fn deeply_nested_toml_is_a_finding_not_a_stack_overflow() {
    let text = format!(
        "app = \"x\"\na = {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_malformed("fly.toml", text.clone(), "");
    let inline = format!(
        "app = \"x\"\na = {}1{}\n",
        "{b = ".repeat(50_000),
        "}".repeat(50_000)
    );
    assert_malformed("fly.toml", inline, "");
    let config = format!(
        "limit = \"512M\"\na = {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    // memfit's own configuration: a problem there stops the audit with exit 2 and one line
    // (as ruff does for its configuration), a too-deep file too; never a crash.
    let dir = project(&[("memfit.toml", config)]);
    let output = audit(dir.path(), "json");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("memfit.toml"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn deeply_nested_scripts_are_a_finding_not_a_stack_overflow() {
    // setInterval makes the file worth parsing for the source rules.
    let shapes = [
        format!(
            "setInterval(() => {{}}, 1);\nconst a = {}1{};\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        ),
        format!(
            "setInterval(() => {{}}, 1);\nconst a = {}1{};\n",
            "(".repeat(100_000),
            ")".repeat(100_000)
        ),
        format!(
            "setInterval(() => {{}}, 1);\nconst a = 1{};\n",
            " + 1".repeat(200_000)
        ),
        format!(
            "setInterval(() => {{}}, 1);\nconst a = {}1;\n",
            "!".repeat(200_000)
        ),
        format!(
            "setInterval(() => {{}}, 1);\n{}x();{}\n",
            "function f() {".repeat(50_000),
            "}".repeat(50_000)
        ),
    ];
    for text in shapes {
        assert_malformed("server.js", text, "nest");
    }
}

#[test]
fn a_finding_on_a_50_mb_line_prints_a_bounded_excerpt() {
    // One line, 50 MB, that does not parse: the finding is on line 1.
    let line = |filler: usize| {
        format!(
            "{{\"name\": \"x\", \"description\": \"{}\", oops}}",
            "a".repeat(filler)
        )
    };
    let big = project(&[("package.json", line(50 * 1024 * 1024))]);
    let small = project(&[("package.json", line(10))]);
    for format in ["human", "json", "sarif"] {
        let output = audit(big.path(), format);
        assert!(
            matches!(output.status.code(), Some(0 | 1)),
            "{format}: {:?} {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(String::from_utf8_lossy(&output.stdout).contains("package.json"));
        // SARIF carries every rule's documentation: compared with the same finding on a
        // short line.
        let baseline = audit(small.path(), format);
        let shown = output.stdout.len() + output.stderr.len();
        let base = baseline.stdout.len() + baseline.stderr.len();
        assert!(
            shown < base + 16 * 1024 && (format == "sarif" || shown < 64 * 1024),
            "{format}: {shown} bytes of output ({base} for a short line)"
        );
    }
}

#[test]
fn lockfiles_that_do_not_parse_are_findings_too() {
    let package = r#"{"name":"x","dependencies":{"a":"1"}}"#.to_string();
    for (name, text) in [
        (
            "package-lock.json",
            "{\"lockfileVersion\": 3, \"packages\": {".to_string(),
        ),
        (
            "pnpm-lock.yaml",
            "lockfileVersion: '9.0'\npackages: [\n".to_string(),
        ),
        (
            "bun.lock",
            "{\"lockfileVersion\": 1, \"packages\": {\"a\": [}".to_string(),
        ),
    ] {
        let dir = project(&[("package.json", package.clone()), (name, text)]);
        let output = audit(dir.path(), "json");
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert!(
            report["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["file"] == name && f["rule"] == "malformed-file"),
            "{name}: {}",
            report["findings"]
        );
    }
}
