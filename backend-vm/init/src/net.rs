//! The guest's network: the loopback interface up, as every container
//! runtime does even without a network (programs bind 127.0.0.1), and
//! with a bridge network `eth0` (virtio-net) addressed and routed as the
//! host leased it, with its name files.

use isola_guest_spec::GuestNet;

use crate::fail::Failure;

// The same calls a container's child makes, from isola-core, which
// isola-init does not link.
#[path = "../../../core/src/network/ifconfig.rs"]
mod ifconfig;

pub fn loopback_up() -> Result<(), Failure> {
    ifconfig::up("lo").map_err(|(step, e)| {
        Failure::errno(format!("cannot bring the loopback interface up: {step}"), e)
    })
}

/// `eth0` with the leased address, MTU and default route; then
/// /etc/hosts and /etc/resolv.conf (the root must still be writable).
pub fn configure(net: &GuestNet) -> Result<(), Failure> {
    ifconfig::configure("eth0", net.ip, net.prefix, net.gateway, net.mtu).map_err(
        |(step, e)| Failure::errno(format!("cannot configure eth0 (virtio-net): {step}"), e),
    )?;
    std::fs::create_dir_all("/etc")
        .and_then(|()| std::fs::write("/etc/hosts", &net.hosts))
        .and_then(|()| std::fs::write("/etc/resolv.conf", &net.resolv))
        .map_err(|e| {
            Failure::setup(
                "cannot write /etc/hosts and /etc/resolv.conf",
                crate::fail::describe_io(&e),
            )
        })
}
