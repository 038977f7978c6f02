//! Published ports: `-p [IP:][HOSTPORT:]PORT[/tcp|udp]` as Docker takes it,
//! and the host port each one holds while its sandbox runs. A bound socket
//! (never listening) reserves it, as podman's conmon does: the kernel's
//! DNAT carries the traffic, and no other program can take the port meanwhile.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{bind, getsockname, socket, AddressFamily, SockFlag, SockType, SockaddrIn};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// One `-p` as given: the host port may be left to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRequest {
    /// The host address it is published on; all of them when `None`.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: Option<u16>,
    pub port: u16,
    pub proto: Proto,
}

/// A published port with its host port fixed, as leases record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMap {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub port: u16,
    pub proto: Proto,
}

impl fmt::Display for PortMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip = self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        write!(f, "{ip}:{}->{}/{}", self.host_port, self.port, self.proto)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PortError {
    #[error(
        "-p {0:?}: give [IP:][HOSTPORT:]PORT[/tcp|udp], e.g. 8080:80 or 127.0.0.1:8080:80/tcp"
    )]
    Syntax(String),
    #[error("-p {text:?}: {what} {value:?} is not a port number (1 to 65535)")]
    BadPort {
        text: String,
        what: &'static str,
        value: String,
    },
    #[error("-p {text:?}: {value:?} is not an IPv4 address of this host")]
    BadAddress { text: String, value: String },
    #[error("-p {text:?}: the protocol must be tcp or udp, not {value:?}")]
    BadProto { text: String, value: String },
}

impl PortRequest {
    pub fn parse(text: &str) -> Result<PortRequest, PortError> {
        let (spec, proto) = match text.rsplit_once('/') {
            Some((spec, p)) => (
                spec,
                match p.to_ascii_lowercase().as_str() {
                    "tcp" => Proto::Tcp,
                    "udp" => Proto::Udp,
                    _ => {
                        return Err(PortError::BadProto {
                            text: text.into(),
                            value: p.into(),
                        })
                    }
                },
            ),
            None => (text, Proto::Tcp),
        };
        let parts: Vec<&str> = spec.split(':').collect();
        let (ip, host, port) = match parts[..] {
            [port] => (None, None, port),
            [host, port] => (None, Some(host), port),
            [ip, host, port] => (Some(ip), Some(host).filter(|h| !h.is_empty()), port),
            _ => return Err(PortError::Syntax(text.into())),
        };
        let number = |what: &'static str, value: &str| {
            value
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0 && value.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| PortError::BadPort {
                    text: text.into(),
                    what,
                    value: value.into(),
                })
        };
        let host_ip = match ip {
            None => None,
            Some(ip) => Some(ip.parse::<Ipv4Addr>().map_err(|_| PortError::BadAddress {
                text: text.into(),
                value: ip.into(),
            })?)
            .filter(|ip| !ip.is_unspecified()),
        };
        Ok(PortRequest {
            host_ip,
            host_port: host.map(|h| number("the host port", h)).transpose()?,
            port: number("the sandbox's port", port)?,
            proto,
        })
    }
}

/// A port held for a sandbox: its mapping, and the socket holding it.
#[derive(Debug)]
pub struct Reserved {
    pub map: PortMap,
    _socket: OwnedFd,
}

/// Take the host port of `req` (one the kernel picks when none is given),
/// or say that something else holds it.
pub fn reserve(req: &PortRequest) -> Result<Reserved, std::io::Error> {
    let addr = SocketAddrV4::new(
        req.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
        req.host_port.unwrap_or(0),
    );
    // Bound, never listening: nothing queues in it. Connections never
    // reach it anyway: DNAT rewrites them in PREROUTING and OUTPUT, before
    // local delivery.
    let kind = match req.proto {
        Proto::Tcp => SockType::Stream,
        Proto::Udp => SockType::Datagram,
    };
    let fd = socket(AddressFamily::Inet, kind, SockFlag::SOCK_CLOEXEC, None)?;
    bind(fd.as_raw_fd(), &SockaddrIn::from(addr))?;
    let port = getsockname::<SockaddrIn>(fd.as_raw_fd())?.port();
    Ok(Reserved {
        map: PortMap {
            host_ip: req.host_ip,
            host_port: port,
            port: req.port,
            proto: req.proto,
        },
        _socket: fd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn docker_forms_parse() {
        let p = |t| PortRequest::parse(t).unwrap();
        assert_eq!(
            p("8080:80"),
            PortRequest {
                host_ip: None,
                host_port: Some(8080),
                port: 80,
                proto: Proto::Tcp
            }
        );
        assert_eq!(p("80").host_port, None);
        assert_eq!(
            p("127.0.0.1:8080:80/udp").host_ip,
            Some(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(p("127.0.0.1:8080:80/UDP").proto, Proto::Udp);
        assert_eq!(p("127.0.0.1::80").host_port, None);
        assert_eq!(p("0.0.0.0:1:2").host_ip, None);
        for bad in [
            "", "a:b:c:d", "8080:0", "70000:80", "8080:+80", "x.y:1:2", "1:2/sctp",
        ] {
            assert!(PortRequest::parse(bad).is_err(), "{bad}");
        }
        let err = PortRequest::parse("8080:http").unwrap_err().to_string();
        assert!(err.contains("\"http\" is not a port number"), "{err}");
    }

    #[test]
    fn a_reserved_port_is_taken_until_dropped() {
        let first = reserve(&PortRequest::parse("127.0.0.1::80").unwrap()).unwrap();
        let port = first.map.host_port;
        assert_ne!(port, 0);
        let again = PortRequest::parse(&format!("127.0.0.1:{port}:80")).unwrap();
        let err = reserve(&again).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
        drop(first);
        reserve(&again).unwrap();
    }

    proptest! {
        #[test]
        fn any_text_parses_or_is_refused(text in "[0-9a-z.:/]{0,24}") {
            let _ = PortRequest::parse(&text);
        }
    }
}
