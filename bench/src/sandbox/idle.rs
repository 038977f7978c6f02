//! A sandbox left idle to be measured: started with the probe's `idle`, it
//! says when its workload runs, then waits to be told to stop.

use std::io::{BufRead, BufReader, Read};
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{error_line, spawn_piped, SandboxError};

/// A sandbox started with the probe's `idle`: it prints one JSON line when
/// its workload runs, then waits for SIGTERM.
pub struct Idle {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    stderr: mpsc::Receiver<Vec<u8>>,
}

impl Idle {
    pub fn start(argv: &[String]) -> Result<Idle, SandboxError> {
        let mut child = spawn_piped(argv)?;
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().ok_or(SandboxError::NoPipe("stdout"))?;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        let (etx, stderr) = mpsc::channel();
        let mut err = child.stderr.take().ok_or(SandboxError::NoPipe("stderr"))?;
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            let _ = etx.send(buf);
        });
        Ok(Idle {
            child,
            lines,
            stderr,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for the ready line: when it came, and what it said.
    pub fn ready(
        &mut self,
        timeout: Duration,
    ) -> Result<(Instant, serde_json::Value), SandboxError> {
        match self.lines.recv_timeout(timeout) {
            Ok((at, line)) => match serde_json::from_str(&line) {
                Ok(v) => Ok((at, v)),
                Err(source) => Err(SandboxError::IdleLine { line, source }),
            },
            Err(mpsc::RecvTimeoutError::Timeout) => Err(SandboxError::NotReady(timeout)),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().map_err(SandboxError::Wait)?;
                let err = self
                    .stderr
                    .recv_timeout(Duration::from_secs(5))
                    .unwrap_or_default();
                Err(SandboxError::Failed(error_line(&err, status)))
            }
        }
    }

    /// SIGTERM: isola (or the OCI runtime) passes it to the workload,
    /// which exits.
    pub fn terminate(&self) {
        // SAFETY: kill only sends a signal to our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
    }

    /// [`Idle::terminate`], then [`Idle::wait`].
    pub fn stop(self, grace: Duration) {
        self.terminate();
        self.wait(grace);
    }

    /// Wait for the end; SIGKILL after `grace`.
    pub fn wait(mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
