use super::{mib, Rule};
use crate::context::Context;
use crate::finding::{Edit, Finding, Severity, MAX_MESSAGE_CHARS};
use crate::runtime::python;
use crate::runtime::python_run::{self, Sizing};

pub const RULE: Rule = Rule {
    id: "python-workers-over-limit",
    severity: Severity::Error,
    summary: "More gunicorn/uvicorn/celery worker processes than the container limit holds",
    doc: r#"## What it does
Counts the worker processes of a Python server: gunicorn's `-w`/`--workers`, `workers =` in
`gunicorn.conf.py` (a literal) or `WEB_CONCURRENCY`; uvicorn's `--workers` or
`WEB_CONCURRENCY`; celery's `-c`/`--concurrency`. It reads them in the Dockerfile's
CMD/ENTRYPOINT, the Procfile (every process), the platform's start command and the shell
scripts they run, and compares workers × a worker's size with the container limit.

The audit never runs the project, so a worker's size comes from one of two places:
- **Measured**, with `memfit audit --from run.json`: a report of the service written by
  `memfit run --json run.json -- gunicorn -w 4 app:app` (run it under typical traffic, stop
  it with Ctrl-C). memfit finds the server's master in the run's process tree and its workers
  (forks with the master's command line, `gunicorn: worker [app]` titles from setproctitle,
  celery's `ForkPoolWorker-N`, uvicorn's `multiprocessing` spawn children) and counts the
  **largest** worker's peak RSS for every worker, plus the master's own peak: each worker
  serves the same requests in turn and CPython seldom returns freed memory, so over time
  every worker grows towards the largest one. The run must be of the same server and
  application as the start command (`app:app`, celery's `-A`); the worker count may differ.
  A report of another command is said in a note and the default applies. A run report has
  each process's own peak RSS (VmHWM), not PSS: pages a worker shares with the master
  (`--preload`) are counted in every worker, so the measured total is an upper bound there.
- **Default**, without `--from`: Heroku's Python buildpack figure. It sets `WEB_CONCURRENCY`
  to the memory / 256 MB "to ensure each process has at least 256 MB RAM" (2 workers on a
  512 MB dyno). With gunicorn's `--preload` (or `preload_app = True`) memfit counts 192 MiB a
  worker (a quarter less): the application is imported once and shared copy-on-write, but
  CPython's reference counts and its cyclic GC write to the objects' headers, so shared pages
  are copied as the workers touch them (Instagram measured the sharing decay and disabled the
  GC to keep it). The fix text gives the commands that measure instead.

The finding says which it used: `worker size measured: 3 workers at 58–61 MiB peak RSS each
in run.json` or `worker size: default 256 MiB per worker for gunicorn (…; no --from report)`.

## Why is this bad?
Every worker is a separate process with its own copy of the application. Eight gunicorn
workers of a Django application on a 512 MB plan ask for about 2 GB: the kernel kills
workers (gunicorn logs `Worker … was sent SIGKILL! Perhaps out of memory?`) and requests
fail while they restart.

## Example
```dockerfile
CMD ["gunicorn", "-w", "8", "mysite.wsgi"]   # on Render's 512 MB starter plan
```

## Use instead
```dockerfile
CMD ["gunicorn", "-w", "2", "mysite.wsgi"]
```

## Fix safety
`memfit fix` sets the count to the workers that fit: (limit − the measured master) / the
largest measured worker, or limit / the default size. Fewer workers serve fewer requests at
once; measure under real traffic before trusting a default.

## References
- Heroku's Python buildpack, `WEB_CONCURRENCY.sh` (256 MB per process):
  https://github.com/heroku/heroku-buildpack-python/blob/main/vendor/WEB_CONCURRENCY.sh
- gunicorn's `workers` and `preload_app` settings: https://docs.gunicorn.org/en/stable/settings.html
- Instagram Engineering, "Dismissing Python Garbage Collection at Instagram" (copy-on-write
  sharing lost to reference counting and GC):
  https://instagram-engineering.com/dismissing-python-garbage-collection-at-instagram-4dca40b29172
"#,
    check,
};

/// Heroku's Python buildpack: `WEB_CONCURRENCY` = available memory / 256 MB, "to ensure each
/// process has at least 256 MB RAM" (vendor/WEB_CONCURRENCY.sh; it divides the limit in
/// bytes by 1048576, so MiB).
pub const WORKER_SIZE: u64 = 256 * 1024 * 1024;

/// memfit's choice: with `--preload` a worker costs three quarters of `WORKER_SIZE`. The
/// imported application is shared copy-on-write at first, but reference counting and the
/// cyclic GC write to object headers and unshare pages as the worker runs (Instagram's
/// account above), so memfit counts only a quarter as shared.
pub const PRELOAD_PERCENT: u64 = 75;

/// A word for a POSIX shell: as it is when it holds nothing the shell would read, else in
/// single quotes. `$PORT` stays as written: the shell that runs the suggested command expands
/// it, as the platform's does.
fn shell_word(word: &str) -> String {
    // No `(` or backquote: nothing the shell would run. `${PORT:-8000}` still expands.
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=,@%+${}".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The commands that measure the workers and audit with the measurement.
fn measuring_commands(w: &python::PythonWorkers) -> String {
    let env: String = w
        .env
        .iter()
        .map(|(n, v)| format!("--env {} ", shell_word(&format!("{n}={v}"))))
        .collect();
    let command: Vec<String> = w.command.iter().map(|word| shell_word(word)).collect();
    let command = command.join(" ");
    // A project's command can be a megabyte line; the advice stays readable.
    let command = match command.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &command[..cut]),
        None => command,
    };
    format!("memfit run {env}--json run.json -- {command} && memfit audit --from run.json")
}

/// A worker's size, and what the finding says about where it comes from.
struct WorkerSize {
    each: u64,
    /// Counted once beside the workers (the measured master), 0 when not measured.
    master: u64,
    /// `worker size measured: …` / `default …`.
    source: String,
    measured: bool,
}

fn worker_size(ctx: &Context, w: &python::PythonWorkers) -> WorkerSize {
    let server = w.server.as_str();
    let default = |why: &str| {
        let each = if w.preload {
            WORKER_SIZE * PRELOAD_PERCENT / 100
        } else {
            WORKER_SIZE
        };
        let preload = if w.preload {
            ", less a quarter shared by --preload"
        } else {
            ""
        };
        WorkerSize {
            each,
            master: 0,
            source: format!(
                "worker size: default {} per worker for {server} (Heroku's figure{preload}; {why})",
                mib(WORKER_SIZE)
            ),
            measured: false,
        }
    };
    let file = ctx
        .measured
        .as_ref()
        .map(|m| m.file.as_str())
        .unwrap_or_default();
    match python_run::sizing(ctx, w) {
        Sizing::Measured(s) => {
            let n = s.worker_peaks.len();
            let range = s.worker_range();
            let shared = if w.preload {
                "; with --preload each worker's RSS counts the pages it shares with the master again, so this is an upper bound"
            } else {
                ""
            };
            WorkerSize {
                each: s.worker_bytes(),
                master: s.master_peak_bytes,
                source: format!(
                    "worker size measured: {n} workers at {range} peak RSS each in {file}, the largest counted{shared}"
                ),
                measured: true,
            }
        }
        Sizing::NoReport => default("no --from report"),
        Sizing::NotThisCommand => default(&format!("{file} does not match the start command")),
        Sizing::NoWorkers => default(&format!("{file} shows no {server} worker")),
    }
}

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    let Some(limit) = ctx.limit_bytes() else {
        return;
    };
    for w in python::model(ctx) {
        let size = worker_size(ctx, &w);
        let each = size.each.max(1);
        let total = each
            .saturating_mul(u64::from(w.count))
            .saturating_add(size.master);
        if total <= limit {
            continue;
        }
        let fit = (limit.saturating_sub(size.master) / each).min(u64::from(u32::MAX)) as u32;
        let source = ctx
            .limit
            .as_ref()
            .map(|l| l.description.clone())
            .unwrap_or_default();
        let master = if size.master > 0 {
            format!(" + the master's {}", mib(size.master))
        } else {
            String::new()
        };
        let preload = match (w.preload, size.measured) {
            (true, false) => " (with preload: a quarter of the application shared)",
            (false, false) => ", no --preload",
            _ => "",
        };
        let message = format!(
            "{} workers ({}) × {}{} each{preload}{master} = {}, more than the {} container limit ({source}): the kernel kills workers mid-request; {}",
            w.count,
            w.place,
            if size.measured { "" } else { "~" },
            mib(each),
            mib(total),
            mib(limit),
            size.source,
        );
        let finding = Finding::new(RULE.id, RULE.severity, w.file, w.span, message);
        let description = if size.measured {
            format!(
                "run {fit} worker(s): {fit} × {}{master} fit in {} (sizes measured in {})",
                mib(each),
                mib(limit),
                ctx.measured
                    .as_ref()
                    .map(|m| m.file.as_str())
                    .unwrap_or_default()
            )
        } else {
            format!(
                "run {fit} worker(s): {fit} at ~{} each fit in {}; to size from your own workers, run the service under typical traffic and stop it with Ctrl-C: {}",
                mib(each),
                mib(limit),
                measuring_commands(&w)
            )
        };
        let finding = match w.number {
            Some(span) if fit >= 1 => finding.fix_with(
                description,
                vec![Edit::replace(
                    ctx.file(w.file).source.path.clone(),
                    span,
                    fit.to_string(),
                )],
            ),
            _ if fit == 0 => finding.advise(if size.measured {
                format!(
                    "one worker of {}{master} does not fit in {}: use a larger plan, or make the worker smaller",
                    mib(each),
                    mib(limit)
                )
            } else {
                format!(
                    "one worker of ~{} does not fit in {}: use a larger plan, or measure the worker: {}",
                    mib(each),
                    mib(limit),
                    measuring_commands(&w)
                )
            }),
            _ => finding.advise(description),
        };
        out.push(finding);
    }
}

#[cfg(test)]
mod tests {
    use super::shell_word;

    #[test]
    fn words_for_the_shell() {
        assert_eq!(
            shell_word("mysite.wsgi:application"),
            "mysite.wsgi:application"
        );
        assert_eq!(shell_word("0.0.0.0:$PORT"), "0.0.0.0:$PORT");
        assert_eq!(shell_word("${PORT:-8000}"), "${PORT:-8000}");
        assert_eq!(shell_word("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(shell_word("`id`"), "'`id`'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
