//! Running the audit: load the project, apply memfit.toml, run every rule, drop suppressed
//! findings, sort.

use std::path::Path;

use memfit_core::target::MIN_LIMIT;
use memfit_core::{ByteSize, ConfigTarget, Target, TargetRequest};

use crate::context::Context;
use crate::finding::{Finding, Severity};
use crate::platform::LimitSource;
use crate::project::{self, Kind, Parsed, Project};
use crate::rules::{self, RULES};

/// What the caller decides.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--limit`: wins over everything the project says.
    pub limit: Option<ByteSize>,
    /// `--platform`: wins over the project's files.
    pub platform: Option<String>,
    /// The only rules to run, by id; every rule when `None`.
    pub rules: Option<Vec<&'static str>>,
    /// `--from run.json`: a `memfit run` report of the service, which sizes its workers.
    pub measured: Option<crate::measured::MeasuredRun>,
}

impl Options {
    /// Runs one rule and reports only its findings: a test of that rule sees nothing else.
    ///
    /// # Panics
    /// When no rule has that id: a test that names a rule that does not exist.
    pub fn for_rule(id: &str) -> Options {
        let rule = rules::find(id).unwrap_or_else(|| panic!("no rule `{id}`"));
        Options {
            rules: Some(vec![rule.id]),
            ..Options::default()
        }
    }

    fn runs(&self, rule: &str) -> bool {
        self.rules.as_ref().is_none_or(|ids| ids.contains(&rule))
    }
}

/// memfit.toml at the project root.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub ignore: Vec<String>,
    pub severity: Vec<SeverityOverride>,
    /// `limit = "512M"` or `platform = "render:starter"`.
    pub target: Option<ConfigTarget>,
    /// `[build] limit = "4G"`, `cpus = 4`: the machine `docker build` runs on.
    pub build: Option<crate::context::BuildLimit>,
}

/// `[severity] rule-id = "warning"` in memfit.toml.
#[derive(Debug, Clone)]
pub struct SeverityOverride {
    pub rule: &'static str,
    pub severity: Severity,
}

/// The audit's result.
pub struct Report {
    pub project: Project,
    pub limit: Option<LimitSource>,
    pub findings: Vec<Finding>,
    pub suppressed: usize,
    /// What the runtime model found, for the summary.
    pub runtime: RuntimeSummary,
    pub notes: Vec<String>,
    /// The `--from` run report and the servers it measured.
    pub from_run: Option<FromRun>,
}

/// What the `--from` run measured, for the summary.
#[derive(Debug, Clone)]
pub struct FromRun {
    /// The report's path as given.
    pub file: String,
    /// The command the run measured (cut to `measured::MAX_COMMAND_CHARS`).
    pub command: String,
    /// The first `measured::MAX_SERVERS_SHOWN` servers it ran.
    pub servers: Vec<crate::runtime::python_run::MeasuredServer>,
    /// How many more it ran.
    pub servers_omitted: usize,
}

/// The effective configuration, as the summary shows it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RuntimeSummary {
    pub node_version: Option<String>,
    pub node_version_source: Option<String>,
    /// The start command and what it runs, outermost first.
    pub start: Vec<StartStep>,
    /// Every runtime heap setting, the winner first.
    pub heap: Vec<HeapSetting>,
    pub workers: Option<WorkerCount>,
    /// Whether the service runs Node.
    pub is_node: bool,
}

// The JSON report (memfit.audit/1) writes these as arrays, `[place, command]`: its readers
// index them.

/// A step of the start command.
#[derive(Debug, Clone)]
pub struct StartStep {
    /// e.g. `Dockerfile CMD`, `package.json scripts.start`.
    pub place: String,
    pub command: String,
}

impl serde::Serialize for StartStep {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (&self.place, &self.command).serialize(serializer)
    }
}

/// A place that sets a heap cap.
#[derive(Debug, Clone)]
pub struct HeapSetting {
    pub place: String,
    /// The Node options as written.
    pub flags: String,
}

impl serde::Serialize for HeapSetting {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (&self.place, &self.flags).serialize(serializer)
    }
}

/// How many workers share the limit, and where that is said.
#[derive(Debug, Clone)]
pub struct WorkerCount {
    pub count: u32,
    pub place: String,
}

impl serde::Serialize for WorkerCount {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (self.count, &self.place).serialize(serializer)
    }
}

/// Reads memfit.toml. It is memfit's own configuration, so a setting memfit cannot honour
/// stops the audit (exit 2), as ruff stops on an unknown rule in its configuration
/// ("raising an error for unknown rules in rule selectors is the intended behavior",
/// astral-sh/ruff#5159): an ignored rule that does not exist would otherwise hide nothing,
/// silently. The error names the place (`memfit.toml:2:11`) and the closest rule id.
fn read_config(project: &Project) -> Result<Config, String> {
    let mut config = Config::default();
    let Some((id, file)) = project
        .of_kind(Kind::MemfitToml)
        .find(|(id, _)| project.dir_of(*id).as_os_str().is_empty())
    else {
        return Ok(config);
    };
    let Parsed::Toml(doc) = &file.parsed else {
        let why = project
            .file_findings
            .iter()
            .find(|f| f.file == id)
            .map_or("it does not parse".to_string(), |f| f.message.clone());
        return Err(format!("memfit.toml: {why}"));
    };
    let place = |item: &toml_edit::Item| {
        let (line, column) = item
            .span()
            .map_or((1, 1), |r| file.source.line_col(r.start));
        format!("memfit.toml:{line}:{column}")
    };
    if let Some(item) = doc.get("ignore") {
        let Some(list) = item.as_array() else {
            return Err(format!(
                "{}: ignore lists rule ids, e.g. ignore = [\"npm-install-with-lockfile\"]",
                place(item)
            ));
        };
        for v in list.iter() {
            let at = v.span().map_or_else(
                || place(item),
                |r| {
                    let (line, column) = file.source.line_col(r.start);
                    format!("memfit.toml:{line}:{column}")
                },
            );
            match v.as_str() {
                Some(rule) if rules::find(rule).is_some() => config.ignore.push(rule.to_string()),
                Some(rule) => return Err(format!("{at}: {}", unknown_rule(rule, "ignore"))),
                None => return Err(format!("{at}: ignore lists rule ids as strings")),
            }
        }
    }
    if let Some(item) = doc.get("severity") {
        let Some(table) = item.as_table_like() else {
            return Err(format!(
                "{}: [severity] maps rule ids to error, warning or info",
                place(item)
            ));
        };
        for (rule, value) in table.iter() {
            let Some(found) = rules::find(rule) else {
                return Err(format!(
                    "{}: {}",
                    place(value),
                    unknown_rule(rule, "[severity]")
                ));
            };
            let Some(severity) = value.as_str().and_then(Severity::parse) else {
                return Err(format!(
                    "{}: [severity] {rule} must be one of \"error\", \"warning\", \"info\"",
                    place(value)
                ));
            };
            config.severity.push(SeverityOverride {
                rule: found.id,
                severity,
            });
        }
    }
    if let Some(item) = doc.get("build") {
        config.build = Some(read_build(item, &place)?);
    }
    if let Some(item) = doc.get("limit") {
        match item.as_str().map(|text| (text, ByteSize::parse(text))) {
            Some((text, Ok(size))) if size >= MIN_LIMIT => {
                config.target = Some(ConfigTarget::Limit {
                    size,
                    written: text.to_string(),
                })
            }
            Some((_, Err(error))) => return Err(format!("{}: limit: {error}", place(item))),
            Some((text, Ok(_))) => {
                return Err(format!(
                    "{}: limit \"{text}\" is below 6M, Docker's minimum; e.g. limit = \"512M\"",
                    place(item)
                ))
            }
            None => {
                return Err(format!(
                    "{}: limit is a size in quotes, e.g. limit = \"512M\"",
                    place(item)
                ))
            }
        }
    } else if let Some(item) = doc.get("platform") {
        match item.as_str().and_then(memfit_core::platform::find) {
            Some(plan) => config.target = Some(ConfigTarget::Platform(plan)),
            None => {
                return Err(format!(
                    "{}: unknown platform (memfit run --platform list shows them)",
                    place(item)
                ))
            }
        }
    }
    Ok(config)
}

/// `[build]` in memfit.toml: `limit = "4G"` (required) and `cpus = 4`.
fn read_build(
    item: &toml_edit::Item,
    place: &dyn Fn(&toml_edit::Item) -> String,
) -> Result<crate::context::BuildLimit, String> {
    let example = "e.g. [build] limit = \"4G\" and cpus = 4 for the machine docker build runs on";
    let Some(table) = item.as_table_like() else {
        return Err(format!("{}: [build] is a table, {example}", place(item)));
    };
    let Some(limit) = table.get("limit") else {
        return Err(format!("{}: [build] needs limit, {example}", place(item)));
    };
    let bytes = match limit.as_str().map(ByteSize::parse) {
        Some(Ok(size)) if size >= MIN_LIMIT => size.bytes(),
        Some(Err(error)) => return Err(format!("{}: [build] limit: {error}", place(limit))),
        _ => {
            return Err(format!(
                "{}: [build] limit is a size in quotes of at least 6M, {example}",
                place(limit)
            ))
        }
    };
    let cpus = match table.get("cpus") {
        None => None,
        Some(c) => match c.as_integer() {
            Some(n @ 1..=1024) => Some(n as u32),
            _ => {
                return Err(format!(
                    "{}: [build] cpus is a whole number from 1 to 1024, {example}",
                    place(c)
                ))
            }
        },
    };
    Ok(crate::context::BuildLimit {
        bytes,
        cpus,
        description: format!(
            "memfit.toml [build] limit = \"{}\"",
            limit.as_str().unwrap_or_default()
        ),
    })
}

/// "unknown rule `x` in ignore", with the closest rule id, or all of them when none is close.
fn unknown_rule(rule: &str, setting: &str) -> String {
    let closest = RULES
        .iter()
        .map(|r| (strsim::jaro_winkler(rule, r.id), r.id))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match closest {
        Some((_, id)) => format!("unknown rule `{rule}` in {setting}; did you mean `{id}`?"),
        None => format!(
            "unknown rule `{rule}` in {setting}; the rules are {} (docs/rules.md)",
            RULES.iter().map(|r| r.id).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Whether a `memfit ignore=` comment suppresses this finding.
fn suppressed(project: &Project, finding: &Finding) -> bool {
    let file = project.file(finding.file);
    let names = |comment: &str| -> Vec<String> {
        let text = comment.trim();
        let rest = text
            .strip_prefix("memfit ignore=")
            .or_else(|| text.strip_prefix("memfit-ignore "))
            .or_else(|| text.strip_prefix("memfit-ignore="))
            .unwrap_or_default();
        rest.split_whitespace()
            .next()
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let matches = |comment: &str| {
        let n = names(comment);
        n.iter().any(|r| r == finding.rule || r == "all")
    };
    if let Parsed::Dockerfile(docker) = &file.parsed {
        // Comment lines directly above the instruction that holds the finding.
        let Some(instruction) = docker.instructions.iter().find(|i| {
            i.span.start <= finding.span.start && finding.span.start <= i.span.end.max(i.span.start)
        }) else {
            return false;
        };
        let (line, _) = file.source.line_col(instruction.span.start);
        let mut l = line;
        while l > 1 {
            l -= 1;
            let span = file.source.line_span(l);
            let text = file.source.text[span.start..span.end].trim();
            let Some(comment) = text.strip_prefix('#') else {
                break;
            };
            if matches(comment) {
                return true;
            }
        }
        return false;
    }
    let (line, _) = file.source.line_col(finding.span.start);
    for l in [line.saturating_sub(1), line] {
        if l == 0 {
            continue;
        }
        let span = file.source.line_span(l);
        let text = &file.source.text[span.start..span.end];
        for marker in ["#", "//"] {
            if let Some(pos) = text.find(marker) {
                if matches(&text[pos + marker.len()..]) {
                    return true;
                }
            }
        }
    }
    false
}

/// A line of `MEMFIT_AUDIT_TIMING` output on standard error; a failed write is ignored
/// (`eprintln!` would panic on a full disk or a closed pipe).
macro_rules! timing_line {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Audits the project at `root`.
pub fn run(root: &Path, options: &Options) -> std::io::Result<Report> {
    let timing = std::env::var_os("MEMFIT_AUDIT_TIMING").is_some();
    let started = std::time::Instant::now();
    let project = project::load(root)?;
    if timing {
        timing_line!(
            "memfit audit: load {:?} ({} files)",
            started.elapsed(),
            project.files.len()
        );
    }
    let config = read_config(&project)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut findings = project.file_findings.clone();
    findings.retain(|f| options.runs(f.rule));
    // Flags first, then memfit.toml; the project's own files come after, in the context.
    let target = Target::resolve(&TargetRequest {
        limit: options.limit,
        platform: options.platform.as_deref(),
        cpus: None,
        config: config.target.clone(),
    })
    .map_err(std::io::Error::other)?;
    let limit_override = target.map(|t| LimitSource {
        bytes: t.memory.bytes(),
        description: t.source_text(),
        file: None,
        span: Default::default(),
        platform: t.platform,
    });
    let (limit, runtime, notes, from_run, mut rule_findings) = {
        let mut ctx = Context::new(&project, limit_override);
        ctx.build = config.build.clone();
        ctx.measured = options
            .measured
            .as_ref()
            .map(crate::runtime::python_run::Measured::of);
        if timing {
            let parsed = ctx.js.iter().filter(|s| !s.facts.skipped).count();
            let linked: usize = ctx.js.iter().map(|s| s.facts.external_repeated.len()).sum();
            timing_line!(
                "memfit audit: model and sources {:?} ({parsed} of {} sources parsed, {linked} functions repeated from other modules)",
                started.elapsed(),
                ctx.js.len()
            );
        }
        let mut out = Vec::new();
        for rule in RULES.iter().filter(|r| options.runs(r.id)) {
            let before = out.len();
            let rule_started = std::time::Instant::now();
            (rule.check)(&ctx, &mut out);
            if timing && rule_started.elapsed() > std::time::Duration::from_millis(2) {
                timing_line!(
                    "memfit audit: rule {} {:?}",
                    rule.id,
                    rule_started.elapsed()
                );
            }
            debug_assert!(
                out[before..].iter().all(|f: &Finding| f.rule == rule.id),
                "{} reported another id",
                rule.id
            );
        }
        let summary = summarize(&ctx);
        let mut notes = ctx.platform.notes.clone();
        let sized_runtime = ctx.runtime.is_node
            || crate::runtime::jvm::model(&ctx).is_some()
            || !crate::runtime::python::model(&ctx).is_empty()
            || crate::runtime::go::model(&ctx).is_some();
        if ctx.limit.is_none() && sized_runtime {
            notes.push("no memory limit found (fly.toml, render.yaml, app.json, compose, Kubernetes): pass --limit or --platform, or set limit in memfit.toml, for the heap and worker rules".to_string());
        }
        notes.extend(crate::runtime::python_run::notes(&ctx));
        let from_run = ctx.measured.as_ref().map(|run| {
            let shown = crate::measured::MAX_SERVERS_SHOWN;
            FromRun {
                file: run.file.clone(),
                command: run.command.clone(),
                servers: run.servers.iter().take(shown).cloned().collect(),
                servers_omitted: run.servers.len().saturating_sub(shown),
            }
        });
        (ctx.limit.clone(), summary, notes, from_run, out)
    };
    findings.append(&mut rule_findings);
    let before = findings.len();
    findings.retain(|f| !config.ignore.iter().any(|r| r == f.rule) && !suppressed(&project, f));
    let suppressed = before - findings.len();
    for f in &mut findings {
        if let Some(o) = config.severity.iter().find(|o| o.rule == f.rule) {
            f.severity = o.severity;
        }
    }
    findings.sort_by(|a, b| {
        let pa = project.file(a.file).source.display();
        let pb = project.file(b.file).source.display();
        (pa, a.span.start, a.rule).cmp(&(pb, b.span.start, b.rule))
    });
    findings.dedup_by(|a, b| {
        a.rule == b.rule && a.file == b.file && a.span == b.span && a.message == b.message
    });
    Ok(Report {
        project,
        limit,
        findings,
        suppressed,
        runtime,
        notes,
        from_run,
    })
}

fn summarize(ctx: &Context) -> RuntimeSummary {
    let runtime = &ctx.runtime;
    RuntimeSummary {
        node_version: runtime.node_version.as_ref().map(|v| v.text.clone()),
        node_version_source: runtime.node_version.as_ref().map(|v| v.place.clone()),
        start: runtime
            .start
            .iter()
            .map(|s| StartStep {
                place: s.place.clone(),
                command: s.command.clone(),
            })
            .collect(),
        heap: runtime
            .heap_settings()
            .iter()
            .map(|o| HeapSetting {
                place: o.place.clone(),
                flags: o.text.clone(),
            })
            .collect(),
        workers: runtime.workers.as_ref().map(|w| WorkerCount {
            count: w.count,
            place: w.place.clone(),
        }),
        is_node: runtime.is_node,
    }
}
