//! `isola pull REF`: an image from a registry into the store.

use anyhow::{Context, Result};
use isola_core::image::{digest, ImageStore, Platform};
use isola_core::registry::{self, PullOptions, RemoteRef};

use crate::args::PullArgs;
use crate::flags::{host_platform, registry_for};
use crate::output;
use crate::progress::Report;

pub fn run(store: &ImageStore, args: &PullArgs) -> Result<()> {
    let r = RemoteRef::parse(&args.reference)?;
    let platform: Platform = args
        .platform
        .clone()
        .unwrap_or_else(host_platform)
        .parse()?;
    let reg = registry_for(&r, &args.registry)?;
    let opts = PullOptions {
        platform,
        max_concurrent: args.max_concurrent_downloads.into(),
        fetch_only: args.fetch_only,
    };
    if !args.quiet {
        eprintln!("pulling {r}");
    }
    let report = Report::new("Downloading", "already stored", args.quiet);
    let pulled = registry::pull(store, &reg, &r, &opts, &report);
    report.finish();
    let pulled = pulled.with_context(|| format!("pulling {r}"))?;
    if args.fetch_only && !args.quiet {
        eprintln!(
            "fetched and verified {} layer(s) of {} ({} of {}), {} already stored; nothing stored",
            pulled.layers_fetched,
            pulled.name,
            output::size(pulled.bytes_fetched),
            output::size(pulled.bytes_total),
            pulled.layers_reused,
        );
    } else if !args.quiet {
        eprintln!(
            "pulled {} ({}): {} layer(s) fetched ({} of {}), {} already stored; digest {}",
            pulled.name,
            digest::short(&pulled.digest),
            pulled.layers_fetched,
            output::size(pulled.bytes_fetched),
            output::size(pulled.bytes_total),
            pulled.layers_reused,
            pulled.repo_digest
        );
    }
    println!("{}", pulled.digest);
    Ok(())
}
