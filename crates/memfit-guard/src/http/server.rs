//! The server loop: one thread, non-blocking sockets and `poll(2)`, so that no client — idle,
//! slow or hostile — holds up another. Each connection has a deadline (3 s to send its request,
//! 2 s more to take the response), and at most [`MAX_CONNECTIONS`] are kept: beyond that the
//! one that matters least (already answered, else the oldest still sending its request) is
//! dropped to make room, so a liveness probe is answered within milliseconds whatever else is
//! open. A connection holds at most the 8 KiB head it is sending.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::parse::{parse_request, ParseError, MAX_HEAD};
use super::routes::{rejected, respond, Response};
use super::Shared;

/// The most connections served at once; with 8 KiB each, 512 KiB at worst.
pub const MAX_CONNECTIONS: usize = 64;

/// From the connection to the end of its request head.
const REQUEST_DEADLINE: Duration = Duration::from_secs(3);

/// From the request to the client's taking the whole response and closing.
const RESPONSE_DEADLINE: Duration = Duration::from_secs(2);

/// What a client may still send after its response before it is cut off (read and dropped, so
/// it costs no memory; the deadline bounds the time).
const LINGER_BYTES: usize = 1024 * 1024;

/// After `accept` fails for want of descriptors or memory, the listener stays readable: wait
/// this long instead of spinning.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Receiving the request head.
    Reading,
    /// Sending the response.
    Writing,
    /// Response sent and our side closed: reading what the client still sends until it closes,
    /// so that unread bytes do not make the kernel reset the connection before the client has
    /// read the response (nginx's `lingering_close`).
    Lingering,
}

impl Phase {
    /// Which connection to drop first when room is needed: lowest first.
    fn eviction_rank(self) -> u8 {
        match self {
            Phase::Lingering => 0,
            Phase::Reading => 1,
            Phase::Writing => 2,
        }
    }
}

struct Connection {
    stream: TcpStream,
    /// Accept order: the lowest is the oldest.
    serial: u64,
    deadline: Instant,
    phase: Phase,
    received: Vec<u8>,
    out: Vec<u8>,
    written: usize,
    discarded: usize,
}

/// The socket has nothing more for now.
fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl Connection {
    fn new(stream: TcpStream, serial: u64, now: Instant) -> Connection {
        Connection {
            stream,
            serial,
            deadline: now + REQUEST_DEADLINE,
            phase: Phase::Reading,
            received: Vec::new(),
            out: Vec::new(),
            written: 0,
            discarded: 0,
        }
    }

    fn events(&self) -> libc::c_short {
        match self.phase {
            Phase::Reading | Phase::Lingering => libc::POLLIN,
            Phase::Writing => libc::POLLOUT,
        }
    }

    /// Makes what progress the socket allows; `false` when the connection is done with.
    fn progress(&mut self, shared: &Shared, now: Instant) -> bool {
        match self.phase {
            Phase::Reading => self.read_request(shared, now),
            Phase::Writing => self.write_response(),
            Phase::Lingering => self.linger(),
        }
    }

    fn read_request(&mut self, shared: &Shared, now: Instant) -> bool {
        let mut chunk = [0u8; 2048];
        let mut closed = false;
        while self.received.len() < MAX_HEAD {
            let room = (MAX_HEAD - self.received.len()).min(chunk.len());
            match self.stream.read(&mut chunk[..room]) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => self.received.extend_from_slice(&chunk[..n]),
                Err(e) if would_block(&e) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        let response = match parse_request(&self.received) {
            Ok(request) => respond(&request, shared, now),
            // Half a request and then nothing: there is no one to answer.
            Err(ParseError::Incomplete) => return !closed,
            Err(e) => rejected(e),
        };
        self.start_response(response, now)
    }

    fn start_response(&mut self, response: Response, now: Instant) -> bool {
        self.received = Vec::new();
        self.out = response.into_bytes();
        self.written = 0;
        self.phase = Phase::Writing;
        self.deadline = now + RESPONSE_DEADLINE;
        self.write_response()
    }

    fn write_response(&mut self) -> bool {
        while self.written < self.out.len() {
            match self.stream.write(&self.out[self.written..]) {
                Ok(0) => return false,
                Ok(n) => self.written += n,
                Err(e) if would_block(&e) => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        self.out = Vec::new();
        if self.stream.shutdown(Shutdown::Write).is_err() {
            return false;
        }
        self.phase = Phase::Lingering;
        self.linger()
    }

    fn linger(&mut self) -> bool {
        let mut chunk = [0u8; 2048];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => {
                    self.discarded += n;
                    if self.discarded > LINGER_BYTES {
                        return false;
                    }
                }
                Err(e) if would_block(&e) => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// Closes the connection; one still sending its request is told why, as far as the socket
    /// takes it without waiting.
    fn close_with(mut self, response: impl FnOnce() -> Response) {
        if self.phase == Phase::Reading {
            let _ = self.stream.write(&response().into_bytes());
        }
    }
}

/// Serves until the process ends. The listener must be non-blocking.
pub fn run(listener: TcpListener, shared: &Shared) {
    let mut connections: Vec<Connection> = Vec::with_capacity(MAX_CONNECTIONS);
    let mut fds: Vec<libc::pollfd> = Vec::with_capacity(MAX_CONNECTIONS + 1);
    let mut accept_paused_until: Option<Instant> = None;
    let mut accepted: u64 = 0;
    loop {
        let now = Instant::now();
        let mut i = 0;
        while i < connections.len() {
            if now >= connections[i].deadline {
                connections
                    .swap_remove(i)
                    .close_with(|| Response::text(408, "Request Timeout", "request timeout\n"));
            } else {
                i += 1;
            }
        }
        if accept_paused_until.is_some_and(|t| now >= t) {
            accept_paused_until = None;
        }
        fds.clear();
        fds.push(libc::pollfd {
            // A negative descriptor is skipped by poll(2).
            fd: if accept_paused_until.is_some() {
                -1
            } else {
                listener.as_raw_fd()
            },
            events: libc::POLLIN,
            revents: 0,
        });
        fds.extend(connections.iter().map(|c| libc::pollfd {
            fd: c.stream.as_raw_fd(),
            events: c.events(),
            revents: 0,
        }));
        let wake = connections
            .iter()
            .map(|c| c.deadline)
            .chain(accept_paused_until)
            .min();
        let timeout = wake.map_or(-1, |t| ceil_millis(t.saturating_duration_since(now)));
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structures.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if ready < 0 {
            if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                std::thread::sleep(ACCEPT_PAUSE);
            }
            continue;
        }
        let now = Instant::now();
        // In reverse, so that swap_remove only moves a connection already seen.
        for i in (0..connections.len()).rev() {
            if fds[i + 1].revents != 0 && !connections[i].progress(shared, now) {
                connections.swap_remove(i);
            }
        }
        if fds[0].revents != 0 {
            accept_paused_until = accept(&listener, &mut connections, &mut accepted, shared, now);
        }
    }
}

/// Accepts what is waiting (at most [`MAX_CONNECTIONS`] in one go, so that a flood does not
/// starve the connections already open), making room as needed. Returns until when to stop
/// accepting after a failure.
fn accept(
    listener: &TcpListener,
    connections: &mut Vec<Connection>,
    accepted: &mut u64,
    shared: &Shared,
    now: Instant,
) -> Option<Instant> {
    for _ in 0..MAX_CONNECTIONS {
        match listener.accept() {
            Ok((stream, _)) => {
                if stream.set_nonblocking(true).is_err() {
                    continue;
                }
                if connections.len() >= MAX_CONNECTIONS {
                    evict_one(connections);
                }
                *accepted += 1;
                let mut connection = Connection::new(stream, *accepted, now);
                // A probe has usually sent its request by now: answer it at once.
                if connection.progress(shared, now) {
                    connections.push(connection);
                }
            }
            Err(e) if would_block(&e) => return None,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                ) => {}
            // EMFILE, ENFILE, ENOBUFS: free a descriptor and pause.
            Err(_) => {
                evict_one(connections);
                return Some(now + ACCEPT_PAUSE);
            }
        }
    }
    None
}

/// Drops the connection that matters least: one already answered, else the oldest still
/// sending its request (a slow or idle client), else the oldest being answered.
fn evict_one(connections: &mut Vec<Connection>) {
    let victim = connections
        .iter()
        .enumerate()
        .min_by_key(|(_, c)| (c.phase.eviction_rank(), c.serial))
        .map(|(i, _)| i);
    if let Some(i) = victim {
        connections.swap_remove(i).close_with(|| {
            Response::text(
                503,
                "Service Unavailable",
                "too many connections; this one waited longest\n",
            )
            .with_header("Retry-After", "1")
        });
    }
}

/// A poll(2) timeout in whole milliseconds, rounded up so that a deadline is not polled for
/// again just before it passes.
fn ceil_millis(d: Duration) -> libc::c_int {
    let millis = d.as_nanos().div_ceil(1_000_000);
    libc::c_int::try_from(millis).unwrap_or(libc::c_int::MAX)
}
