//! `memfit fix` on hostile projects (issue 13): edits are spliced into the original bytes,
//! the files of one fix are written all or nothing, links out of the project are never read
//! or written through, and a fix applied twice changes nothing the second time.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use serde_json::Value;

/// Byte contents of different lengths in one list (`common::project` with the type fixed).
fn project(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    common::project(files)
}

/// Every path under `dir` (links not followed) with its bytes (a link: its target).
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_symlink() {
                let target = std::fs::read_link(entry.path()).unwrap();
                out.push((entry.path(), target.into_os_string().into_encoded_bytes()));
            } else {
                out.push((entry.path(), std::fs::read(entry.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn fix(dir: &Path, args: &[&str]) -> Output {
    memfit().arg("fix").args(args).arg(dir).output().unwrap()
}

fn audit_json(dir: &Path) -> Value {
    let output = memfit()
        .arg("audit")
        .arg(dir)
        .args(["--format", "json"])
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

const PACKAGE_JSON: &[u8] =
    br#"{"name":"x","scripts":{"start":"node server.js"},"dependencies":{"express":"4.19.2"}}"#;
const PACKAGE_LOCK: &[u8] = br#"{"lockfileVersion":3,"packages":{}}"#;
const DOCKERIGNORE: &[u8] = b"node_modules\n.git\n";

#[test]
fn a_latin1_comment_and_crlf_line_endings_survive_byte_for_byte() {
    let dockerfile: &[u8] = b"# caf\xe9 cr\xe8me: Latin-1, not UTF-8\r\nFROM node:20\r\nWORKDIR /app\r\nCOPY package*.json ./\r\nRUN npm install\r\nCOPY . .\r\nCMD [\"node\", \"server.js\"]\r\n";
    let dir = project(&[
        ("Dockerfile", dockerfile),
        ("package.json", PACKAGE_JSON),
        ("package-lock.json", PACKAGE_LOCK),
        (".dockerignore", DOCKERIGNORE),
    ]);
    let output = fix(dir.path(), &[]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let after = std::fs::read(dir.path().join("Dockerfile")).unwrap();
    let before_lines: Vec<&[u8]> = dockerfile.split(|&b| b == b'\n').collect();
    let after_lines: Vec<&[u8]> = after.split(|&b| b == b'\n').collect();
    assert_eq!(before_lines.len(), after_lines.len(), "{after:?}");
    for (i, (b, a)) in before_lines.iter().zip(&after_lines).enumerate() {
        if i == 4 {
            let line = String::from_utf8_lossy(a);
            assert!(line.starts_with("RUN npm ci"), "{line:?}");
            assert!(line.ends_with('\r'), "the line keeps its CRLF: {line:?}");
        } else {
            assert_eq!(b, a, "line {} changed", i + 1);
        }
    }
    assert!(after.starts_with(b"# caf\xe9 cr\xe8me"));
    assert!(!after.windows(3).any(|w| w == b"\xef\xbf\xbd"));
}

/// Takes the immutable flag off again whatever the test does.
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: &Path) -> Option<Immutable> {
        let ok = std::process::Command::new("chattr")
            .arg("+i")
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        let listed = std::process::Command::new("lsattr")
            .arg(path)
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .is_some_and(|o| o.split_whitespace().next().is_some_and(|f| f.contains('i')));
        (ok && listed).then(|| Immutable(path.to_path_buf()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn one_file_that_cannot_be_written_leaves_every_file_of_the_fix_as_it_was() {
    let dockerfile: &[u8] = b"FROM node:20\nWORKDIR /app\nCOPY package*.json ./\nRUN npm install\nCOPY . .\nCMD [\"node\", \"server.js\"]\n";
    let dir = project(&[
        ("Dockerfile", dockerfile),
        ("api/Dockerfile", dockerfile),
        ("package.json", PACKAGE_JSON),
        ("package-lock.json", PACKAGE_LOCK),
        ("api/package.json", PACKAGE_JSON),
        ("api/package-lock.json", PACKAGE_LOCK),
        (".dockerignore", DOCKERIGNORE),
        ("api/.dockerignore", DOCKERIGNORE),
    ]);
    let dry = fix(dir.path(), &["--dry-run"]);
    let diff = String::from_utf8_lossy(&dry.stdout);
    assert!(diff.contains("+++ b/Dockerfile"), "{diff}");
    assert!(diff.contains("+++ b/api/Dockerfile"), "{diff}");

    // The file renamed last cannot be replaced: the first must come back.
    let Some(_guard) = Immutable::set(&dir.path().join("api/Dockerfile")) else {
        eprintln!("skipping: chattr +i does not work on this filesystem");
        return;
    };
    let before = snapshot(dir.path());
    let output = fix(dir.path(), &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("api/Dockerfile"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        before,
        snapshot(dir.path()),
        "a file changed or was left behind"
    );
}

#[test]
fn a_dockerignore_linked_out_of_the_project_is_never_read_nor_written() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("shadow");
    std::fs::write(&secret, "root:$6$TOP-SECRET-HASH:19000:0:99999:7:::\n").unwrap();
    let dir = project(&[
        (
            "Dockerfile",
            b"FROM node:20-slim\nWORKDIR /app\nCOPY . .\nCMD [\"node\", \"server.js\"]\n",
        ),
        ("package.json", PACKAGE_JSON),
        ("package-lock.json", PACKAGE_LOCK),
    ]);
    std::os::unix::fs::symlink(&secret, dir.path().join(".dockerignore")).unwrap();
    let before = snapshot(dir.path());

    let dry = fix(dir.path(), &["--dry-run"]);
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&dry.stdout),
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(!shown.contains("TOP-SECRET"), "{shown}");

    let output = fix(dir.path(), &[]);
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!shown.contains("TOP-SECRET"), "{shown}");
    assert!(!shown.contains("panicked"), "{shown}");
    assert_eq!(before, snapshot(dir.path()), "the project changed");
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "root:$6$TOP-SECRET-HASH:19000:0:99999:7:::\n"
    );

    // The audit says why it left the link alone.
    let report = audit_json(dir.path());
    let link = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["file"] == ".dockerignore")
        .unwrap_or_else(|| panic!("no finding on the link: {}", report["findings"]));
    assert!(
        link["message"]
            .as_str()
            .unwrap()
            .contains("outside the project"),
        "{link}"
    );
    assert!(!report.to_string().contains("TOP-SECRET"));
}

#[test]
fn a_directory_linked_out_of_the_project_is_not_entered() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join("Dockerfile"),
        "FROM node:20\nCOPY . .\nRUN npm install\n",
    )
    .unwrap();
    std::fs::write(outside.path().join("package.json"), PACKAGE_JSON).unwrap();
    std::fs::write(outside.path().join("package-lock.json"), PACKAGE_LOCK).unwrap();
    std::fs::write(
        outside.path().join("tsconfig.json"),
        "{\"compilerOptions\": {\"skipLibCheck\": true}}",
    )
    .unwrap();
    let dir = project(&[
        (
            "Dockerfile",
            b"FROM node:20-slim\nWORKDIR /app\nCOPY . .\nRUN npx tsc -p tsconfig.json\nCMD [\"node\", \"dist/server.js\"]\n",
        ),
        ("package.json", PACKAGE_JSON),
        ("package-lock.json", PACKAGE_LOCK),
        (".dockerignore", DOCKERIGNORE),
        (
            "tsconfig.json",
            b"{\"extends\": \"./sub/tsconfig.json\", \"include\": [\"src\"]}",
        ),
    ]);
    std::os::unix::fs::symlink(outside.path(), dir.path().join("sub")).unwrap();
    let outside_before = snapshot(outside.path());
    let report = audit_json(dir.path());
    for f in report["findings"].as_array().unwrap() {
        assert!(
            !f["file"].as_str().unwrap().starts_with("sub/"),
            "read through the link: {f}"
        );
    }
    let output = fix(dir.path(), &[]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(outside_before, snapshot(outside.path()));
}

#[test]
fn npm_ci_gets_omit_dev_on_itself_and_a_second_fix_changes_nothing() {
    let dir = project(&[
        (
            "Dockerfile",
            b"FROM node:20-slim\nWORKDIR /app\nCOPY package*.json ./\nRUN npm ci\nCOPY . .\nCMD [\"node\", \"server.js\"]\n",
        ),
        ("package.json", PACKAGE_JSON),
        ("package-lock.json", PACKAGE_LOCK),
        (".dockerignore", DOCKERIGNORE),
    ]);
    let first = fix(dir.path(), &[]);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let text = std::fs::read_to_string(dir.path().join("Dockerfile")).unwrap();
    assert!(
        text.contains("\nRUN npm ci --omit=dev && npm cache clean --force\n"),
        "{text}"
    );
    let files = snapshot(dir.path());
    let second = fix(dir.path(), &[]);
    assert_eq!(second.status.code(), Some(0));
    assert!(
        second.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&second.stdout)
    );
    assert_eq!(files, snapshot(dir.path()), "the second fix changed files");
}
