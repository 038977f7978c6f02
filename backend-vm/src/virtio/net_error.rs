//! What can go wrong with the guest's network device: its MAC, and the
//! tap it is given, in one sentence each.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("the guest's MAC address {} is not one of a network card (unicast, not zero)", mac_text(.0))]
    Mac([u8; 6]),
    #[error("the guest's network device is not a tap")]
    NotATap(#[source] io::Error),
    #[error(
        "the tap {name} has flags {flags:#x}: open it with IFF_TAP, IFF_NO_PI and IFF_VNET_HDR"
    )]
    TapFlags { name: String, flags: i32 },
    #[error(
        "the tap {name} puts a {header}-byte header before each frame: set 12 with TUNSETVNETHDRSZ"
    )]
    HeaderSize { name: String, header: i32 },
    #[error("cannot set up the tap of the guest's network device")]
    Tap(#[source] io::Error),
}

fn mac_text(mac: &[u8; 6]) -> String {
    let parts: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}
