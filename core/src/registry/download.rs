//! A file fetched over HTTP(S), for a Dockerfile's `ADD URL`: the system's
//! CAs, the registry client's timeouts, redirects followed, and one error
//! that says why the host could not give it.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use ureq::Agent;

use super::client::{describe, tls_config, ClientOptions};

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{url} cannot be fetched: {why}; ADD fetches only from hosts this machine reaches (or copy the file into the build context and ADD it from there)")]
    Unreachable { url: String, why: String },
    #[error("{url} answered {status}; check the URL")]
    Status { url: String, status: u16 },
    #[error("writing {path}")]
    Write {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// Fetch `url` into `dest`; returns the bytes written.
pub fn download(url: &str, dest: &Path, opts: &ClientOptions) -> Result<u64, DownloadError> {
    let unreachable = |why: String| DownloadError::Unreachable {
        url: url.to_string(),
        why,
    };
    let tls = tls_config("", opts).map_err(|e| unreachable(e.to_string()))?;
    let t = Some(opts.timeout);
    let agent: Agent = Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(tls)
        .max_redirects(10)
        .timeout_connect(t)
        .timeout_recv_response(t)
        .timeout_per_read(t)
        .user_agent(concat!("isola/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let response = agent
        .get(url)
        .call()
        .map_err(|e| unreachable(describe(&e)))?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(DownloadError::Status {
            url: url.to_string(),
            status,
        });
    }
    let write_err = |source| DownloadError::Write {
        path: dest.display().to_string(),
        source,
    };
    let mut out = BufWriter::new(File::create(dest).map_err(write_err)?);
    let mut body = response.into_body();
    let n = io::copy(&mut body.as_reader(), &mut out).map_err(|e| unreachable(e.to_string()))?;
    out.flush().map_err(write_err)?;
    Ok(n)
}
