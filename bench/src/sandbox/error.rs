//! Why the harness could not run a command on a subject, or what the
//! command said when it failed.

use std::io;
use std::time::Duration;

use crate::bundle::BundleError;

/// Why a command could not be run on a subject, or what it said when it
/// failed. Its text (with its causes) is what results.json records.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The program could not be started.
    #[error("{program}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    /// It ran and failed: its own first error line, else its status.
    #[error("{0}")]
    Failed(String),
    /// It printed something else than JSON. The parser's complaint comes
    /// before what was printed, so it is part of the sentence.
    #[error("{command} printed no JSON ({parse}): {printed:?}")]
    NoJson {
        command: String,
        printed: String,
        parse: serde_json::Error,
    },
    #[error("the idle probe printed {line:?}")]
    IdleLine {
        line: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("not running after {} s", .0.as_secs())]
    NotReady(Duration),
    #[error("no {0} pipe")]
    NoPipe(&'static str),
    #[error(transparent)]
    Wait(io::Error),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("not an isola sandbox")]
    NotIsola,
}
