//! The CLI's side of a shim's control socket.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use anyhow::{bail, Context, Result};
use isola_core::instance::State;
use isola_core::Root;
use nix::errno::Errno;
use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};

use super::wire::{self, Request, Response};

pub struct Conn {
    fd: OwnedFd,
    id: String,
}

/// A connection to the shim of `state`'s sandbox; `None` when it has none
/// (it ended, or was run in the foreground).
pub fn connect_to(root: &Root, state: &State) -> Result<Option<Conn>> {
    let path = super::socket_path(&root.dir().join("instances").join(&state.id));
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("making a socket")?;
    let addr = UnixAddr::new(&path).context("the control socket's path")?;
    match connect(fd.as_raw_fd(), &addr) {
        Ok(()) => Ok(Some(Conn {
            fd,
            id: state.id.clone(),
        })),
        Err(Errno::ENOENT | Errno::ECONNREFUSED) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("connecting to {}", path.display())),
    }
}

/// As [`connect_to`], with "not running" as the error for no shim.
pub fn connect_running(root: &Root, state: &State) -> Result<Conn> {
    match connect_to(root, state)? {
        Some(c) => Ok(c),
        None => bail!("sandbox {} is not running", state.id),
    }
}

impl Conn {
    pub fn send(&self, request: &Request, fds: &[RawFd]) -> Result<()> {
        wire::send(self.fd.as_raw_fd(), request, fds)
            .with_context(|| format!("asking the shim of sandbox {}", self.id))
    }

    /// The next answer and its descriptors.
    pub fn recv(&self) -> Result<(Response, Vec<OwnedFd>)> {
        match wire::recv::<Response>(self.fd.as_raw_fd())
            .with_context(|| format!("hearing from the shim of sandbox {}", self.id))?
        {
            Some(answer) => Ok(answer),
            None => bail!("the shim of sandbox {} went away", self.id),
        }
    }

    /// Send `request`; its answer, an `Error` turned into one.
    pub fn ask(&self, request: &Request, fds: &[RawFd]) -> Result<(Response, Vec<OwnedFd>)> {
        self.send(request, fds)?;
        match self.recv()? {
            (Response::Error { message }, _) => bail!("{message}"),
            answer => Ok(answer),
        }
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
