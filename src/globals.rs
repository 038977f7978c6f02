//! The options every isola command takes, and the logging they turn on,
//! shared by the `isola`, `isola-registry` and `isola-build` binaries.

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

/// As isola's: -v debug, -vv trace, ISOLA_LOG=filter overrides; the
/// `chatty` targets (a library's own per-request lines) stay at INFO
/// unless ISOLA_LOG names them. For the helper binaries; isola's own main
/// also serves the shim's log.
#[allow(dead_code)] // isola's main sets up its own
pub fn init_tracing(verbose: u8, chatty: &[&str]) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = match verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let targets = std::env::var("ISOLA_LOG")
        .ok()
        .and_then(|f| f.parse::<Targets>().ok())
        .unwrap_or_else(|| {
            chatty
                .iter()
                .fold(Targets::new().with_default(level), |t, c| {
                    t.with_target(*c, tracing::Level::INFO)
                })
        });
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false),
        )
        .with(targets)
        .init();
}
