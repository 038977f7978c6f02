//! What can go wrong on the agent channel, each in a sentence for the user.

use std::path::PathBuf;

use isola_guest_spec::agent::{FrameError, VersionMismatch};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot connect to the guest's agent channel at {}", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the guest's agent did not answer within {0} s (is isola-init up, and its workload running?)")]
    Timeout(u64),
    #[error("the monitor refused the connection to the guest's agent port: {0:?}")]
    HybridRefused(String),
    #[error(transparent)]
    Version(#[from] VersionMismatch),
    #[error("the guest's agent channel is corrupt")]
    Frame(#[source] FrameError),
    #[error("the guest's agent channel closed: the guest has ended")]
    Closed,
    #[error("the guest could not start the process: {0}")]
    Refused(String),
    #[error("on the guest's agent channel")]
    Io(#[source] std::io::Error),
    #[error("cannot open a terminal for the process")]
    Pty(#[source] nix::Error),
}
