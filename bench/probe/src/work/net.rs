//! TCP to a peer the benchmark serves (bench/src/net_peer.rs): a stream's
//! throughput and a one-byte round trip's rate, from wherever the probe
//! runs (the host on 127.0.0.1, a sandbox through its network's bridge).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::measure;

/// What the first byte asks of the peer.
pub const STREAM: u8 = b'S';
pub const ROUND_TRIP: u8 = b'R';

pub const CHUNK_MIB: f64 = 1.0 / 16.0;
const CHUNK: usize = 64 << 10;

fn connect(peer: SocketAddr, mode: u8) -> io::Result<TcpStream> {
    let mut s = TcpStream::connect_timeout(&peer, Duration::from_secs(5))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(&[mode])?;
    Ok(s)
}

/// 64 KiB writes for `time`, then the peer's count of what it read: the
/// rate is of data received, over the time until the peer had it all.
pub fn stream(time: Duration, peer: SocketAddr) -> io::Result<(u64, f64)> {
    let mut s = connect(peer, STREAM)?;
    let chunk = vec![0x5a; CHUNK];
    let start = Instant::now();
    while start.elapsed() < time {
        s.write_all(&chunk)?;
    }
    s.shutdown(std::net::Shutdown::Write)?;
    let mut total = [0u8; 8];
    s.read_exact(&mut total)?;
    Ok((
        u64::from_le_bytes(total) / CHUNK as u64,
        start.elapsed().as_secs_f64(),
    ))
}

/// A byte there and back, as often as it goes.
pub fn round_trip(time: Duration, peer: SocketAddr) -> io::Result<(u64, f64)> {
    let mut s = connect(peer, ROUND_TRIP)?;
    let mut byte = [1u8];
    measure(time, || {
        s.write_all(&byte)?;
        s.read_exact(&mut byte)?;
        Ok(1)
    })
}
