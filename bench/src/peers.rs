//! The peers isola is measured against, as command lines: the kernel floor
//! (`unshare` + `chroot`), runc and crun on an OCI bundle of the same
//! rootfs, and for the bare monitor, QEMU microvm booting the same guest.

use std::path::Path;

use crate::bundle::{self, BundleError};
use crate::results::{RunError, Subject};
use crate::sandbox::IsolaCli;
use crate::startup::Contender;

pub const CONTAINER_PEERS: [&str; 3] = ["floor", "runc", "crun"];

#[derive(Debug, thiserror::Error)]
pub enum PeersError {
    #[error("peer {0} is not installed on this host")]
    NotInstalled(String),
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

pub fn subject(id: &str, label: &str) -> Subject {
    Subject {
        id: id.into(),
        label: label.into(),
        kind: "peer".into(),
        emulated: false,
    }
}

/// Is `program` on PATH?
pub fn found(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// The container peers of `wanted` that are installed, each running
/// `/bin/true` in `rootfs` (absolute); `work` holds their bundles. One
/// asked for by name but missing is an error; with `auto` it is skipped.
pub fn container_peers(
    wanted: &[&str],
    auto: bool,
    rootfs: &Path,
    work: &Path,
) -> Result<Vec<(Subject, Contender)>, PeersError> {
    let mut out = Vec::new();
    for &peer in wanted {
        match peer {
            "floor" if found("unshare") && found("chroot") => out.push((
                subject("floor", "floor (unshare+chroot)"),
                Contender::new(
                    "floor",
                    [
                        "unshare",
                        "-fpmiun",
                        &format!("--mount-proc={}/proc", rootfs.display()),
                        "chroot",
                        &rootfs.display().to_string(),
                        "/bin/true",
                    ]
                    .map(String::from)
                    .to_vec(),
                ),
            )),
            "runc" | "crun" if found(peer) => {
                // Each runtime's own bundle (its config.json) on the shared rootfs.
                let dir = work.join(peer);
                bundle::write_config(peer, &dir, rootfs, &["/bin/true"], None)?;
                out.push((
                    subject(peer, peer),
                    Contender::new(
                        peer,
                        vec![
                            peer.into(),
                            "run".into(),
                            "--bundle".into(),
                            dir.display().to_string(),
                            format!("isola-bench-{peer}-{}", std::process::id()),
                        ],
                    ),
                ));
            }
            "floor" | "runc" | "crun" if !auto => {
                return Err(PeersError::NotInstalled(peer.to_string()))
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The bare monitor: `guest` (the test guest) booted by isola's monitor
/// and by QEMU microvm on KVM, with `memory_mib` of guest memory.
pub fn monitor_contenders(
    isola: &IsolaCli,
    guest: &Path,
    memory_mib: u64,
    qemu: Option<&str>,
) -> Vec<(Subject, Contender)> {
    let guest = guest.display().to_string();
    // `quiet`: the guest writes its status and nothing else, so the figures
    // are the monitors' (on PVM every guest instruction at CPL0 is emulated).
    let cmdline = "quiet exit=0";
    let mut out = vec![(
        Subject {
            id: "monitor-isola".into(),
            label: "isola monitor (test guest)".into(),
            kind: "isola".into(),
            emulated: false,
        },
        Contender::new(
            "monitor-isola",
            isola.argv(&[
                "vm",
                "boot",
                &guest,
                "--memory",
                &format!("{memory_mib}m"),
                "--append",
                cmdline,
            ]),
        ),
    )];
    if let Some(qemu) = qemu {
        out.push((
            subject("monitor-qemu", "qemu microvm (test guest)"),
            Contender {
                // isa-debug-exit makes the guest's status N QEMU's 2N+1.
                success: 1,
                ..Contender::new(
                    "monitor-qemu",
                    [
                        qemu,
                        "-M",
                        "microvm,x-option-roms=off,isa-serial=on",
                        "-accel",
                        "kvm",
                        "-m",
                        &format!("{memory_mib}M"),
                        "-nodefaults",
                        "-no-user-config",
                        "-nographic",
                        "-serial",
                        "stdio",
                        "-device",
                        "isa-debug-exit,iobase=0xf4,iosize=0x04",
                        "-kernel",
                        &guest,
                        "-append",
                        cmdline,
                    ]
                    .map(String::from)
                    .to_vec(),
                )
            },
        ));
    }
    out
}

/// A peer that cannot run here, reported with why.
pub fn not_run(subject: &str, why: &str) -> RunError {
    RunError {
        subject: subject.into(),
        dimension: "startup".into(),
        message: why.into(),
    }
}
