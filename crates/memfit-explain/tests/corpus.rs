//! The corpus of real logs (tests/corpus/cases.toml): every label must be matched, and every
//! signature must be exercised by at least one real case.

use std::collections::BTreeSet;
use std::path::Path;

use memfit_explain::{explain, signature_ids, Explanation};
use serde_json::Value;

fn cases() -> Vec<toml::Value> {
    let text = std::fs::read_to_string(corpus().join("cases.toml")).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    table["case"].as_array().unwrap().clone()
}

fn corpus() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus"))
}

fn run(case: &toml::Value) -> Explanation {
    let id = case["id"].as_str().unwrap();
    let file = std::fs::File::open(corpus().join(format!("{id}.log"))).unwrap();
    explain(file, None).unwrap()
}

fn check(case: &toml::Value, e: &Explanation) -> Vec<String> {
    let mut problems = Vec::new();
    let json: Value = serde_json::to_value(e).unwrap();
    let mut expect = |field: &str, want: &str| {
        let got = json[field].as_str().unwrap_or("null").to_string();
        if got != want {
            problems.push(format!("{field}: expected {want}, got {got}"));
        }
    };
    expect("verdict", case["verdict"].as_str().unwrap());
    expect("kind", case["kind"].as_str().unwrap());
    if let Some(sub) = case.get("sub_reason") {
        expect("sub_reason", sub.as_str().unwrap());
    }
    if let Some(facts) = case.get("facts").and_then(|f| f.as_table()) {
        for (name, want) in facts {
            let got = &json[name.as_str()];
            let ok = match want {
                toml::Value::String(s) => got.as_str() == Some(s.as_str()),
                toml::Value::Integer(i) => got.as_i64() == Some(*i),
                toml::Value::Float(f) => got.as_f64().is_some_and(|g| (g - f).abs() < 0.05),
                _ => false,
            };
            if !ok {
                problems.push(format!("fact {name}: expected {want:?}, got {got}"));
            }
        }
    }
    if e.evidence.is_empty() && e.verdict != memfit_explain::Verdict::NotOom {
        problems.push("no evidence quoted".into());
    }
    problems
}

#[test]
fn every_label_in_the_corpus_is_matched() {
    let cases = cases();
    let mut failures = Vec::new();
    for case in &cases {
        let e = run(case);
        let problems = check(case, &e);
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n    matched {:?}",
                case["id"].as_str().unwrap(),
                problems.join("; "),
                e.signatures_matched
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(cases.len() >= 60, "the corpus has {} cases", cases.len());
    let not_memory = cases
        .iter()
        .filter(|c| c["verdict"].as_str() == Some("not-oom"))
        .count();
    assert!(not_memory >= 15, "{not_memory} not-oom cases");
}

#[test]
fn every_signature_has_a_real_case() {
    let mut matched = BTreeSet::new();
    for case in cases() {
        for id in run(&case).signatures_matched {
            matched.insert(id);
        }
    }
    let missing: Vec<_> = signature_ids()
        .into_iter()
        .filter(|id| !matched.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "signatures without a real case: {missing:?}"
    );
}

#[test]
fn every_case_cites_its_source() {
    for case in cases() {
        let source = case["source"].as_str().unwrap();
        assert!(source.starts_with("https://"), "{source}");
        assert!(corpus()
            .join(format!("{}.log", case["id"].as_str().unwrap()))
            .exists());
    }
}

/// Rewrites every line of a log as a CI service or a terminal would deliver it.
fn variants(log: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let text = String::from_utf8_lossy(log);
    let lines: Vec<&str> = text.lines().collect();
    let each = |f: &dyn Fn(usize, &str) -> String| -> Vec<u8> {
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| f(i, l) + "\n")
            .collect::<String>()
            .into_bytes()
    };
    let mut out = vec![
        (
            "ANSI colours",
            each(&|_, l| format!("\x1b[1;31m{l}\x1b[0m\x1b[K")),
        ),
        (
            "GitHub Actions timestamps",
            each(&|i, l| format!("2024-05-01T12:34:{:02}.1234567Z {l}", i % 60)),
        ),
        (
            "GitLab timestamps and sections",
            each(&|i, l| {
                let section = if i == 0 {
                    "2024-05-01T12:34:56.123456Z 00O section_start:1714566896:step_script\r\x1b[0K\x1b[0K\x1b[36;1mExecuting \"step_script\" stage\x1b[0;m\n"
                } else {
                    ""
                };
                format!(
                    "{section}2024-05-01T12:34:56.123456Z 00{} {l}",
                    if i % 2 == 0 { "O" } else { "E+" }
                )
            }),
        ),
        (
            "Jenkins timestamper",
            each(&|_, l| format!("[2024-05-01T12:34:56.123Z] {l}")),
        ),
        (
            "kubectl logs --timestamps",
            each(&|_, l| format!("2024-05-01T12:34:56.123456789+02:00 {l}")),
        ),
        (
            "docker logs --timestamps",
            each(&|_, l| format!("2024-05-01T12:34:56.123456789Z {l}")),
        ),
    ];
    let mut utf8_bom = vec![0xef, 0xbb, 0xbf];
    utf8_bom.extend_from_slice(log);
    out.push(("a UTF-8 byte order mark", utf8_bom));
    let units: Vec<u16> = text.encode_utf16().collect();
    let mut le = vec![0xff, 0xfe];
    let mut be = vec![0xfe, 0xff];
    for u in &units {
        le.extend_from_slice(&u.to_le_bytes());
        be.extend_from_slice(&u.to_be_bytes());
    }
    out.push(("UTF-16LE with a BOM", le));
    out.push(("UTF-16BE with a BOM", be));
    out
}

#[test]
fn verdicts_do_not_change_with_colours_ci_timestamps_or_encodings() {
    let mut failures = Vec::new();
    let cases = cases();
    for case in &cases {
        let id = case["id"].as_str().unwrap();
        let log = std::fs::read(corpus().join(format!("{id}.log"))).unwrap();
        for (how, variant) in variants(&log) {
            let e = explain(variant.as_slice(), None).unwrap();
            let json: Value = serde_json::to_value(&e).unwrap();
            for field in ["verdict", "kind", "sub_reason"] {
                let want = case.get(field).and_then(|v| v.as_str()).unwrap_or("null");
                let got = json[field].as_str().unwrap_or("null");
                let labelled = field != "sub_reason" || case.get(field).is_some();
                if labelled && got != want {
                    failures.push(format!("{id} with {how}: {field} {got}, expected {want}"));
                }
            }
            for ev in &e.evidence {
                if ev.text.contains('\x1b') || ev.text.starts_with("2024-05-01T") {
                    failures.push(format!(
                        "{id} with {how}: evidence keeps the decoration: {:?}",
                        ev.text
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures over {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn lines_are_counted_the_same_in_utf16() {
    let log = "one\nFATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory\nthree\n";
    let mut le = vec![0xff, 0xfe];
    for u in log.encode_utf16() {
        le.extend_from_slice(&u.to_le_bytes());
    }
    let e = explain(le.as_slice(), None).unwrap();
    assert_eq!(e.lines_read, 3);
    assert_eq!(e.evidence[0].line, 2);
    assert!(
        e.evidence[0].text.starts_with("FATAL ERROR"),
        "{:?}",
        e.evidence[0].text
    );
}
