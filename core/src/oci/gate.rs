//! The start fifo: `create` leaves the container's process (a container's
//! init, a microVM's keeper) blocked reading it, and `start` writes it,
//! each from a process of its own. Opened read-write by the waiting side
//! (so that opening never blocks), written non-blocking by `start` (so a
//! waiter that died is ENXIO at once, never a hang).

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::record::START_FIFO;
use super::runtime::RuntimeError;

/// Makes the fifo in `state_dir` and opens it for the waiting side.
pub fn make(state_dir: &Path) -> Result<OwnedFd, RuntimeError> {
    let path = state_dir.join(START_FIFO);
    nix::unistd::mkfifo(&path, Mode::from_bits_truncate(0o600))
        .map_err(|e| RuntimeError::step("making the start fifo", e))?;
    nix::fcntl::open(&path, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| RuntimeError::step("opening the start fifo", e))
}

/// Blocks until `start`; false if the fifo failed instead.
pub fn wait(fd: &OwnedFd) -> bool {
    let mut byte = [0u8; 1];
    loop {
        match nix::unistd::read(fd.as_fd(), &mut byte) {
            Ok(1) => return true,
            Err(Errno::EINTR) => continue,
            _ => return false,
        }
    }
}

/// `start`: lets the waiting process go, then removes the fifo (its
/// absence is what tells `state` the container is no longer "created").
pub fn release(state_dir: &Path, id: &str) -> Result<(), RuntimeError> {
    let path = state_dir.join(START_FIFO);
    let fd = match nix::fcntl::open(
        &path,
        OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => {
            return Err(RuntimeError::State(format!(
                "container {id} was started already"
            )))
        }
        Err(Errno::ENXIO) => {
            return Err(RuntimeError::State(format!(
                "container {id} cannot start: its process has exited"
            )))
        }
        Err(e) => return Err(RuntimeError::step("opening the start fifo", e)),
    };
    nix::unistd::write(&fd, b"0").map_err(|e| RuntimeError::step("writing the start fifo", e))?;
    std::fs::remove_file(&path).map_err(|e| RuntimeError::step("removing the start fifo", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiter_is_released_once_and_a_dead_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let fd = make(dir.path()).unwrap();
        release(dir.path(), "c").unwrap();
        assert!(wait(&fd));
        let err = release(dir.path(), "c").unwrap_err().to_string();
        assert!(err.contains("started already"), "{err}");
        let fd = make(dir.path()).unwrap();
        drop(fd);
        let err = release(dir.path(), "c").unwrap_err().to_string();
        assert!(err.contains("has exited"), "{err}");
    }
}
