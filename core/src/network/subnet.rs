//! IPv4 subnets as networks use them: parsed from `--subnet` CIDR text,
//! compared with the host's routes, and walked for addresses to lease.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An IPv4 network: its first address and prefix length, host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subnet {
    base: u32,
    prefix: u8,
}

/// Why a `--subnet` text was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubnetError {
    #[error("{0:?} is not an IPv4 subnet in CIDR form, e.g. 10.89.3.0/24")]
    Syntax(String),
    #[error("{text:?} has host bits set: the subnet is {fixed}")]
    HostBits { text: String, fixed: Subnet },
    #[error("{0:?} is too small: a network needs at least a /30 (a gateway and one sandbox)")]
    TooSmall(String),
    #[error("{0:?} is too large: give a /8 or smaller")]
    TooLarge(String),
}

impl Subnet {
    /// The subnet of `addr` with `prefix` bits (host bits cleared).
    pub fn containing(addr: Ipv4Addr, prefix: u8) -> Subnet {
        let prefix = prefix.min(32);
        Subnet {
            base: u32::from(addr) & mask(prefix),
            prefix,
        }
    }

    pub fn base(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base)
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask(self.prefix) == self.base
    }

    /// Whether the two share any address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let p = self.prefix.min(other.prefix);
        self.base & mask(p) == other.base & mask(p)
    }

    /// The host's side of the network: the first usable address.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1)
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base | !mask(self.prefix))
    }

    /// Every address a sandbox may hold: after the gateway, before the
    /// broadcast address.
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let (first, last) = (self.base + 2, self.base | !mask(self.prefix));
        (first..last).map(Ipv4Addr::from)
    }

    /// Whether a sandbox may hold `addr` in this subnet.
    pub fn is_host(&self, addr: Ipv4Addr) -> bool {
        self.contains(addr)
            && addr != self.base()
            && addr != self.gateway()
            && addr != self.broadcast()
    }

    /// The `index`th /`prefix` subnet inside `self` (for walking a pool).
    pub fn nth(&self, prefix: u8, index: u32) -> Option<Subnet> {
        let bits = prefix.checked_sub(self.prefix)?;
        if prefix > 32 || (bits < 32 && index >= 1 << bits) {
            return None;
        }
        let step = 1u64 << (32 - u32::from(prefix));
        let base = u64::from(self.base) + u64::from(index) * step;
        Some(Subnet {
            base: u32::try_from(base).ok()?,
            prefix,
        })
    }
}

fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

impl FromStr for Subnet {
    type Err = SubnetError;

    fn from_str(text: &str) -> Result<Subnet, SubnetError> {
        let syntax = || SubnetError::Syntax(text.to_string());
        let (addr, prefix) = text.split_once('/').ok_or_else(syntax)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| syntax())?;
        if prefix.is_empty() || prefix.len() > 2 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        let prefix: u8 = prefix.parse().map_err(|_| syntax())?;
        if prefix > 32 {
            return Err(syntax());
        }
        let subnet = Subnet::containing(addr, prefix);
        if subnet.base() != addr {
            return Err(SubnetError::HostBits {
                text: text.to_string(),
                fixed: subnet,
            });
        }
        if prefix > 30 {
            return Err(SubnetError::TooSmall(text.to_string()));
        }
        if prefix < 8 {
            return Err(SubnetError::TooLarge(text.to_string()));
        }
        Ok(subnet)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base(), self.prefix)
    }
}

impl Serialize for Subnet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Subnet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Subnet, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_refuses() {
        let s: Subnet = "10.89.3.0/24".parse().unwrap();
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 89, 3, 1));
        assert_eq!(s.broadcast(), Ipv4Addr::new(10, 89, 3, 255));
        assert_eq!(s.hosts().count(), 253);
        assert_eq!(s.hosts().next(), Some(Ipv4Addr::new(10, 89, 3, 2)));
        assert!(s.is_host(Ipv4Addr::new(10, 89, 3, 254)));
        assert!(!s.is_host(Ipv4Addr::new(10, 89, 3, 1)));
        assert!(matches!(
            "10.89.3.7/24".parse::<Subnet>(),
            Err(SubnetError::HostBits { .. })
        ));
        for bad in [
            "10.89.3.0",
            "10.89.3.0/",
            "10.89.3.0/33",
            "x/24",
            "10.89.3.0/+4",
            "::1/64",
        ] {
            assert_eq!(
                bad.parse::<Subnet>(),
                Err(SubnetError::Syntax(bad.into())),
                "{bad}"
            );
        }
        assert!(matches!(
            "10.0.0.0/31".parse::<Subnet>(),
            Err(SubnetError::TooSmall(_))
        ));
        assert!(matches!(
            "10.0.0.0/7".parse::<Subnet>(),
            Err(SubnetError::TooLarge(_))
        ));
        let err = "10.89.3.7/24".parse::<Subnet>().unwrap_err().to_string();
        assert!(err.contains("10.89.3.0/24"), "{err}");
    }

    #[test]
    fn overlaps_both_ways() {
        let a: Subnet = "10.89.0.0/16".parse().unwrap();
        let b: Subnet = "10.89.4.0/24".parse().unwrap();
        let c: Subnet = "10.90.0.0/24".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c) && !c.overlaps(&b));
        assert_eq!(a.nth(24, 4), Some(b));
        assert_eq!(a.nth(24, 256), None);
        assert_eq!(Subnet::containing(Ipv4Addr::new(1, 2, 3, 4), 0).prefix(), 0);
    }

    proptest! {
        #[test]
        fn any_text_parses_or_is_refused(text in "\\PC{0,24}") {
            let _ = text.parse::<Subnet>();
        }

        #[test]
        fn display_round_trips(addr in any::<u32>(), prefix in 8u8..=30) {
            let s = Subnet::containing(Ipv4Addr::from(addr), prefix);
            prop_assert_eq!(s.to_string().parse::<Subnet>(), Ok(s));
            prop_assert!(s.contains(s.gateway()) && s.contains(s.broadcast()));
        }
    }
}
