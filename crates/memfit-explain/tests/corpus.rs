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
