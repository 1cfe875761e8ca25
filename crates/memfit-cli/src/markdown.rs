//! The markdown form of each report, for PR comments and `$GITHUB_STEP_SUMMARY`: tables of
//! what the terminal summary says. Every text that came from the input (commands, process
//! names, file paths, log lines, messages) goes through `report_format::markdown_text` or
//! `markdown_code`, so it renders as text, never as markup.

use std::fmt::Write as _;

use memfit_audit::audit::Report as AuditReport;
use memfit_audit::report as audit_report;
use memfit_cli::report_format::{markdown_code, markdown_table, markdown_text as md};
use memfit_core::ByteSize;
use memfit_explain::{Explanation, SubReason, Verdict};
use memfit_fleet::FleetReport;
use memfit_measure::{BisectReport, RunReport};

fn size(bytes: u64) -> String {
    ByteSize(bytes).to_string()
}

/// `memfit run`: limit, peak, OOM, exit, verdict, then the top processes at the peak.
pub fn run(report: &RunReport, budget: Option<(ByteSize, bool)>) -> String {
    let mut out = String::from("### memfit run\n\n");
    out += &markdown_code(&report.command.join(" "));
    out.push('\n');
    let limit = match (report.limit_bytes, report.limit_enforced) {
        (Some(l), true) => size(l),
        (Some(l), false) => format!("{} (not enforced)", size(l)),
        (None, _) => "none".to_string(),
    };
    let limit = match &report.platform {
        Some(p) => format!("{limit} ({})", md(p)),
        None => limit,
    };
    let oom = match report.oom_killed {
        None => "no verdict without a cgroup".to_string(),
        Some(false) => "no".to_string(),
        Some(true) => {
            let victims: Vec<String> = report
                .oom
                .victims
                .iter()
                .map(|v| format!("{} {} ({})", v.pid, md(&v.command), size(v.rss_bytes)))
                .collect();
            format!("**OOM-killed** {}", victims.join(", "))
        }
    };
    let mut rows = vec![
        vec!["Limit".to_string(), limit],
        vec![
            "Peak".to_string(),
            format!(
                "{} charged · {} working",
                size(report.peak.charged_bytes),
                size(report.peak.working_bytes)
            ),
        ],
        vec!["OOM".to_string(), oom],
        vec!["Exit".to_string(), md(&report.exit.description)],
        vec![
            "Duration".to_string(),
            format!("{:.1} s", report.duration_ms as f64 / 1000.0),
        ],
    ];
    if let Some((budget, exceeded)) = budget {
        rows.push(vec![
            "Budget".to_string(),
            if exceeded {
                format!("**exceeded**: {}", size(budget.bytes()))
            } else {
                format!("ok: {}", size(budget.bytes()))
            },
        ]);
    }
    rows.push(vec!["Verdict".to_string(), md(&report.verdict())]);
    out += &markdown_table(&["", ""], &rows);
    if !report.at_peak.is_empty() {
        let _ = writeln!(
            out,
            "\nTop processes at the peak (t = {:.1} s):\n",
            report.at_peak_t_ms as f64 / 1000.0
        );
        let rows: Vec<Vec<String>> = report
            .at_peak
            .iter()
            .take(5)
            .map(|p| vec![size(p.rss_bytes), p.pid.to_string(), md(&p.command)])
            .collect();
        out += &markdown_table(&["RSS", "PID", "Command"], &rows);
    }
    for caveat in &report.caveats {
        let _ = writeln!(out, "\n> {}", md(caveat));
    }
    out
}

/// `memfit bisect`: the band, the recommendation, and the tries.
pub fn bisect(report: &BisectReport) -> String {
    let mut out = String::from("### memfit bisect\n\n");
    out += &markdown_code(&report.command.join(" "));
    out.push('\n');
    let mut rows = vec![
        vec![
            "Band".to_string(),
            if report.band.is_empty() {
                "nothing learnt yet".to_string()
            } else {
                md(&report.band)
            },
        ],
        vec![
            "Recommended".to_string(),
            report
                .recommended_bytes
                .map_or("-".to_string(), |r| format!("{} (+20% headroom)", size(r))),
        ],
        vec![
            "Unconstrained peak".to_string(),
            size(report.unconstrained_peak_bytes),
        ],
        vec!["Tries".to_string(), report.tries.len().to_string()],
    ];
    if !report.fitting_plans.is_empty() {
        rows.push(vec![
            "Plans".to_string(),
            md(&report.fitting_plans.join(", ")),
        ]);
    }
    if report.interrupted {
        rows.push(vec![
            "Interrupted".to_string(),
            "yes: the band is what was learnt before the stop".to_string(),
        ]);
    }
    out += &markdown_table(&["", ""], &rows);
    let tries: Vec<Vec<String>> = report
        .tries
        .iter()
        .map(|t| {
            let outcome = if t.interrupted {
                "interrupted"
            } else if t.passed {
                "pass"
            } else if t.oom_killed == Some(true) {
                "OOM-killed"
            } else {
                "fail"
            };
            vec![
                t.limit_bytes.map_or("none".to_string(), size),
                outcome.to_string(),
                size(t.peak_charged_bytes),
                format!("{:.1} s", t.duration_ms as f64 / 1000.0),
            ]
        })
        .collect();
    if !tries.is_empty() {
        out.push('\n');
        out += &markdown_table(&["Limit", "Outcome", "Peak", "Duration"], &tries);
    }
    out
}

/// `memfit audit`: one row per finding, then the counts.
pub fn audit(report: &AuditReport) -> String {
    let mut out = String::from("### memfit audit\n\n");
    let limit = match &report.limit {
        Some(l) => format!("{} ({})", size(l.bytes), md(&l.description)),
        None => "unknown".to_string(),
    };
    let _ = writeln!(out, "Limit: {limit}\n");
    if !report.findings.is_empty() {
        let rows: Vec<Vec<String>> = report
            .findings
            .iter()
            .map(|f| {
                let (line, column, _, _) = audit_report::position(report, f);
                let file = report.project.file(f.file).source.display();
                let mut message = md(&f.message);
                if let Some(fix) = &f.fix {
                    let _ = write!(message, "<br>Fix: {}", md(&fix.description));
                }
                vec![
                    f.severity.as_str().to_string(),
                    format!("`{}`", f.rule),
                    format!("{}:{line}:{column}", md(&file)),
                    message,
                ]
            })
            .collect();
        out += &markdown_table(&["Severity", "Rule", "Location", "Message"], &rows);
        out.push('\n');
    }
    let (errors, warnings, infos) = audit_report::counts(report);
    let fixable = report.findings.iter().filter(|f| f.fixable()).count();
    let _ = writeln!(
        out,
        "{errors} error(s), {warnings} warning(s), {infos} info · {fixable} fixable with `memfit fix` · {} suppressed · {} files read",
        report.suppressed,
        report.project.files.len()
    );
    out
}

/// `memfit explain`: the verdict, the cause, the evidence and what to do.
pub fn explain(e: &Explanation, name: &str) -> String {
    let mut out = format!("### memfit explain: {}\n\n", md(name));
    let verdict = match e.verdict {
        Verdict::Oom => format!("**Out of memory**: {}", e.kind),
        Verdict::NotOom => format!(
            "**Not memory**: {}",
            e.sub_reason.map_or("not-oom", SubReason::as_str)
        ),
        Verdict::Uncertain => format!("**Uncertain**: possibly {}", e.kind),
    };
    let mut rows = vec![
        vec![
            "Verdict".to_string(),
            format!("{verdict} (confidence {:.2})", e.confidence),
        ],
        vec!["Cause".to_string(), md(&e.meaning)],
    ];
    if let Some(p) = &e.process {
        rows.push(vec!["Process".to_string(), md(p)]);
    }
    if let Some(limit) = e.limit_bytes {
        rows.push(vec!["Limit".to_string(), size(limit)]);
    }
    if let Some(code) = e.exit_code {
        rows.push(vec!["Exit status".to_string(), code.to_string()]);
    }
    if let Some(step) = &e.step {
        rows.push(vec!["Step".to_string(), md(step)]);
    }
    out += &markdown_table(&["", ""], &rows);
    if !e.evidence.is_empty() {
        out += "\nEvidence:\n\n";
        let rows: Vec<Vec<String>> = e
            .evidence
            .iter()
            .map(|ev| {
                vec![
                    if ev.line == 0 {
                        "given".to_string()
                    } else {
                        ev.line.to_string()
                    },
                    md(ev.text.trim()),
                ]
            })
            .collect();
        out += &markdown_table(&["Line", "Text"], &rows);
    }
    if !e.remedies.is_empty() {
        out += "\nRemedy:\n\n";
        for (i, r) in e.remedies.iter().enumerate() {
            let _ = writeln!(out, "{}. {}", i + 1, md(&r.title));
            for c in &r.commands {
                for line in markdown_code(c).lines() {
                    let _ = writeln!(out, "   {line}");
                }
            }
            if !r.note.is_empty() {
                let _ = writeln!(out, "   {}", md(&r.note));
            }
        }
    }
    out
}

/// `memfit plan --prometheus`: one row per container.
pub fn fleet(r: &FleetReport) -> String {
    let mut out = String::from("### memfit plan (Prometheus)\n\n");
    let _ = writeln!(out, "{}\n", md(&memfit_fleet::render::summary(r)));
    let opt = |b: Option<u64>| b.map_or("-".to_string(), size);
    let rows: Vec<Vec<String>> = r
        .workloads
        .iter()
        .map(|w| {
            vec![
                md(&format!("{}/{}/{}", w.namespace, w.kind, w.name)),
                md(&w.container),
                opt(w.observed_peak_bytes),
                w.oom_kills.to_string(),
                w.restarts.to_string(),
                opt(w.current_limit_bytes),
                opt(w.recommended_limit_bytes),
                md(&w.basis),
            ]
        })
        .collect();
    out += &markdown_table(
        &[
            "Workload",
            "Container",
            "Peak",
            "OOM kills",
            "Restarts",
            "Limit now",
            "Recommended",
            "Basis",
        ],
        &rows,
    );
    for caveat in &r.caveats {
        let _ = writeln!(out, "\n> {}", md(caveat));
    }
    out
}
