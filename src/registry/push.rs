//! `isola push IMAGE [DESTINATION]`: a stored image out to a registry.

use anyhow::{Context, Result};
use isola_core::image::media::Compression;
use isola_core::image::ImageStore;
use isola_core::registry::{self, PushOptions, RemoteRef};

use crate::args::{CompressFormat, PushArgs};
use crate::flags::registry_for;
use crate::progress::Report;

pub fn run(store: &ImageStore, args: &PushArgs) -> Result<()> {
    let image = store.get(&args.image)?;
    let target_name = args.destination.as_deref().unwrap_or(&args.image);
    let target = RemoteRef::parse(target_name).with_context(|| {
        format!("{target_name:?} names no registry repository to push to; give a destination such as localhost:5000/NAME:TAG")
    })?;
    let reg = registry_for(&target, &args.registry)?;
    let opts = PushOptions {
        compress: args.compress.map(|c| match c {
            CompressFormat::Gzip => Compression::Gzip,
            CompressFormat::Zstd => Compression::Zstd,
        }),
        max_concurrent: 3,
    };
    if !args.quiet {
        eprintln!("pushing {} to {target}", args.image);
    }
    let report = Report::new("Uploading", "already in the registry", args.quiet);
    let pushed = registry::push(store, &reg, &image, &target, &opts, &report);
    report.finish();
    let pushed = pushed.with_context(|| format!("pushing {} to {target}", args.image))?;
    if !args.quiet {
        eprintln!(
            "pushed {target}: {} blob(s) uploaded, {} mounted from another repository, {} already there",
            pushed.uploaded, pushed.mounted, pushed.skipped
        );
    }
    if let Some(f) = &args.digestfile {
        std::fs::write(f, pushed.digest.to_string())
            .with_context(|| format!("writing the digest to {}", f.display()))?;
    }
    println!("{}", pushed.digest);
    Ok(())
}
