//! Registries for the pull and push tests, every one on 127.0.0.1 and
//! started by the test: the distribution registry in four modes (with the
//! token server of the fourth in-process), a registry that lies, a proxy
//! that breaks a download halfway, and skopeo to fill and inspect them.

mod certs;
mod distribution;
mod hostile;
mod http;
mod image;
mod proxy;
mod skopeo;
mod token;

pub use distribution::{BlobGet, Mode, TestRegistry, PASSWORD, USER};
pub use hostile::{Escape, HostileRegistry, Scenario, BOMB_BYTES};
pub use http::{
    base64, get as http_get, read_request, request as http_request, respond, Request, Response,
    Server as HttpServer,
};
pub use image::{gzip, sha256, Blob, Image, Layer, Tar};
pub use proxy::{Exchange, Fault, Proxy};
pub use skopeo::{diff_ids, Skopeo};
pub use token::{TokenRequest, TokenServer, ISSUER, SERVICE};
