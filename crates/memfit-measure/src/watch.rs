//! The containers of a docker run, watched closely by a thread of their own: every few
//! milliseconds it reads the run's child cgroups (a container's lifetime can fall between two
//! samples of the run, and runc removes its cgroup at once), and it adopts cgroups another
//! manager creates during the run (dockerd's embedded BuildKit, which ignores
//! `--cgroup-parent`): it watches their directories with inotify and, the moment a new cgroup
//! appears there, makes a cgroup of the same name below the run's and moves every process of
//! the new one into it — again and again while it lives, so children forked before a move
//! follow. With the build's RUN steps given, a new cgroup is adopted only when its step is one
//! of them ([`crate::build_owner`]); another build's is left where it is. Memory charged before a move stays where it was (the kernel no longer moves
//! charges, Documentation/admin-guide/cgroup-v1/memory.rst on move_charge_at_immigrate): that is
//! the container runtime's own start, a few MiB, said in the report.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use memfit_sys::cgroup::CgroupFiles;
use memfit_sys::procfs;

use crate::build_owner::{self, OwnSteps, Verdict};
use crate::report::ContainerKind;
use crate::units::{self, Units};

/// How often the containers are read and adopted cgroups swept for processes forked before a
/// move, while a container is young (a short RUN step lives a fraction of a second): a few
/// small files per container.
const SWEEP: Duration = Duration::from_millis(3);
/// How long a new cgroup under BuildKit's may stay empty before it is no longer waited for.
const PENDING: Duration = Duration::from_secs(30);
/// How long a container counts as young.
const YOUNG_MS: u64 = 2000;
/// The pace once every container is older: a long-running `docker run` costs memfit little.
const SETTLED: Duration = Duration::from_millis(50);

/// One adopted cgroup.
#[derive(Debug, Clone)]
pub struct Adoption {
    /// Where the manager created it.
    pub source: PathBuf,
    /// Its place below the run's cgroup.
    pub target: CgroupFiles,
    /// Processes moved.
    pub moved: usize,
    /// What the step ran, once its command replaced the runtime's init (read while it runs:
    /// a short step is gone before the run's next sample).
    pub command: Vec<String>,
    /// When it appeared, and when its last process ended.
    pub started: Instant,
    pub ended: Option<Instant>,
}

/// The watcher thread; [`ContainerWatcher::stop`] ends it and returns what it saw.
pub struct ContainerWatcher {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    adopted: Arc<Mutex<Vec<Adoption>>>,
    units: Arc<Mutex<Units>>,
    strangers: Arc<Mutex<Strangers>>,
}

/// The steps that appeared where adopted cgroups appear but were not (all) this build's.
#[derive(Debug, Clone, Default)]
pub struct Strangers {
    /// Another build's steps, left alone: their cgroups' names (BuildKit's ids).
    pub foreign: Vec<String>,
    /// Steps adopted whose text this build's Dockerfile runs fewer times than it was seen:
    /// the instruction.
    pub ambiguous: Vec<String>,
    /// Steps adopted without knowing what they run (no runc bundle to read).
    pub unknown: usize,
}

/// Where the watcher works.
pub struct WatchPlan {
    /// The run's cgroup: its children are the containers.
    pub run: CgroupFiles,
    pub kind: ContainerKind,
    /// When the run started, for the containers' times.
    pub started: Instant,
    /// Directories whose new cgroups are adopted (each may not exist yet: then its parent is
    /// watched for it), named `prefix` + the original name below the run's.
    pub adopt_roots: Vec<PathBuf>,
    pub prefix: &'static str,
    /// What a new cgroup's name starts with when it is a step (`""`: every one): with the
    /// systemd driver BuildKit's steps appear among the services of `system.slice`, named
    /// `system.slice:docker:<id>`. The rest of the name is the step's id.
    pub step_name_prefix: String,
    /// The RUN steps of the build's Dockerfile: a new cgroup is adopted only when its step is
    /// one of them (see [`crate::build_owner`]). `None`: every new cgroup is adopted.
    pub own_steps: Option<OwnSteps>,
}

impl ContainerWatcher {
    pub fn start(plan: WatchPlan) -> std::io::Result<ContainerWatcher> {
        // SAFETY: inotify_init1 with valid flags; the fd is owned by the watcher below.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut watcher = Watcher {
            fd,
            watches: Vec::new(),
        };
        // What is in a root already is no step of this run's.
        for root in &plan.adopt_roots {
            let _ = watcher.watch(root);
        }
        // A new container's cgroup below the run's wakes the thread at once; the event itself
        // is not needed (the sample that follows finds the container).
        watcher.wake_on_new_children(plan.run.path());
        let stop = Arc::new(AtomicBool::new(false));
        let adopted = Arc::new(Mutex::new(Vec::new()));
        let units = Arc::new(Mutex::new(Units::default()));
        let strangers = Arc::new(Mutex::new(Strangers::default()));
        let thread = {
            let stop = Arc::clone(&stop);
            let adopted = Arc::clone(&adopted);
            let units = Arc::clone(&units);
            let strangers = Arc::clone(&strangers);
            std::thread::Builder::new()
                .name("memfit-containers".into())
                .spawn(move || watcher.run(&stop, &adopted, &units, &strangers, plan))?
        };
        Ok(ContainerWatcher {
            stop,
            thread,
            adopted,
            units,
            strangers,
        })
    }

    /// Ends the thread: what was adopted, the containers, and the steps not (all) this
    /// build's.
    pub fn stop(self) -> (Vec<Adoption>, Units, Strangers) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        let adopted = self
            .adopted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let units = std::mem::take(&mut *self.units.lock().unwrap_or_else(|p| p.into_inner()));
        let strangers =
            std::mem::take(&mut *self.strangers.lock().unwrap_or_else(|p| p.into_inner()));
        (adopted, units, strangers)
    }
}

/// An inotify instance and what it watches: (watch descriptor, directory, whether it is a
/// root's parent waiting for the root to appear).
struct Watcher {
    fd: i32,
    watches: Vec<(i32, PathBuf, Option<PathBuf>)>,
}

impl Watcher {
    /// Watches `root` for new cgroups, or, while it does not exist, the nearest of its
    /// ancestors that does, for the next directory on the way to it: a fresh dockerd has no
    /// `/docker` until its first BuildKit step makes `/docker/buildkit/<id>` at once (runc's
    /// cgroupfs manager creates the path as `mkdir -p` does). What already exists in `root`
    /// when its watch is in place is returned, to be judged like a new cgroup.
    fn watch(&mut self, root: &Path) -> Vec<PathBuf> {
        loop {
            let mut dir = root.to_path_buf();
            while !dir.is_dir() {
                match dir.parent() {
                    Some(parent) => dir = parent.to_path_buf(),
                    None => return Vec::new(),
                }
            }
            let waiting_for = (dir != root).then(|| root.to_path_buf());
            let Ok(path) = CString::new(dir.as_os_str().as_bytes()) else {
                return Vec::new();
            };
            // SAFETY: a valid fd and C string.
            let wd = unsafe {
                libc::inotify_add_watch(self.fd, path.as_ptr(), libc::IN_CREATE | libc::IN_ONLYDIR)
            };
            if wd < 0 {
                return Vec::new();
            }
            if !self.watches.iter().any(|(w, _, _)| *w == wd) {
                self.watches.push((wd, dir.clone(), waiting_for.clone()));
            }
            if waiting_for.is_none() {
                return std::fs::read_dir(root)
                    .map(|entries| {
                        entries
                            .flatten()
                            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                            .map(|e| e.path())
                            .collect()
                    })
                    .unwrap_or_default();
            }
            // The next directory on the way may have been made before the watch was in place:
            // then no event comes for it, and the watch moves on now.
            let next = root
                .ancestors()
                .take_while(|a| *a != dir)
                .last()
                .map(Path::to_path_buf);
            if !next.is_some_and(|n| n.is_dir()) {
                return Vec::new();
            }
        }
    }

    fn wake_on_new_children(&self, dir: &Path) {
        if let Ok(path) = CString::new(dir.as_os_str().as_bytes()) {
            // SAFETY: a valid fd and C string.
            unsafe {
                libc::inotify_add_watch(self.fd, path.as_ptr(), libc::IN_CREATE | libc::IN_ONLYDIR)
            };
        }
    }

    fn run(
        mut self,
        stop: &AtomicBool,
        adopted: &Mutex<Vec<Adoption>>,
        units: &Mutex<Units>,
        strangers: &Mutex<Strangers>,
        mut plan: WatchPlan,
    ) {
        let mut own_steps = plan.own_steps.take();
        let plan = &plan;
        let run = &plan.run;
        let prefix = plan.prefix;
        // A new cgroup's step id, or `None` when it is no step.
        let step_id = |created: &Path| -> Option<String> {
            let name = created.file_name()?.to_string_lossy();
            let id = name.strip_prefix(plan.step_name_prefix.as_str())?;
            (!id.is_empty()).then(|| id.to_string())
        };
        let mut pace = SWEEP;
        let mut buffer = [0u8; 4096];
        // New cgroups whose step is not known yet: runc creates the cgroup, then puts `runc
        // init` in it, which waits there until runc lets it exec the step's command.
        // One that holds no process for long is no step (dropped, not adopted).
        let mut pending: Vec<(PathBuf, Instant)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        while !stop.load(Ordering::Relaxed) {
            let mut poll = libc::pollfd {
                fd: self.fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut poll, 1, pace.as_millis() as i32) };
            let now = Instant::now();
            // A root's first entries can come twice: read when its watch was placed, and
            // reported by it.
            pending.extend(
                self.read_events(&mut buffer)
                    .into_iter()
                    .filter(|p| step_id(p).is_some() && seen.insert(p.clone()))
                    .map(|p| (p, now)),
            );
            let mut decided = Vec::new();
            pending.retain(|(created, seen)| {
                let name = step_id(created).unwrap_or_default();
                let Some(own) = own_steps.as_mut() else {
                    decided.push(created.clone());
                    return false;
                };
                if !created.is_dir() {
                    return false;
                }
                let pids = CgroupFiles::open(run.version(), created).pids();
                if pids.is_empty() {
                    return seen.elapsed() < PENDING;
                }
                let mut strangers = strangers.lock().unwrap_or_else(|p| p.into_inner());
                match build_owner::step_args(&name, &pids).map(|args| own.judge(&args)) {
                    Some(Verdict::Own) => decided.push(created.clone()),
                    Some(Verdict::Ambiguous(instruction)) => {
                        strangers.ambiguous.push(instruction);
                        decided.push(created.clone());
                    }
                    // Left where dockerd put it, untouched.
                    Some(Verdict::Foreign) => strangers.foreign.push(name),
                    None => {
                        strangers.unknown += 1;
                        decided.push(created.clone());
                    }
                }
                false
            });
            for created in decided {
                let target = run
                    .path()
                    .join(format!("{prefix}{}", step_id(&created).unwrap_or_default()));
                if std::fs::create_dir(&target).is_ok() {
                    adopted
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(Adoption {
                            source: created,
                            target: CgroupFiles::open(run.version(), target),
                            moved: 0,
                            command: Vec::new(),
                            started: Instant::now(),
                            ended: None,
                        });
                }
            }
            let mut adopted = adopted.lock().unwrap_or_else(|p| p.into_inner());
            for adoption in adopted.iter_mut().filter(|a| a.ended.is_none()) {
                // The step has ended when what was moved is gone and nothing is left to move.
                let source = CgroupFiles::open(run.version(), &adoption.source);
                if adoption.moved > 0
                    && source.pids().is_empty()
                    && adoption.target.pids_recursive().is_empty()
                {
                    adoption.ended = Some(Instant::now());
                    continue;
                }
                for pid in source.pids() {
                    if adoption.target.adopt(pid).is_ok() {
                        adoption.moved += 1;
                    }
                }
                if adoption.command.is_empty() || units::is_runtime_init(&adoption.command) {
                    if let Some(argv) = adoption
                        .target
                        .pids()
                        .into_iter()
                        .min()
                        .and_then(procfs::read_argv)
                    {
                        adoption.command = argv;
                    }
                }
            }
            let adopting = adopted.iter().any(|a| a.ended.is_none()) || !pending.is_empty();
            drop(adopted);
            let now_ms = plan.started.elapsed().as_millis() as u64;
            let mut units = units.lock().unwrap_or_else(|p| p.into_inner());
            units.sample(run, plan.kind, now_ms);
            // Fast while a container is young or a step is being adopted; a new one wakes
            // the thread through inotify whatever the pace.
            pace = if adopting
                || units
                    .youngest_age_ms(now_ms)
                    .is_some_and(|age| age < YOUNG_MS)
            {
                SWEEP
            } else {
                SETTLED
            };
        }
        // SAFETY: closing the fd this watcher owns.
        unsafe { libc::close(self.fd) };
    }

    /// New directories reported since the last read; a watched root that appears is watched.
    fn read_events(&mut self, buffer: &mut [u8]) -> Vec<PathBuf> {
        let mut created = Vec::new();
        loop {
            // SAFETY: reading into a local buffer of the given length.
            let n = unsafe { libc::read(self.fd, buffer.as_mut_ptr().cast(), buffer.len()) };
            if n <= 0 {
                break;
            }
            let mut offset = 0;
            let header = std::mem::size_of::<libc::inotify_event>();
            while offset + header <= n as usize {
                // SAFETY: the kernel wrote a whole inotify_event at offset; read unaligned.
                let event: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buffer.as_ptr().add(offset).cast()) };
                let name_bytes = &buffer[offset + header..offset + header + event.len as usize];
                let name_end = name_bytes
                    .iter()
                    .position(|b| *b == 0)
                    .unwrap_or(name_bytes.len());
                let name = std::ffi::OsStr::from_bytes(&name_bytes[..name_end]);
                offset += header + event.len as usize;
                let Some((_, dir, waiting_for)) = self
                    .watches
                    .iter()
                    .find(|(wd, _, _)| *wd == event.wd)
                    .cloned()
                else {
                    continue;
                };
                let path = dir.join(name);
                match waiting_for {
                    // A directory on the way to a root that did not exist (or the root):
                    // watched in turn, with what appeared in the root before its watch.
                    Some(root) if root.starts_with(&path) => created.extend(self.watch(&root)),
                    Some(_) => {}
                    None => created.push(path),
                }
            }
        }
        created
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memfit_sys::cgroup::{CgroupOwner, Hierarchy, OwnedCgroup};
    use std::process::Command;

    /// A fresh dockerd has no `/docker` cgroup until its first BuildKit step makes
    /// `/docker/buildkit/<id>` with one `mkdir -p` (runc's cgroupfs manager): the steps of the
    /// first build after dockerd starts are adopted all the same. Before, only the root's
    /// parent was watched, and the first build escaped the run's limit (a compose v2 build
    /// "fitted" in 100 MiB with a 300 MiB RUN step on a fresh machine).
    #[test]
    fn steps_under_a_root_whose_ancestors_do_not_exist_yet_are_adopted() {
        let Ok(hierarchy) = Hierarchy::detect() else {
            eprintln!("no memory cgroup hierarchy here: nothing to check");
            return;
        };
        let name = CgroupOwner::current().cgroup_name(951).unwrap();
        let run = OwnedCgroup::create_empty(&hierarchy, &name).unwrap();
        let manager = hierarchy
            .parent
            .join(format!("memfit-watch-test-{}", std::process::id()));
        let root = manager.join("docker/buildkit");
        let watcher = ContainerWatcher::start(WatchPlan {
            run: (*run).clone(),
            kind: ContainerKind::BuildStep,
            started: Instant::now(),
            adopt_roots: vec![root.clone()],
            prefix: crate::units::ADOPTED_PREFIX,
            step_name_prefix: String::new(),
            own_steps: None,
        })
        .unwrap();
        let step = root.join("step1");
        std::fs::create_dir_all(&step).unwrap();
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as i32;
        CgroupFiles::open(hierarchy.version, &step)
            .adopt(pid)
            .unwrap();
        let target = run
            .path()
            .join(format!("{}step1", crate::units::ADOPTED_PREFIX));
        let deadline = Instant::now() + Duration::from_secs(10);
        let moved = loop {
            let there = CgroupFiles::open(hierarchy.version, &target).pids();
            if there.contains(&pid) || Instant::now() > deadline {
                break there.contains(&pid);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let _ = child.kill();
        let _ = child.wait();
        let (adopted, _, _) = watcher.stop();
        for dir in [target.clone(), step, root, manager.join("docker"), manager] {
            let _ = std::fs::remove_dir(dir);
        }
        drop(run);
        assert!(
            moved,
            "the step's process was not moved into {}",
            target.display()
        );
        assert_eq!(adopted.len(), 1, "{adopted:?}");
    }
}
