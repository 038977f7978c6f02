//! The options every isola command takes, shared by the `isola` and
//! `isola-registry` binaries.

use std::path::PathBuf;

/// The options every subcommand takes.
#[derive(clap::Args, Debug)]
pub struct Globals {
    /// State directory (images, layers, sandboxes)
    #[arg(long, global = true, env = "ISOLA_ROOT", default_value = isola_core::root::DEFAULT_ROOT, value_name = "DIR")]
    pub root: PathBuf,
    /// Show what isola does (-v debug, -vv trace), given before the command
    /// (`isola -v run ...`: after it, -v is run's --volume); ISOLA_LOG=filter overrides
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}
