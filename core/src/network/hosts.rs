//! Name resolution on a network, by written files: each sandbox's
//! /etc/hosts names every member of its network (by --name and
//! --network-alias), and its /etc/resolv.conf sends the rest to the
//! host's own resolvers.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::lease::Lease;
use super::record::Network;

/// /etc/hosts for the sandbox holding `ip` under `own` names (its hostname
/// first): localhost, itself, then the other members of the network.
pub fn hosts(own: &[String], ip: Ipv4Addr, net: &Network, members: &[Lease]) -> String {
    let mut text =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    let line = |text: &mut String, ip: Ipv4Addr, names: &[String]| {
        if !names.is_empty() {
            let _ = writeln!(text, "{ip}\t{}", names.join(" "));
        }
    };
    line(&mut text, ip, own);
    let _ = writeln!(text, "{}\thost.isola.internal", net.gateway);
    for m in members.iter().filter(|m| m.ip != ip) {
        line(&mut text, m.ip, &m.names);
    }
    text
}

/// /etc/resolv.conf: the host's, less the nameservers only the host can
/// reach (a loopback stub such as systemd-resolved's 127.0.0.53).
pub fn resolv_conf(host: &str) -> String {
    let mut text = String::new();
    for line in host.lines() {
        let t = line.trim();
        if let Some(server) = t.strip_prefix("nameserver") {
            if server
                .trim()
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
            {
                continue;
            }
        }
        if !t.is_empty() && !t.starts_with('#') {
            text.push_str(t);
            text.push('\n');
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::lease::Holder;

    #[test]
    fn members_by_name_and_alias() {
        let net = Network::for_test("web", "isolat", "10.89.1.0/24");
        let holder = Holder { pid: 1, start: 0 };
        let member = |ip: u8, names: &[&str]| Lease {
            ip: Ipv4Addr::new(10, 89, 1, ip),
            instance: format!("i{ip}"),
            names: names.iter().map(|n| n.to_string()).collect(),
            holder,
            ports: Vec::new(),
            hosts_file: None,
        };
        let all = [
            member(2, &["web", "www"]),
            member(3, &["db"]),
            member(4, &[]),
        ];
        let own = vec!["abc".to_string(), "web".to_string()];
        let text = hosts(&own, Ipv4Addr::new(10, 89, 1, 2), &net, &all);
        assert!(text.contains("10.89.1.2\tabc web\n"), "{text}");
        assert!(text.contains("10.89.1.3\tdb\n"), "{text}");
        assert!(text.contains("10.89.1.1\thost.isola.internal\n"), "{text}");
        assert!(!text.contains("10.89.1.2\tweb www"), "{text}");
        assert!(!text.contains("10.89.1.4"), "{text}");
    }

    #[test]
    fn loopback_resolvers_are_left_out() {
        let host = "# generated\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch example.org\noptions edns0\n";
        assert_eq!(
            resolv_conf(host),
            "nameserver 192.0.2.53\nsearch example.org\noptions edns0\n"
        );
    }
}
