//! Python servers and their worker processes: gunicorn (`-w`, `gunicorn.conf.py`,
//! `WEB_CONCURRENCY`), uvicorn (`--workers`, `WEB_CONCURRENCY`) and celery (`-c`).

use super::service::{self, value_after, ServiceCommand};
use crate::context::Context;
use crate::dockerfile::Span;
use crate::project::Kind;
use crate::source::FileId;

/// One Python server with several worker processes.
#[derive(Debug, Clone)]
pub struct PythonWorkers {
    /// `gunicorn`, `uvicorn` or `celery`.
    pub server: &'static str,
    pub count: u32,
    /// e.g. `gunicorn -w in Dockerfile CMD`, `workers in gunicorn.conf.py`.
    pub place: String,
    pub file: FileId,
    pub span: Span,
    /// Where the number is written, when it is a literal memfit can rewrite.
    pub number: Option<Span>,
    /// gunicorn's `--preload` / `preload_app = True`: the application is imported once in
    /// the arbiter and shared with the workers copy-on-write.
    pub preload: bool,
}

/// The server a command runs: `gunicorn …`, `python -m gunicorn …`.
fn server_of(command: &ServiceCommand) -> Option<(&'static str, usize)> {
    let argv = command.command.argv();
    let program = argv.first()?.text.rsplit('/').next()?;
    let (name, at) = if program.starts_with("python") {
        let m = argv.iter().position(|w| w.text == "-m")?;
        (argv.get(m + 1)?.text.as_str(), m + 2)
    } else {
        (program, 1)
    };
    let server = match name {
        "gunicorn" => "gunicorn",
        "uvicorn" => "uvicorn",
        "celery" => "celery",
        _ => return None,
    };
    Some((server, at))
}

/// The number given to one of `options` (`-w 8`, `-w8`, `--workers=8`).
fn option_count(args: &[&str], options: &[&'static str]) -> Option<(u32, &'static str)> {
    let mut found = None;
    for (i, a) in args.iter().enumerate() {
        for &o in options {
            let value = if *a == o {
                args.get(i + 1).copied()
            } else if o.starts_with("--") {
                a.strip_prefix(o).and_then(|r| r.strip_prefix('='))
            } else {
                a.strip_prefix(o).filter(|r| !r.is_empty())
            };
            if let Some(n) = value.and_then(|v| v.parse().ok()) {
                found = Some((n, o));
            }
        }
    }
    found
}

/// What a gunicorn configuration file sets.
struct GunicornConfig {
    file: FileId,
    /// `workers = 4` and where the number is.
    workers: Option<(u32, Span)>,
    /// `preload_app = True`.
    preload: bool,
}

/// `workers = 4` and `preload_app = True` in a gunicorn configuration file (simple
/// literals only).
fn config_file(ctx: &Context, args: &[&str]) -> Option<GunicornConfig> {
    let named = args
        .iter()
        .enumerate()
        .find_map(|(i, a)| {
            if *a == "-c" || *a == "--config" {
                args.get(i + 1).copied()
            } else {
                a.strip_prefix("--config=")
            }
        })
        .map(|p| p.trim_start_matches("./").to_string());
    let (id, file) = ctx.project.of_kind(Kind::GunicornConf).find(|(_, f)| {
        let path = f.source.display();
        match &named {
            Some(n) => path == *n || n.ends_with(&format!("/{path}")),
            None => !path.contains('/'),
        }
    })?;
    let mut workers = None;
    let mut preload = false;
    let mut offset = 0;
    for line in file.source.text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.split('#').next().unwrap_or_default().trim();
        match key.trim_end() {
            "workers" => {
                if let Ok(n) = value.parse() {
                    let at = start + key.len() + 1 + line[key.len() + 1..].find(value).unwrap_or(0);
                    workers = Some((n, Span::new(at, at + value.len())));
                }
            }
            "preload_app" => preload = value == "True",
            _ => {}
        }
    }
    Some(GunicornConfig {
        file: id,
        workers,
        preload,
    })
}

/// The Python servers of the service that run more than one worker process.
pub fn model(ctx: &Context) -> Vec<PythonWorkers> {
    let commands = service::commands(ctx);
    let mut out = Vec::new();
    for c in &commands {
        let Some((server, at)) = server_of(c) else {
            continue;
        };
        let words: Vec<&str> = c.command.argv()[at..]
            .iter()
            .map(|w| w.text.as_str())
            .collect();
        let text = &ctx.file(c.file).source.text;
        let digits = |ch: char| ch.is_ascii_digit();
        let here = |count, option: &str| PythonWorkers {
            server,
            count,
            place: format!("{server} {option} in {}", c.place),
            file: c.file,
            span: c.span,
            number: value_after(text, c.span, option, digits),
            preload: false,
        };
        let web_concurrency = || {
            service::env(ctx, &commands, "WEB_CONCURRENCY").and_then(|e| {
                let count = e.value.trim().parse().ok()?;
                let file = &ctx.file(e.file).source.text;
                let number = file
                    .get(e.span.start..e.span.end)
                    .and_then(|r| r.rfind(e.value.trim()))
                    .map(|p| Span::new(e.span.start + p, e.span.start + p + e.value.trim().len()));
                Some(PythonWorkers {
                    server,
                    count,
                    place: format!("WEB_CONCURRENCY in {}, read by {server}", e.place),
                    file: e.file,
                    span: e.span,
                    number,
                    preload: false,
                })
            })
        };
        let found = match server {
            "gunicorn" => {
                let preload_flag = words.contains(&"--preload");
                let config = config_file(ctx, &words);
                let preload = preload_flag || config.as_ref().is_some_and(|c| c.preload);
                let workers = if let Some((n, o)) = option_count(&words, &["-w", "--workers"]) {
                    Some(here(n, o))
                } else if let Some(GunicornConfig {
                    file: id,
                    workers: Some((n, span)),
                    ..
                }) = config
                {
                    Some(PythonWorkers {
                        server,
                        count: n,
                        place: format!("workers in {}", ctx.file(id).source.display()),
                        file: id,
                        span,
                        number: Some(span),
                        preload: false,
                    })
                } else {
                    web_concurrency()
                };
                workers.map(|w| PythonWorkers { preload, ..w })
            }
            "uvicorn" => match option_count(&words, &["--workers"]) {
                Some((n, o)) => Some(here(n, o)),
                None => web_concurrency(),
            },
            _ => {
                // celery's default concurrency is the CPU count, unknown here.
                if !words.contains(&"worker") {
                    continue;
                }
                option_count(&words, &["-c", "--concurrency"]).map(|(n, o)| here(n, o))
            }
        };
        if let Some(w) = found.filter(|w| w.count > 1) {
            out.push(w);
        }
    }
    out
}
