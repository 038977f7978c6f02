//! The host's side of a network: its bridge (up, holding the gateway's
//! address), the sysctls forwarding and the localhost port path need, the
//! nftables table, and the host's routes a new subnet must not overlap.

use std::fs;
use std::path::Path;

use super::error::NetworkError;
use super::netlink::Netlink;
use super::nft;
use super::record::Network;
use super::subnet::Subnet;
use crate::fsutil::Lock;

/// Serialises, across every ISOLA_ROOT of the host, choosing subnets and
/// making bridges.
const HOST_LOCK: &str = "/run/isola/network.lock";

pub fn lock() -> Result<Lock, NetworkError> {
    let path = Path::new(HOST_LOCK);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(NetworkError::io("making isola's run directory", dir))?;
    }
    Lock::exclusive(path).map_err(NetworkError::io("taking the host's network lock", path))
}

/// A route of the host's main table.
#[derive(Debug, Clone)]
pub struct HostRoute {
    pub dst: Subnet,
    pub dev: String,
}

pub fn routes() -> Result<Vec<HostRoute>, NetworkError> {
    let nl = Netlink::open().map_err(NetworkError::netlink("opening a netlink socket"))?;
    routes_on(&nl)
}

fn routes_on(nl: &Netlink) -> Result<Vec<HostRoute>, NetworkError> {
    let links = nl
        .links()
        .map_err(NetworkError::netlink("listing the host's links"))?;
    let routes = nl
        .ipv4_routes()
        .map_err(NetworkError::netlink("reading the host's routes"))?;
    Ok(routes
        .into_iter()
        .map(|r| HostRoute {
            dst: Subnet::containing(r.destination, r.prefix),
            dev: r
                .oif
                .and_then(|i| links.iter().find(|(idx, _)| *idx == i))
                .map(|(_, n)| n.clone())
                .unwrap_or_else(|| "?".into()),
        })
        .collect())
}

/// The MTU sandboxes get: the host's uplink's (the default route's link),
/// 1500 without one.
fn uplink_mtu(nl: &Netlink) -> u32 {
    let uplink = nl
        .ipv4_routes()
        .ok()
        .and_then(|rs| rs.into_iter().find(|r| r.prefix == 0).and_then(|r| r.oif));
    uplink.and_then(|i| nl.mtu(i).ok()).unwrap_or(1500)
}

/// Make the bridge and the table, and turn on forwarding.
pub fn bring_up(net: &Network) -> Result<(), NetworkError> {
    let nl = Netlink::open().map_err(NetworkError::netlink("opening a netlink socket"))?;
    let br = &net.bridge;
    let mtu = uplink_mtu(&nl);
    let index = match nl
        .link_index(br)
        .map_err(NetworkError::netlink(format!("looking for bridge {br}")))?
    {
        Some(i) => i,
        None => {
            let i = nl
                .create_bridge(br, Some(mtu))
                .map_err(NetworkError::netlink(format!("creating bridge {br}")))?;
            nl.add_address(i, net.gateway, net.subnet.prefix())
                .map_err(NetworkError::netlink(format!(
                    "giving bridge {br} {}",
                    net.gateway
                )))?;
            i
        }
    };
    nl.set_up(index)
        .map_err(NetworkError::netlink(format!("bringing bridge {br} up")))?;
    // The localhost path of published ports: a packet DNATed from
    // 127.0.0.1 leaves through the bridge, which the kernel refuses unless
    // the bridge routes localnet (podman's netavark does the same).
    sysctl(&format!("net/ipv4/conf/{br}/route_localnet"), "1")?;
    // Sandboxes reach beyond the host through the masquerade; the table's
    // forward chain lets only the network's own traffic through.
    sysctl("net/ipv4/ip_forward", "1")?;
    nft::apply(net, &[])
}

/// A network's bridge as sandboxes plug into it.
#[derive(Debug, Clone, Copy)]
pub struct Bridge {
    pub index: u32,
    /// The uplink's when the bridge was made; sandboxes take it.
    pub mtu: u32,
}

/// The bridge, re-made if the host lost it (a reboot takes bridges and
/// tables), with the subnet checked against the routes again: something
/// else may have taken it since. Read from sysfs: no socket to open on
/// every sandbox's start.
pub fn ensure_up(net: &Network) -> Result<Bridge, NetworkError> {
    if let Some(b) = bridge(&net.bridge) {
        return Ok(b);
    }
    let _host = lock()?;
    if bridge(&net.bridge).is_none() {
        if let Some(r) = routes()?
            .into_iter()
            .find(|r| r.dst.prefix() > 0 && r.dst.overlaps(&net.subnet))
        {
            return Err(NetworkError::Overlap {
                subnet: net.subnet,
                route: r.dst,
                dev: r.dev,
            });
        }
        bring_up(net)?;
    }
    bridge(&net.bridge).ok_or(NetworkError::Vanished("the network's bridge, just made"))
}

fn bridge(name: &str) -> Option<Bridge> {
    let read = |what: &str| -> Option<u32> {
        fs::read_to_string(format!("/sys/class/net/{name}/{what}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    Some(Bridge {
        index: read("ifindex")?,
        mtu: read("mtu")?,
    })
}

/// Remove the table and the bridge (gone already is fine).
pub fn take_down(net: &Network) -> Result<(), NetworkError> {
    nft::remove(net)?;
    let nl = Netlink::open().map_err(NetworkError::netlink("opening a netlink socket"))?;
    if let Some(i) = nl
        .link_index(&net.bridge)
        .map_err(NetworkError::netlink(format!(
            "looking for bridge {}",
            net.bridge
        )))?
    {
        nl.delete_link(i).map_err(NetworkError::netlink(format!(
            "deleting bridge {}",
            net.bridge
        )))?;
    }
    Ok(())
}

fn sysctl(key: &str, value: &str) -> Result<(), NetworkError> {
    let path = Path::new("/proc/sys").join(key);
    if fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    fs::write(&path, value).map_err(NetworkError::io("setting a sysctl", path))
}
