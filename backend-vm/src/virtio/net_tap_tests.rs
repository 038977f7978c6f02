//! virtio-net over real taps, each in a network namespace of its own (a
//! test thread's): which taps the device takes, and frames both ways with
//! the kernel's virtio 1.x header, which a socket pair cannot show.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use isola_test_support::{host_has, root_user};

use super::net::{Net, NetError, HEADER_BYTES, RX, TX};
use super::net_tests::{frame, host_ready, packet, Guest, MAC, RX_BUFS, RX_HEADER};
use super::testing::memory;

/// An ethertype for local experiments (IEEE 802): no stack answers it.
const ETHERTYPE: u16 = 0x88b5;
const VNET_TAP: i32 = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR;

/// Run `test` on a thread in a new network namespace; false where this
/// host cannot make one or has no taps.
fn in_own_netns(test: impl FnOnce() + Send + 'static) -> bool {
    let tun = std::path::Path::new("/dev/net/tun").exists();
    if !host_has("root and /dev/net/tun", root_user() && tun) {
        return false;
    }
    std::thread::spawn(move || {
        // SAFETY: unshare with a constant flag, on this thread alone.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare");
        test();
    })
    .join()
    .map_err(std::panic::resume_unwind)
    .is_ok()
}

/// A tap (or tun) of the kernel's naming, gone when it is closed, and its
/// name.
fn open(flags: i32, header: Option<libc::c_int>) -> (OwnedFd, String) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .expect("/dev/net/tun");
    let mut ifreq = [0u8; 40];
    ifreq[..10].copy_from_slice(b"isolanet%d");
    ifreq[16..18].copy_from_slice(&(flags as i16).to_ne_bytes());
    // SAFETY: TUNSETIFF reads and writes a struct ifreq.
    let set = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, ifreq.as_mut_ptr()) };
    assert_eq!(set, 0, "TUNSETIFF");
    if let Some(h) = header {
        // SAFETY: TUNSETVNETHDRSZ reads an int.
        let set = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETVNETHDRSZ, &h) };
        assert_eq!(set, 0, "TUNSETVNETHDRSZ");
    }
    let end = ifreq[..16].iter().position(|&b| b == 0).unwrap_or(16);
    let name = String::from_utf8(ifreq[..end].to_vec()).unwrap();
    (file.into(), name)
}

/// Bring `name` up, and give a packet socket on it for ETHERTYPE.
fn up_with_packet_socket(name: &str) -> OwnedFd {
    // SAFETY: socket() makes a new descriptor or fails.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    assert!(sock >= 0);
    // SAFETY: it is new and ours.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    let mut ifreq = [0u8; 40];
    ifreq[..name.len()].copy_from_slice(name.as_bytes());
    ifreq[16..18].copy_from_slice(&(libc::IFF_UP as i16).to_ne_bytes());
    // SAFETY: SIOCSIFFLAGS reads a struct ifreq.
    let set = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, ifreq.as_mut_ptr()) };
    assert_eq!(set, 0, "SIOCSIFFLAGS");
    let protocol = ETHERTYPE.to_be();
    // SAFETY: as above.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(protocol)) };
    assert!(raw >= 0, "a packet socket");
    // SAFETY: it is new and ours.
    let raw = unsafe { OwnedFd::from_raw_fd(raw) };
    let cname = std::ffi::CString::new(name).unwrap();
    // SAFETY: a NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    // SAFETY: sockaddr_ll is plain data; zeroes are a valid start.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = protocol;
    addr.sll_ifindex = index as i32;
    // SAFETY: `addr` is a sockaddr_ll of the length given.
    let bound = unsafe {
        libc::bind(
            raw.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(bound, 0, "bind");
    raw
}

/// An Ethernet frame of ETHERTYPE from `src` to `dst`.
fn ether(dst: [u8; 6], src: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend(src);
    f.extend(ETHERTYPE.to_be_bytes());
    f.extend(payload);
    f
}

#[test]
fn only_a_tap_with_the_virtio_1_header_is_taken() {
    in_own_netns(|| {
        let (good, _) = open(VNET_TAP, Some(12));
        assert!(Net::over_tap(good, MAC).is_ok());
        let (ten, _) = open(VNET_TAP, None);
        assert!(matches!(
            Net::over_tap(ten, MAC),
            Err(NetError::HeaderSize { header: 10, .. })
        ));
        let (plain, _) = open(libc::IFF_TAP | libc::IFF_NO_PI, Some(12));
        assert!(matches!(
            Net::over_tap(plain, MAC),
            Err(NetError::TapFlags { .. })
        ));
        let (tun, _) = open(
            libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_VNET_HDR,
            Some(12),
        );
        assert!(matches!(
            Net::over_tap(tun, MAC),
            Err(NetError::TapFlags { .. })
        ));
    });
}

#[test]
fn frames_cross_a_real_tap_both_ways() {
    in_own_netns(|| {
        let (tap, name) = open(VNET_TAP, Some(12));
        let host = up_with_packet_socket(&name);
        let mut dev = Net::over_tap(tap, MAC).unwrap();
        let mem = memory();
        let mut g = Guest::new(&mem);

        // The guest's frame reaches the host's stack as it was sent.
        let out = ether([0xff; 6], MAC, &frame(200, 1));
        g.offer_tx(0, &packet([0; HEADER_BYTES], &out));
        assert!(g.process(&mut dev, TX));
        let mut buf = vec![0u8; 4096];
        // SAFETY: `buf` is a live buffer of its length.
        let n = unsafe { libc::recv(host.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        assert_eq!(usize::try_from(n).ok(), Some(out.len()));
        assert!(
            buf[..out.len()] == out[..],
            "the frame as the guest sent it"
        );

        // The host's frame fills a receive buffer, behind the header the
        // device writes. The kernel's own frames (IPv6's) may come first.
        for k in 0..8 {
            g.offer_rx(k, 2048);
        }
        // Buffers given: the device now waits on the tap.
        g.process(&mut dev, RX);
        let back = ether(MAC, [2, 0, 0, 0, 0, 0x99], &frame(300, 2));
        // SAFETY: `back` is a live buffer of its length.
        let sent = unsafe { libc::send(host.as_raw_fd(), back.as_ptr().cast(), back.len(), 0) };
        assert_eq!(usize::try_from(sent).ok(), Some(back.len()));
        let deadline = Instant::now() + Duration::from_secs(5);
        let found = loop {
            if host_ready(&dev) {
                g.host_event(&mut dev);
            }
            let found = (0..g.rx.used_count()).find(|&n| {
                let (id, len) = g.rx.used(n);
                let at = RX_BUFS + u64::from(id) * 0x1_0000;
                len as usize == HEADER_BYTES + back.len()
                    && g.rx.read(at + HEADER_BYTES as u64, back.len()) == back
            });
            if found.is_some() || Instant::now() > deadline {
                break found;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let n = found.expect("the host's frame in a receive buffer");
        let at = RX_BUFS + u64::from(g.rx.used(n).0) * 0x1_0000;
        assert_eq!(g.rx.read(at, HEADER_BYTES), RX_HEADER);
    });
}
