//! Exit records of processes from the kernel's taskstats interface (generic netlink,
//! Documentation/accounting/taskstats.rst), so that a child that lives and dies between two
//! samples still appears with its own peak RSS (`hiwater_rss`, recorded by the kernel when
//! the task exits, before its memory is released).
//!
//! Registering a CPU mask for exit records needs CAP_NET_ADMIN (root); without it memfit
//! falls back to sampling alone, which misses processes shorter than the sampling period.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use memfit_sys::process::ExitStatus;

const NETLINK_GENERIC: i32 = 16;
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const TASKSTATS_CMD_GET: u8 = 1;
const TASKSTATS_CMD_ATTR_REGISTER_CPUMASK: u16 = 3;
const TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK: u16 = 4;
const TASKSTATS_TYPE_PID: u16 = 1;
const TASKSTATS_TYPE_STATS: u16 = 3;
const TASKSTATS_TYPE_AGGR_PID: u16 = 4;

// Offsets in `struct taskstats` (include/uapi/linux/taskstats.h; fields are only ever
// appended, and `version` says which exist). Checked against offsetof() for version 13.
const OFF_VERSION: usize = 0;
const OFF_EXITCODE: usize = 4;
const OFF_COMM: usize = 80;
const COMM_LEN: usize = 32;
const OFF_PPID: usize = 132;
const OFF_ETIME_US: usize = 144;
const OFF_HIWATER_RSS_KB: usize = 200;
/// `ac_tgid`, from version 13 (Linux 5.19) on.
const OFF_TGID: usize = 368;

/// One task's exit, as the kernel reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitRecord {
    pub pid: i32,
    /// The thread group; `None` before taskstats version 13, when threads and processes
    /// cannot be told apart.
    pub tgid: Option<i32>,
    pub ppid: i32,
    pub comm: String,
    pub hiwater_rss_bytes: u64,
    /// How long the task lived, in microseconds.
    pub elapsed_us: u64,
    pub exit_code: u32,
}

impl ExitRecord {
    /// Whether this record ends a process (its main thread) rather than one of its threads.
    pub fn is_process(&self) -> bool {
        self.tgid.is_none_or(|tgid| tgid == self.pid)
    }

    /// How it ended: `ac_exitcode` is a wait status.
    pub fn status(&self) -> Option<ExitStatus> {
        ExitStatus::from_wait_status(self.exit_code as i32)
    }
}

/// A netlink socket registered for exit records on every CPU.
pub struct ExitListener {
    socket: OwnedFd,
    family: u16,
    cpumask: String,
}

impl ExitListener {
    pub fn open() -> io::Result<ExitListener> {
        let socket = memfit_sys::netlink::bound_socket(libc::SOCK_RAW, NETLINK_GENERIC, 0)?;
        let mut listener = ExitListener {
            socket,
            family: 0,
            cpumask: possible_cpus(),
        };
        listener.family = listener.resolve_family()?;
        listener.command(TASKSTATS_CMD_ATTR_REGISTER_CPUMASK)?;
        Ok(listener)
    }

    fn send(&self, message: &[u8]) -> io::Result<()> {
        // SAFETY: sending a buffer we own to the kernel (port 0).
        let sent = unsafe {
            let mut addr: libc::sockaddr_nl = std::mem::zeroed();
            addr.nl_family = libc::AF_NETLINK as u16;
            libc::sendto(
                self.socket.as_raw_fd(),
                message.as_ptr().cast(),
                message.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn recv(&self, buf: &mut [u8], flags: i32) -> io::Result<usize> {
        // SAFETY: receiving into a buffer we own.
        let n = unsafe {
            libc::recv(
                self.socket.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                flags,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn resolve_family(&self) -> io::Result<u16> {
        self.send(&genl_message(
            GENL_ID_CTRL,
            CTRL_CMD_GETFAMILY,
            CTRL_ATTR_FAMILY_NAME,
            b"TASKSTATS\0",
        ))?;
        let mut buf = vec![0u8; 8192];
        let n = self.recv(&mut buf, 0)?;
        let reply = &buf[..n];
        if read_u16(reply, 4) == Some(NLMSG_ERROR) {
            return Err(io::Error::other(
                "the kernel has no TASKSTATS netlink family",
            ));
        }
        let family = attributes(reply.get(20..).unwrap_or_default())
            .find(|(kind, _)| *kind == CTRL_ATTR_FAMILY_ID)
            .and_then(|(_, value)| read_u16(value, 0));
        family.ok_or_else(|| io::Error::other("malformed TASKSTATS family reply"))
    }

    /// Registers or deregisters the CPU mask and checks the kernel's acknowledgement.
    fn command(&self, attribute: u16) -> io::Result<()> {
        let mut mask = self.cpumask.clone().into_bytes();
        mask.push(0);
        let mut message = genl_message(self.family, TASKSTATS_CMD_GET, attribute, &mask);
        // Ask for an acknowledgement so a refusal (EPERM without CAP_NET_ADMIN) is seen.
        message[6] |= 4; // NLM_F_ACK
        self.send(&message)?;
        let mut buf = vec![0u8; 8192];
        loop {
            let n = self.recv(&mut buf, 0)?;
            let reply = &buf[..n];
            if read_u16(reply, 4) == Some(NLMSG_ERROR) {
                let code = reply
                    .get(16..20)
                    .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(0);
                return if code == 0 {
                    Ok(())
                } else {
                    Err(io::Error::from_raw_os_error(-code))
                };
            }
        }
    }

    /// Exit records received since the last call, without waiting.
    pub fn drain(&mut self) -> Vec<ExitRecord> {
        let mut records = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = self.recv(&mut buf, libc::MSG_DONTWAIT) {
            if n == 0 {
                break;
            }
            parse_messages(&buf[..n], self.family, &mut records);
        }
        records
    }
}

impl Drop for ExitListener {
    fn drop(&mut self) {
        let _ = self.command(TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK);
    }
}

/// Parses one datagram of netlink messages into exit records.
pub fn parse_messages(mut data: &[u8], family: u16, records: &mut Vec<ExitRecord>) {
    while let (Some(len), Some(kind)) = (read_u32(data, 0), read_u16(data, 4)) {
        let len = len as usize;
        if len < 16 || len > data.len() {
            break;
        }
        if kind == family {
            // nlmsghdr (16) + genlmsghdr (4), then attributes.
            for (attr, value) in attributes(&data[20.min(len)..len]) {
                if attr == TASKSTATS_TYPE_AGGR_PID {
                    if let Some(record) = parse_aggregate(value) {
                        records.push(record);
                    }
                }
            }
        }
        data = &data[align4(len).min(data.len())..];
    }
}

fn parse_aggregate(nested: &[u8]) -> Option<ExitRecord> {
    let mut pid = None;
    let mut stats = None;
    for (kind, value) in attributes(nested) {
        match kind {
            TASKSTATS_TYPE_PID => pid = read_u32(value, 0),
            TASKSTATS_TYPE_STATS => stats = Some(value),
            _ => {}
        }
    }
    let stats = stats?;
    let version = read_u16(stats, OFF_VERSION)?;
    let comm_bytes = stats.get(OFF_COMM..OFF_COMM + COMM_LEN)?;
    let comm_end = comm_bytes.iter().position(|b| *b == 0).unwrap_or(COMM_LEN);
    Some(ExitRecord {
        pid: pid? as i32,
        tgid: if version >= 13 {
            read_u32(stats, OFF_TGID).map(|t| t as i32)
        } else {
            None
        },
        ppid: read_u32(stats, OFF_PPID)? as i32,
        comm: String::from_utf8_lossy(&comm_bytes[..comm_end]).into_owned(),
        hiwater_rss_bytes: read_u64(stats, OFF_HIWATER_RSS_KB)? * 1024,
        elapsed_us: read_u64(stats, OFF_ETIME_US)?,
        exit_code: read_u32(stats, OFF_EXITCODE)?,
    })
}

/// Netlink attributes (`struct nlattr`: u16 length, u16 type, value, padding to 4).
fn attributes(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = read_u16(data, 0)? as usize;
        let kind = read_u16(data, 2)? & 0x3fff;
        if len < 4 || len > data.len() {
            return None;
        }
        let value = &data[4..len];
        data = &data[align4(len).min(data.len())..];
        Some((kind, value))
    })
}

fn genl_message(family: u16, command: u8, attribute: u16, value: &[u8]) -> Vec<u8> {
    let attr_len = 4 + value.len();
    let total = 16 + 4 + align4(attr_len);
    let mut message = Vec::with_capacity(total);
    message.extend_from_slice(&(total as u32).to_ne_bytes());
    message.extend_from_slice(&family.to_ne_bytes());
    message.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    message.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    message.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel
    message.extend_from_slice(&[command, 1, 0, 0]); // genlmsghdr: cmd, version
    message.extend_from_slice(&(attr_len as u16).to_ne_bytes());
    message.extend_from_slice(&attribute.to_ne_bytes());
    message.extend_from_slice(value);
    message.resize(total, 0);
    message
}

fn possible_cpus() -> String {
    std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "0".to_string())
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn read_u16(data: &[u8], at: usize) -> Option<u16> {
    data.get(at..at + 2)
        .map(|b| u16::from_ne_bytes([b[0], b[1]]))
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    data.get(at..at + 4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

fn read_u64(data: &[u8], at: usize) -> Option<u64> {
    data.get(at..at + 8).map(|b| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(b);
        u64::from_ne_bytes(bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exiting_child_is_reported_with_its_own_peak() {
        let Ok(mut listener) = ExitListener::open() else {
            eprintln!("skipping: taskstats exit records need CAP_NET_ADMIN (root)");
            return;
        };
        // A child that touches 40 MiB and exits at once: dd reads into one 40 MiB buffer.
        let child = std::process::Command::new("dd")
            .args([
                "if=/dev/zero",
                "of=/dev/null",
                "bs=40M",
                "count=1",
                "status=none",
            ])
            .status()
            .unwrap();
        assert!(child.success());
        std::thread::sleep(std::time::Duration::from_millis(50));
        let records = listener.drain();
        let me = std::process::id() as i32;
        let mine: Vec<_> = records.iter().filter(|r| r.ppid == me).collect();
        assert!(
            !mine.is_empty(),
            "no exit record for our child in {records:?}"
        );
        assert!(mine.iter().all(|r| r.is_process()));
        assert!(
            mine.iter().any(|r| r.hiwater_rss_bytes >= 40 * 1024 * 1024),
            "{mine:?}"
        );
    }

    #[test]
    fn malformed_datagrams_are_ignored() {
        let mut records = Vec::new();
        parse_messages(&[1, 2, 3], 31, &mut records);
        parse_messages(&[255; 64], 31, &mut records);
        assert!(records.is_empty());
    }
}
