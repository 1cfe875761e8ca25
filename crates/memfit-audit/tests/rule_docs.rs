//! docs/rules.md is generated from the rules' own documentation; this test keeps it current.
//! Regenerate with `MEMFIT_UPDATE_DOCS=1 cargo test -p memfit-audit --test rule_docs`.

use memfit_audit::report::rules_markdown;
use memfit_audit::rules::RULES;

#[test]
fn every_rule_is_documented_in_the_ruff_style() {
    let mut ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), RULES.len(), "rule ids are unique");
    for rule in RULES {
        assert!(
            rule.id.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
            "{} is kebab-case",
            rule.id
        );
        for section in ["## What it does", "## Why is this bad?"] {
            assert!(rule.doc.contains(section), "{}: missing {section}", rule.id);
        }
        let file_rule = matches!(
            rule.id,
            "malformed-file" | "unreadable-file" | "dockerfile-syntax"
        );
        if !file_rule {
            for section in ["## Example", "## Use instead"] {
                assert!(rule.doc.contains(section), "{}: missing {section}", rule.id);
            }
        }
        assert!(
            !rule.summary.ends_with('.'),
            "{}: summaries have no final period",
            rule.id
        );
    }
}

#[test]
fn docs_rules_md_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/rules.md");
    let generated = rules_markdown();
    if std::env::var_os("MEMFIT_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "docs/rules.md is out of date: run MEMFIT_UPDATE_DOCS=1 cargo test -p memfit-audit --test rule_docs"
    );
}
