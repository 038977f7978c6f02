//! isola-build: `isola build`, which isola hands over with its own
//! arguments. A binary of its own so that the build's code (the Dockerfile
//! parser, archive formats, the layer writer) is not in the one every
//! sandbox start executes.

mod args;
#[allow(dead_code, unused_imports)] // the VM tools are isola's; a build uses the backends
#[path = "../backends.rs"]
mod backends;
mod command;
mod driver;
#[path = "../globals.rs"]
mod globals;

use clap::Parser;
use isola_core::Root;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Parser, Debug)]
#[command(name = "isola", version, about = "isola's build command")]
struct Cli {
    #[command(flatten)]
    globals: globals::Globals,
    #[command(subcommand)]
    command: BuildCommand,
}

#[derive(clap::Subcommand, Debug)]
enum BuildCommand {
    /// Build an image from a Dockerfile; RUN steps run in a sandbox
    Build(Box<args::BuildArgs>),
}

fn main() {
    let cli = Cli::parse();
    init_tracing(cli.globals.verbose);
    let root = Root::new(&cli.globals.root);
    let BuildCommand::Build(args) = &cli.command;
    match command::run(&root, args) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // As docker's: 125 when the build itself failed.
            eprintln!("isola: {e:#}");
            std::process::exit(125);
        }
    }
}

/// As isola's: -v debug, -vv trace, ISOLA_LOG=filter.
fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let targets = std::env::var("ISOLA_LOG")
        .ok()
        .and_then(|f| f.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(level));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false),
        )
        .with(targets)
        .init();
}
