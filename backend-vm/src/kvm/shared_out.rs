//! One output of the guest's written from two devices: COM1's stream and
//! the virtio-console port that takes its place for the workload share the
//! caller's stdout (COM2's and the other port the stderr), each through
//! its own handle.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct SharedOut(Arc<Mutex<Box<dyn Write + Send>>>);

impl SharedOut {
    pub fn new(out: Box<dyn Write + Send>) -> SharedOut {
        SharedOut(Arc::new(Mutex::new(out)))
    }
}

impl Write for SharedOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.lock() {
            Ok(mut out) => out.write(buf),
            // A writer a panic left half-written: the output is lost, the
            // guest goes on.
            Err(_) => Ok(buf.len()),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self.0.lock() {
            Ok(mut out) => out.write_all(buf),
            Err(_) => Ok(()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.0.lock() {
            Ok(mut out) => out.flush(),
            Err(_) => Ok(()),
        }
    }
}
