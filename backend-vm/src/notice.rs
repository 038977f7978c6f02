//! A one-way flag with a file descriptor: a monitor's thread sets it (a
//! guest's `Parked` mark came), and the sandbox polls it beside the end of
//! that thread and the caller's signals.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::Arc;

use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

#[derive(Clone)]
pub struct Notice(Arc<EventFd>);

impl Notice {
    pub fn new() -> std::io::Result<Notice> {
        Ok(Notice(Arc::new(EventFd::new(EFD_NONBLOCK)?)))
    }

    /// Readable from now on.
    pub fn set(&self) {
        let _ = self.0.write(1);
    }

    /// Readable once set.
    pub fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the eventfd stays open as long as `self` does.
        unsafe { BorrowedFd::borrow_raw(self.0.as_raw_fd()) }
    }
}

impl AsFd for Notice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd()
    }
}

impl fmt::Debug for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Notice({})", self.0.as_raw_fd())
    }
}

#[cfg(test)]
mod tests {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

    use super::*;

    #[test]
    fn it_is_readable_once_set_from_another_thread() {
        let notice = Notice::new().unwrap();
        let ready = |n: &Notice| {
            let mut fds = [PollFd::new(n.fd(), PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::ZERO).unwrap() == 1
        };
        assert!(!ready(&notice));
        let setter = notice.clone();
        std::thread::spawn(move || setter.set()).join().unwrap();
        assert!(ready(&notice));
        assert!(ready(&notice), "it stays set");
    }
}
