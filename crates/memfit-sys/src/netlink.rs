//! A netlink socket bound for the kernel's messages (taskstats exit records, the proc
//! connector's exec events): netlink(7).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A netlink socket of `kind` (`SOCK_RAW`, `SOCK_DGRAM`) for `protocol`, bound with the port id
/// the kernel assigns and the multicast `groups` given, with a 4 MiB receive buffer: exit or
/// exec storms (a build forking thousands of compilers) must not overflow it.
pub fn bound_socket(kind: i32, protocol: i32, groups: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, kind | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: a zeroed sockaddr_nl is valid; the kernel assigns the port id.
    unsafe {
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as u16;
        addr.nl_groups = groups;
        if libc::bind(
            socket.as_raw_fd(),
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        let size: i32 = 4 << 20;
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const i32).cast(),
            4,
        );
    }
    Ok(socket)
}
