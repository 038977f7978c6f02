//! isola's KVM monitor as a process of its own, jailed: isola starts
//! isola-vmm with the guest's descriptors and a config ([`parent`]),
//! which enters its jail, builds the VM and runs it ([`child`]), and
//! reports its marks and its end on a pipe ([`wire`]).

mod binary;
pub mod child;
pub mod parent;
mod spawn;
pub mod wire;

use std::path::PathBuf;

use crate::jail::ThreadKind;

/// The uid and gid the monitor runs as when `ISOLA_VMM_USER` names none:
/// far above any account's or a container's subordinate range, so that
/// nothing on the host is theirs.
pub const DEFAULT_USER: (u32, u32) = (4_000_000_000, 4_000_000_000);

#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    #[error("ISOLA_VMM names {}, which is not a file", .0.display())]
    NotAFile(PathBuf),
    #[error("cannot find isola's own binary")]
    OwnBinary(#[source] std::io::Error),
    #[error("isola-vmm (isola's VM monitor) is not at {}: build it with `make release`, or name it with ISOLA_VMM", .0.display())]
    Missing(PathBuf),
    #[error("ISOLA_VMM_USER is {0:?}: give UID:GID, two numbers other than 0")]
    User(String),
    #[error("the guest's network card has no tap to give the VM monitor")]
    NoTap,
    #[error("an argument for the VM monitor holds a NUL byte")]
    Nul,
    #[error("cannot make the VM monitor's {what}")]
    Setup {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the VM monitor process")]
    Clone(#[source] nix::Error),
    #[error("the VM monitor was killed by its seccomp filter: {} made syscall {nr}, outside its allowed set", kind.map_or("one of its threads", ThreadKind::described))]
    Seccomp { kind: Option<ThreadKind>, nr: i64 },
    /// The monitor's own sentence (it could not build or confine the VM).
    #[error("{0}")]
    Failed(String),
    #[error("the VM monitor ended without saying how the guest ended ({0})")]
    Died(String),
}
