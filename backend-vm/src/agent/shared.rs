//! What the agent client's callers and its pump thread share: the frames
//! to send, each session as its caller sees it, the descriptors the pump
//! takes over, under one lock with a condition and a wake-up eventfd.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Condvar, Mutex, MutexGuard};

use isola_guest_spec::agent::{GuestStats, Session, Status};
use vmm_sys_util::eventfd::EventFd;

use crate::notice::Notice;

/// One process's descriptors on this side.
pub(crate) struct Io {
    /// What its stdin reads from, if it reads.
    pub input: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// The host pty's slave, whose window size is passed on.
    pub terminal: Option<OwnedFd>,
    /// A terminal's input has no end to pass on (its master closing is
    /// not the end of the process's input).
    pub input_ends: bool,
    pub size: Option<(u16, u16)>,
    /// A `Stdin` frame is unanswered.
    pub in_flight: bool,
}

/// What callers and the pump share.
pub(crate) struct Shared {
    pub(super) state: Mutex<State>,
    pub(super) changed: Condvar,
    /// Written when the pump has something new to do.
    pub wake: EventFd,
}

#[derive(Default)]
pub(crate) struct State {
    /// Frames the pump is to send.
    pub out: Vec<u8>,
    pub(super) next: Session,
    pub sessions: HashMap<Session, Seen>,
    /// Sessions' descriptors for the pump to take over.
    pub new_io: Vec<(Session, Io)>,
    /// Stats asked for, by session number, and the guest's answer once in.
    pub stats_asked: HashMap<Session, Option<GuestStats>>,
    /// The channel is gone (the guest ended, or it broke).
    pub closed: bool,
    pub stop: bool,
}

/// A session as its caller sees it.
pub(crate) struct Seen {
    pub started: Option<Result<(), String>>,
    pub status: Option<Status>,
    /// Set when it has ended, or the channel closed.
    pub ended: Notice,
    /// Its handle was dropped unwaited: forgotten at its end.
    pub abandoned: bool,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A pump that panicked leaves consistent data: plain fields.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn wake_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        // SAFETY: the eventfd lives as long as `self`.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(std::os::fd::AsRawFd::as_raw_fd(&self.wake)) }
    }

    pub(crate) fn notify(&self) {
        self.changed.notify_all();
    }
}
