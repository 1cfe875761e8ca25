//! The kernel log's account of OOM kills, read from `/dev/kmsg` where permitted (root or
//! CAP_SYSLOG). It names the killed process exactly; without it memfit falls back to the
//! process that vanished when the `oom_kill` counter rose.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

/// An open `/dev/kmsg` positioned after the records that existed when the run started.
pub struct KernelLog {
    file: File,
}

/// One `Killed process` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelOomKill {
    pub pid: i32,
    pub comm: String,
    /// anon-rss + file-rss + shmem-rss at the kill, in bytes.
    pub rss_bytes: u64,
    /// The victim's cgroup, from the `oom-kill:` record the kernel logs just before.
    pub task_memcg: Option<String>,
}

impl KernelLog {
    pub fn open() -> Option<KernelLog> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .ok()?;
        // SAFETY: lseek on an fd we own.
        let end = unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_END) };
        (end >= 0).then_some(KernelLog { file })
    }

    /// OOM kills logged since `open` (or the previous call).
    pub fn oom_kills(&mut self) -> Vec<KernelOomKill> {
        let mut kills = Vec::new();
        // Each read(2) returns exactly one record; a too-small buffer gives EINVAL.
        let mut buf = vec![0u8; 16 * 1024];
        let mut last_memcg: Option<(i32, String)> = None;
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let record = String::from_utf8_lossy(&buf[..n]);
                    if let Some(found) = parse_oom_kill_memcg(&record) {
                        last_memcg = Some(found);
                    } else if let Some(mut kill) = parse_killed_process(&record) {
                        kill.task_memcg = last_memcg
                            .take()
                            .filter(|(pid, _)| *pid == kill.pid)
                            .map(|(_, memcg)| memcg);
                        kills.push(kill);
                    }
                }
                // EPIPE: records were overwritten while we read; keep going from the next.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        kills
    }
}

/// Parses `…;Memory cgroup out of memory: Killed process 1234 (node) total-vm:…kB,
/// anon-rss:402000kB, file-rss:1000kB, shmem-rss:0kB, …` (the same line follows a global
/// "Out of memory:").
pub fn parse_killed_process(record: &str) -> Option<KernelOomKill> {
    let message = record.split_once(';').map_or(record, |(_, m)| m);
    let rest = &message[message.find("Killed process ")? + "Killed process ".len()..];
    let (pid, rest) = rest.split_once(' ')?;
    let pid = pid.parse().ok()?;
    let open = rest.find('(')?;
    let close = rest.rfind(')')?;
    let comm = rest.get(open + 1..close)?.to_string();
    let mut rss_kib = 0;
    for key in ["anon-rss:", "file-rss:", "shmem-rss:"] {
        if let Some(start) = rest.find(key) {
            let digits: String = rest[start + key.len()..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            rss_kib += digits.parse::<u64>().unwrap_or(0);
        }
    }
    Some(KernelOomKill {
        pid,
        comm,
        rss_bytes: rss_kib * 1024,
        task_memcg: None,
    })
}

/// Parses `oom-kill:constraint=…,oom_memcg=/a/b,task_memcg=/a/b,task=node,pid=42,uid=0`
/// into (pid, task_memcg).
pub fn parse_oom_kill_memcg(record: &str) -> Option<(i32, String)> {
    let message = record.split_once(';').map_or(record, |(_, m)| m);
    let fields = message.trim().strip_prefix("oom-kill:")?;
    let mut memcg = None;
    let mut pid = None;
    for field in fields.split(',') {
        match field.split_once('=') {
            Some(("task_memcg", value)) => memcg = Some(value.to_string()),
            Some(("pid", value)) => pid = value.parse().ok(),
            _ => {}
        }
    }
    Some((pid?, memcg?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memcg_kill_line_is_parsed() {
        let line = "3,1234,5678901,-;Memory cgroup out of memory: Killed process 4242 (node) total-vm:1234567kB, anon-rss:402000kB, file-rss:1000kB, shmem-rss:24kB, UID:0 pgtables:1200kB oom_score_adj:0\n";
        let kill = parse_killed_process(line).unwrap();
        assert_eq!(kill.pid, 4242);
        assert_eq!(kill.comm, "node");
        assert_eq!(kill.rss_bytes, (402000 + 1000 + 24) * 1024);
    }

    #[test]
    fn oom_kill_record_names_the_victims_cgroup() {
        let line = "4,99,685335702,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/a/memfit-7351-0,task_memcg=/a/memfit-7351-0,task=memfit-workload,pid=7354,uid=0";
        assert_eq!(
            parse_oom_kill_memcg(line),
            Some((7354, "/a/memfit-7351-0".to_string()))
        );
        assert!(parse_killed_process(line).is_none());
    }

    #[test]
    fn kill_recorded_on_a_real_cgroup_v2_host() {
        let text = include_str!("../../memfit-sys/tests/fixtures/v2-systemd-unit-oom/kmsg");
        let mut lines = text.lines();
        let (pid, memcg) = parse_oom_kill_memcg(lines.next().unwrap()).unwrap();
        assert_eq!(pid, 2840);
        assert!(memcg.ends_with("/labm6.service"));
        let kill = parse_killed_process(lines.next().unwrap()).unwrap();
        assert_eq!((kill.pid, kill.comm.as_str()), (2840, "python3"));
        assert_eq!(kill.rss_bytes, (522_624 + 6_144) * 1024);
    }

    #[test]
    fn global_oom_line_and_noise() {
        let line = "Out of memory: Killed process 99 (my proc) total-vm:10kB, anon-rss:5kB, file-rss:0kB, shmem-rss:0kB";
        assert_eq!(parse_killed_process(line).unwrap().comm, "my proc");
        assert!(parse_killed_process("6,1,2,-;eth0: link up").is_none());
    }
}
