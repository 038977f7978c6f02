//! isola-registry: `isola pull`, `push`, `login` and `logout`, which isola
//! hands over with its own arguments. A binary of its own so that the HTTP
//! and TLS code is not in the one every sandbox start executes.

mod args;
mod flags;
#[path = "../globals.rs"]
mod globals;
mod login;
#[allow(dead_code)] // the tables are isola's; sizes are shared
#[path = "../output.rs"]
mod output;
mod progress;
mod pull;
mod push;

use anyhow::{Context, Result};
use clap::Parser;
use isola_core::image::ImageStore;
use isola_core::Root;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use args::RegistryCommand;

#[derive(Parser, Debug)]
#[command(name = "isola", version, about = "isola's registry commands")]
struct Cli {
    #[command(flatten)]
    globals: globals::Globals,
    #[command(subcommand)]
    command: RegistryCommand,
}

fn main() {
    let cli = Cli::parse();
    init_tracing(cli.globals.verbose);
    if let Err(e) = run(&cli) {
        eprintln!("isola: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: &Cli) -> Result<()> {
    let store = || -> Result<ImageStore> {
        ImageStore::open(Root::new(&cli.globals.root))
            .with_context(|| format!("opening the store at {}", cli.globals.root.display()))
    };
    match &cli.command {
        RegistryCommand::Pull(a) => pull::run(&store()?, a),
        RegistryCommand::Push(a) => push::run(&store()?, a),
        RegistryCommand::Login(a) => login::login(a),
        RegistryCommand::Logout(a) => login::logout(a),
        RegistryCommand::FetchUrl(a) => {
            let opts = isola_core::registry::client::ClientOptions::new(
                isola_core::registry::authfile::AuthFiles::locate(None),
            );
            isola_core::registry::download::download(&a.url, &a.output, &opts)?;
            Ok(())
        }
    }
}

/// As isola's: -v debug, -vv trace, ISOLA_LOG=filter; the HTTP stack's own
/// per-request lines only when ISOLA_LOG asks for them.
fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let targets = std::env::var("ISOLA_LOG")
        .ok()
        .and_then(|f| f.parse::<Targets>().ok())
        .unwrap_or_else(|| {
            Targets::new()
                .with_default(level)
                .with_target("ureq", tracing::Level::INFO)
                .with_target("ureq_proto", tracing::Level::INFO)
                .with_target("rustls", tracing::Level::INFO)
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
