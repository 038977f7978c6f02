//! One sandbox's lease on a network: its address, the names it answers
//! to, its published ports, and the process that holds it.

use std::fs;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ports::PortMap;

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
