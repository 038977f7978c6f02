//! `isola network create|ls|inspect|rm|prune`: bridge networks that
//! containers and VMs share (docker network's verbs and output shapes).

use anyhow::Result;
use isola_core::network::leases::Leases;
use isola_core::network::{NetworkStore, Subnet};
use isola_core::Root;
use serde::Serialize;

use crate::output;

#[derive(clap::Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a bridge network: a Linux bridge holding the gateway's
    /// address, NAT to the outside and its own nftables table
    Create {
        /// Network name: letters, digits, '_', '.' and '-', starting with a letter or digit
        name: String,
        /// Its IPv4 subnet in CIDR form, e.g. 10.89.40.0/24 [default: the first /24 of 10.89.0.0/16 the host does not route]
        #[arg(long, value_name = "CIDR")]
        subnet: Option<String>,
    },
    /// List networks
    #[command(visible_alias = "list")]
    Ls {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show a network's subnet, gateway, bridge and the sandboxes on it, as JSON
    Inspect {
        /// Network names
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks: their bridge, table and record (refused while a sandbox uses one)
    #[command(visible_alias = "remove")]
    Rm {
        /// Network names
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// What `inspect` shows: the stored facts and the members.
#[derive(Serialize)]
struct Inspected {
    #[serde(flatten)]
    network: isola_core::network::Network,
    sandboxes: Vec<isola_core::network::lease::Lease>,
}

pub fn run(root: &Root, cmd: &NetworkCommand) -> Result<()> {
    let store = NetworkStore::new(root);
    match cmd {
        NetworkCommand::Create { name, subnet } => {
            let subnet = subnet.as_deref().map(str::parse::<Subnet>).transpose()?;
            let net = store.create(name, subnet)?;
            println!("{}", net.name);
            Ok(())
        }
        NetworkCommand::Ls { json } => ls(&store, *json),
        NetworkCommand::Inspect { names } => {
            let mut shown = Vec::new();
            for name in names {
                let network = store.get(name)?;
                let sandboxes = Leases::load(&store.network_dir(&network.name))?
                    .live()
                    .into_iter()
                    .cloned()
                    .collect();
                shown.push(Inspected { network, sandboxes });
            }
            output::json(&shown)
        }
        NetworkCommand::Rm { names } => output::remove_each(names, |n| store.remove(n)),
    }
}

fn ls(store: &NetworkStore, json: bool) -> Result<()> {
    let nets = store.list()?;
    if json {
        return output::json(&nets);
    }
    let mut rows = Vec::new();
    for n in &nets {
        let users = Leases::load(&store.network_dir(&n.name))?.live().len();
        rows.push(vec![
            n.name.clone(),
            n.subnet.to_string(),
            n.gateway.to_string(),
            n.bridge.clone(),
            users.to_string(),
        ]);
    }
    output::table(&["NAME", "SUBNET", "GATEWAY", "BRIDGE", "SANDBOXES"], &rows);
    Ok(())
}

/// `isola port SANDBOX [PORT[/PROTO]]`, as `docker port` prints it.
pub fn port(root: &Root, id: &str, wanted: Option<&str>) -> Result<()> {
    let state = isola_core::instance::find(root, id)?;
    let wanted = wanted
        .map(|w| {
            let (p, proto) = w.split_once('/').unwrap_or((w, "tcp"));
            p.parse::<u16>()
                .map(|p| (p, proto.to_ascii_lowercase()))
                .map_err(|_| anyhow::anyhow!("{w:?} is not a port: give PORT or PORT/tcp|udp"))
        })
        .transpose()?;
    let mut shown = 0;
    for m in published(root, &state.id)? {
        if wanted
            .as_ref()
            .is_some_and(|(p, proto)| *p != m.port || *proto != m.proto.to_string())
        {
            continue;
        }
        let ip = m.host_ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
        match wanted {
            Some(_) => println!("{ip}:{}", m.host_port),
            None => println!("{}/{} -> {ip}:{}", m.port, m.proto, m.host_port),
        }
        shown += 1;
    }
    if shown == 0 {
        if let Some(w) = wanted {
            anyhow::bail!("sandbox {id} does not publish port {}/{}", w.0, w.1);
        }
    }
    Ok(())
}

/// The ports sandbox `instance` publishes, on whichever network.
pub fn published(root: &Root, instance: &str) -> Result<Vec<isola_core::network::PortMap>> {
    Ok(NetworkStore::new(root)
        .members()?
        .into_iter()
        .filter(|(_, l)| l.instance == instance)
        .flat_map(|(_, l)| l.ports)
        .collect())
}
