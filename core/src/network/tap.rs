//! A microVM's link on the host: a tap device carrying frames with a
//! virtio-net header, so the VM monitor passes them to the guest as they are.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use nix::libc;

/// struct virtio_net_hdr_mrg_rxbuf, the header of virtio 1.0's net device.
const VNET_HDR_LEN: libc::c_int = 12;

#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("tap name {0:?} is not 1 to 15 bytes without '/' or NUL")]
    Name(String),
    #[error("opening /dev/net/tun for tap {name}: the kernel has no tun device; load the tun module (modprobe tun)")]
    NoTun {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("opening /dev/net/tun for tap {name}")]
    Open {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("creating tap {name}")]
    Create {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("setting the virtio-net header size of tap {name}")]
    VnetHeader {
        name: String,
        #[source]
        source: io::Error,
    },
}

/// A tap named `name`, nonblocking and close-on-exec, with 12-byte
/// virtio-net headers and no packet info. Not persistent: the link goes
/// when its last fd closes, so a crashed VM monitor leaves nothing behind.
pub fn open_tap(name: &str) -> Result<OwnedFd, TapError> {
    let mut req = ifreq_named(name).ok_or_else(|| TapError::Name(name.into()))?;
    // std opens with O_CLOEXEC always.
    let tun = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/net/tun")
        .map_err(|source| match source.raw_os_error() {
            // No node, or a node with no driver behind it.
            Some(libc::ENOENT | libc::ENODEV) => TapError::NoTun {
                name: name.into(),
                source,
            },
            _ => TapError::Open {
                name: name.into(),
                source,
            },
        })?;
    let tun = OwnedFd::from(tun);
    req.ifr_ifru.ifru_flags =
        (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
    // SAFETY: TUNSETIFF reads an ifreq, which `req` is, alive for the call.
    if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut req) } < 0 {
        let source = io::Error::last_os_error();
        return Err(TapError::Create {
            name: name.into(),
            source,
        });
    }
    let size = VNET_HDR_LEN;
    // SAFETY: TUNSETVNETHDRSZ reads one int, which `size` is, alive for the call.
    if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETVNETHDRSZ, &size) } < 0 {
        let source = io::Error::last_os_error();
        return Err(TapError::VnetHeader {
            name: name.into(),
            source,
        });
    }
    Ok(tun)
}

/// An ifreq with `name` in it, if it can be a link's name.
fn ifreq_named(name: &str) -> Option<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.is_empty()
        || bytes.len() >= libc::IFNAMSIZ
        || bytes.iter().any(|&b| b == 0 || b == b'/')
    {
        return None;
    }
    // SAFETY: ifreq is plain data; all zeroes is a valid value of it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Some(req)
}

#[cfg(test)]
mod tests {
    use super::super::netlink::Netlink;
    use super::*;

    #[test]
    fn names_must_fit_a_link() {
        assert!(ifreq_named("isolatap0").is_some());
        assert!(ifreq_named("fifteen-bytes-x").is_some());
        for bad in ["", "sixteen-bytes-xx", "a/b", "a\0b"] {
            assert!(matches!(open_tap(bad), Err(TapError::Name(_))), "{bad:?}");
        }
        let req = ifreq_named("tap1").expect("a name that fits");
        assert_eq!(
            req.ifr_name[..5],
            [b't', b'a', b'p', b'1', 0].map(|b| b as libc::c_char)
        );
    }

    #[test]
    fn a_tap_lives_as_long_as_its_fd() {
        if !isola_test_support::root_user() {
            return;
        }
        let name = format!("isolat{:x}t", std::process::id());
        let nl = Netlink::open().expect("a netlink socket");
        let fd = open_tap(&name).expect("a tap");
        // SAFETY: F_GETFL reads the fd's flags; the fd is open.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
        assert_ne!(flags & libc::O_NONBLOCK, 0, "nonblocking");
        // SAFETY: F_GETFD reads the fd's own flags; the fd is open.
        let fd_flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        assert_ne!(fd_flags & libc::FD_CLOEXEC, 0, "close-on-exec");
        let index = nl
            .link_index(&name)
            .expect("looking up the tap")
            .expect("the tap");
        assert!(nl.links().expect("links").contains(&(index, name.clone())));

        let busy = open_tap(&name).expect_err("a second open of a tap in use");
        assert!(busy.to_string().contains(&name), "{busy}");

        drop(fd);
        assert_eq!(
            nl.link_index(&name).expect("looking up the tap"),
            None,
            "gone with its fd"
        );
        assert!(!nl.links().expect("links").iter().any(|(_, n)| *n == name));
    }
}
