//! Copies between a store and a registry through isola's library, not its
//! command line: how the distribution dimension fills its registry and
//! its source store, and how the disk dimension counts what a pull of an
//! image on a stored base fetches (core's `Pulled`).

use std::path::Path;

use isola_core::image::media::Compression;
use isola_core::image::ImageStore;
use isola_core::registry::{
    self, AuthFiles, ClientOptions, PullOptions, Pulled, PushOptions, Registry, RegistryError,
    RemoteRef,
};

use crate::results::PullOnBase;

/// A client for the benchmark's own registry at `host`: no credentials
/// (none are read from the user's files), plain HTTP.
fn client(host: &str, scratch: &Path) -> Result<Registry, RegistryError> {
    let mut opts = ClientOptions::new(AuthFiles {
        write_to: scratch.join("auth.json"),
        read_from: Vec::new(),
    });
    opts.tls_verify = false;
    Registry::new(host, host, &opts)
}

/// Push the stored `name` to `host/target`, its layers re-compressed to
/// `compress` where they are not already.
pub fn push(
    store: &ImageStore,
    name: &str,
    host: &str,
    target: &str,
    compress: Option<Compression>,
) -> Result<(), RegistryError> {
    let image = store.get(name)?;
    let target = RemoteRef::parse(&format!("{host}/{target}"))?;
    let reg = client(host, &store.root().tmp())?;
    let opts = PushOptions {
        compress,
        max_concurrent: 3,
    };
    registry::push(store, &reg, &image, &target, &opts, &registry::pull::Quiet)?;
    Ok(())
}

/// Pull `host/reference` into `store`.
pub fn pull(store: &ImageStore, host: &str, reference: &str) -> Result<Pulled, RegistryError> {
    let r = RemoteRef::parse(&format!("{host}/{reference}"))?;
    let reg = client(host, &store.root().tmp())?;
    registry::pull(
        store,
        &reg,
        &r,
        &PullOptions::default(),
        &registry::pull::Quiet,
    )
}

/// Pull `base` then `image` from `host` into `store`: what the second
/// pull fetched against the image's size.
pub fn pull_on_base(
    store: &ImageStore,
    host: &str,
    base: &str,
    image: &str,
) -> Result<PullOnBase, RegistryError> {
    pull(store, host, base)?;
    let p = pull(store, host, image)?;
    Ok(PullOnBase {
        image: image.to_string(),
        base: base.to_string(),
        layers: p.layers_fetched + p.layers_reused,
        layers_fetched: p.layers_fetched,
        bytes_fetched: p.bytes_fetched,
        bytes_total: p.bytes_total,
    })
}
