//! Bridge networks shared by both backends: networks and their subnets
//! (store), addresses (leases), the host's bridge and nftables table
//! (host, nft), published ports, written name resolution (hosts), and a
//! sandbox's place on a network from join to leave (attach). The links
//! themselves go through netlink, and a VM's through a tap.

mod attach;
mod error;
mod host;
pub mod hosts;
pub mod ifconfig;
pub mod lease;
pub mod leases;
pub mod netlink;
mod nft;
pub mod ports;
mod record;
mod store;
pub mod subnet;
pub mod tap;

pub use attach::{join, name_files, Attachment, Join};
pub use error::NetworkError;
pub use ports::{PortMap, PortRequest, Proto};
pub use store::{pool, Network, NetworkStore};
pub use subnet::Subnet;

/// The network `--network bridge` means, made on first use.
pub const DEFAULT: &str = "bridge";
/// Its bridge on the default ISOLA_ROOT.
pub const DEFAULT_BRIDGE: &str = "isola0";

/// Whether a link or an nftables table is isola's: a network's bridge
/// (and table) `isola…`, a container's veth `isv<ID>`, a VM's tap `ist<ID>`.
pub fn is_ours(name: &str) -> bool {
    name.starts_with("isola") || is_sandbox_link(name)
}

fn is_sandbox_link(name: &str) -> bool {
    (name.starts_with("isv") || name.starts_with("ist"))
        && name.len() == 15
        && name[3..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Every link and table of isola's on the host, for `isola prune` and the
/// leftovers check to name.
pub fn host_leftovers() -> Result<Vec<String>, NetworkError> {
    let nl = netlink::Netlink::open().map_err(NetworkError::netlink("opening a netlink socket"))?;
    let mut found: Vec<String> = nl
        .links()
        .map_err(NetworkError::netlink("listing the host's links"))?
        .into_iter()
        .filter(|(_, n)| is_ours(n))
        .map(|(_, n)| format!("link {n}"))
        .collect();
    found.extend(
        nft::tables()?
            .into_iter()
            .map(|t| format!("nftables table ip {t}")),
    );
    Ok(found)
}
