//! The network's own nftables table, written whole and swapped in one
//! transaction (`nft -f -`), so that isola only ever touches rules it made:
//! masquerade for the subnet, forwarding for it alone, and a DNAT per
//! published port (with a path for the host's own 127.0.0.1).

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use super::error::NetworkError;
use super::ports::PortMap;
use super::record::Network;

/// One sandbox's published ports, and where they lead.
pub struct Published<'a> {
    pub ip: Ipv4Addr,
    pub ports: &'a [PortMap],
}

/// The whole table for `net`, replacing whatever it held.
pub fn ruleset(net: &Network, published: &[Published]) -> String {
    let (t, br, sub) = (&net.bridge, &net.bridge, net.subnet);
    let mut dnat = String::new();
    for p in published {
        for m in p.ports {
            let dest = match m.host_ip {
                Some(ip) => format!("ip daddr {ip}"),
                None => "fib daddr type local".into(),
            };
            let _ = writeln!(
                dnat,
                "    {dest} {proto} dport {hp} dnat to {ip}:{port}",
                proto = m.proto,
                hp = m.host_port,
                ip = p.ip,
                port = m.port
            );
        }
    }
    format!(
        "table ip {t} {{}}
delete table ip {t}
table ip {t} {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
{dnat}  }}
  chain output {{
    type nat hook output priority -100; policy accept;
{dnat}  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr {sub} oifname != \"{br}\" masquerade
    oifname \"{br}\" ip saddr 127.0.0.0/8 masquerade
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    iifname \"{br}\" accept
    oifname \"{br}\" ct state established,related accept
    oifname \"{br}\" ct status dnat accept
    oifname \"{br}\" drop
  }}
}}
"
    )
}

/// Swap the table in.
pub fn apply(net: &Network, published: &[Published]) -> Result<(), NetworkError> {
    feed(&net.name, &ruleset(net, published))
}

/// Remove the table, if it is there.
pub fn remove(net: &Network) -> Result<(), NetworkError> {
    let t = &net.bridge;
    feed(
        &net.name,
        &format!("table ip {t} {{}}\ndelete table ip {t}\n"),
    )
}

/// Every table of isola's on the host (named as its bridges are).
pub fn tables() -> Result<Vec<String>, NetworkError> {
    let out = Command::new("nft")
        .args(["list", "tables", "ip"])
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| missing("-", e))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("table ip "))
        .filter(|t| super::is_ours(t))
        .map(str::to_string)
        .collect())
}

fn missing(name: &str, e: std::io::Error) -> NetworkError {
    NetworkError::Nft {
        name: name.into(),
        detail: format!("running nft: {e} (install nftables: scripts/setup does)"),
    }
}

fn feed(name: &str, rules: &str) -> Result<(), NetworkError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| missing(name, e))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(rules.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| missing(name, e))?;
    if out.status.success() {
        return Ok(());
    }
    Err(NetworkError::Nft {
        name: name.into(),
        detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::ports::Proto;

    #[test]
    fn the_table_names_only_its_bridge_and_subnet() {
        let net = Network::for_test("web", "isola0", "10.89.0.0/24");
        let ports = [
            PortMap {
                host_ip: None,
                host_port: 8080,
                port: 80,
                proto: Proto::Tcp,
            },
            PortMap {
                host_ip: Some(Ipv4Addr::LOCALHOST),
                host_port: 5353,
                port: 53,
                proto: Proto::Udp,
            },
        ];
        let text = ruleset(
            &net,
            &[Published {
                ip: Ipv4Addr::new(10, 89, 0, 2),
                ports: &ports,
            }],
        );
        assert!(text.starts_with("table ip isola0 {}\ndelete table ip isola0\n"));
        assert!(text.contains("fib daddr type local tcp dport 8080 dnat to 10.89.0.2:80"));
        assert!(text.contains("ip daddr 127.0.0.1 udp dport 5353 dnat to 10.89.0.2:53"));
        assert!(text.contains("ip saddr 10.89.0.0/24 oifname != \"isola0\" masquerade"));
        assert_eq!(
            text.matches("dnat to").count(),
            4,
            "prerouting and output each"
        );
    }
}
