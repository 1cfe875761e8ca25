//! Command lines captured at exec, from the kernel's process events connector (netlink
//! `NETLINK_CONNECTOR`, `CN_IDX_PROC`; include/uapi/linux/cn_proc.h): the kernel announces
//! every exec, and a thread reads `/proc/PID/cmdline` right then. A process that exits before
//! the next sample is otherwise known only from its exit record, whose `comm` holds 15 bytes
//! of the program's name and none of its arguments.
//!
//! Listening needs CAP_NET_ADMIN (root), as the exit records do; without it the list keeps
//! the kernel's names.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use memfit_sys::procfs;

const NETLINK_CONNECTOR: i32 = 11;
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const NLMSG_DONE: u16 = 3;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_CN_MCAST_IGNORE: u32 = 2;
const PROC_EVENT_EXEC: u32 = 2;
/// nlmsghdr (16 bytes) + cn_msg (cb_id 8, seq 4, ack 4, len 2, flags 2 = 20 bytes).
const HEADERS: usize = 36;
/// In `struct proc_event`: what (4), cpu (4), timestamp_ns (8), then the event's data.
const EVENT_DATA: usize = HEADERS + 16;
/// Command lines kept at most: every exec on the machine during a run is seen, not only the
/// run's; the oldest are forgotten first.
const MAX_KEPT: usize = 50_000;

/// A command line read at exec, with the kernel's name of the program (to tell a reused pid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    pub comm: String,
    pub command: String,
}

/// What the listener has seen, by pid: the last exec of each.
#[derive(Debug, Default)]
pub struct ExecLog {
    by_pid: HashMap<i32, Exec>,
    order: VecDeque<i32>,
}

impl ExecLog {
    pub fn insert(&mut self, pid: i32, exec: Exec) {
        if self.by_pid.insert(pid, exec).is_none() {
            self.order.push_back(pid);
        }
        while self.order.len() > MAX_KEPT {
            if let Some(old) = self.order.pop_front() {
                self.by_pid.remove(&old);
            }
        }
    }

    /// The command line `pid` exec'd, if the kernel's name for it is still `comm` (its exit
    /// record's): a pid reused by another program does not match.
    pub fn command(&self, pid: i32, comm: &str) -> Option<String> {
        self.by_pid
            .get(&pid)
            .filter(|e| e.comm == comm)
            .map(|e| e.command.clone())
    }
}

pub type SharedExecLog = Arc<Mutex<ExecLog>>;

/// The listening thread; stops and unsubscribes when dropped.
pub struct ExecWatcher {
    log: SharedExecLog,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ExecWatcher {
    pub fn start() -> io::Result<ExecWatcher> {
        let socket = subscribe()?;
        let log = SharedExecLog::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::Builder::new()
                .name("memfit-exec".into())
                .spawn(move || listen(&socket, &log, &stop))?
        };
        Ok(ExecWatcher {
            log,
            stop,
            thread: Some(thread),
        })
    }

    pub fn log(&self) -> SharedExecLog {
        self.log.clone()
    }
}

impl Drop for ExecWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn subscribe() -> io::Result<OwnedFd> {
    let socket =
        memfit_sys::netlink::bound_socket(libc::SOCK_DGRAM, NETLINK_CONNECTOR, CN_IDX_PROC)?;
    // The receive timeout lets the thread see the stop flag.
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: 50_000,
    };
    // SAFETY: setsockopt(2) on our own socket with a timeval.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        );
    }
    send_op(&socket, PROC_CN_MCAST_LISTEN)?;
    Ok(socket)
}

/// Sends `PROC_CN_MCAST_LISTEN` or `_IGNORE` to the connector.
fn send_op(socket: &OwnedFd, op: u32) -> io::Result<()> {
    let mut message = Vec::with_capacity(HEADERS + 4);
    message.extend_from_slice(&((HEADERS + 4) as u32).to_ne_bytes());
    message.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
    message.extend_from_slice(&0u16.to_ne_bytes()); // flags
    message.extend_from_slice(&0u32.to_ne_bytes()); // seq
    message.extend_from_slice(&std::process::id().to_ne_bytes());
    message.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    message.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
    message.extend_from_slice(&0u32.to_ne_bytes()); // seq
    message.extend_from_slice(&0u32.to_ne_bytes()); // ack
    message.extend_from_slice(&4u16.to_ne_bytes()); // len
    message.extend_from_slice(&0u16.to_ne_bytes()); // flags
    message.extend_from_slice(&op.to_ne_bytes());
    // SAFETY: sending a buffer we own on a socket we own.
    let sent = unsafe {
        libc::send(
            socket.as_raw_fd(),
            message.as_ptr().cast(),
            message.len(),
            0,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn listen(socket: &OwnedFd, log: &SharedExecLog, stop: &AtomicBool) {
    // The read races the process's exit: ahead of the command's own work where allowed
    // (root may raise a priority; elsewhere this fails and changes nothing).
    // SAFETY: setpriority on this thread (gettid) only.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, -10);
    }
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: receiving into a buffer we own.
        let n = unsafe { libc::recv(socket.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            // A timeout (to look at the stop flag), or ENOBUFS after an exec storm: the
            // events lost are lost, the listening goes on.
            continue;
        }
        for pid in exec_pids(&buf[..n as usize]) {
            // Read now: the process may be gone by the next sample.
            let Some(command) = procfs::read_cmdline(pid) else {
                continue;
            };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim_end_matches('\n').to_string())
                .unwrap_or_default();
            if let Ok(mut log) = log.lock() {
                log.insert(pid, Exec { comm, command });
            }
        }
    }
    let _ = send_op(socket, PROC_CN_MCAST_IGNORE);
}

/// The processes (thread group ids) that exec'd, from one datagram of connector messages.
pub fn exec_pids(mut data: &[u8]) -> Vec<i32> {
    let mut pids = Vec::new();
    while data.len() >= 16 {
        let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
        if len < 16 || len > data.len() {
            break;
        }
        let message = &data[..len];
        let what = read_u32(message, HEADERS);
        if what == Some(PROC_EVENT_EXEC) {
            // exec_proc_event: process_pid, process_tgid.
            if let Some(tgid) = read_u32(message, EVENT_DATA + 4) {
                pids.push(tgid as i32);
            }
        }
        data = &data[((len + 3) & !3).min(data.len())..];
    }
    pids
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at + 4)?;
    Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(what: u32, data: &[u32]) -> Vec<u8> {
        let mut m = Vec::new();
        let len = EVENT_DATA + 4 * data.len();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&[0u8; 12]);
        m.extend_from_slice(&[0u8; 20]);
        m.extend_from_slice(&what.to_ne_bytes());
        m.extend_from_slice(&[0u8; 12]);
        for d in data {
            m.extend_from_slice(&d.to_ne_bytes());
        }
        m
    }

    #[test]
    fn exec_events_are_parsed_and_others_skipped() {
        let mut datagram = event(1, &[10, 10, 11, 11]); // fork
        datagram.extend(event(PROC_EVENT_EXEC, &[42, 42]));
        datagram.extend(event(0x8000_0000, &[42, 42, 0, 0])); // exit
        assert_eq!(exec_pids(&datagram), vec![42]);
        // A truncated message ends the parse without a panic.
        assert_eq!(exec_pids(&datagram[..20]), Vec::<i32>::new());
    }

    #[test]
    fn a_reused_pid_does_not_match_and_the_log_is_bounded() {
        let mut log = ExecLog::default();
        let exec = |comm: &str, command: &str| Exec {
            comm: comm.into(),
            command: command.into(),
        };
        log.insert(7, exec("dd", "dd if=/dev/zero of=/dev/null"));
        assert_eq!(
            log.command(7, "dd").as_deref(),
            Some("dd if=/dev/zero of=/dev/null")
        );
        assert_eq!(log.command(7, "sh"), None);
        for pid in 0..(MAX_KEPT as i32 + 10) {
            log.insert(1000 + pid, exec("x", "x"));
        }
        assert_eq!(log.by_pid.len(), MAX_KEPT);
        assert_eq!(log.command(7, "dd"), None, "the oldest is forgotten first");
    }
}
