//! One module per subcommand; each turns its arguments into library calls.

pub(crate) mod bench;
mod du;
mod export;
mod history;
mod image_default;
mod images;
mod import;
mod info;
mod inspect;
pub(crate) mod kernel;
mod ps;
mod rmi;
mod run;
mod run_flags;
mod run_spec;
mod tag;
pub(crate) mod vm;
pub(crate) mod volume;

use anyhow::{Context, Result};
use isola_core::image::ImageStore;
use isola_core::Root;

use crate::cli::{Cli, Command, ImageCommand};

/// Run the command; the exit code isola should end with.
pub fn run(cli: Cli) -> Result<i32> {
    let store = || -> Result<ImageStore> {
        ImageStore::open(Root::new(&cli.globals.root))
            .with_context(|| format!("opening the store at {}", cli.globals.root.display()))
    };
    let root = Root::new(&cli.globals.root);
    let done = match &cli.command {
        Command::Run(args) => return run::run(&root, args),
        Command::Images(j) => images::run(&store()?, j.json),
        Command::Import(args) => import::run(&store()?, args),
        Command::Inspect { image } => inspect::run(&store()?, image),
        Command::History { image, json } => history::run(&store()?, image, json.json),
        Command::Tag { source, target } => tag::run(&store()?, source, target),
        Command::Rmi { images, force } => rmi::run(&store()?, images, *force),
        Command::Du(j) => du::run(&store()?, j.json),
        Command::Export { image, dir } => export::run(&store()?, image, dir),
        Command::Image(ImageCommand::Default { rebuild }) => {
            image_default::run(&store()?, *rebuild)
        }
        Command::Volume(cmd) => volume::run(&root, cmd),
        Command::Kernel(cmd) => kernel::run(&root, cmd),
        Command::Ps(j) => ps::ps(&root, j.json),
        Command::Rm { ids } => ps::rm(&root, ids),
        Command::Prune => ps::prune(&root),
        Command::Bench(cmd) => bench::run(&root, cmd),
        Command::Info(j) => info::run(&cli.globals.root, j.json),
        Command::Vm(cmd) => return vm::run(cmd),
    };
    done.map(|()| 0)
}
