//! The device thread: waits on every queue's ioeventfd (KVM signals it
//! when the guest writes QueueNotify, with no exit to userspace) and on the
//! devices' host sides (a vsock's sockets), and serves them, so the vCPUs
//! never block on a device's I/O.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::served::Served;

/// What wakes the device thread for a device.
pub enum Wake {
    /// A queue's notification: the eventfd KVM signals.
    Queue { fd: EventFd, queue: u32 },
    /// The device's host side (see `VirtioDevice::host_fd`), owned by
    /// the device.
    Host(RawFd),
}

pub struct Notifier {
    pub wake: Wake,
    pub device: Arc<Mutex<Served>>,
}

impl Notifier {
    fn fd(&self) -> RawFd {
        match &self.wake {
            Wake::Queue { fd, .. } => fd.as_raw_fd(),
            Wake::Host(fd) => *fd,
        }
    }
}

/// The running device thread; [`EventLoop::stop`] ends and joins it, after
/// a last pass over the queues (see `last_pass`).
pub struct EventLoop {
    stop: EventFd,
    thread: JoinHandle<()>,
}

impl EventLoop {
    pub fn start(notifiers: Vec<Notifier>) -> io::Result<EventLoop> {
        let stop = EventFd::new(EFD_NONBLOCK)?;
        let epoll = Epoll::new()?;
        let stop_token = notifiers.len() as u64;
        for (token, n) in notifiers.iter().enumerate() {
            epoll.ctl(
                ControlOperation::Add,
                n.fd(),
                EpollEvent::new(EventSet::IN, token as u64),
            )?;
        }
        epoll.ctl(
            ControlOperation::Add,
            stop.as_raw_fd(),
            EpollEvent::new(EventSet::IN, stop_token),
        )?;
        // `stop` stays open in the EventLoop as long as the thread runs.
        let thread = std::thread::Builder::new()
            .name("isola-virtio".into())
            .spawn(move || {
                crate::jail::thread_start(crate::jail::ThreadKind::Device);
                serve(&epoll, &notifiers, stop_token)
            })?;
        Ok(EventLoop { stop, thread })
    }

    pub fn stop(self) {
        let _ = self.stop.write(1);
        let _ = self.thread.join();
    }
}

fn serve(epoll: &Epoll, notifiers: &[Notifier], stop_token: u64) {
    let mut events = vec![EpollEvent::default(); notifiers.len() + 1];
    loop {
        let ready = match epoll.wait(-1, &mut events) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::error!("virtio device thread: epoll_wait: {e}");
                return;
            }
        };
        for event in &events[..ready] {
            let token = event.data();
            if token == stop_token {
                last_pass(notifiers);
                return;
            }
            let Some(n) = usize::try_from(token).ok().and_then(|t| notifiers.get(t)) else {
                continue;
            };
            let Ok(mut device) = n.device.lock() else {
                // A panic left the device half-changed; its fds would stay
                // ready and spin this loop.
                tracing::error!("virtio device thread: a device is broken; no more device I/O");
                return;
            };
            match &n.wake {
                Wake::Queue { fd, queue } => {
                    // Reading clears the count: notifications that came
                    // while the queue was served are covered by this pass.
                    let _ = fd.read();
                    device.notify(*queue);
                }
                Wake::Host(_) => device.host_event(),
            }
        }
    }
}

/// Serve every queue once more after the vCPUs stopped: what the guest
/// queued before its end (the output a workload wrote just before it
/// exited, whose notification may still be unread) is not lost.
fn last_pass(notifiers: &[Notifier]) {
    for n in notifiers {
        if let Wake::Queue { queue, .. } = &n.wake {
            if let Ok(mut device) = n.device.lock() {
                device.notify(*queue);
            }
        }
    }
}
