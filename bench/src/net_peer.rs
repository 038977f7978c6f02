//! The host's end of the TCP workloads (`isola-probe work tcp_stream
//! tcp_rr --peer`): a server on one address that counts a stream's bytes
//! or echoes single bytes, for as long as the benchmark needs it. The mode
//! bytes are the probe's (bench/probe/src/work/net.rs).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

const STREAM: u8 = b'S';
const ROUND_TRIP: u8 = b'R';

/// A server on `addr`, stopped when dropped.
pub struct Peer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Peer {
    /// Listen on `ip`, on a port the kernel picks.
    pub fn start(ip: Ipv4Addr) -> std::io::Result<Peer> {
        let listener = TcpListener::bind((ip, 0))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(c) = conn {
                    std::thread::spawn(move || serve(c));
                }
            }
        });
        Ok(Peer {
            addr,
            stop,
            thread: Some(thread),
        })
    }
}

fn serve(mut c: TcpStream) -> std::io::Result<()> {
    c.set_nodelay(true)?;
    let mut mode = [0u8];
    c.read_exact(&mut mode)?;
    match mode[0] {
        STREAM => {
            let mut buf = vec![0u8; 1 << 18];
            let mut total = 0u64;
            loop {
                let n = c.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            c.write_all(&total.to_le_bytes())
        }
        ROUND_TRIP => {
            let mut byte = [0u8];
            while c.read(&mut byte)? == 1 {
                c.write_all(&byte)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
