//! IPAM: which sandbox holds which address of a network, one file per
//! address under `leases/`, changed under the network's lock. A file per
//! lease is made once and removed once: no file is ever rewritten, which
//! on ext4 (replace by rename) costs a flush of the new data on every
//! sandbox's start. A lease names the process that holds it (the
//! foreground isola or the sandbox's shim); one whose holder died without
//! letting go is free again, and its rules go with it.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::error::NetworkError;
use super::lease::Lease;
use super::nft::{self, Published};
use super::record::Network;
use crate::fsutil::Lock;

const LEASES: &str = "leases";
const LOCK: &str = "lock";

/// The leases of one network, read under its lock.
#[derive(Debug, Default)]
pub struct Leases {
    pub all: Vec<Lease>,
}

impl Leases {
    pub fn lock(home: &Path) -> Result<Lock, NetworkError> {
        let path = home.join(LOCK);
        Lock::exclusive(&path).map_err(NetworkError::io("locking the network's leases", path))
    }

    /// Every lease of the network. A file a crash left empty or cut holds
    /// no lease (its sandbox never started); [`reap`] removes it.
    pub fn load(home: &Path) -> Result<Leases, NetworkError> {
        let dir = home.join(LEASES);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Leases::default()),
            Err(e) => return Err(NetworkError::io("reading the network's leases", dir)(e)),
        };
        let mut all = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            match fs::read(&path).map(|b| serde_json::from_slice::<Lease>(&b)) {
                Ok(Ok(lease)) => all.push(lease),
                Ok(Err(_)) => tracing::debug!("{}: no whole lease", path.display()),
                Err(e) => return Err(NetworkError::io("reading a lease", path)(e)),
            }
        }
        all.sort_by_key(|l| l.ip);
        Ok(Leases { all })
    }

    /// Record `lease` (its address must be free).
    pub fn add(&mut self, home: &Path, net: &Network, lease: Lease) -> Result<(), NetworkError> {
        let dir = home.join(LEASES);
        fs::create_dir_all(&dir).map_err(NetworkError::io("making the leases' directory", &dir))?;
        let path = dir.join(lease.ip.to_string());
        let json = serde_json::to_vec(&lease).map_err(|source| NetworkError::Damaged {
            name: net.name.clone(),
            path: path.clone(),
            source,
        })?;
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &json))
            .map_err(NetworkError::io("writing the lease", &path))?;
        self.all.push(lease);
        Ok(())
    }

    /// Forget the leases of `instance`, and those whose files hold none.
    pub fn remove(&mut self, home: &Path, instance: &str) {
        let dir = home.join(LEASES);
        for l in self.all.iter().filter(|l| l.instance == instance) {
            let _ = fs::remove_file(dir.join(l.ip.to_string()));
        }
        self.all.retain(|l| l.instance != instance);
    }

    pub fn live(&self) -> Vec<&Lease> {
        self.all.iter().filter(|l| l.holder.alive()).collect()
    }

    /// Remove the leases whose holder is gone, and files that hold no
    /// lease; the dead, and whether any had ports.
    pub fn drop_dead(&mut self, home: &Path) -> (Vec<Lease>, bool) {
        let (live, dead): (Vec<Lease>, Vec<Lease>) = std::mem::take(&mut self.all)
            .into_iter()
            .partition(|l| l.holder.alive());
        self.all = live;
        let dir = home.join(LEASES);
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name();
                let held = name
                    .to_str()
                    .and_then(|n| n.parse::<Ipv4Addr>().ok())
                    .is_some_and(|ip| self.all.iter().any(|l| l.ip == ip));
                if !held {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        for l in &dead {
            remove_name_files(home, &l.instance);
        }
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

    /// Rewrite every member's /etc/hosts but `except`'s (in place: it is
    /// bound into the sandbox, and a rename would leave the sandbox the
    /// old file).
    pub fn rewrite_hosts(&self, net: &Network, except: Option<&str>) {
        for l in self
            .all
            .iter()
            .filter(|l| Some(l.instance.as_str()) != except)
        {
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
/// is on the network: `files/<ID>.hosts` and `files/<ID>.resolv.conf`.
pub fn name_files(home: &Path, instance: &str) -> [PathBuf; 2] {
    let dir = home.join("files");
    ["hosts", "resolv.conf"].map(|f| dir.join(format!("{instance}.{f}")))
}

/// Remove a sandbox's name files (gone already is fine).
pub fn remove_name_files(home: &Path, instance: &str) {
    for f in name_files(home, instance) {
        let _ = fs::remove_file(f);
    }
}

/// Free the leases of `net` whose holders died, and drop their rules and
/// names; the IDs of the sandboxes freed.
pub fn reap(home: &Path, net: &Network) -> Result<Vec<String>, NetworkError> {
    let _lock = Leases::lock(home)?;
    let mut leases = Leases::load(home)?;
    let (dead, had_ports) = leases.drop_dead(home);
    if dead.is_empty() {
        return Ok(Vec::new());
    }
    if had_ports {
        leases.apply_rules(net)?;
    }
    leases.rewrite_hosts(net, None);
    Ok(dead.into_iter().map(|l| l.instance).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::lease::Holder;
    use crate::network::ports::PortMap;

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
            proto: crate::network::ports::Proto::Tcp,
        });
        l.all.push(dead);
        assert!(Holder::me().alive());
        let dir = tempfile::tempdir().unwrap();
        let (gone, had_ports) = l.drop_dead(dir.path());
        assert_eq!(gone.len(), 1);
        assert!(had_ports);
        assert_eq!(l.all.len(), 1);
    }
}
