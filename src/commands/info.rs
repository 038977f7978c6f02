//! `isola info`: what this host offers isola (cgroups, overlayfs, KVM flavour),
//! so a missing piece is seen before a sandbox fails on it.

use std::path::Path;

use anyhow::Result;
use isola_vm::host::KvmFlavour;
use serde::Serialize;

use crate::output;

/// The report; its field names are the stable keys of `--json`.
#[derive(Serialize)]
struct Info {
    version: &'static str,
    root: String,
    kernel: String,
    cgroups: String,
    overlayfs: bool,
    kvm: &'static str,
    kvm_detail: String,
    vm_linux_guests: bool,
}

pub fn run(root: &Path, json: bool) -> Result<()> {
    let kvm = isola_vm::host::detect();
    let info = Info {
        version: env!("CARGO_PKG_VERSION"),
        root: root.display().to_string(),
        kernel: kernel_release(),
        // The error's sentence already says what to do; it is the value here.
        cgroups: match isola_container::cgroup::detect() {
            Ok(h) => h.to_string(),
            Err(e) => e.to_string(),
        },
        overlayfs: has_overlayfs(),
        kvm: kvm.as_str(),
        kvm_detail: kvm.describe(),
        vm_linux_guests: kvm.can_boot_linux(),
    };
    if json {
        return output::json(&info);
    }
    let overlayfs = if info.overlayfs {
        "yes".to_string()
    } else {
        "no: not in /proc/filesystems; load it with `modprobe overlay`".to_string()
    };
    let lines = [
        ("version", info.version.to_string()),
        ("root", info.root.clone()),
        ("kernel", info.kernel.clone()),
        ("cgroups", info.cgroups.clone()),
        ("overlayfs", overlayfs),
        ("kvm", info.kvm.to_string()),
        ("kvm detail", info.kvm_detail.clone()),
        ("vm backend", vm_backend(&kvm)),
    ];
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    for (key, value) in lines {
        println!("{:<width$} {value}", format!("{key}:"));
    }
    Ok(())
}

/// Whether `isola run --backend vm` can boot a Linux guest here, and why not.
fn vm_backend(kvm: &KvmFlavour) -> String {
    match kvm {
        KvmFlavour::Hardware { .. } => {
            "Linux guests boot on isola's KVM monitor (`isola run --backend vm`)".to_string()
        }
        KvmFlavour::Pvm => "cannot boot a Linux guest here: PVM cannot run an unmodified \
                            Linux kernel at a useful speed; use a host with hardware KVM"
            .to_string(),
        KvmFlavour::Unavailable { .. } => {
            "cannot boot a Linux guest here: it needs a usable /dev/kvm (see kvm detail)"
                .to_string()
        }
    }
}

/// The running kernel's release, as `uname -r` prints it.
fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown (cannot read /proc/sys/kernel/osrelease)".to_string())
}

/// Whether the kernel knows overlayfs now (built in, or its module loaded).
fn has_overlayfs() -> bool {
    std::fs::read_to_string("/proc/filesystems").is_ok_and(|text| {
        text.lines()
            .any(|line| line.split_whitespace().last() == Some("overlay"))
    })
}
