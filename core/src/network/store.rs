//! Networks as stored under `networks/<name>/`: the facts fixed at
//! creation (subnet, gateway, bridge) in network.json, beside the leases
//! of the sandboxes on it, and the subnet chosen against the host's routes.

use std::fs;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::error::NetworkError;
use super::lease::Lease;
pub use super::record::Network;
use super::subnet::Subnet;
use super::{host, leases, DEFAULT, DEFAULT_BRIDGE};
use crate::fsutil::{self, Lock};
use crate::root::DEFAULT_ROOT;
use crate::Root;

/// Networks' subnets come from here unless given: /24s of 10.89.0.0/16
/// (podman's default is 10.88.0.0/16, Docker's 172.17.0.0/16).
pub fn pool() -> Subnet {
    Subnet::containing(std::net::Ipv4Addr::new(10, 89, 0, 0), 16)
}
pub const MAX_NAME_LEN: usize = 64;
const META: &str = "network.json";

#[derive(Debug, Clone)]
pub struct NetworkStore {
    root: Root,
}

impl NetworkStore {
    pub fn new(root: &Root) -> NetworkStore {
        NetworkStore { root: root.clone() }
    }

    pub fn dir(&self) -> PathBuf {
        self.root.dir().join("networks")
    }

    pub fn network_dir(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// Make a network: its record, its bridge (up, with the gateway's
    /// address) and its nftables table; nothing of it when any step fails.
    pub fn create(&self, name: &str, subnet: Option<Subnet>) -> Result<Network, NetworkError> {
        crate::naming::check_name(name, MAX_NAME_LEN).map_err(|why| NetworkError::BadName {
            name: name.into(),
            why,
        })?;
        // Host-wide: another ISOLA_ROOT choosing a subnet or a bridge now
        // must see this one's.
        let _host = host::lock()?;
        let _lock = self.lock()?;
        if self.network_dir(name).join(META).exists() {
            return Err(NetworkError::Exists(name.into()));
        }
        let routes = host::routes()?;
        let others = self.list()?;
        let subnet = match subnet {
            Some(s) => {
                check_free(s, &routes, &others)?;
                s
            }
            None => {
                let pool = pool();
                (0..256)
                    .filter_map(|i| pool.nth(24, i))
                    .find(|s| check_free(*s, &routes, &others).is_ok())
                    .ok_or(NetworkError::NoFreeSubnet { pool })?
            }
        };
        let net = Network {
            name: name.into(),
            subnet,
            gateway: subnet.gateway(),
            bridge: self.bridge_name(name),
            created: crate::instance::now(),
        };
        let dir = self.network_dir(name);
        let stored = fs::create_dir_all(&dir)
            .and_then(|()| {
                let json = serde_json::to_vec_pretty(&net).map_err(std::io::Error::other)?;
                fsutil::atomic_write(&dir.join(META), &json)
            })
            .map_err(NetworkError::io("storing the network", &dir));
        let made = stored.and_then(|()| host::bring_up(&net));
        if let Err(e) = made {
            let _ = host::take_down(&net);
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        Ok(net)
    }

    /// The network named `name`; the default network is made on first use.
    pub fn get(&self, name: &str) -> Result<Network, NetworkError> {
        match self.read(name) {
            Err(NetworkError::NotFound(_)) if name == DEFAULT => match self.create(name, None) {
                Err(NetworkError::Exists(_)) => self.read(name),
                made => made,
            },
            got => got,
        }
    }

    fn read(&self, name: &str) -> Result<Network, NetworkError> {
        if crate::naming::check_name(name, MAX_NAME_LEN).is_err() {
            return Err(NetworkError::NotFound(name.into()));
        }
        let path = self.network_dir(name).join(META);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(NetworkError::NotFound(name.into()))
            }
            Err(e) => return Err(NetworkError::io("reading the network", path)(e)),
        };
        serde_json::from_slice(&bytes).map_err(|source| NetworkError::Damaged {
            name: name.into(),
            path,
            source,
        })
    }

    /// Every network, by name.
    pub fn list(&self) -> Result<Vec<Network>, NetworkError> {
        let dir = self.dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(NetworkError::io("listing networks", dir)(e)),
        };
        let mut nets = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            match self.read(&name) {
                Ok(n) => nets.push(n),
                Err(NetworkError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        nets.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(nets)
    }

    /// Remove a network nothing uses: its table, its bridge, its record.
    pub fn remove(&self, name: &str) -> Result<(), NetworkError> {
        let net = self.read(name)?;
        let _host = host::lock()?;
        let _lock = self.lock()?;
        let _leases = leases::Leases::lock(&self.network_dir(name))?;
        let leases = leases::Leases::load(&self.network_dir(name))?;
        let users = leases.live();
        if !users.is_empty() {
            let users: Vec<String> = users.iter().map(|l| l.who()).collect();
            return Err(NetworkError::InUse {
                name: name.into(),
                users: users.join(", "),
            });
        }
        host::take_down(&net)?;
        let dir = self.network_dir(name);
        fs::remove_dir_all(&dir).map_err(NetworkError::io("removing the network", dir))
    }

    /// Every live sandbox on any network: its ID, the network and its lease.
    pub fn members(&self) -> Result<Vec<(Network, Lease)>, NetworkError> {
        let mut out = Vec::new();
        for net in self.list()? {
            let leases = leases::Leases::load(&self.network_dir(&net.name))?;
            for l in leases.live() {
                out.push((net.clone(), l.clone()));
            }
        }
        Ok(out)
    }

    /// Bring back what the host lost of a network (a reboot takes its
    /// bridge and table), and reap leases whose sandbox died unannounced,
    /// with their rules.
    pub fn prune(&self) -> Result<Vec<String>, NetworkError> {
        let mut freed = Vec::new();
        for net in self.list()? {
            freed.extend(leases::reap(&self.network_dir(&net.name), &net)?);
        }
        Ok(freed)
    }

    /// `isola0` for the default network of the default root (as docker0
    /// is Docker's); elsewhere `isola` and 8 hex digits of the root and
    /// the name, unique per host and within IFNAMSIZ.
    pub fn bridge_name(&self, name: &str) -> String {
        if name == DEFAULT && self.root.dir() == std::path::Path::new(DEFAULT_ROOT) {
            return DEFAULT_BRIDGE.into();
        }
        let mut h = Sha256::new();
        h.update(self.root.dir().as_os_str().as_encoded_bytes());
        h.update([0]);
        h.update(name.as_bytes());
        format!("isola{}", &hex::encode(h.finalize())[..8])
    }

    fn lock(&self) -> Result<Lock, NetworkError> {
        let dir = self.dir();
        fs::create_dir_all(&dir)
            .map_err(NetworkError::io("making the networks directory", &dir))?;
        let path = dir.join(".lock");
        Lock::exclusive(&path).map_err(NetworkError::io("locking the networks", path))
    }
}

/// Refuse a subnet the host routes already, or another network has.
fn check_free(
    s: Subnet,
    routes: &[host::HostRoute],
    others: &[Network],
) -> Result<(), NetworkError> {
    if let Some(o) = others.iter().find(|o| o.subnet.overlaps(&s)) {
        return Err(NetworkError::SubnetTaken {
            subnet: s,
            other: o.name.clone(),
        });
    }
    if let Some(r) = routes
        .iter()
        .find(|r| r.dst.prefix() > 0 && r.dst.overlaps(&s))
    {
        return Err(NetworkError::Overlap {
            subnet: s,
            route: r.dst,
            dev: r.dev.clone(),
        });
    }
    Ok(())
}
