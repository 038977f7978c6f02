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
    sandboxes: Vec<isola_core::network::leases::Lease>,
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
                let sandboxes = Leases::load(&store, &network)?
                    .live()
                    .into_iter()
                    .cloned()
                    .collect();
                shown.push(Inspected { network, sandboxes });
            }
            output::json(&shown)
        }
        NetworkCommand::Rm { names } => {
            let mut failed = None;
            for name in names {
                match store.remove(name) {
                    Ok(()) => println!("{name}"),
                    Err(e) => {
                        if let Some(previous) = failed.replace(e) {
                            eprintln!("isola: {previous}");
                        }
                    }
                }
            }
            match failed {
                Some(e) => Err(e.into()),
                None => Ok(()),
            }
        }
    }
}

fn ls(store: &NetworkStore, json: bool) -> Result<()> {
    let nets = store.list()?;
    if json {
        return output::json(&nets);
    }
    let mut rows = Vec::new();
    for n in &nets {
        let users = Leases::load(store, n)?.live().len();
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
