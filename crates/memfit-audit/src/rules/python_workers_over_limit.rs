use super::{mib, Rule};
use crate::context::Context;
use crate::finding::{Edit, Finding, Severity};
use crate::runtime::python;

pub const RULE: Rule = Rule {
    id: "python-workers-over-limit",
    severity: Severity::Error,
    summary: "More gunicorn/uvicorn/celery worker processes than the container limit holds",
    doc: r#"## What it does
Counts the worker processes of a Python server: gunicorn's `-w`/`--workers`, `workers =` in
`gunicorn.conf.py` (a literal) or `WEB_CONCURRENCY`; uvicorn's `--workers` or
`WEB_CONCURRENCY`; celery's `-c`/`--concurrency`. It reads them in the Dockerfile's
CMD/ENTRYPOINT, the Procfile (every process), the platform's start command and the shell
scripts they run, and compares workers × 256 MiB with the container limit.

A worker's size cannot be known without running the project, so memfit uses Heroku's
Python buildpack figure: it sets `WEB_CONCURRENCY` to the memory / 256 MB "to ensure each
process has at least 256 MB RAM" (2 workers on a 512 MB dyno). With gunicorn's `--preload`
(or `preload_app = True`) memfit counts 192 MiB a worker (a quarter less): the application
is imported once and shared copy-on-write, but CPython's reference counts and its cyclic GC
write to the objects' headers, so shared pages are copied as the workers touch them
(Instagram measured the sharing decay and disabled the GC to keep it). Measure your own
worker with `memfit run -- gunicorn -w 1 app:app` under load and size with
`memfit plan --runtime python --from run.json`.

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

fn check(ctx: &Context, out: &mut Vec<Finding>) {
    let Some(limit) = ctx.limit_bytes() else {
        return;
    };
    for w in python::model(ctx) {
        let each = if w.preload {
            WORKER_SIZE * PRELOAD_PERCENT / 100
        } else {
            WORKER_SIZE
        };
        let total = each * u64::from(w.count);
        if total <= limit {
            continue;
        }
        let fit = (limit / each) as u32;
        let source = ctx
            .limit
            .as_ref()
            .map(|l| l.description.clone())
            .unwrap_or_default();
        let preload = if w.preload {
            " (with preload: a quarter of the application shared)"
        } else {
            ", no --preload"
        };
        let message = format!(
            "{} workers ({}) × ~{} each{preload} = {}, more than the {} container limit ({source}): the kernel kills workers mid-request",
            w.count,
            w.place,
            mib(each),
            mib(total),
            mib(limit),
        );
        let finding = Finding::new(RULE.id, RULE.severity, w.file, w.span, message);
        let description = format!("run {fit} worker(s): {} at ~{} each fit in {} (measure yours with memfit run, then memfit plan --runtime python --from run.json)", fit, mib(each), mib(limit));
        let finding = match w.number {
            Some(span) if fit >= 1 => finding.fix_with(
                description,
                vec![Edit::replace(
                    ctx.file(w.file).source.path.clone(),
                    span,
                    fit.to_string(),
                )],
            ),
            _ if fit == 0 => finding.advise(format!(
                "one worker of ~{} does not fit in {}: use a larger plan, or measure the worker with memfit run",
                mib(each),
                mib(limit)
            )),
            _ => finding.advise(description),
        };
        out.push(finding);
    }
}
