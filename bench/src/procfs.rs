//! What /proc and the cgroup files say about a running sandbox's processes:
//! its process tree, their proportional and resident memory, its cgroup's
//! memory charge, and a VMM's guest memory mapping.

use std::collections::HashMap;
use std::fs;

/// `pid` and every process below it, found through each process's parent.
pub fn tree(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            if let Some(ppid) = ppid(p) {
                children.entry(ppid).or_default().push(p);
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend(c);
        }
        i += 1;
    }
    out
}

/// The process's parent.
pub fn ppid(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may hold spaces and parentheses: fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(1)?.parse().ok()
}

/// The process's command name (`comm`).
pub fn comm(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// The file name of the process's executable (`comm` is cut at 15
/// characters: containerd-shim-runc-v2 is `containerd-shim` there).
pub fn exe_name(pid: u32) -> Option<String> {
    let exe = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    Some(exe.file_name()?.to_string_lossy().into_owned())
}

/// A `Key:   N kB` field of smaps_rollup, KiB.
fn rollup_kib(pid: u32, key: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    kib_field(&text, key)
}

fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Proportional set size: each shared page counted once across its users.
pub fn pss_kib(pid: u32) -> Option<u64> {
    rollup_kib(pid, "Pss")
}

pub fn rss_kib(pid: u32) -> Option<u64> {
    rollup_kib(pid, "Rss")
}

/// The process's private pages (Private_Clean + Private_Dirty): what
/// its end gives back.
pub fn private_kib(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    Some(kib_field(&text, "Private_Clean")? + kib_field(&text, "Private_Dirty")?)
}

/// VmRSS of /proc/PID/status: resident pages, anonymous, file and shmem.
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_field(&text, "VmRSS")
}

/// The resident part of the process's largest mapping of at least
/// `min_kib`: a VMM's guest memory is one anonymous mapping of its size.
pub fn largest_mapping_rss_kib(pid: u32, min_kib: u64) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
    let mut best: Option<(u64, u64)> = None;
    let mut size = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("Size:") {
            size = v.split_whitespace().next().and_then(|n| n.parse().ok());
        } else if let Some(v) = line.strip_prefix("Rss:") {
            let rss: Option<u64> = v.split_whitespace().next().and_then(|n| n.parse().ok());
            if let (Some(s), Some(r)) = (size.take(), rss) {
                if s >= min_kib && best.is_none_or(|(bs, _)| s > bs) {
                    best = Some((s, r));
                }
            }
        }
    }
    best.map(|(_, rss)| rss)
}

/// The memory the kernel charges to the process's memory cgroup, KiB
/// (v1 `memory.usage_in_bytes`, v2 `memory.current`).
pub fn cgroup_memory_kib(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let (v1, v2) = cgroup_paths(&text);
    let file = match (v1, v2) {
        (Some(p), _) => format!("/sys/fs/cgroup/memory{p}/memory.usage_in_bytes"),
        (None, Some(p)) => format!("/sys/fs/cgroup{p}/memory.current"),
        _ => return None,
    };
    let bytes: u64 = fs::read_to_string(file).ok()?.trim().parse().ok()?;
    Some(bytes / 1024)
}

/// The v1 memory controller's path and the v2 path, from /proc/PID/cgroup.
fn cgroup_paths(text: &str) -> (Option<&str>, Option<&str>) {
    let mut v1 = None;
    let mut v2 = None;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next(), f.next());
        match (ctrls, path) {
            (Some(""), Some(p)) => v2 = Some(p),
            (Some(c), Some(p)) if c.split(',').any(|c| c == "memory") => v1 = Some(p),
            _ => {}
        }
    }
    (v1, v2)
}

/// A field of /proc/PID/status, its value trimmed.
pub fn status_field(pid: u32, field: &str) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

/// The process's seccomp mode (0 none, 1 strict, 2 filter).
pub fn seccomp_mode(pid: u32) -> Option<u8> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .and_then(|v| v.trim().parse().ok())
}

/// MemTotal of this host, KiB.
pub fn mem_total_kib() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| kib_field(&t, "MemTotal"))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_tree_and_memory() {
        let me = std::process::id();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let t = tree(me);
        assert_eq!(t[0], me);
        assert!(t.contains(&child.id()), "{t:?}");
        assert!(pss_kib(me).unwrap() > 0);
        assert!(rss_kib(me).unwrap() >= pss_kib(me).unwrap());
        assert!(vm_rss_kib(me).unwrap() > 0);
        assert!(private_kib(me).unwrap() <= rss_kib(me).unwrap());
        assert_eq!(ppid(child.id()), Some(me));
        assert_eq!(comm(child.id()).as_deref(), Some("sleep"));
        assert_eq!(exe_name(child.id()).as_deref(), Some("sleep"));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn cgroup_lines_of_v1_v2_and_hybrid_hosts() {
        let hybrid = "12:pids:/a\n5:cpu,cpuacct:/a\n4:memory:/isola/x\n0::/\n";
        assert_eq!(cgroup_paths(hybrid), (Some("/isola/x"), Some("/")));
        assert_eq!(cgroup_paths("0::/isola/y\n"), (None, Some("/isola/y")));
    }

    #[test]
    fn the_largest_mapping_is_found() {
        let me = std::process::id();
        let big = vec![1u8; 64 << 20];
        let touched = largest_mapping_rss_kib(me, 60 << 10).unwrap();
        assert!(touched >= 60 << 10, "{touched}");
        drop(big);
    }
}
