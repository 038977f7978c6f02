//! Reaching the guest's agent: a unix socket that is the channel itself
//! (QEMU's virtio-serial chardev), or one in front of a hybrid vsock
//! device, where `CONNECT <port>` picks the guest's port first (as
//! Firecracker's and Cloud Hypervisor's devices take it).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::AgentError;

/// How the agent is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dial {
    /// The socket carries the channel's bytes as they are.
    Socket(PathBuf),
    /// A hybrid vsock device's socket, and the guest port to ask for.
    HybridVsock { socket: PathBuf, port: u32 },
}

/// The longest answer line a hybrid vsock device gives (`OK <port>\n`).
const ANSWER_MAX: usize = 64;

impl Dial {
    pub fn path(&self) -> &Path {
        match self {
            Dial::Socket(p) | Dial::HybridVsock { socket: p, .. } => p,
        }
    }

    /// A connected stream, retried until `deadline` while the monitor has
    /// not made its socket yet.
    pub fn connect(&self, deadline: Instant) -> Result<UnixStream, AgentError> {
        let path = self.path();
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e)
                    if Instant::now() < deadline
                        && matches!(
                            e.kind(),
                            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                        ) =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(source) => {
                    return Err(AgentError::Connect {
                        path: path.to_path_buf(),
                        source,
                    })
                }
            }
        };
        if let Dial::HybridVsock { port, .. } = self {
            hybrid_connect(&stream, *port, deadline)?;
        }
        Ok(stream)
    }
}

/// `CONNECT <port>\n`, answered `OK <host port>\n`; read a byte at a time
/// so that nothing of the channel after it is taken.
fn hybrid_connect(mut stream: &UnixStream, port: u32, deadline: Instant) -> Result<(), AgentError> {
    let left = deadline.saturating_duration_since(Instant::now());
    stream
        .set_read_timeout(Some(left.max(Duration::from_millis(1))))
        .map_err(AgentError::Io)?;
    stream
        .write_all(format!("CONNECT {port}\n").as_bytes())
        .map_err(AgentError::Io)?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < ANSWER_MAX {
        match stream.read(&mut byte) {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => {
                let text = String::from_utf8_lossy(&line).into_owned();
                return if text.starts_with("OK ") {
                    Ok(())
                } else {
                    Err(AgentError::HybridRefused(text))
                };
            }
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(AgentError::Timeout(left.as_secs()))
            }
            Err(e) => return Err(AgentError::Io(e)),
        }
    }
    Err(AgentError::HybridRefused(
        String::from_utf8_lossy(&line).into_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::os::unix::net::UnixListener;

    #[test]
    fn a_hybrid_vsock_device_is_asked_for_the_port_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let device = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut line = String::new();
            std::io::BufReader::new(&s).read_line(&mut line).unwrap();
            (&s).write_all(b"OK 1073741824\nchannel").unwrap();
            line
        });
        let dial = Dial::HybridVsock {
            socket: path,
            port: 1024,
        };
        let mut s = dial
            .connect(Instant::now() + Duration::from_secs(5))
            .unwrap();
        assert_eq!(device.join().unwrap(), "CONNECT 1024\n");
        let mut rest = String::new();
        s.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "channel");
    }

    #[test]
    fn a_missing_socket_is_waited_for_until_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let dial = Dial::Socket(dir.path().join("none.sock"));
        let e = dial
            .connect(Instant::now() + Duration::from_millis(50))
            .unwrap_err();
        assert!(e.to_string().contains("none.sock"), "{e}");
    }
}
