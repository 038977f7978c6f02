//! What can go wrong writing a guest root filesystem archive, from merging
//! the image's layers to writing the newc stream.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("isola-init not found at {}: build it with make (it is built static for the guest)", .0.display())]
    InitMissing(PathBuf),
    #[error("the layer {} is not a directory; the image store is damaged: remove the image with `isola rmi` and import it again", .0.display())]
    NotALayer(PathBuf),
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot copy {} into the initramfs", path.display())]
    Copy {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} cannot go into an initramfs: {why}")]
    Unsupported { path: String, why: String },
    #[error("cannot write the initramfs")]
    Write(#[source] io::Error),
}
