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
    globals::init_tracing(cli.globals.verbose, &["ureq", "ureq_proto", "rustls"]);
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
