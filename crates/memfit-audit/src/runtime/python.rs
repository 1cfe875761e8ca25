//! Python servers and their worker processes: gunicorn (`-w`, `gunicorn.conf.py`,
//! `WEB_CONCURRENCY`), uvicorn (`--workers`, `WEB_CONCURRENCY`) and celery (`-c`).

use super::service::{self, value_after};
use crate::context::Context;
use crate::dockerfile::Span;
use crate::project::Kind;
use crate::source::FileId;

/// A Python server that runs worker processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Gunicorn,
    Uvicorn,
    Celery,
}

impl Server {
    pub fn as_str(self) -> &'static str {
        match self {
            Server::Gunicorn => "gunicorn",
            Server::Uvicorn => "uvicorn",
            Server::Celery => "celery",
        }
    }

    fn named(name: &str) -> Option<Server> {
        match name {
            "gunicorn" => Some(Server::Gunicorn),
            "uvicorn" => Some(Server::Uvicorn),
            "celery" => Some(Server::Celery),
            _ => None,
        }
    }
}

/// One Python server with several worker processes.
#[derive(Debug, Clone)]
pub struct PythonWorkers {
    pub server: Server,
    /// The application it serves (`mysite.wsgi:application`, celery's `-A tasks`), when the
    /// command says it: what a measured run must have run too.
    pub app: Option<String>,
    /// The command's words as written (without inline variables), for the measuring command
    /// memfit suggests.
    pub command: Vec<String>,
    /// Inline variables of the command (`WEB_CONCURRENCY=4 gunicorn …`).
    pub env: Vec<(String, String)>,
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

/// The server a command line runs and where its arguments start: `gunicorn …`,
/// `/venv/bin/gunicorn …`, `python -m gunicorn …`, `python3 -u /venv/bin/gunicorn …`.
pub fn invocation(argv: &[&str]) -> Option<(Server, usize)> {
    let basename = |w: &str| w.rsplit('/').next().unwrap_or(w).to_string();
    let program = basename(argv.first()?);
    if !program.starts_with("python") {
        return Server::named(&program).map(|s| (s, 1));
    }
    let mut i = 1;
    while let Some(word) = argv.get(i) {
        match *word {
            "-m" => return Server::named(argv.get(i + 1)?).map(|s| (s, i + 2)),
            // The interpreter's options that take a value.
            "-X" | "-W" => i += 2,
            "-c" | "-" => return None,
            w if w.starts_with('-') => i += 1,
            script => return Server::named(&basename(script)).map(|s| (s, i + 1)),
        }
    }
    None
}

/// The application a server's arguments name: celery's `-A`/`--app`; for gunicorn and
/// uvicorn the last `module:attribute` word, else the last dotted module name that is not an
/// option's value (`mysite.wsgi`).
pub fn app_of(server: Server, args: &[&str]) -> Option<String> {
    let unquoted = |w: &str| w.trim_matches(['\'', '"']).to_string();
    if server == Server::Celery {
        let mut found = None;
        for (i, a) in args.iter().enumerate() {
            if *a == "-A" || *a == "--app" {
                found = args.get(i + 1).map(|v| unquoted(v));
            } else if let Some(v) = a.strip_prefix("--app=").or_else(|| a.strip_prefix("-A")) {
                if !v.is_empty() {
                    found = Some(unquoted(v));
                }
            }
        }
        return found;
    }
    let identifier = |s: &str| {
        s.chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_alphanumeric() || c == '_')
    };
    let module = |s: &str| !s.is_empty() && s.split('.').all(identifier);
    let spec = args.iter().rev().map(|w| unquoted(w)).find(|w| {
        w.split_once(':').is_some_and(|(m, attr)| {
            module(m)
                && attr
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
        })
    });
    spec.or_else(|| {
        (0..args.len()).rev().find_map(|i| {
            let after_option = i > 0 && args[i - 1].starts_with('-') && !args[i - 1].contains('=');
            let w = unquoted(args[i]);
            (module(&w) && !after_option).then_some(w)
        })
    })
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
        let argv: Vec<&str> = c.command.argv().iter().map(|w| w.text.as_str()).collect();
        let Some((server, at)) = invocation(&argv) else {
            continue;
        };
        let words = &argv[at..];
        let app = app_of(server, words);
        let command: Vec<String> = argv.iter().map(|w| w.to_string()).collect();
        let inline_env: Vec<(String, String)> = c
            .command
            .assignments()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let text = &ctx.file(c.file).source.text;
        let digits = |ch: char| ch.is_ascii_digit();
        let here = |count, option: &str| PythonWorkers {
            server,
            app: app.clone(),
            command: command.clone(),
            env: inline_env.clone(),
            count,
            place: format!("{} {option} in {}", server.as_str(), c.place),
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
                    app: app.clone(),
                    command: command.clone(),
                    env: inline_env.clone(),
                    count,
                    place: format!(
                        "WEB_CONCURRENCY in {}, read by {}",
                        e.place,
                        server.as_str()
                    ),
                    file: e.file,
                    span: e.span,
                    number,
                    preload: false,
                })
            })
        };
        let found = match server {
            Server::Gunicorn => {
                let preload_flag = words.contains(&"--preload");
                let config = config_file(ctx, words);
                let preload = preload_flag || config.as_ref().is_some_and(|c| c.preload);
                let workers = if let Some((n, o)) = option_count(words, &["-w", "--workers"]) {
                    Some(here(n, o))
                } else if let Some(GunicornConfig {
                    file: id,
                    workers: Some((n, span)),
                    ..
                }) = config
                {
                    Some(PythonWorkers {
                        server,
                        app: app.clone(),
                        command: command.clone(),
                        env: inline_env.clone(),
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
            Server::Uvicorn => match option_count(words, &["--workers"]) {
                Some((n, o)) => Some(here(n, o)),
                None => web_concurrency(),
            },
            Server::Celery => {
                // celery's default concurrency is the CPU count, unknown here.
                if !words.contains(&"worker") {
                    continue;
                }
                option_count(words, &["-c", "--concurrency"]).map(|(n, o)| here(n, o))
            }
        };
        if let Some(w) = found.filter(|w| w.count > 1) {
            out.push(w);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocations() {
        let of = |c: &str| invocation(&c.split(' ').collect::<Vec<_>>());
        assert_eq!(of("gunicorn -w 4 app:app"), Some((Server::Gunicorn, 1)));
        assert_eq!(of("/venv/bin/uvicorn main:app"), Some((Server::Uvicorn, 1)));
        assert_eq!(
            of("python -m celery -A t worker"),
            Some((Server::Celery, 3))
        );
        assert_eq!(
            of("/usr/bin/python3.11 -u -X dev /venv/bin/gunicorn app:app"),
            Some((Server::Gunicorn, 5))
        );
        assert_eq!(of("python manage.py runserver"), None);
        assert_eq!(of("python -c import gunicorn"), None);
        assert_eq!(of("node server.js"), None);
    }

    #[test]
    fn applications() {
        let app = |s, c: &str| app_of(s, &c.split(' ').collect::<Vec<_>>());
        assert_eq!(
            app(
                Server::Gunicorn,
                "-w 4 -b 0.0.0.0:8000 mysite.wsgi:application"
            )
            .as_deref(),
            Some("mysite.wsgi:application")
        );
        assert_eq!(
            app(
                Server::Gunicorn,
                "-k uvicorn.workers.UvicornWorker mysite.asgi"
            )
            .as_deref(),
            Some("mysite.asgi")
        );
        assert_eq!(
            app(Server::Gunicorn, "'app:create_app()' --bind :80").as_deref(),
            Some("app:create_app()")
        );
        assert_eq!(app(Server::Gunicorn, "-c gunicorn.conf.py"), None);
        assert_eq!(
            app(Server::Uvicorn, "main:app --host 0.0.0.0 --port $PORT").as_deref(),
            Some("main:app")
        );
        assert_eq!(
            app(Server::Celery, "-A proj worker -c 2").as_deref(),
            Some("proj")
        );
        assert_eq!(
            app(Server::Celery, "--app=proj.celery worker").as_deref(),
            Some("proj.celery")
        );
    }
}
