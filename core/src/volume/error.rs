//! What can go wrong with volumes, and the in-use message that says who holds one.

use std::fmt;
use std::io;

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("invalid volume name {name:?}: {why}")]
    BadName { name: String, why: String },
    #[error("invalid size {given:?}: {why}")]
    BadSize { given: String, why: String },
    #[error("volume {name}: {size} bytes is too small; give a size of at least 8m")]
    TooSmall { name: String, size: u64 },
    #[error("volume {name}: {size} bytes is too large; give a size of at most 16t")]
    TooLarge { name: String, size: u64 },
    #[error("volume {0} exists; use it as it is, or remove it first with `isola volume rm {0}`")]
    Exists(String),
    #[error("volume {0} not found (`isola volume ls` lists volumes; `isola volume create {0}` makes it)")]
    NotFound(String),
    #[error("{}", in_use_message(.name, *.held, *.wanted))]
    InUse {
        name: String,
        /// How the current holders use it.
        held: Access,
        /// What this caller tried to do.
        wanted: Want,
    },
    #[error("mkfs.ext4 not found; install e2fsprogs (scripts/setup does)")]
    MkfsMissing,
    #[error("volume {name}: mkfs.ext4 failed ({status}): {stderr}")]
    Mkfs {
        name: String,
        status: String,
        stderr: String,
    },
    #[error(
        "volume {name}: {what}; the volume is damaged: remove it with `isola volume rm {name}`"
    )]
    Damaged { name: String, what: String },
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

/// How a volume is used by the sandboxes that hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    ReadOnly,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::ReadWrite => "read-write",
            Access::ReadOnly => "read-only",
        })
    }
}

/// What a caller needed the volume for when it found the volume in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Mount(Access),
    Remove,
}

pub(super) fn in_use_message(name: &str, held: Access, wanted: Want) -> String {
    let what = match (wanted, held) {
        (Want::Remove, _) => {
            return format!(
                "volume {name} is in use {held} by a sandbox; stop or remove that sandbox, then remove the volume"
            )
        }
        (Want::Mount(Access::ReadWrite), Access::ReadWrite) => {
            "only one sandbox at a time may mount a volume read-write: stop that sandbox first"
        }
        (Want::Mount(Access::ReadWrite), Access::ReadOnly) => {
            "it cannot be mounted read-write while another sandbox reads it: stop that sandbox, or mount the volume read-only (:ro)"
        }
        (Want::Mount(Access::ReadOnly), _) => {
            "it cannot be mounted read-only while another sandbox writes to it: stop that sandbox first"
        }
    };
    format!("volume {name} is in use {held} by another sandbox; {what}")
}

pub(super) fn io_ctx(context: impl Into<String>) -> impl FnOnce(io::Error) -> VolumeError {
    let context = context.into();
    move |source| VolumeError::Io { context, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_use_messages_say_what_to_do() {
        let rw = in_use_message("data", Access::ReadWrite, Want::Mount(Access::ReadWrite));
        assert!(rw.starts_with("volume data is in use read-write by another sandbox; "));
        let ro = in_use_message("data", Access::ReadOnly, Want::Mount(Access::ReadWrite));
        assert!(ro.contains("read-only (:ro)"), "{ro}");
        let rm = in_use_message("data", Access::ReadOnly, Want::Remove);
        assert!(rm.contains("then remove the volume"), "{rm}");
    }
}
