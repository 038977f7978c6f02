//! The sandbox's side of its network namespace, from the child: `lo` up
//! (a new namespace's starts down; programs bind 127.0.0.1), and on a
//! bridge network `eth0`, whose veth isola made right in the namespace,
//! addressed and routed.

use isola_core::network::ifconfig;

use crate::fail::Fail;

/// What the child sets on `eth0` (isola's lease for it).
#[derive(Debug, Clone, Copy)]
pub struct Eth0 {
    pub ip: std::net::Ipv4Addr,
    pub prefix: u8,
    pub gateway: std::net::Ipv4Addr,
    pub mtu: u32,
}

pub fn loopback_up() -> Result<(), Fail> {
    ifconfig::up("lo").map_err(|(step, e)| Fail::sys(format!("bringing lo up: {step}"), e))
}

pub fn eth0(c: &Eth0) -> Result<(), Fail> {
    ifconfig::configure("eth0", c.ip, c.prefix, c.gateway, c.mtu)
        .map_err(|(step, e)| Fail::sys(format!("configuring eth0: {step}"), e))
}
