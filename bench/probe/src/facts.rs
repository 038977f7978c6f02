//! The facts: what the kernel tells this process about where it runs, and
//! what it lets it reach. Each is read, never assumed; a fact the process
//! cannot read at all is `null`.

use std::fs;
use std::path::Path;

use serde::Serialize;

use crate::reach::{self, Reach};
use crate::status;
use crate::syscalls::{self, Surface};

/// Bumped when a field changes meaning.
const SCHEMA: u32 = 1;

#[derive(Debug, Serialize)]
pub struct Facts {
    pub schema: u32,
    pub kernel_release: Option<String>,
    /// Differs between kernels: a container shares its host's.
    pub boot_id: Option<String>,
    pub hostname: Option<String>,
    pub pid: u32,
    pub uid: u32,
    /// The command of PID 1 as seen from here.
    pub pid1: Option<String>,
    pub processes_visible: Option<usize>,
    pub net_interfaces: Option<Vec<String>>,
    pub mounts: Option<usize>,
    pub cap_eff: Option<String>,
    pub cap_eff_count: Option<u32>,
    /// 0 none, 1 strict, 2 filter.
    pub seccomp: Option<u8>,
    pub no_new_privs: Option<bool>,
    /// Character and block devices directly in /dev.
    pub devices: Option<Vec<String>>,
    pub dev_kvm: Reach,
    pub proc_kcore: Reach,
    pub proc_modules: Reach,
    /// The kernel log through syslog(2), as dmesg reads it.
    pub kernel_log: Reach,
    pub mem_total_kib: Option<u64>,
    pub mem_available_kib: Option<u64>,
    /// This process's cgroup limits, where its cgroup files are visible.
    pub cgroup_memory_limit: Option<String>,
    pub cgroup_pids_limit: Option<String>,
    /// Which system call numbers reach the kernel; null when that could
    /// not be measured, and `syscalls_error` says why.
    pub syscalls: Option<Surface>,
    pub syscalls_error: Option<String>,
}

pub fn collect() -> Facts {
    let status = fs::read_to_string("/proc/self/status").ok();
    let field = |key: &str| status.as_deref().and_then(|s| status::field(s, key));
    let cap_eff = field("CapEff").map(str::to_string);
    let cgroups = fs::read_to_string("/proc/self/cgroup").ok();
    let uname = uname();
    let (syscalls, syscalls_error) = match syscalls::scan() {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(crate::chain::chain(&e))),
    };
    Facts {
        schema: SCHEMA,
        kernel_release: uname.as_ref().map(|u| u.1.clone()),
        boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
        hostname: uname.map(|u| u.0),
        pid: std::process::id(),
        // SAFETY: getuid has no preconditions.
        uid: unsafe { libc::getuid() },
        pid1: read_trimmed("/proc/1/comm"),
        processes_visible: fs::read_dir("/proc").ok().map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .count()
        }),
        net_interfaces: fs::read_to_string("/proc/net/dev")
            .ok()
            .map(|t| interfaces(&t)),
        mounts: fs::read_to_string("/proc/self/mountinfo")
            .ok()
            .map(|t| t.lines().count()),
        cap_eff_count: cap_eff.as_deref().and_then(status::cap_count),
        cap_eff,
        seccomp: field("Seccomp").and_then(|v| v.parse().ok()),
        no_new_privs: field("NoNewPrivs").map(|v| v == "1"),
        devices: devices(Path::new("/dev")),
        dev_kvm: reach::open_device(Path::new("/dev/kvm")),
        proc_kcore: reach::read_one(Path::new("/proc/kcore")),
        proc_modules: reach::read_one(Path::new("/proc/modules")),
        kernel_log: kernel_log(),
        mem_total_kib: meminfo("MemTotal"),
        mem_available_kib: meminfo("MemAvailable"),
        cgroup_memory_limit: cgroups
            .as_deref()
            .and_then(|c| cgroup_file(c, "memory", "memory.max", "memory.limit_in_bytes")),
        cgroup_pids_limit: cgroups
            .as_deref()
            .and_then(|c| cgroup_file(c, "pids", "pids.max", "pids.max")),
        syscalls,
        syscalls_error,
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// (nodename, release)
fn uname() -> Option<(String, String)> {
    // SAFETY: utsname is plain old data; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let text = |chars: &[libc::c_char]| {
        let bytes: Vec<u8> = chars
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Some((text(&u.nodename), text(&u.release)))
}

/// Interface names in /proc/net/dev text (this network namespace's).
pub fn interfaces(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim().to_string()))
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names
}

fn devices(dir: &Path) -> Option<Vec<String>> {
    use std::os::unix::fs::FileTypeExt;
    let mut names: Vec<String> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| {
            e.file_type()
                .is_ok_and(|t| t.is_char_device() || t.is_block_device())
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Some(names)
}

fn kernel_log() -> Reach {
    const SYSLOG_ACTION_READ_ALL: libc::c_int = 3;
    let mut buf = [0u8; 64];
    // SAFETY: klogctl writes at most `len` bytes into `buf`.
    let n = unsafe {
        libc::klogctl(
            SYSLOG_ACTION_READ_ALL,
            buf.as_mut_ptr().cast(),
            buf.len() as libc::c_int,
        )
    };
    match n {
        n if n > 0 => Reach::Readable,
        0 => Reach::Empty,
        _ => Reach::Denied,
    }
}

pub fn meminfo(key: &str) -> Option<u64> {
    let text = fs::read_to_string("/proc/meminfo").ok()?;
    status::field(&text, key)?
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// A file of this process's own cgroup: `v2` in the unified hierarchy,
/// else `v1` in the `controller` hierarchy, both under /sys/fs/cgroup.
pub fn cgroup_file(cgroups: &str, controller: &str, v2: &str, v1: &str) -> Option<String> {
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let file = if controllers.is_empty() {
            Path::new("/sys/fs/cgroup")
                .join(path.trim_start_matches('/'))
                .join(v2)
        } else if controllers.split(',').any(|c| c == controller) {
            Path::new("/sys/fs/cgroup")
                .join(controller)
                .join(path.trim_start_matches('/'))
                .join(v1)
        } else {
            continue;
        };
        if let Ok(text) = fs::read_to_string(&file) {
            return Some(text.trim().to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_come_from_net_dev_lines() {
        let text = "Inter-|   Receive\n face |bytes\n    lo: 0 0\n  eth0: 1 2\n";
        assert_eq!(interfaces(text), ["eth0", "lo"]);
    }

    #[test]
    fn facts_of_this_process_are_read() {
        let f = collect();
        assert_eq!(f.pid, std::process::id());
        assert!(f.kernel_release.is_some());
        assert!(f.processes_visible.unwrap() >= 1);
        assert!(f.net_interfaces.unwrap().contains(&"lo".to_string()));
        assert!(f.mounts.unwrap() >= 1);
        assert!(f.mem_total_kib.unwrap() > 0);
        // One or the other: the surface, or why it could not be measured.
        assert_ne!(f.syscalls.is_some(), f.syscalls_error.is_some());
    }
}
