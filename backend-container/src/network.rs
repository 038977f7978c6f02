//! The sandbox's side of its network namespace, from the child: `lo` up
//! (a new namespace's starts down; programs bind 127.0.0.1), and on a
//! bridge network `eth0`, whose veth isola made right in the namespace,
//! addressed and routed.

use isola_core::network::ifconfig;

use crate::fail::Fail;

/// What the child sets on `eth0` (isola's lease for it), sent with the
/// order to join the cgroup, once isola has made the veth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eth0 {
    pub ip: std::net::Ipv4Addr,
    pub prefix: u8,
    pub gateway: std::net::Ipv4Addr,
    pub mtu: u32,
}

impl Eth0 {
    pub const LEN: usize = 13;

    pub fn to_bytes(self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[..4].copy_from_slice(&self.ip.octets());
        b[4] = self.prefix;
        b[5..9].copy_from_slice(&self.gateway.octets());
        b[9..].copy_from_slice(&self.mtu.to_le_bytes());
        b
    }

    pub fn from_bytes(b: &[u8; Self::LEN]) -> Eth0 {
        let four = |at: usize| [b[at], b[at + 1], b[at + 2], b[at + 3]];
        Eth0 {
            ip: four(0).into(),
            prefix: b[4],
            gateway: four(5).into(),
            mtu: u32::from_le_bytes(four(9)),
        }
    }
}

pub fn loopback_up() -> Result<(), Fail> {
    ifconfig::up("lo").map_err(|(step, e)| Fail::sys(format!("bringing lo up: {step}"), e))
}

pub fn eth0(c: &Eth0) -> Result<(), Fail> {
    ifconfig::configure("eth0", c.ip, c.prefix, c.gateway, c.mtu)
        .map_err(|(step, e)| Fail::sys(format!("configuring eth0: {step}"), e))
}
