//! isola-runtime: an OCI runtime with runc's command line, so containerd
//! (`io.containerd.runc.v2` with its BinaryName) and so Kubernetes, by a
//! RuntimeClass, run bundles through isola; the annotation
//! `io.isola.backend=vm` picks a microVM for the same bundle.

#[allow(dead_code, unused_imports)] // isola's own uses of it are not this binary's
#[path = "../backends.rs"]
mod backends;
mod cli;
mod containers;
mod exec;
mod info;
mod inspect;
mod lifecycle;
mod log;
#[allow(dead_code)] // isola exec's relaying is not this binary's
#[path = "../commands/relay.rs"]
mod relay;
#[path = "vm.rs"]
mod runtime_vm;
mod vm_exec;
mod vm_keeper;
#[allow(dead_code)] // the shim's requests are not this binary's
#[path = "../shim/wire.rs"]
mod wire;

use anyhow::{bail, Result};
use clap::Parser;

use cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let log = match log::Log::open(cli.log.as_deref(), cli.log_format, cli.debug) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("isola-runtime: opening the log: {e}");
            std::process::exit(1);
        }
    };
    match run(&cli, &log) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let msg = chain(&e);
            log.error(&msg);
            if !log.to_stderr() {
                eprintln!("{msg}");
            }
            std::process::exit(1);
        }
    }
}

/// The error and its causes in one line, as runc's messages are.
fn chain(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn run(cli: &Cli, log: &log::Log) -> Result<i32> {
    if cli.version {
        println!(
            "isola-runtime version {}\nspec: 1.1.0",
            env!("CARGO_PKG_VERSION")
        );
        return Ok(0);
    }
    if cli.systemd_cgroup {
        bail!(
            "--systemd-cgroup is not supported: isola-runtime manages cgroupfs paths; \
             set SystemdCgroup = false in containerd's runtime options"
        );
    }
    let Some(command) = &cli.command else {
        bail!("no command given: see isola-runtime --help");
    };
    log.debug(&format!("{command:?}"));
    let root = &cli.root;
    match command {
        Command::Create(a) => lifecycle::create(root, a).map(|_| 0),
        Command::Start(a) => lifecycle::start(root, &a.id).map(|()| 0),
        Command::Run(a) => lifecycle::run(root, a, log),
        Command::State(a) => lifecycle::state(root, &a.id).map(|()| 0),
        Command::Kill(a) => lifecycle::kill(root, a).map(|()| 0),
        Command::Delete(a) => lifecycle::delete(root, a, log).map(|()| 0),
        Command::Ps(a) => inspect::ps(root, a).map(|()| 0),
        Command::Pause(a) => inspect::pause(root, &a.id, true).map(|()| 0),
        Command::Resume(a) => inspect::pause(root, &a.id, false).map(|()| 0),
        Command::Update(a) => inspect::update(root, a).map(|()| 0),
        Command::Events(a) => inspect::events(root, a).map(|()| 0),
        Command::List(a) => inspect::list(root, a).map(|()| 0),
        Command::Exec(a) => exec::exec(root, a),
        Command::Features => {
            println!("{}", serde_json::to_string_pretty(&info::features())?);
            Ok(0)
        }
        Command::Spec(a) => info::spec(&a.bundle, a.rootless).map(|()| 0),
    }
}
