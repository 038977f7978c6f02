//! An interface configured from inside its network namespace with the
//! classic ioctls (a handful of calls, no netlink socket to open): a
//! container's child and a VM's isola-init both do it for `lo` and `eth0`.
//! isola-init includes this file by path, so it uses only libc and nix.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

/// What failed, and the errno.
pub type Failed = (&'static str, Errno);

/// `ip link set NAME up`.
pub fn up(name: &str) -> Result<(), Failed> {
    let sock = socket()?;
    set_up(&sock, name)
}

/// `name` with `ip/prefix`, `mtu`, up, and the default route through
/// `gateway`.
pub fn configure(
    name: &str,
    ip: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
    mtu: u32,
) -> Result<(), Failed> {
    let sock = socket()?;
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_mtu = i32::try_from(mtu).unwrap_or(1500);
    ioctl(&sock, libc::SIOCSIFMTU, &mut req).map_err(|e| ("setting its MTU", e))?;
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_addr = sockaddr(ip);
    ioctl(&sock, libc::SIOCSIFADDR, &mut req).map_err(|e| ("giving it its address", e))?;
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_netmask = sockaddr(Ipv4Addr::from(mask));
    ioctl(&sock, libc::SIOCSIFNETMASK, &mut req).map_err(|e| ("setting its netmask", e))?;
    set_up(&sock, name)?;
    // SAFETY: rtentry is plain data; all zeroes is a valid value.
    let mut route: libc::rtentry = unsafe { std::mem::zeroed() };
    route.rt_dst = sockaddr(Ipv4Addr::UNSPECIFIED);
    route.rt_genmask = sockaddr(Ipv4Addr::UNSPECIFIED);
    route.rt_gateway = sockaddr(gateway);
    route.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    // SAFETY: SIOCADDRT reads the rtentry, which outlives the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCADDRT, &route) } < 0 {
        return Err(("routing through the gateway", Errno::last()));
    }
    Ok(())
}

fn socket() -> Result<OwnedFd, Failed> {
    // SAFETY: socket(2) takes no pointers; the result is checked below.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(("opening a socket", Errno::last()));
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes().take(15)) {
        *dst = src as libc::c_char;
    }
    req
}

fn sockaddr(ip: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr are both 16 bytes, the layout the
    // kernel reads an AF_INET address from.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn ioctl(sock: &OwnedFd, request: libc::Ioctl, req: &mut libc::ifreq) -> Result<(), Errno> {
    // SAFETY: the interface ioctls read and write only inside `req`, which
    // lives for the whole call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), request, req as *mut libc::ifreq) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

fn set_up(sock: &OwnedFd, name: &str) -> Result<(), Failed> {
    let mut req = ifreq(name);
    ioctl(sock, libc::SIOCGIFFLAGS, &mut req).map_err(|e| ("reading its flags", e))?;
    // SAFETY: the union's flags member is the one SIOCGIFFLAGS just filled.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    ioctl(sock, libc::SIOCSIFFLAGS, &mut req).map_err(|e| ("bringing it up", e))
}
