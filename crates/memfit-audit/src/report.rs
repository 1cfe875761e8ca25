//! Machine-readable output: JSON (`memfit.audit/1`) and SARIF 2.1.0.

use serde_json::{json, Value};
use serde_sarif::sarif;

use crate::audit::Report;
use crate::finding::{Finding, Severity};
use crate::rules::{self, RULES};

/// Where the rule documentation lives, for SARIF's helpUri.
pub const RULES_URL: &str = "https://github.com/memfit/memfit/blob/main/docs/rules.md";

/// Line and column of both ends of a finding (1-based).
pub fn position(report: &Report, finding: &Finding) -> (usize, usize, usize, usize) {
    let source = &report.project.file(finding.file).source;
    let (line, column) = source.line_col(finding.span.start);
    let (end_line, end_column) = source.line_col(finding.span.end.max(finding.span.start));
    (line, column, end_line, end_column)
}

/// The widest excerpt of a source line a code frame shows, in characters.
pub const EXCERPT_CHARS: usize = 200;

/// A bounded excerpt of one source line for a code frame: at most [`EXCERPT_CHARS`]
/// characters around the marked columns `from..to` (1-based, in characters), with `…` where
/// the line was cut. Returns the excerpt and the marked columns within it. A 50 MB minified
/// line prints 200 characters, not 50 MB.
pub fn excerpt(line: &str, from: usize, to: usize) -> (String, usize, usize) {
    let from = from.max(1);
    let to = to.max(from);
    // Only the characters near the mark are looked at: cheap on a huge line.
    let window_start = from.saturating_sub(EXCERPT_CHARS / 4).max(1);
    let mut chars = line.char_indices().skip(window_start - 1);
    let Some((start_byte, _)) = chars.next() else {
        return (String::new(), from, to);
    };
    // The first character past the excerpt, if the line goes on.
    let end_byte = chars.nth(EXCERPT_CHARS - 1).map_or(line.len(), |(i, _)| i);
    let mut shown = String::new();
    let mut shift = window_start - 1;
    if start_byte > 0 {
        shown.push('…');
        shift = shift.saturating_sub(1);
    }
    shown.push_str(&line[start_byte..end_byte]);
    let cut_end = end_byte < line.len();
    if cut_end {
        shown.push('…');
    }
    let last = shown.chars().count() + 1;
    let new_from = (from - shift).min(last);
    let new_to = (to - shift).min(if cut_end { last } else { last.max(to - shift) });
    (shown, new_from, new_to.max(new_from))
}

pub fn counts(report: &Report) -> (usize, usize, usize) {
    let count = |s| report.findings.iter().filter(|f| f.severity == s).count();
    (
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info),
    )
}

/// The JSON report.
pub fn to_json(report: &Report) -> Value {
    let findings: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let (line, column, end_line, end_column) = position(report, f);
            json!({
                "rule": f.rule,
                "severity": f.severity,
                "file": report.project.file(f.file).source.display(),
                "line": line,
                "column": column,
                "end_line": end_line,
                "end_column": end_column,
                "message": f.message,
                "fix": f.fix.as_ref().map(|x| x.description.clone()),
                "fixable": f.fixable(),
            })
        })
        .collect();
    let (errors, warnings, infos) = counts(report);
    json!({
        "schema": "memfit.audit/1",
        "memfit_version": env!("CARGO_PKG_VERSION"),
        "root": report.project.root.display().to_string(),
        "limit": report.limit.as_ref().map(|l| json!({"bytes": l.bytes, "source": l.description})),
        "runtime": report.runtime,
        "findings": findings,
        "summary": {
            "error": errors,
            "warning": warnings,
            "info": infos,
            "fixable": report.findings.iter().filter(|f| f.fixable()).count(),
            "suppressed": report.suppressed,
            "files": report.project.files.len(),
        },
        "notes": report.notes,
        "from_run": report.from_run.as_ref().map(|run| json!({
            "file": run.file,
            "command": run.command,
            "servers": run.servers.iter().map(|s| json!({
                "server": s.server.as_str(),
                "app": s.app,
                "command": s.command,
                "workers": s.worker_peaks.len(),
                "worker_peak_bytes": s.worker_bytes(),
                "worker_peak_min_bytes": s.smallest_worker_bytes(),
                "master_peak_bytes": s.master_peak_bytes,
            })).collect::<Vec<_>>(),
            "servers_omitted": run.servers_omitted,
        })),
    })
}

fn level(severity: Severity) -> sarif::ResultLevel {
    match severity {
        Severity::Error => sarif::ResultLevel::Error,
        Severity::Warning => sarif::ResultLevel::Warning,
        Severity::Info => sarif::ResultLevel::Note,
    }
}

/// The SARIF 2.1.0 log.
pub fn to_sarif(report: &Report) -> Value {
    let rules: Vec<sarif::ReportingDescriptor> = RULES
        .iter()
        .map(|r| {
            sarif::ReportingDescriptor::builder()
                .id(r.id)
                .name(r.id)
                .short_description(
                    sarif::MultiformatMessageString::builder()
                        .text(r.summary)
                        .build(),
                )
                .full_description(
                    sarif::MultiformatMessageString::builder()
                        .text(r.summary)
                        .markdown(r.doc)
                        .build(),
                )
                .help_uri(format!("{RULES_URL}#{}", r.id))
                .default_configuration(
                    sarif::ReportingConfiguration::builder()
                        .level(serde_json::to_value(level(r.severity)).unwrap_or(Value::Null))
                        .build(),
                )
                .build()
        })
        .collect();
    let results: Vec<sarif::Result> = report
        .findings
        .iter()
        .map(|f| {
            let (line, column, end_line, end_column) = position(report, f);
            let location = sarif::Location::builder()
                .physical_location(
                    sarif::PhysicalLocation::builder()
                        .artifact_location(
                            sarif::ArtifactLocation::builder()
                                .uri(report.project.file(f.file).source.display())
                                .uri_base_id("%SRCROOT%")
                                .build(),
                        )
                        .region(
                            sarif::Region::builder()
                                .start_line(line as i64)
                                .start_column(column as i64)
                                .end_line(end_line as i64)
                                .end_column(end_column as i64)
                                .build(),
                        )
                        .build(),
                )
                .build();
            let text = match &f.fix {
                Some(fix) => format!("{} Fix: {}", f.message, fix.description),
                None => f.message.clone(),
            };
            let rule_index = RULES.iter().position(|r| r.id == f.rule).unwrap_or(0) as i64;
            let mut result = sarif::Result::builder()
                .rule_id(f.rule)
                .rule_index(rule_index)
                .level(level(f.severity))
                .message(sarif::Message::builder().text(text).build())
                .locations(vec![location])
                .build();
            if let Some(fix) = f.fix.as_ref().filter(|x| !x.edits.is_empty()) {
                let changes: Vec<sarif::ArtifactChange> = fix
                    .edits
                    .iter()
                    .map(|e| {
                        let path = e.path.to_string_lossy().replace('\\', "/");
                        let region = match report.project.find(&path) {
                            Some((_, file)) => {
                                let (sl, sc) = file.source.line_col(e.start);
                                let (el, ec) = file.source.line_col(e.end);
                                sarif::Region::builder()
                                    .start_line(sl as i64)
                                    .start_column(sc as i64)
                                    .end_line(el as i64)
                                    .end_column(ec as i64)
                                    .build()
                            }
                            None => sarif::Region::builder()
                                .start_line(1)
                                .start_column(1)
                                .end_line(1)
                                .end_column(1)
                                .build(),
                        };
                        sarif::ArtifactChange::builder()
                            .artifact_location(
                                sarif::ArtifactLocation::builder()
                                    .uri(path)
                                    .uri_base_id("%SRCROOT%")
                                    .build(),
                            )
                            .replacements(vec![sarif::Replacement::builder()
                                .deleted_region(region)
                                .inserted_content(
                                    sarif::ArtifactContent::builder()
                                        .text(e.replacement.clone())
                                        .build(),
                                )
                                .build()])
                            .build()
                    })
                    .collect();
                result.fixes = Some(vec![sarif::Fix::builder()
                    .description(
                        sarif::Message::builder()
                            .text(fix.description.clone())
                            .build(),
                    )
                    .artifact_changes(changes)
                    .build()]);
            }
            result
        })
        .collect();
    let driver = sarif::ToolComponent::builder()
        .name("memfit")
        .version(env!("CARGO_PKG_VERSION"))
        .information_uri("https://github.com/memfit/memfit")
        .rules(rules)
        .build();
    let run = sarif::Run::builder()
        .tool(sarif::Tool::builder().driver(driver).build())
        .results(results)
        .build();
    let log = sarif::Sarif::builder()
        .schema("https://json.schemastore.org/sarif-2.1.0.json")
        .version(json!("2.1.0"))
        .runs(vec![run])
        .build();
    serde_json::to_value(log).unwrap_or(Value::Null)
}

/// `docs/rules.md`, generated from the rules' own documentation.
pub fn rules_markdown() -> String {
    let mut out = String::from("# memfit audit rules\n\nGenerated from the rules' own documentation (`crates/memfit-audit/src/rules/`); `cargo test -p memfit-audit --test rule_docs` checks it is current.\n\nSeverity: error = likely OOM, warning = real waste, info = a hint. Suppress one with `# memfit ignore=<id> <reason>` on the line before a Dockerfile instruction or a TOML/YAML line, `// memfit ignore=<id> <reason>` on or above a JS/TS line, or in `memfit.toml` (`ignore = [\"<id>\"]`, `[severity]`).\n\n| id | severity | summary |\n|---|---|---|\n");
    for r in RULES {
        out.push_str(&format!(
            "| [`{}`](#{}) | {} | {} |\n",
            r.id,
            r.id,
            r.severity.as_str(),
            r.summary
        ));
    }
    for r in RULES {
        out.push_str(&format!(
            "\n## {}\n\nSeverity: {}. {}\n\n",
            r.id,
            r.severity.as_str(),
            r.summary
        ));
        // Demote the doc's headings one level under the rule's.
        for line in r.doc.lines() {
            if let Some(rest) = line.strip_prefix("## ") {
                out.push_str(&format!("### {rest}\n"));
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    let _ = rules::find;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_of_long_lines_are_bounded_and_keep_the_mark() {
        assert_eq!(
            excerpt("RUN npm ci", 5, 8),
            ("RUN npm ci".to_string(), 5, 8)
        );
        let long = format!("{}X{}", "a".repeat(10_000), "b".repeat(10_000));
        let (shown, from, to) = excerpt(&long, 10_001, 10_002);
        assert!(shown.chars().count() <= EXCERPT_CHARS + 2);
        assert!(shown.starts_with('…') && shown.ends_with('…'));
        assert_eq!(shown.chars().nth(from - 1), Some('X'));
        assert_eq!(to, from + 1);
        // A mark over the whole line stops at the excerpt's end.
        let (shown, from, to) = excerpt(&long, 1, 20_002);
        assert_eq!((from, to), (1, shown.chars().count() + 1));
    }
}
