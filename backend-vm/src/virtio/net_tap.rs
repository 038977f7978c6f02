//! What virtio-net needs of its tap, checked once before the guest runs:
//! a tap (not a tun) without packet information, with the 12-byte virtio
//! 1.x header before each frame. A tap opened otherwise moves frames 12
//! bytes off, silently.

use std::os::fd::{AsRawFd, BorrowedFd};

use super::net_error::NetError;

/// struct virtio_net_hdr_v1 (virtio 1.x has num_buffers even without
/// VIRTIO_NET_F_MRG_RXBUF): the tap's TUNSETVNETHDRSZ.
pub const HEADER_BYTES: usize = 12;

/// struct ifreq: the interface's name, then its flags (a short).
const IFREQ_BYTES: usize = 40;
const NAME_BYTES: usize = 16;

/// Refuse `fd` unless it is a tap the device can use as it is.
pub fn check(fd: BorrowedFd<'_>) -> Result<(), NetError> {
    let mut ifreq = [0u8; IFREQ_BYTES];
    // SAFETY: TUNGETIFF writes a struct ifreq, which `ifreq` has room for.
    let got = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNGETIFF, ifreq.as_mut_ptr()) };
    if got < 0 {
        return Err(NetError::NotATap(std::io::Error::last_os_error()));
    }
    let name_end = ifreq[..NAME_BYTES]
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(NAME_BYTES);
    let name = String::from_utf8_lossy(&ifreq[..name_end]).into_owned();
    let flags = i32::from(i16::from_ne_bytes([
        ifreq[NAME_BYTES],
        ifreq[NAME_BYTES + 1],
    ]));
    // IFF_NO_PI shares its bit with IFF_NOFILTER, which TUNGETIFF sets on
    // a tap without a socket filter: a tap with packet information can
    // pass this, the two others cannot.
    let needed = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR;
    if flags & needed != needed {
        return Err(NetError::TapFlags { name, flags });
    }
    let mut header: libc::c_int = 0;
    // SAFETY: TUNGETVNETHDRSZ writes an int.
    let got = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNGETVNETHDRSZ, &mut header) };
    if got < 0 {
        return Err(NetError::NotATap(std::io::Error::last_os_error()));
    }
    if usize::try_from(header).ok() != Some(HEADER_BYTES) {
        return Err(NetError::HeaderSize { name, header });
    }
    Ok(())
}
