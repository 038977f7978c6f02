//! One sandbox on one network, from join to leave: its lease (address,
//! names, published ports held), its files for name resolution, and its
//! link: a veth pair into a container's network namespace, or a tap for a
//! VM's virtio-net, both on the network's bridge.

use std::net::Ipv4Addr;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::PathBuf;

use super::error::NetworkError;
use super::host;
use super::lease::{Holder, Lease};
use super::leases::{self, Leases};
use super::netlink::Netlink;
use super::ports::{self, PortMap, PortRequest, Reserved};
use super::store::{Network, NetworkStore};
use crate::Root;

/// What a sandbox asks of a network: `--network NAME`, `--ip`, its
/// `--name` and `--network-alias`es, `-p`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Join {
    pub network: String,
    pub ip: Option<Ipv4Addr>,
    /// Names the other members reach it by (its --name, its aliases).
    pub names: Vec<String>,
    pub ports: Vec<PortRequest>,
}

/// A sandbox's place on a network; leaving frees it (also on drop).
#[derive(Debug)]
pub struct Attachment {
    store: NetworkStore,
    pub net: Network,
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
    pub mtu: u32,
    bridge_index: u32,
    instance: String,
    /// The host ports, held while the sandbox lives.
    reserved: Vec<Reserved>,
    /// /etc/hosts and /etc/resolv.conf, for a backend that binds them in.
    pub hosts_file: Option<PathBuf>,
    pub resolv_file: Option<PathBuf>,
    /// Their text, for a backend that hands them to a guest.
    pub hosts: String,
    pub resolv: String,
    left: bool,
}

/// Take an address on `req.network` for sandbox `instance` (whose
/// hostname is `hostname`), hold its ports and, with `files`, write its
/// name files for a backend to bind in (under the network's directory:
/// a container's own directory is under its overlay). Nothing is held
/// when it fails.
pub fn join(
    root: &Root,
    instance: &str,
    hostname: &str,
    req: &Join,
    files: bool,
) -> Result<Attachment, NetworkError> {
    let store = NetworkStore::new(root);
    let net = store.get(&req.network)?;
    let joined = join_on(store.clone(), net.clone(), instance, hostname, req, files);
    if joined.is_err() && files {
        // The files [`name_files`] made for it, if any.
        leases::remove_name_files(&store.network_dir(&net.name), instance);
    }
    joined
}

fn join_on(
    store: NetworkStore,
    net: Network,
    instance: &str,
    hostname: &str,
    req: &Join,
    files: bool,
) -> Result<Attachment, NetworkError> {
    let bridge = host::ensure_up(&net)?;
    let home = store.network_dir(&net.name);
    let mut reserved = Vec::new();
    for p in &req.ports {
        let r = ports::reserve(p).map_err(|source| NetworkError::PortTaken {
            port: format!(
                "{}:{}/{}",
                p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
                p.host_port.map_or("?".into(), |h| h.to_string()),
                p.proto
            ),
            target: p.port,
            source,
        })?;
        reserved.push(r);
    }
    let maps: Vec<PortMap> = reserved.iter().map(|r| r.map).collect();
    let (hosts_file, resolv_file) =
        match files.then(|| leases::name_files(&store.network_dir(&net.name), instance)) {
            Some([h, r]) => (Some(h), Some(r)),
            None => (None, None),
        };
    let mut names = vec![hostname.to_string()];
    names.extend(req.names.iter().filter(|n| *n != hostname).cloned());

    let lock = Leases::lock(&home)?;
    let mut leases = Leases::load(&home)?;
    let (_, dead_had_ports) = leases.drop_dead(&home);
    let ip = leases.pick(&net, req.ip)?;
    let lease = Lease {
        ip,
        instance: instance.into(),
        names: names.clone(),
        holder: Holder::me(),
        ports: maps.clone(),
        hosts_file: hosts_file.clone(),
    };
    let mut members = leases.all.clone();
    members.push(lease.clone());
    let hosts = super::hosts::hosts(&names, ip, &net, &members);
    let resolv =
        super::hosts::resolv_conf(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
    if let (Some(h), Some(r)) = (&hosts_file, &resolv_file) {
        if let Some(d) = h.parent().filter(|d| !d.exists()) {
            std::fs::create_dir_all(d)
                .map_err(NetworkError::io("making the name files' directory", d))?;
        }
        std::fs::write(h, &hosts)
            .map_err(NetworkError::io("writing the sandbox's hosts file", h))?;
        std::fs::write(r, &resolv)
            .map_err(NetworkError::io("writing the sandbox's resolv.conf", r))?;
    }
    leases.add(&home, &net, lease)?;
    let att = Attachment {
        store,
        mac: mac_of(ip),
        mtu: bridge.mtu,
        bridge_index: bridge.index,
        net,
        ip,
        instance: instance.into(),
        reserved,
        hosts_file,
        resolv_file,
        hosts,
        resolv,
        left: false,
    };
    let ruled = if !maps.is_empty() || dead_had_ports {
        leases.apply_rules(&att.net)
    } else {
        Ok(())
    };
    leases.rewrite_hosts(&att.net, Some(instance));
    // Unlocked before a failure drops `att`, whose release locks again.
    drop(lock);
    ruled.map(|()| att)
}

/// Sandbox `instance`'s /etc/hosts and /etc/resolv.conf on network
/// `name`, made empty now (the default network is made on first use), for
/// a backend to bind in before [`join`] writes them, in place.
pub fn name_files(root: &Root, name: &str, instance: &str) -> Result<[PathBuf; 2], NetworkError> {
    let store = NetworkStore::new(root);
    let net = store.get(name)?;
    let files = leases::name_files(&store.network_dir(&net.name), instance);
    if let Some(dir) = files[0].parent().filter(|d| !d.exists()) {
        std::fs::create_dir_all(dir)
            .map_err(NetworkError::io("making the name files' directory", dir))?;
    }
    for f in &files {
        std::fs::File::create(f).map_err(NetworkError::io("making a name file", f))?;
    }
    Ok(files)
}

/// 02:69 ('i') and the address: unique on the network, locally administered.
fn mac_of(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x69, o[0], o[1], o[2], o[3]]
}

impl Attachment {
    /// The network's directory: its record, leases and name files.
    fn home(&self) -> PathBuf {
        self.store.network_dir(&self.net.name)
    }

    /// The host's end of a container's veth pair.
    pub fn veth_name(&self) -> String {
        format!("isv{}", self.instance)
    }

    /// A VM's tap.
    pub fn tap_name(&self) -> String {
        format!("ist{}", self.instance)
    }

    pub fn ports(&self) -> Vec<PortMap> {
        self.reserved.iter().map(|r| r.map).collect()
    }

    pub fn prefix(&self) -> u8 {
        self.net.subnet.prefix()
    }

    /// A veth pair whose `eth0` end is made in the network namespace
    /// `netns` with the sandbox's MAC and MTU, and whose other end is on
    /// the bridge, up: one request. The sandbox addresses its end itself
    /// ([`super::ifconfig::configure`]), from inside.
    pub fn veth_into(&self, netns: BorrowedFd) -> Result<(), NetworkError> {
        let host = Netlink::open().map_err(NetworkError::netlink("opening a netlink socket"))?;
        let br = &self.net.bridge;
        let veth = self.veth_name();
        host.create_veth(&veth, self.bridge_index, "eth0", netns, self.mac, self.mtu)
            .map_err(NetworkError::netlink(format!(
                "creating veth {veth} on {br}"
            )))
    }

    /// A tap on the bridge, up, for a VM's virtio-net; it goes when its
    /// last descriptor closes.
    pub fn tap(&self) -> Result<OwnedFd, NetworkError> {
        let name = self.tap_name();
        let fd = super::tap::open_tap(&name).map_err(|e| NetworkError::Io {
            what: "opening a tap",
            path: PathBuf::from("/dev/net/tun"),
            source: std::io::Error::other(e),
        })?;
        let nl = Netlink::open().map_err(NetworkError::netlink("opening a netlink socket"))?;
        let br = &self.net.bridge;
        let tap = nl
            .link_index(&name)
            .map_err(NetworkError::netlink(format!("finding tap {name}")))?
            .ok_or(NetworkError::Vanished("the tap, just made"))?;
        nl.set_mtu(tap, self.mtu)
            .and_then(|()| nl.set_master(tap, self.bridge_index))
            .and_then(|()| nl.set_up(tap))
            .map_err(NetworkError::netlink(format!("putting tap {name} on {br}")))?;
        Ok(fd)
    }

    /// Free the address and the ports, drop their rules, and take the
    /// sandbox out of the others' hosts files.
    pub fn leave(mut self) -> Result<(), NetworkError> {
        self.left = true;
        self.release()
    }

    fn release(&mut self) -> Result<(), NetworkError> {
        // A container's veth goes with its network namespace and a VM's
        // tap with the monitor's descriptor, in the kernel's own time:
        // deleting either here would wait for an RCU grace period.
        let _lock = Leases::lock(&self.home())?;
        let mut leases = Leases::load(&self.home())?;
        leases.remove(&self.home(), &self.instance);
        leases::remove_name_files(&self.home(), &self.instance);
        if !self.reserved.is_empty() {
            leases.apply_rules(&self.net)?;
        }
        self.reserved.clear();
        leases.rewrite_hosts(&self.net, None);
        Ok(())
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        if !self.left {
            self.left = true;
            if let Err(e) = self.release() {
                tracing::warn!("leaving network {}: {e}", self.net.name);
            }
        }
    }
}
