//! What every registry command shares: connection options from the flags,
//! and the registry client for a reference.

use anyhow::Result;
use isola_core::registry::{AuthFiles, ClientOptions, Registry, RemoteRef};

use crate::args::RegistryFlags;

pub fn options(flags: &RegistryFlags) -> ClientOptions {
    let mut opts = ClientOptions::new(AuthFiles::locate(flags.authfile.as_deref()));
    opts.tls_verify = flags.tls_verify;
    opts.cert_dir = flags.cert_dir.clone();
    opts
}

pub fn registry_for(r: &RemoteRef, flags: &RegistryFlags) -> Result<Registry> {
    Ok(Registry::new(&r.registry, r.api_host(), &options(flags))?)
}

/// This host's platform as image indexes name it (`linux/amd64`).
pub fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    format!("linux/{arch}")
}
