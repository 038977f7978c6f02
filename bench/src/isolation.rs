//! Isolation: the probe's facts and observed limits on the host and in each
//! sandbox, turned into a matrix of what each can see and do, each row with
//! why it matters.

use serde_json::Value;

use crate::results::IsolationRow;
use isola_core::spec::Limits;

use crate::sandbox::{self, Runner, SandboxError};
use crate::vmm_surface::VmmSurface;

/// Limits set on the sandboxes for the observed-limits rows, and what the
/// probe tries to exceed them by. A VM's memory limit is its guest's memory,
/// kernel included: 128 MiB leaves a guest room to boot.
const LIMITS: Limits = Limits {
    memory: Some(128 << 20),
    cpus: None,
    pids: Some(32),
};
const MEMORY_TRY_MIB: &str = "256";
const PIDS_TRY: &str = "64";

/// What the probe reported on one subject.
pub struct Probed {
    pub subject: String,
    pub facts: Value,
    pub limits: Value,
    /// A VMM's own confinement on the host (its host syscall surface).
    pub vmm: Option<VmmSurface>,
}

/// Facts and limits of one subject, or its error line.
pub fn probe(subject: &str, runner: &Runner) -> Result<Probed, SandboxError> {
    let facts = sandbox::json(&runner.probe(&["facts"], None, false)?)?;
    // The host runs without limits: its row shows what "none" looks like.
    let limits = match runner {
        Runner::Host { .. } => None,
        _ => Some(LIMITS),
    };
    let tries = ["limits", "--memory-mib", MEMORY_TRY_MIB, "--pids", PIDS_TRY];
    let limits = sandbox::json(&runner.probe(&tries, limits, false)?)?;
    Ok(Probed {
        subject: subject.to_string(),
        facts,
        limits,
        vmm: None,
    })
}

type Cell = fn(&Probed, &Probed) -> String;

/// The rows: key, label, why it matters, and how a cell reads the facts
/// (of the subject, and of the host for comparison).
const ROWS: &[(&str, &str, &str, Cell)] = &[
    (
        "kernel",
        "kernel",
        "a shared kernel is one attack surface for all",
        |p, h| {
            let same = p.facts["boot_id"] == h.facts["boot_id"];
            format!(
                "{} ({})",
                if same { "host's" } else { "own" },
                s(&p.facts["kernel_release"])
            )
        },
    ),
    (
        "processes",
        "processes visible",
        "other workloads' processes and arguments leak",
        |p, _| s(&p.facts["processes_visible"]),
    ),
    ("hostname", "hostname", "its own UTS namespace", |p, h| {
        if p.facts["hostname"] == h.facts["hostname"] {
            "host's".into()
        } else {
            "own".into()
        }
    }),
    (
        "network",
        "network interfaces",
        "no interface, no way out",
        |p, _| list(&p.facts["net_interfaces"]),
    ),
    (
        "mounts",
        "mounts visible",
        "host paths and filesystems it can see",
        |p, _| s(&p.facts["mounts"]),
    ),
    (
        "capabilities",
        "effective capabilities",
        "what root inside may do to the kernel",
        |p, _| s(&p.facts["cap_eff_count"]),
    ),
    (
        "seccomp",
        "seccomp",
        "a syscall filter shrinks the kernel's surface",
        |p, _| match p.facts["seccomp"].as_u64() {
            Some(0) => "none".into(),
            Some(1) => "strict".into(),
            Some(2) => "filter".into(),
            _ => "?".into(),
        },
    ),
    (
        "no_new_privs",
        "no_new_privs",
        "setuid binaries cannot raise privileges",
        |p, _| s(&p.facts["no_new_privs"]),
    ),
    (
        "devices",
        "device nodes in /dev",
        "each device is a driver to attack",
        |p, _| {
            p.facts["devices"]
                .as_array()
                .map(|d| d.len().to_string())
                .unwrap_or_else(|| "?".into())
        },
    ),
    (
        "dev_kvm",
        "/dev/kvm",
        "a hypervisor interface in the host kernel",
        |p, _| s(&p.facts["dev_kvm"]),
    ),
    (
        "proc_kcore",
        "/proc/kcore",
        "the kernel's memory",
        |p, _| s(&p.facts["proc_kcore"]),
    ),
    (
        "proc_modules",
        "/proc/modules",
        "which drivers the kernel has loaded",
        |p, _| s(&p.facts["proc_modules"]),
    ),
    (
        "kernel_log",
        "kernel log (dmesg)",
        "kernel addresses and other tenants' events",
        |p, _| s(&p.facts["kernel_log"]),
    ),
    (
        "memory_limit",
        "memory limit (observed)",
        "one tenant cannot starve the host",
        |p, _| {
            let m = &p.limits["memory"];
            match m["killed_by"].as_u64() {
                Some(sig) => format!(
                    "enforced: killed (signal {sig}) at {} MiB",
                    s(&m["touched_mib"])
                ),
                None => format!("none: touched {} MiB", s(&m["touched_mib"])),
            }
        },
    ),
    (
        "pids_limit",
        "pids limit (observed)",
        "a fork bomb stays inside",
        |p, _| {
            let m = &p.limits["pids"];
            match m["error"].as_str() {
                Some(e) => format!("enforced: {e} after {}", s(&m["started"])),
                None => format!("none: started {}", s(&m["started"])),
            }
        },
    ),
    (
        "syscalls",
        "syscalls reaching the host kernel",
        "the host kernel code a workload can call into",
        |p, h| {
            let same = p.facts["boot_id"] == h.facts["boot_id"];
            let sys = &p.facts["syscalls"];
            if sys.is_null() {
                return format!("? ({})", s(&p.facts["syscalls_error"]));
            }
            if same {
                format!("{} of {}", s(&sys["reached"]), s(&sys["tested"]))
            } else {
                format!(
                    "0 (its own kernel: {} of {})",
                    s(&sys["reached"]),
                    s(&sys["tested"])
                )
            }
        },
    ),
    (
        "vmm_surface",
        "VMM's own host syscalls, uid, capabilities",
        "what an escape from the guest into the VMM can call and touch",
        |p, _| p.vmm.as_ref().map_or("-".into(), VmmSurface::cell),
    ),
];

/// The matrix, a column per probed subject (the host first).
/// Rows whose answer, in a guest, is about the guest's own kernel.
const GUEST_KERNEL_ROWS: [&str; 10] = [
    "processes",
    "mounts",
    "capabilities",
    "seccomp",
    "no_new_privs",
    "devices",
    "dev_kvm",
    "proc_kcore",
    "proc_modules",
    "kernel_log",
];

pub fn rows(probed: &[Probed]) -> Vec<IsolationRow> {
    let Some(host) = probed.iter().find(|p| p.subject == "host") else {
        return Vec::new();
    };
    ROWS.iter()
        .map(|(key, label, why, cell)| IsolationRow {
            key: key.to_string(),
            label: label.to_string(),
            why: why.to_string(),
            values: probed
                .iter()
                .map(|p| {
                    let mut v = cell(p, host);
                    // Inside a VM these are the guest kernel's, not the host's.
                    if GUEST_KERNEL_ROWS.contains(key)
                        && p.facts["boot_id"] != host.facts["boot_id"]
                    {
                        v.push_str(" (guest's)");
                    }
                    (p.subject.clone(), v)
                })
                .collect(),
        })
        .collect()
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "?".into(),
        other => other.to_string(),
    }
}

fn list(v: &Value) -> String {
    v.as_array()
        .map(|a| a.iter().map(s).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn probed(subject: &str, boot_id: &str, reached: u64, killed: Option<u64>) -> Probed {
        Probed {
            subject: subject.into(),
            facts: json!({
                "boot_id": boot_id,
                "kernel_release": "6.1",
                "processes_visible": 3,
                "syscalls": {"tested": 374, "reached": reached},
            }),
            limits: json!({"memory": {"touched_mib": 60, "killed_by": killed}, "pids": {}}),
            vmm: None,
        }
    }

    #[test]
    fn a_guest_is_told_apart_from_the_host_and_a_container() {
        let rows = rows(&[
            probed("host", "a", 374, None),
            probed("container", "a", 303, Some(9)),
            probed("vm", "b", 374, Some(9)),
        ]);
        let cell = |key: &str, subject: &str| {
            let row = rows.iter().find(|r| r.key == key).unwrap();
            row.values
                .iter()
                .find(|v| v.0 == subject)
                .unwrap()
                .1
                .clone()
        };
        assert_eq!(cell("kernel", "container"), "host's (6.1)");
        assert_eq!(cell("kernel", "vm"), "own (6.1)");
        assert_eq!(cell("processes", "container"), "3");
        assert_eq!(cell("processes", "vm"), "3 (guest's)");
        assert_eq!(cell("syscalls", "container"), "303 of 374");
        assert_eq!(cell("syscalls", "vm"), "0 (its own kernel: 374 of 374)");
        assert_eq!(cell("memory_limit", "host"), "none: touched 60 MiB");
        assert!(cell("memory_limit", "vm").starts_with("enforced"));
        assert!(rows.iter().all(|r| !r.why.is_empty()));
    }
}
