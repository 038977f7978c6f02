//! The guest's network: the loopback interface up, as every container
//! runtime does even without a network (programs bind 127.0.0.1), and
//! with a bridge network `eth0` (virtio-net) addressed and routed as the
//! host leased it, with its name files. ioctls, not netlink: four calls.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use isola_guest_spec::GuestNet;
use nix::errno::Errno;

use crate::fail::Failure;

pub fn loopback_up() -> Result<(), Failure> {
    let what = "cannot bring the loopback interface up";
    let sock = socket(what)?;
    up(&sock, "lo").map_err(|e| Failure::errno(what, e))
}

/// `eth0` with the leased address, MTU and default route; then
/// /etc/hosts and /etc/resolv.conf (the root must still be writable).
pub fn configure(net: &GuestNet) -> Result<(), Failure> {
    let what = "cannot configure eth0 (virtio-net)";
    let sock = socket(what)?;
    let fail = |step: &'static str| move |e| Failure::errno(format!("{what}: {step}"), e);
    let mut req = ifreq("eth0");
    req.ifr_ifru.ifru_mtu = i32::try_from(net.mtu).unwrap_or(1500);
    ioctl(&sock, libc::SIOCSIFMTU, &mut req).map_err(fail("setting its MTU"))?;
    let mut req = ifreq("eth0");
    req.ifr_ifru.ifru_addr = sockaddr(net.ip);
    ioctl(&sock, libc::SIOCSIFADDR, &mut req).map_err(fail("giving it its address"))?;
    let mask = u32::MAX
        .checked_shl(32 - u32::from(net.prefix.min(32)))
        .unwrap_or(0);
    let mut req = ifreq("eth0");
    req.ifr_ifru.ifru_netmask = sockaddr(Ipv4Addr::from(mask));
    ioctl(&sock, libc::SIOCSIFNETMASK, &mut req).map_err(fail("setting its netmask"))?;
    up(&sock, "eth0").map_err(fail("bringing it up"))?;
    // SAFETY: rtentry is plain data; all zeroes is a valid value.
    let mut route: libc::rtentry = unsafe { std::mem::zeroed() };
    route.rt_dst = sockaddr(Ipv4Addr::UNSPECIFIED);
    route.rt_genmask = sockaddr(Ipv4Addr::UNSPECIFIED);
    route.rt_gateway = sockaddr(net.gateway);
    route.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    // SAFETY: SIOCADDRT reads the rtentry, which outlives the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCADDRT, &route) } < 0 {
        return Err(fail("routing through the gateway")(Errno::last()));
    }
    std::fs::create_dir_all("/etc")
        .and_then(|()| std::fs::write("/etc/hosts", &net.hosts))
        .and_then(|()| std::fs::write("/etc/resolv.conf", &net.resolv))
        .map_err(|e| {
            Failure::setup(
                "cannot write /etc/hosts and /etc/resolv.conf",
                crate::fail::describe_io(&e),
            )
        })
}

fn socket(what: &str) -> Result<OwnedFd, Failure> {
    // SAFETY: socket(2) takes no pointers; the result is checked below.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(Failure::errno(what, Errno::last()));
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

fn up(sock: &OwnedFd, name: &str) -> Result<(), Errno> {
    let mut req = ifreq(name);
    ioctl(sock, libc::SIOCGIFFLAGS, &mut req)?;
    // SAFETY: the union's flags member is the one SIOCGIFFLAGS just filled.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    ioctl(sock, libc::SIOCSIFFLAGS, &mut req)
}
