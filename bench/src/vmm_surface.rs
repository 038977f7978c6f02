//! A VMM's own confinement on the host, read while its guest idles: its
//! seccomp mode, uid and effective capabilities from /proc, and for
//! isola's monitor how many syscalls each thread kind's filter allows
//! (`isola-vmm --filters`, asked of the binary that runs).

use std::process::Command;

use crate::procfs;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmmSurface {
    pub seccomp: Option<u8>,
    pub uid: Option<u32>,
    pub capabilities: Option<u32>,
    /// Thread kind and its allowed syscalls' count, isola's monitor only.
    pub filters: Vec<(String, usize)>,
}

pub fn read(pid: u32) -> VmmSurface {
    let field = |name: &str| procfs::status_field(pid, name);
    let uid = field("Uid").and_then(|v| v.split_whitespace().nth(1)?.parse().ok());
    let capabilities = field("CapEff")
        .and_then(|v| u64::from_str_radix(&v, 16).ok())
        .map(u64::count_ones);
    let is_isola = procfs::comm(pid).as_deref() == Some("isola-vmm");
    VmmSurface {
        seccomp: procfs::seccomp_mode(pid),
        uid,
        capabilities,
        filters: if is_isola { filters(pid) } else { Vec::new() },
    }
}

fn filters(pid: u32) -> Vec<(String, usize)> {
    let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else {
        return Vec::new();
    };
    let Ok(out) = Command::new(exe).arg("--filters").output() else {
        return Vec::new();
    };
    let Ok(kinds) = serde_json::from_slice::<Vec<(String, Vec<String>)>>(&out.stdout) else {
        return Vec::new();
    };
    kinds
        .into_iter()
        .map(|(k, calls)| (k, calls.len()))
        .collect()
}

impl VmmSurface {
    /// The isolation matrix's cell.
    pub fn cell(&self) -> String {
        let filter = match self.seccomp {
            Some(0) => "all: no filter".to_string(),
            Some(2) if !self.filters.is_empty() => {
                let kinds: Vec<String> = self
                    .filters
                    .iter()
                    .map(|(kind, n)| format!("{kind} {n}"))
                    .collect();
                format!("filtered per thread ({} syscalls)", kinds.join(", "))
            }
            Some(2) => "filtered".to_string(),
            Some(m) => format!("seccomp mode {m}"),
            None => "?".to_string(),
        };
        let uid = self.uid.map_or("?".into(), |u| u.to_string());
        let caps = self.capabilities.map_or("?".into(), |c| c.to_string());
        format!("{filter}; uid {uid}; {caps} capabilities")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cell_says_filter_uid_and_capabilities() {
        let isola = VmmSurface {
            seccomp: Some(2),
            uid: Some(4_000_000_000),
            capabilities: Some(0),
            filters: vec![("vcpu".into(), 14), ("device".into(), 14)],
        };
        assert_eq!(
            isola.cell(),
            "filtered per thread (vcpu 14, device 14 syscalls); uid 4000000000; 0 capabilities"
        );
        let qemu = VmmSurface {
            seccomp: Some(0),
            uid: Some(0),
            capabilities: Some(41),
            filters: Vec::new(),
        };
        assert_eq!(qemu.cell(), "all: no filter; uid 0; 41 capabilities");
    }
}
