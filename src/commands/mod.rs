//! One module per subcommand; each turns its arguments into library calls.

mod attach;
pub(crate) mod bench;
mod du;
mod exec;
mod export;
mod handoff;
mod history;
mod image_default;
mod images;
mod import;
mod info;
mod inspect;
pub(crate) mod kernel;
mod lifecycle;
mod logs;
pub(crate) mod network;
mod ps;
mod relay;
mod rmi;
mod run;
pub(crate) mod run_flags;
pub(crate) mod run_spec;
mod tag;
mod top;
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
    let verbose = cli.globals.verbose;
    let done = match &cli.command {
        Command::Run(args) if args.detach => return lifecycle::create(&root, true, verbose),
        Command::Run(args) => return run::run(&root, args),
        Command::Create(_) => return lifecycle::create(&root, false, verbose),
        Command::Start {
            attach,
            interactive,
            ids,
        } => return lifecycle::start(&root, ids, *attach, *interactive, verbose),
        Command::Stop { time, ids } => return lifecycle::stop(&root, ids, *time),
        Command::Restart { time, ids } => return lifecycle::restart(&root, ids, *time, verbose),
        Command::Kill { signal, ids } => return lifecycle::kill(&root, ids, signal),
        Command::Wait { ids } => return lifecycle::wait(&root, ids),
        Command::Logs(args) => return logs::logs(&root, args),
        Command::Attach { no_stdin, id } => {
            let state = isola_core::instance::find(&root, id)?;
            return attach::attach(&root, &state, !no_stdin, None);
        }
        Command::Exec(args) => return exec::exec(&root, args),
        Command::Top { id } => return top::top(&root, id),
        Command::Port { id, port } => network::port(&root, id, port.as_deref()),
        Command::Stats {
            no_stream,
            json,
            ids,
        } => return top::stats(&root, ids, *no_stream, *json),
        Command::Shim(args) => return Ok(crate::shim::main(&root, args)),
        Command::Images(a) => images::run(&store()?, a.json.json, a.digests),
        Command::Registry(_) => {
            return handoff::exec("isola-registry", "pull, push, login and logout")
        }
        Command::Build(_) => return handoff::exec("isola-build", "builds"),
        Command::Import(args) => import::run(&store()?, args),
        Command::Inspect { image } => match isola_core::instance::find(&root, image) {
            Ok(state) => inspect::sandbox(&root, &state),
            Err(_) => inspect::run(&store()?, image),
        },
        Command::History { image, json } => history::run(&store()?, image, json.json),
        Command::Tag { source, target } => tag::run(&store()?, source, target),
        Command::Rmi { images, force } => rmi::run(&store()?, images, *force),
        Command::Du(j) => du::run(&store()?, j.json),
        Command::Export { image, dir } => export::run(&store()?, image, dir),
        Command::Image(ImageCommand::Default { rebuild }) => {
            image_default::run(&store()?, *rebuild)
        }
        Command::Volume(cmd) => volume::run(&root, cmd),
        Command::Network(cmd) => network::run(&root, cmd),
        Command::Kernel(cmd) => kernel::run(&root, cmd),
        Command::Ps(args) => ps::ps(&root, args),
        Command::Rm { ids, force, .. } => return ps::rm(&root, ids, *force),
        Command::Prune => ps::prune(&root),
        Command::Bench(cmd) => bench::run(&root, cmd),
        Command::Info(j) => info::run(&cli.globals.root, j.json),
        Command::Vm(cmd) => return vm::run(cmd),
    };
    done.map(|()| 0)
}
