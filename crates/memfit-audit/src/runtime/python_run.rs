//! The Python servers a `memfit run` report saw, and their workers' peaks: gunicorn's master
//! and its workers, uvicorn's supervisor and its spawned workers, celery's prefork pool.
//!
//! A master runs a server's command line, or is titled as one by setproctitle (`gunicorn:
//! master [app]`, `[celeryd: celery@host:MainProcess] -active- (-A app worker …)`).
//! A worker is a direct child of the server's master that is one of:
//! - a fork that did not exec: the master's very command line (gunicorn and celery without
//!   setproctitle), or the kernel's name of the master when the run knew the worker only
//!   from its exit record;
//! - a process titled as a worker by setproctitle: `gunicorn: worker [app]` (gunicorn's
//!   `proc_name`), celery's `[celeryd: celery@host:ForkPoolWorker-N]`;
//! - for uvicorn `--workers`, a `multiprocessing` spawn child (uvicorn starts its workers
//!   with the spawn method; its resource tracker is not a worker).

use std::collections::HashMap;

use super::python::{app_of, invocation, PythonWorkers, Server};
use crate::context::Context;
use crate::measured::{MeasuredProcess, MeasuredRun};

/// How the size of a project's workers is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sizing {
    /// The `--from` run measured this server's workers.
    Measured(MeasuredServer),
    /// No `--from` report.
    NoReport,
    /// The report is of another command: no run of this server and application in it.
    NotThisCommand,
    /// The report ran this server, but no worker of it had a peak.
    NoWorkers,
}

/// The `--from` run as the rules read it: its servers found once.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The report's path as given.
    pub file: String,
    /// The command the run measured (cut to `measured::MAX_COMMAND_CHARS`).
    pub command: String,
    pub servers: Vec<MeasuredServer>,
}

impl Measured {
    pub fn of(run: &MeasuredRun) -> Measured {
        Measured {
            file: run.file.clone(),
            command: crate::measured::shown(&run.command.join(" ")),
            servers: servers(run),
        }
    }
}

/// How `workers` are sized: by the matching server of the `--from` run, if any.
pub fn sizing(ctx: &Context, workers: &PythonWorkers) -> Sizing {
    let Some(run) = &ctx.measured else {
        return Sizing::NoReport;
    };
    let matching: Vec<&MeasuredServer> = run
        .servers
        .iter()
        .filter(|s| s.runs(workers.server, workers.app.as_deref()))
        .collect();
    // The one with the most workers: a run that restarted the server shows it twice.
    match matching.into_iter().max_by_key(|s| s.worker_peaks.len()) {
        None => Sizing::NotThisCommand,
        Some(s) if s.worker_peaks.is_empty() => Sizing::NoWorkers,
        Some(s) => Sizing::Measured(s.clone()),
    }
}

/// What the audit says about the `--from` report beside the findings: that it does not match
/// the project, and so sized nothing.
pub fn notes(ctx: &Context) -> Vec<String> {
    let Some(run) = &ctx.measured else {
        return Vec::new();
    };
    let model = super::python::model(ctx);
    if model.is_empty() {
        return vec![format!(
            "{}: the project starts no gunicorn, uvicorn or celery workers; the report sized nothing",
            run.file
        )];
    }
    let ran = &run.command;
    model
        .iter()
        .filter_map(|w| {
            let server = w.server.as_str();
            let app = w.app.as_deref().map(|a| format!(" {a}")).unwrap_or_default();
            match sizing(ctx, w) {
                Sizing::NotThisCommand => Some(format!(
                    "{} does not match the start command: the run of `{ran}` ran no {server}{app} ({}); its workers are sized by the default",
                    run.file, w.place
                )),
                Sizing::NoWorkers => Some(format!(
                    "{}: the run of `{ran}` shows no worker of {server}{app} (did it end before the workers started?); its workers are sized by the default",
                    run.file
                )),
                Sizing::Measured(_) | Sizing::NoReport => None,
            }
        })
        .collect()
}

/// A server the run measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasuredServer {
    pub server: Server,
    /// The application it ran, when its command line or its title says.
    pub app: Option<String>,
    /// The master's command line (cut to `measured::MAX_COMMAND_CHARS`), for messages.
    pub command: String,
    pub master_peak_bytes: u64,
    /// Each worker's peak RSS (zero peaks left out: a process never seen running).
    pub worker_peaks: Vec<u64>,
}

impl MeasuredServer {
    /// The size memfit counts for a worker: the largest worker's peak. Every worker serves
    /// the same requests in turn and CPython seldom returns freed memory to the system, so
    /// over time each worker grows towards the largest one; the median would size for the
    /// typical worker and let the large ones be killed.
    pub fn worker_bytes(&self) -> u64 {
        self.worker_peaks.iter().copied().max().unwrap_or(0)
    }

    pub fn smallest_worker_bytes(&self) -> u64 {
        self.worker_peaks.iter().copied().min().unwrap_or(0)
    }

    /// The workers' peaks as a range, `58–61 MiB`, or one size when they round alike.
    pub fn worker_range(&self) -> String {
        let (low, high) = (
            memfit_core::ByteSize(self.smallest_worker_bytes()).to_string(),
            memfit_core::ByteSize(self.worker_bytes()).to_string(),
        );
        match (low.split_once(' '), high.split_once(' ')) {
            _ if low == high => high,
            (Some((l, lu)), Some((h, hu))) if lu == hu => format!("{l}–{h} {hu}"),
            _ => format!("{low}–{high}"),
        }
    }

    /// Whether this is a run of `server` serving `app` (an application either side does not
    /// name matches any).
    pub fn runs(&self, server: Server, app: Option<&str>) -> bool {
        self.server == server
            && match (self.app.as_deref(), app) {
                (Some(measured), Some(wanted)) => measured == wanted,
                _ => true,
            }
    }
}

/// What a process of the run is, for this module.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    /// Runs a server: its command line, or a master's title.
    Server {
        server: Server,
        app: Option<String>,
    },
    /// Titled as a worker of a server.
    WorkerTitle(Server),
    /// A `multiprocessing` spawn child.
    SpawnChild,
    Other,
}

fn role(command: &str) -> Role {
    if let Some(rest) = command.strip_prefix("gunicorn: ") {
        // setproctitle: `gunicorn: master [app:app]`, `gunicorn: worker [app:app]`.
        let app = rest
            .split_once('[')
            .and_then(|(_, a)| a.strip_suffix(']'))
            .map(str::to_string);
        return if rest.starts_with("worker") {
            Role::WorkerTitle(Server::Gunicorn)
        } else if rest.starts_with("master") {
            Role::Server {
                server: Server::Gunicorn,
                app,
            }
        } else {
            Role::Other
        };
    }
    if let Some(rest) = command.strip_prefix("[celeryd: ") {
        // setproctitle: `[celeryd: celery@host:MainProcess] -active- (-A tasks worker -c 2)`,
        // `[celeryd: celery@host:ForkPoolWorker-1]`.
        let (title, args) = rest.split_once(']').unwrap_or((rest, ""));
        if title.contains(":ForkPoolWorker-") {
            return Role::WorkerTitle(Server::Celery);
        }
        if !title.ends_with(":MainProcess") {
            return Role::Other;
        }
        let args = args
            .split_once('(')
            .map_or("", |(_, a)| a.strip_suffix(')').unwrap_or(a));
        let words: Vec<&str> = args.split(' ').filter(|w| !w.is_empty()).collect();
        return Role::Server {
            server: Server::Celery,
            app: app_of(Server::Celery, &words),
        };
    }
    if command.contains("multiprocessing.spawn") || command.ends_with("--multiprocessing-fork") {
        return Role::SpawnChild;
    }
    let argv: Vec<&str> = command.split(' ').filter(|w| !w.is_empty()).collect();
    match invocation(&argv) {
        Some((server, at)) => Role::Server {
            server,
            app: app_of(server, &argv[at..]),
        },
        None => Role::Other,
    }
}

/// The names the kernel gives a process running `command`: a worker known only from its
/// exit record is named so. The kernel keeps 15 bytes of it (TASK_COMM_LEN is 16 with the
/// terminating NUL: https://man7.org/linux/man-pages/man5/proc_pid_comm.5.html).
fn kernel_names(command: &str) -> Vec<String> {
    let comm = |w: &str| {
        let base = w.rsplit('/').next().unwrap_or(w);
        let mut end = base.len().min(15);
        while !base.is_char_boundary(end) {
            end -= 1;
        }
        base[..end].to_string()
    };
    let mut words = command.split(' ').filter(|w| !w.is_empty());
    let Some(program) = words.next().map(comm) else {
        return Vec::new();
    };
    // An interpreter running a script: a script's exec names the process after the script.
    let script = program
        .starts_with("python")
        .then(|| words.find(|w| !w.starts_with('-')).map(comm))
        .flatten();
    std::iter::once(program).chain(script).collect()
}

/// The servers the run measured, in the report's order.
pub fn servers(run: &MeasuredRun) -> Vec<MeasuredServer> {
    let processes = &run.processes;
    let roles: Vec<Role> = processes.iter().map(|p| role(&p.command)).collect();
    let mut children: HashMap<i32, Vec<usize>> = HashMap::new();
    for (i, p) in processes.iter().enumerate() {
        children.entry(p.ppid).or_default().push(i);
    }
    let by_pid: HashMap<i32, usize> = processes
        .iter()
        .enumerate()
        .map(|(i, p)| (p.pid, i))
        .collect();
    let order = |p: &MeasuredProcess| (p.started_ms, p.pid);
    let names: Vec<Vec<String>> = processes.iter().map(|p| kernel_names(&p.command)).collect();
    // Whether process `c` is a worker of process `m`, a server's master.
    let worker_of = |m: usize, c: usize| {
        let (master, child) = (&processes[m], &processes[c]);
        let Role::Server { server, .. } = &roles[m] else {
            return false;
        };
        c != m
            && child.ppid == master.pid
            && (child.command == master.command
                || roles[c] == Role::WorkerTitle(*server)
                || (*server == Server::Uvicorn && roles[c] == Role::SpawnChild)
                || (!child.command.contains(' ') && names[m].contains(&child.command)))
    };
    let mut out = Vec::new();
    for (i, master) in processes.iter().enumerate() {
        let Role::Server { server, app } = &roles[i] else {
            continue;
        };
        // A worker of a master that started before it is no master (whatever a report says
        // about parents: of a loop of two, the earlier one is the master).
        let worker = by_pid.get(&master.ppid).is_some_and(|&parent| {
            worker_of(parent, i) && order(&processes[parent]) < order(master)
        });
        if worker {
            continue;
        }
        let worker_peaks: Vec<u64> = children
            .get(&master.pid)
            .into_iter()
            .flatten()
            .filter(|&&c| worker_of(i, c))
            .map(|&c| processes[c].peak_rss_bytes)
            .filter(|&peak| peak > 0)
            .collect();
        out.push(MeasuredServer {
            server: *server,
            // Cut as the command: it is printed, and an application named so long is no
            // project's anyway.
            app: app.as_deref().map(crate::measured::shown),
            command: crate::measured::shown(&master.command),
            master_peak_bytes: master.peak_rss_bytes,
            worker_peaks,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: i32, ppid: i32, command: &str, peak_mib: u64) -> MeasuredProcess {
        MeasuredProcess {
            pid,
            ppid,
            command: command.to_string(),
            peak_rss_bytes: peak_mib << 20,
            started_ms: pid as u64,
        }
    }

    fn run(processes: Vec<MeasuredProcess>) -> MeasuredRun {
        MeasuredRun {
            file: "run.json".into(),
            command: vec![],
            processes,
        }
    }

    #[test]
    fn gunicorn_with_and_without_setproctitle() {
        let plain = "/venv/bin/python3 /venv/bin/gunicorn -w 2 -b 0.0.0.0:80 app:app";
        let found = servers(&run(vec![
            process(10, 1, plain, 30),
            process(11, 10, "bash", 3),
            process(12, 10, plain, 80),
            // Known only from its exit record: the kernel's name.
            process(13, 10, "gunicorn", 90),
        ]));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].app.as_deref(), Some("app:app"));
        assert_eq!(found[0].worker_peaks, vec![80 << 20, 90 << 20]);
        assert_eq!(found[0].worker_bytes(), 90 << 20);
        assert_eq!(found[0].master_peak_bytes, 30 << 20);

        let found = servers(&run(vec![
            process(20, 1, "gunicorn: master [mysite.wsgi]", 25),
            process(21, 20, "gunicorn: worker [mysite.wsgi]", 61),
            process(22, 20, "gunicorn: worker [mysite.wsgi]", 60),
        ]));
        assert_eq!(found[0].app.as_deref(), Some("mysite.wsgi"));
        assert_eq!(found[0].worker_peaks.len(), 2);
        assert!(found[0].runs(Server::Gunicorn, Some("mysite.wsgi")));
        assert!(!found[0].runs(Server::Gunicorn, Some("other:app")));
        assert!(!found[0].runs(Server::Uvicorn, None));
    }

    #[test]
    fn uvicorn_spawn_workers_and_celery_pool() {
        let found = servers(&run(vec![
            process(30, 1, "/usr/bin/python3 -m uvicorn main:app --workers 2", 20),
            process(
                31,
                30,
                "/usr/bin/python3 -c from multiprocessing.resource_tracker import main;main(5)",
                9,
            ),
            process(
                32,
                30,
                "/usr/bin/python3 -c from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=6, pipe_handle=8) --multiprocessing-fork",
                70,
            ),
        ]));
        assert_eq!(found[0].server, Server::Uvicorn);
        assert_eq!(found[0].app.as_deref(), Some("main:app"));
        assert_eq!(found[0].worker_peaks, vec![70 << 20]);

        let found = servers(&run(vec![
            process(40, 1, "/venv/bin/celery -A tasks worker -c 2", 50),
            process(41, 40, "[celeryd: celery@host:ForkPoolWorker-1]", 55),
            process(42, 40, "/venv/bin/celery -A tasks worker -c 2", 57),
        ]));
        assert_eq!(found[0].server, Server::Celery);
        assert_eq!(found[0].app.as_deref(), Some("tasks"));
        assert_eq!(found[0].worker_peaks, vec![55 << 20, 57 << 20]);

        // celery 5.7 with setproctitle (as a run recorded it).
        let found = servers(&run(vec![
            process(
                50,
                1,
                "[celeryd: celery@vm:MainProcess] -active- (-A tasks worker -c 2 --loglevel=warning)",
                43,
            ),
            process(51, 50, "[celeryd: celery@vm:ForkPoolWorker-1]", 115),
            process(52, 50, "[celeryd: celery@vm:ForkPoolWorker-2]", 115),
            process(53, 50, "uname -p", 1),
        ]));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].server, Server::Celery);
        assert_eq!(found[0].app.as_deref(), Some("tasks"));
        assert_eq!(found[0].worker_peaks, vec![115 << 20, 115 << 20]);
    }

    #[test]
    fn a_parent_loop_names_the_earlier_process_the_master() {
        let c = "gunicorn -w 1 app:app";
        let found = servers(&run(vec![process(50, 51, c, 20), process(51, 50, c, 60)]));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].master_peak_bytes, 20 << 20);
        assert_eq!(found[0].worker_peaks, vec![60 << 20]);
    }
}
