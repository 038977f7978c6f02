//! Input for a UART's receive side (the caller's stdin on COM1, isola-init's
//! control channel on COM2), read from the start but held until the guest
//! can take it.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::devices::Uart;

/// Copy `input` into `uart`'s receive FIFO once `open`, waiting while the
/// guest has not drained it. `input` is read from the start, so that its
/// writer is never held up by a guest that cannot take it yet. The reading
/// thread ends with the input (or with isola); the other ends with the
/// input or with the VM, whichever is first.
pub fn feed(input: Box<dyn Read + Send>, uart: &Arc<Mutex<Uart>>, open: Arc<AtomicBool>) {
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let mut input = input;
    std::thread::spawn(move || {
        crate::jail::thread_start(crate::jail::ThreadKind::Device);
        let mut buf = [0u8; 64];
        loop {
            match input.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    // Not an owner: a VM that ended drops its UARTs, and this thread sees it.
    let uart = Arc::downgrade(uart);
    std::thread::spawn(move || {
        crate::jail::thread_start(crate::jail::ThreadKind::Device);
        while !open.load(Ordering::SeqCst) {
            if uart.strong_count() == 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        for chunk in rx {
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let Some(uart) = uart.upgrade() else {
                    return;
                };
                let taken = match uart.lock() {
                    Ok(mut u) => u.enqueue_raw_bytes(rest).unwrap_or(0),
                    Err(_) => return,
                };
                drop(uart);
                rest = &rest[taken..];
                if !rest.is_empty() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    });
}
