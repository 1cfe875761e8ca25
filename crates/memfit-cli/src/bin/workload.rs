//! `memfit-workload`: processes with known memory behaviour, for memfit's tests, its
//! benchmarks and for anyone who wants to see what memfit reports for a known allocation.
//!
//! ```text
//! memfit-workload alloc SIZE HOLD_MS           touch SIZE bytes, hold them, exit 0
//! memfit-workload spike SIZE HOLD_MS AFTER_MS  touch SIZE, free it after HOLD_MS, idle AFTER_MS
//! memfit-workload cow SIZE CHILDREN HOLD_MS    touch SIZE, fork CHILDREN that share it copy-on-write
//! memfit-workload children N SIZE HOLD_MS      run N child processes at once, each touching SIZE,
//!                                             all holding it together for HOLD_MS
//! memfit-workload burst N SIZE HOLD_MS         run N child processes one after another
//! memfit-workload daemon SIZE HOLD_MS PIDFILE  double-fork a setsid grandchild that touches SIZE
//!                                             and holds it; write its pid to PIDFILE; exit 0 at once
//! memfit-workload grow STEP STEPS STEP_MS      touch STEP more every STEP_MS, STEPS times
//! memfit-workload exit CODE                    exit with CODE
//! memfit-workload sleep MS                     sleep, touching nothing
//! memfit-workload spin THREADS MS              keep THREADS threads busy for MS of wall time, then
//!                                             print the CPU milliseconds used and the CPUs seen
//! ```
//! SIZE takes the units of `memfit --limit` (512M, 1.5G, …).

use std::process::{Command, ExitCode};
use std::time::Duration;

use memfit_core::ByteSize;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("memfit-workload: {message}");
            ExitCode::from(2)
        }
    }
}

fn dispatch(args: &[String]) -> Result<u8, String> {
    let size = |i: usize| -> Result<usize, String> {
        let text = args.get(i).ok_or("missing SIZE")?;
        ByteSize::parse(text)
            .map(|b| b.bytes() as usize)
            .map_err(|e| e.to_string())
    };
    let number = |i: usize| -> Result<u64, String> {
        args.get(i)
            .ok_or_else(|| format!("missing argument {i}"))?
            .parse()
            .map_err(|e| format!("argument {i}: {e}"))
    };
    match args.first().map(String::as_str) {
        Some("alloc") => {
            let block = touch(size(1)?);
            // `children`' barrier: say the memory is touched, wait until every sibling's is.
            if let (Some("--ready"), Some(ready), Some(go)) = (
                args.get(3).map(String::as_str),
                args.get(4).and_then(|fd| fd.parse::<i32>().ok()),
                args.get(5).and_then(|fd| fd.parse::<i32>().ok()),
            ) {
                // SAFETY: descriptors the parent passed on; a one-byte write, then reads until
                // the parent closes its end.
                unsafe {
                    libc::write(ready, b"x".as_ptr().cast(), 1);
                    let mut byte = 0u8;
                    while libc::read(go, (&mut byte as *mut u8).cast(), 1) > 0 {}
                }
            }
            sleep_ms(number(2)?);
            drop(block);
            Ok(0)
        }
        Some("spike") => {
            let block = touch(size(1)?);
            sleep_ms(number(2)?);
            drop(block);
            sleep_ms(number(3)?);
            Ok(0)
        }
        Some("cow") => {
            let block = touch(size(1)?);
            let children = number(2)?;
            let hold = number(3)?;
            let mut pids = Vec::new();
            for _ in 0..children {
                // SAFETY: the child only reads, sleeps and exits.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    let checksum: u64 = block.iter().step_by(4096).map(|b| *b as u64).sum();
                    sleep_ms(hold);
                    std::process::exit(if checksum > 0 { 0 } else { 1 });
                }
                pids.push(pid);
            }
            sleep_ms(hold);
            for pid in pids {
                let mut status = 0;
                // SAFETY: waiting for our own child.
                unsafe { libc::waitpid(pid, &mut status, 0) };
            }
            drop(block);
            Ok(0)
        }
        Some("children") => {
            // The children hold their memory at the same time however slowly they touch it
            // (an emulated CPU takes seconds): each says when its memory is touched, and all
            // start their HOLD_MS once every one has.
            let n = number(1)?;
            let me = std::env::current_exe().map_err(|e| e.to_string())?;
            let (ready, go) = (pipe()?, pipe()?);
            // The children inherit only their ends: the go pipe reaches EOF when we close ours.
            // SAFETY: fcntl(2) on our own descriptors.
            unsafe {
                libc::fcntl(ready[0], libc::F_SETFD, libc::FD_CLOEXEC);
                libc::fcntl(go[1], libc::F_SETFD, libc::FD_CLOEXEC);
            }
            let mut kids = Vec::new();
            for _ in 0..n {
                kids.push(
                    Command::new(&me)
                        .args(["alloc", &args[2], &args[3], "--ready"])
                        .args([ready[1].to_string(), go[0].to_string()])
                        .spawn()
                        .map_err(|e| e.to_string())?,
                );
            }
            // SAFETY: our own pipe descriptors; a child that dies early closes its ends, so
            // the reads end at EOF instead of waiting for it.
            unsafe {
                libc::close(ready[1]);
                libc::close(go[0]);
                let mut byte = 0u8;
                for _ in 0..n {
                    if libc::read(ready[0], (&mut byte as *mut u8).cast(), 1) <= 0 {
                        break;
                    }
                }
                libc::close(go[1]);
                libc::close(ready[0]);
            }
            let mut failed = 0;
            for mut kid in kids {
                if !kid.wait().map_err(|e| e.to_string())?.success() {
                    failed += 1;
                }
            }
            Ok(if failed == 0 { 0 } else { 1 })
        }
        Some("burst") => {
            let n = number(1)?;
            let me = std::env::current_exe().map_err(|e| e.to_string())?;
            for _ in 0..n {
                let status = Command::new(&me)
                    .args(["alloc", &args[2], &args[3]])
                    .status()
                    .map_err(|e| e.to_string())?;
                if !status.success() {
                    return Ok(1);
                }
            }
            Ok(0)
        }
        Some("daemon") => {
            let bytes = size(1)?;
            let hold = number(2)?;
            let pidfile = args.get(3).ok_or("missing PIDFILE")?.clone();
            // SAFETY: fork/setsid/fork in a single-threaded process.
            unsafe {
                let first = libc::fork();
                if first == 0 {
                    libc::setsid();
                    let second = libc::fork();
                    if second == 0 {
                        let block = touch(bytes);
                        // Written whole, then renamed: a reader never sees an empty file.
                        let partial = format!("{pidfile}.partial");
                        let _ = std::fs::write(&partial, std::process::id().to_string());
                        let _ = std::fs::rename(&partial, &pidfile);
                        sleep_ms(hold);
                        drop(block);
                        libc::_exit(0);
                    }
                    libc::_exit(0);
                }
                let mut status = 0;
                libc::waitpid(first, &mut status, 0);
            }
            // Give the grandchild time to allocate before the parent exits.
            for _ in 0..500 {
                if std::fs::metadata(&pidfile).is_ok_and(|m| m.len() > 0) {
                    break;
                }
                sleep_ms(2);
            }
            Ok(0)
        }
        Some("grow") => {
            let step = size(1)?;
            let steps = number(2)?;
            let pause = number(3)?;
            let mut blocks = Vec::new();
            for _ in 0..steps {
                blocks.push(touch(step));
                sleep_ms(pause);
            }
            Ok(0)
        }
        Some("exit") => Ok(number(1)? as u8),
        Some("sleep") => {
            sleep_ms(number(1)?);
            Ok(0)
        }
        Some("spin") => {
            let threads = number(1)?;
            let wall = Duration::from_millis(number(2)?);
            let start = std::time::Instant::now();
            let spinners: Vec<_> = (0..threads)
                .map(|_| {
                    std::thread::spawn(move || {
                        let mut x = 0u64;
                        while start.elapsed() < wall {
                            x = std::hint::black_box(x.wrapping_add(1));
                        }
                    })
                })
                .collect();
            for spinner in spinners {
                let _ = spinner.join();
            }
            // SAFETY: getrusage fills a zeroed struct.
            let usage = unsafe {
                let mut usage: libc::rusage = std::mem::zeroed();
                libc::getrusage(libc::RUSAGE_SELF, &mut usage);
                usage
            };
            let ms = |tv: libc::timeval| tv.tv_sec as u64 * 1000 + tv.tv_usec as u64 / 1000;
            let seen = std::thread::available_parallelism().map_or(0, |n| n.get());
            // SAFETY: sysconf has no preconditions.
            let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
            println!(
                "cpu_ms={} wall_ms={} online_cpus={online} available_parallelism={seen}",
                ms(usage.ru_utime) + ms(usage.ru_stime),
                start.elapsed().as_millis()
            );
            Ok(0)
        }
        _ => Err("usage: memfit-workload alloc|spike|cow|children|burst|daemon|grow|exit|sleep|spin …; see the source's doc comment".into()),
    }
}

/// Allocates `bytes` and writes every page, so that all of it is resident.
fn touch(bytes: usize) -> Vec<u8> {
    let mut block = vec![0u8; bytes];
    for i in (0..bytes).step_by(4096) {
        block[i] = 1;
    }
    std::hint::black_box(&block);
    block
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// A pipe whose ends the children inherit (no close-on-exec).
fn pipe() -> Result<[i32; 2], String> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe(2) fills the two descriptors.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    Ok(fds)
}
