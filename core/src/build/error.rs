//! A build's errors: each names the Dockerfile line (or the flag) it is
//! about and says what to do; the cause is chained as the source.

use std::io;

use crate::image::ImageError;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Parse(#[from] super::dockerfile::ParseError),
    /// A step cannot be carried out as written.
    #[error("{at}: {what}")]
    Step { at: String, what: String },
    /// A step failed because of something below it.
    #[error("{at}: {what}")]
    StepCaused {
        at: String,
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A RUN's command exited with a failure.
    #[error("{at}: the command `{command}` {how}; nothing was tagged")]
    RunFailed {
        at: String,
        command: String,
        code: i32,
        /// "exited with code 7", "was killed by the OOM killer ...".
        how: String,
    },
    #[error("the base image {image:?} of {at} is not in the store; run `isola pull {image}` first, or build with --pull")]
    BaseMissing { at: String, image: String },
    #[error("{0}")]
    Usage(String),
    /// Ctrl-C or SIGTERM: the build stopped, nothing tagged.
    #[error("interrupted; nothing was tagged")]
    Interrupted,
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl BuildError {
    /// The exit code `isola build` ends with: the RUN's own when a RUN
    /// failed (as docker), 125 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            BuildError::RunFailed { code, .. } if *code != 0 => *code,
            BuildError::Interrupted => 130,
            _ => 125,
        }
    }
}

pub(crate) fn io_ctx(context: impl Into<String>) -> impl FnOnce(io::Error) -> BuildError {
    let context = context.into();
    move |source| BuildError::Io { context, source }
}
