//! IPAM: which sandbox holds which address of a network, in leases.json
//! under the network's lock. A lease names the process that holds it (the
//! foreground isola or the sandbox's shim); one whose holder died without
//! letting go is free again, and its rules go with it.

use std::fs;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::error::NetworkError;
use super::nft::{self, Published};
use super::ports::PortMap;
use super::store::{Network, NetworkStore};
use crate::fsutil::{self, Lock};

const LEASES: &str = "leases.json";
const LOCK: &str = "lock";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub ip: Ipv4Addr,
    /// The sandbox's ID.
    pub instance: String,
    /// Names it answers to on the network: its --name, then its aliases.
    #[serde(default)]
    pub names: Vec<String>,
    pub holder: Holder,
    #[serde(default)]
    pub ports: Vec<PortMap>,
    /// Its /etc/hosts on the host, rewritten when the network's members
    /// change (a container's; a VM's is written once, at boot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts_file: Option<PathBuf>,
}

/// A process, by PID and start time (so a reused PID is not taken for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub start: u64,
}

impl Holder {
    pub fn me() -> Holder {
        let pid = std::process::id();
        Holder {
            pid,
            start: start_time(pid).unwrap_or(0),
        }
    }

    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start)
    }
}

/// Field 22 of /proc/PID/stat: when the process started, in clock ticks.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

impl Lease {
    /// How `network rm` names it.
    pub fn who(&self) -> String {
        match self.names.first() {
            Some(n) => format!("{n} ({})", self.instance),
            None => self.instance.clone(),
        }
    }
}

/// The leases of one network, read under its lock.
#[derive(Debug, Default)]
pub struct Leases {
    pub all: Vec<Lease>,
}

impl Leases {
    pub fn lock(store: &NetworkStore, net: &Network) -> Result<Lock, NetworkError> {
        let path = store.network_dir(&net.name).join(LOCK);
        Lock::exclusive(&path).map_err(NetworkError::io("locking the network's leases", path))
    }

    pub fn load(store: &NetworkStore, net: &Network) -> Result<Leases, NetworkError> {
        let path = store.network_dir(&net.name).join(LEASES);
        match fs::read(&path) {
            Ok(bytes) => Ok(Leases {
                all: serde_json::from_slice(&bytes).map_err(|source| NetworkError::Damaged {
                    name: net.name.clone(),
                    path,
                    source,
                })?,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Leases::default()),
            Err(e) => Err(NetworkError::io("reading the network's leases", path)(e)),
        }
    }

    pub fn save(&self, store: &NetworkStore, net: &Network) -> Result<(), NetworkError> {
        let path = store.network_dir(&net.name).join(LEASES);
        let json =
            serde_json::to_vec_pretty(&self.all).map_err(|source| NetworkError::Damaged {
                name: net.name.clone(),
                path: path.clone(),
                source,
            })?;
        fsutil::atomic_write_nosync(&path, &json)
            .map_err(NetworkError::io("writing the network's leases", path))
    }

    pub fn live(&self) -> Vec<&Lease> {
        self.all.iter().filter(|l| l.holder.alive()).collect()
    }

    /// Drop the leases whose holder is gone; whether any had ports.
    pub fn drop_dead(&mut self) -> (Vec<Lease>, bool) {
        let (live, dead): (Vec<Lease>, Vec<Lease>) = std::mem::take(&mut self.all)
            .into_iter()
            .partition(|l| l.holder.alive());
        self.all = live;
        let had_ports = dead.iter().any(|l| !l.ports.is_empty());
        (dead, had_ports)
    }

    /// `wanted`, if it is free and a host address of the network; else
    /// the first free one.
    pub fn pick(&self, net: &Network, wanted: Option<Ipv4Addr>) -> Result<Ipv4Addr, NetworkError> {
        if let Some(ip) = wanted {
            if !net.subnet.is_host(ip) {
                return Err(NetworkError::AddressOutside {
                    ip,
                    name: net.name.clone(),
                    subnet: net.subnet,
                });
            }
            if let Some(l) = self.all.iter().find(|l| l.ip == ip) {
                return Err(NetworkError::AddressTaken {
                    ip,
                    name: net.name.clone(),
                    holder: l.who(),
                });
            }
            return Ok(ip);
        }
        net.subnet
            .hosts()
            .find(|ip| self.all.iter().all(|l| l.ip != *ip))
            .ok_or(NetworkError::Exhausted {
                name: net.name.clone(),
                subnet: net.subnet,
            })
    }

    /// The network's table, with every lease's ports.
    pub fn apply_rules(&self, net: &Network) -> Result<(), NetworkError> {
        let published: Vec<Published> = self
            .all
            .iter()
            .filter(|l| !l.ports.is_empty())
            .map(|l| Published {
                ip: l.ip,
                ports: &l.ports,
            })
            .collect();
        nft::apply(net, &published)
    }

    /// Rewrite every member's /etc/hosts (in place: it is bound into the
    /// sandbox, and a rename would leave the sandbox the old file).
    pub fn rewrite_hosts(&self, net: &Network) {
        for l in &self.all {
            if let Some(path) = &l.hosts_file {
                let text = super::hosts::hosts(&l.names, l.ip, net, &self.all);
                if let Err(e) = fs::write(path, text) {
                    tracing::debug!("rewriting {}: {e}", path.display());
                }
            }
        }
    }
}

/// Where a sandbox's /etc/hosts and /etc/resolv.conf are kept while it
/// is on the network.
pub fn files_dir(store: &NetworkStore, net: &Network, instance: &str) -> PathBuf {
    store.network_dir(&net.name).join("files").join(instance)
}

/// Free the leases of `net` whose holders died, and drop their rules and
/// names; the IDs of the sandboxes freed.
pub fn reap(store: &NetworkStore, net: &Network) -> Result<Vec<String>, NetworkError> {
    let _lock = Leases::lock(store, net)?;
    let mut leases = Leases::load(store, net)?;
    let (dead, had_ports) = leases.drop_dead();
    if dead.is_empty() {
        return Ok(Vec::new());
    }
    leases.save(store, net)?;
    if had_ports {
        leases.apply_rules(net)?;
    }
    leases.rewrite_hosts(net);
    for l in &dead {
        let _ = fs::remove_dir_all(files_dir(store, net, &l.instance));
    }
    Ok(dead.into_iter().map(|l| l.instance).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(ip: [u8; 4], holder: Holder) -> Lease {
        Lease {
            ip: Ipv4Addr::from(ip),
            instance: format!("id{}", ip[3]),
            names: vec![format!("n{}", ip[3])],
            holder,
            ports: Vec::new(),
            hosts_file: None,
        }
    }

    #[test]
    fn picks_the_first_free_or_the_wanted_address() {
        let net = Network::for_test("t", "isolat", "10.89.7.0/29");
        let mut l = Leases::default();
        assert_eq!(l.pick(&net, None).unwrap(), Ipv4Addr::new(10, 89, 7, 2));
        l.all.push(lease([10, 89, 7, 2], Holder::me()));
        assert_eq!(l.pick(&net, None).unwrap(), Ipv4Addr::new(10, 89, 7, 3));
        let taken = l.pick(&net, Some(Ipv4Addr::new(10, 89, 7, 2))).unwrap_err();
        assert!(
            taken
                .to_string()
                .contains("already held by sandbox n2 (id2)"),
            "{taken}"
        );
        for outside in [[10, 89, 7, 1], [10, 89, 7, 7], [10, 89, 8, 2]] {
            assert!(matches!(
                l.pick(&net, Some(Ipv4Addr::from(outside))),
                Err(NetworkError::AddressOutside { .. })
            ));
        }
        for last in 3..=6 {
            l.all.push(lease([10, 89, 7, last], Holder::me()));
        }
        assert!(matches!(
            l.pick(&net, None),
            Err(NetworkError::Exhausted { .. })
        ));
    }

    #[test]
    fn a_dead_holders_lease_is_dropped() {
        let mut l = Leases::default();
        l.all.push(lease([10, 0, 0, 2], Holder::me()));
        let mut dead = lease(
            [10, 0, 0, 3],
            Holder {
                pid: std::process::id(),
                start: 1,
            },
        );
        dead.ports.push(PortMap {
            host_ip: None,
            host_port: 8080,
            port: 80,
            proto: super::super::ports::Proto::Tcp,
        });
        l.all.push(dead);
        assert!(Holder::me().alive());
        let (gone, had_ports) = l.drop_dead();
        assert_eq!(gone.len(), 1);
        assert!(had_ports);
        assert_eq!(l.all.len(), 1);
    }
}
