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
    globals::init_tracing(cli.globals.verbose, &[]);
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
