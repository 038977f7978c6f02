//! What can go wrong with a network, each in one sentence that names the
//! network, the address or the port, and what to do.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::netlink::NetlinkError;
use super::subnet::Subnet;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("no network named {0:?}: see `isola network ls`, or make it with `isola network create {0}`")]
    NotFound(String),
    #[error("a network named {0:?} exists already")]
    Exists(String),
    #[error("{name:?} is not a valid network name: {why}")]
    BadName { name: String, why: String },
    #[error("network {name:?} is in use by {users}: stop or remove them first (`isola rm -f`)")]
    InUse { name: String, users: String },
    #[error("subnet {subnet} overlaps the host's route to {route} (dev {dev}): choose another with --subnet")]
    Overlap {
        subnet: Subnet,
        route: Subnet,
        dev: String,
    },
    #[error("subnet {subnet} is already network {other:?}'s: choose another with --subnet")]
    SubnetTaken { subnet: Subnet, other: String },
    #[error("no free /24 left in {pool} for a new network: give one with --subnet")]
    NoFreeSubnet { pool: Subnet },
    #[error("network {name:?} ({subnet}) has no free address left: remove a sandbox or make a larger network")]
    Exhausted { name: String, subnet: Subnet },
    #[error("--ip {ip} is outside network {name:?}'s subnet {subnet} (or is its gateway or broadcast address)")]
    AddressOutside {
        ip: Ipv4Addr,
        name: String,
        subnet: Subnet,
    },
    #[error("--ip {ip} on network {name:?} is already held by sandbox {holder}")]
    AddressTaken {
        ip: Ipv4Addr,
        name: String,
        holder: String,
    },
    #[error("host port {port} is already in use: publish on another port (-p OTHER:{target})")]
    PortTaken {
        port: String,
        target: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} ({}): {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}")]
    Netlink {
        what: String,
        #[source]
        source: NetlinkError,
    },
    #[error("{0} is gone")]
    Vanished(&'static str),
    #[error("the nftables rules of network {name:?} could not be set: {detail}")]
    Nft { name: String, detail: String },
    #[error("network {name:?}'s record {} is damaged: {source}", path.display())]
    Damaged {
        name: String,
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl NetworkError {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> NetworkError {
        let path = path.into();
        move |source| NetworkError::Io { what, path, source }
    }

    pub(crate) fn netlink(what: impl Into<String>) -> impl FnOnce(NetlinkError) -> NetworkError {
        let what = what.into();
        move |source| NetworkError::Netlink { what, source }
    }
}
