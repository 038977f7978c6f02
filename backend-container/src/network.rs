//! Network namespaces: with `--network none` the sandbox has only `lo`,
//! which starts down in a new namespace; bring it up so 127.0.0.1 works.

use std::os::fd::AsRawFd;

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

use crate::fail::Fail;

/// `ip link set lo up`, with one ioctl pair instead of netlink.
pub fn loopback_up() -> Result<(), Fail> {
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| Fail::sys("opening a socket to configure lo", e))?;
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the flags of the interface named in `req`
    // into `req`, which outlives the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(Fail::sys("reading lo's flags", nix::errno::Errno::last()));
    }
    // SAFETY: ifru_flags is the member SIOCGIFFLAGS filled in.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: as above, with the flags to set.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(Fail::sys("bringing lo up", nix::errno::Errno::last()));
    }
    Ok(())
}
