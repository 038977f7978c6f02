//! isola's side of the agent channel to isola-init (the protocol is
//! `isola_guest_spec::agent`): a client over the channel's unix socket
//! whose thread moves every exec'd process's streams, and those processes
//! as core's `Execd`.

mod client;
mod dial;
mod error;
mod execd;
mod host_pty;
mod pump;
mod shared;
#[cfg(test)]
mod tests;

pub use client::Client;
pub use dial::Dial;
pub use error::AgentError;
pub use execd::{start, VmExecd};
