//! A network's record: the facts fixed when it is made, which every part
//! of a network (its bridge, its table, its leases, its name files) reads.

use serde::{Deserialize, Serialize};

use super::subnet::Subnet;

/// One network, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    pub subnet: Subnet,
    pub gateway: std::net::Ipv4Addr,
    /// The host's bridge, and the name of the network's nftables table.
    pub bridge: String,
    /// Unix seconds.
    pub created: u64,
}

impl Network {
    #[cfg(test)]
    pub(crate) fn for_test(name: &str, bridge: &str, subnet: &str) -> Network {
        let subnet: Subnet = subnet.parse().expect("a subnet");
        Network {
            name: name.into(),
            subnet,
            gateway: subnet.gateway(),
            bridge: bridge.into(),
            created: 0,
        }
    }
}
