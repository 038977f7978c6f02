//! isola: run the same OCI image as a container or in a minimal KVM guest,
//! and measure what each isolation level costs. This binary only parses the
//! command line and calls the libraries.

mod backends;
#[path = "build/args.rs"]
mod build_args;
mod cli;
mod commands;
mod globals;
mod output;
#[path = "registry/args.rs"]
mod registry_args;
mod shim;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

fn main() {
    // Like other Unix tools, end quietly when the reader of our output goes
    // away (`isola images | head`) instead of failing on the write.
    // SAFETY: setting a signal disposition to SIG_DFL runs no handler code.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
    let cli = cli::Cli::parse_args();
    // As docker's, 125 says isola itself failed, not the workload, for the
    // commands whose own exit code can be the workload's or a sandbox's.
    use cli::Command as C;
    let failure_code = match cli.command {
        C::Run(_)
        | C::Create(_)
        | C::Start { .. }
        | C::Stop { .. }
        | C::Restart { .. }
        | C::Kill { .. }
        | C::Wait { .. }
        | C::Logs(_)
        | C::Attach { .. }
        | C::Exec(_)
        | C::Top { .. }
        | C::Stats { .. }
        | C::Rm { .. }
        | C::Inspect { .. }
        | C::Shim(_) => 125,
        _ => 1,
    };
    init_tracing(cli.globals.verbose, matches!(cli.command, C::Shim(_)));
    match commands::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // One line: what failed, then each cause, as anyhow's {:#} joins them.
            eprintln!("isola: {e:#}");
            std::process::exit(failure_code);
        }
    }
}

/// Log lines to stderr, or for a shim (whose stderr is the workload's) to
/// its shim.log.
fn init_tracing(verbose: u8, shim: bool) {
    let level = match verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let writer =
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(move || -> Box<dyn std::io::Write> {
            if shim {
                Box::new(shim::TracingWriter)
            } else {
                Box::new(std::io::stderr())
            }
        });
    let builder = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_target(false);
    // ISOLA_LOG: `level` or `target=level,...` directives. Parsed by
    // `Targets`, not EnvFilter: EnvFilter's regex engine would be 150 KiB
    // of code in every isola process, and code is resident set here.
    match std::env::var("ISOLA_LOG").map(|f| f.parse::<Targets>()) {
        Ok(Ok(targets)) => builder
            .with_max_level(tracing::Level::TRACE)
            .finish()
            .with(targets)
            .init(),
        Ok(Err(e)) => {
            builder.with_max_level(level).init();
            tracing::warn!("ignoring ISOLA_LOG: {e} (give a level, or target=level,...)");
        }
        Err(_) => builder.with_max_level(level).init(),
    }
}
