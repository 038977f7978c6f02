//! cgroup v2: one directory in the unified tree, with the controllers enabled
//! for it through its ancestors' cgroup.subtree_control.

use std::path::{Path, PathBuf};

use isola_core::spec::Limits;

use super::{fs, CgroupError, CpuStats, MemoryStats, Stats, CFS_PERIOD_US};

/// The controllers to enable for a sandbox: every one of ours the root offers
/// (for statistics even without a limit), each marked when a limit needs it.
/// A limit whose controller the root lacks is refused before anything is made.
pub(super) fn controllers(
    root: &Path,
    limits: &Limits,
) -> Result<Vec<(&'static str, bool)>, CgroupError> {
    let available = fs::read(&root.join("cgroup.controllers"))?;
    let available: Vec<&str> = available.split_whitespace().collect();
    let ours = [
        ("memory", "--memory", limits.memory.is_some()),
        ("cpu", "--cpus", limits.cpus.is_some()),
        ("pids", "--pids-limit", limits.pids.is_some()),
    ];
    let mut out = Vec::new();
    for (controller, flag, needed) in ours {
        if available.contains(&controller) {
            out.push((controller, needed));
        } else if needed {
            return Err(CgroupError::MissingController {
                controller,
                flag,
                remedy: "enable it in the cgroup v2 root (cgroup.subtree_control of its parents)",
            });
        }
    }
    Ok(out)
}

/// Enables the controllers for `dir`'s children. Ones already enabled are not
/// written again: a cgroup holding processes (a container's root) may not
/// change its subtree_control, and need not when it is set already.
/// Failing to enable a controller only statistics would use is not an error.
pub(super) fn enable<S: AsRef<str>>(
    dir: &Path,
    controllers: &[(S, bool)],
) -> Result<(), CgroupError> {
    let file = dir.join("cgroup.subtree_control");
    let enabled = fs::read(&file)?;
    let enabled: Vec<&str> = enabled.split_whitespace().collect();
    for (controller, needed) in controllers {
        let (controller, needed) = (controller.as_ref(), *needed);
        if enabled.contains(&controller) {
            continue;
        }
        match fs::write(&file, format!("+{controller}")) {
            Err(err) if !needed => tracing::debug!("no {controller} statistics: {err}"),
            other => other?,
        }
    }
    Ok(())
}

/// Makes the sandbox's directory `dir` below `root/parent`, enabling the
/// controllers on the way down: the root's children, then the parent's.
pub(super) fn make(
    root: &Path,
    parent: &str,
    dir: &Path,
    controllers: &[(&'static str, bool)],
) -> Result<(), CgroupError> {
    enable(root, controllers)?;
    let parent = root.join(parent);
    fs::mkdir_all(&parent)?;
    enable(&parent, controllers)?;
    fs::mkdir(dir)
}

pub(super) fn apply(dir: &Path, limits: &Limits) -> Result<(), CgroupError> {
    if let Some(bytes) = limits.memory {
        fs::write(&dir.join("memory.max"), bytes)?;
        // The limit covers swap too: none at all, where swap is accounted.
        let swap = dir.join("memory.swap.max");
        if swap.exists() {
            fs::write(&swap, 0)?;
        }
    }
    if let Some(quota) = limits.cpus.map(super::cfs_quota) {
        fs::write(&dir.join("cpu.max"), format!("{quota} {CFS_PERIOD_US}"))?;
    }
    if let Some(pids) = limits.pids {
        fs::write(&dir.join("pids.max"), pids)?;
    }
    Ok(())
}

/// memory.events counts OOM kills in the cgroup and below it.
pub(super) fn oom_killed(dir: &Path) -> bool {
    fs::read_to_string(dir.join("memory.events"))
        .ok()
        .and_then(|text| fs::keyed(&text, "oom_kill"))
        .is_some_and(|kills| kills > 0)
}

pub(super) fn stats(dir: &Path) -> Stats {
    let cpu = fs::read_to_string(dir.join("cpu.stat"))
        .ok()
        .map(|text| cpu_stats(&text));
    let memory = fs::read_u64(&dir.join("memory.current")).map(|current| MemoryStats {
        current,
        // memory.peak arrived in Linux 5.19.
        peak: fs::read_u64(&dir.join("memory.peak")),
    });
    let pids = fs::read_u64(&dir.join("pids.current"));
    Stats { cpu, memory, pids }
}

/// cpu.stat: usage is always there; the throttling lines only with the cpu
/// controller enabled.
fn cpu_stats(text: &str) -> CpuStats {
    CpuStats {
        usage_usec: fs::keyed(text, "usage_usec"),
        nr_periods: fs::keyed(text, "nr_periods").unwrap_or(0),
        nr_throttled: fs::keyed(text, "nr_throttled").unwrap_or(0),
        throttled_usec: fs::keyed(text, "throttled_usec").unwrap_or(0),
    }
}

/// The sandbox's directory.
pub(super) fn dir(root: &Path, parent: &str, name: &str) -> PathBuf {
    root.join(parent).join(name)
}

#[cfg(test)]
mod tests {
    use super::fs::{fixture, read_file as read};
    use super::*;

    #[test]
    fn limits_are_written() {
        let tmp = fixture(&[
            ("memory.max", "max"),
            ("memory.swap.max", "max"),
            ("cpu.max", "max 100000"),
            ("pids.max", "max"),
        ]);
        let limits = Limits {
            memory: Some(32 << 20),
            cpus: Some(1.5),
            pids: Some(20),
        };
        apply(tmp.path(), &limits).unwrap();
        assert_eq!(read(tmp.path(), "memory.max"), "33554432");
        assert_eq!(read(tmp.path(), "memory.swap.max"), "0");
        assert_eq!(read(tmp.path(), "cpu.max"), "150000 100000");
        assert_eq!(read(tmp.path(), "pids.max"), "20");
    }

    #[test]
    fn swap_is_left_alone_where_it_is_not_accounted() {
        let tmp = fixture(&[("memory.max", "max")]);
        apply(
            tmp.path(),
            &Limits {
                memory: Some(4096),
                ..Limits::default()
            },
        )
        .unwrap();
        assert_eq!(read(tmp.path(), "memory.max"), "4096");
        assert!(!tmp.path().join("memory.swap.max").exists());
    }

    #[test]
    fn a_tiny_cpu_share_gets_the_minimum_quota() {
        let tmp = fixture(&[("cpu.max", "max 100000")]);
        apply(
            tmp.path(),
            &Limits {
                cpus: Some(0.001),
                ..Limits::default()
            },
        )
        .unwrap();
        assert_eq!(read(tmp.path(), "cpu.max"), "1000 100000");
    }

    #[test]
    fn controllers_keeps_what_the_root_offers() {
        let root = fixture(&[(
            "cgroup.controllers",
            "cpuset cpu io memory hugetlb pids rdma misc\n",
        )]);
        let limits = Limits {
            pids: Some(5),
            ..Limits::default()
        };
        assert_eq!(
            controllers(root.path(), &limits).unwrap(),
            vec![("memory", false), ("cpu", false), ("pids", true)]
        );
    }

    #[test]
    fn a_requested_controller_the_root_lacks_is_refused() {
        // The unified hierarchy of a hybrid host.
        let root = fixture(&[("cgroup.controllers", "hugetlb\n")]);
        assert_eq!(
            controllers(root.path(), &Limits::default()).unwrap(),
            vec![]
        );
        let err = controllers(
            root.path(),
            &Limits {
                cpus: Some(2.0),
                ..Limits::default()
            },
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("no cpu cgroup controller"), "{msg}");
        assert!(msg.contains("--cpus"), "{msg}");
    }

    #[test]
    fn enable_writes_only_missing_controllers() {
        // A regular file keeps only the last write, which is enough to see
        // that "memory", already enabled, was not written again.
        let dir = fixture(&[("cgroup.subtree_control", "memory\n")]);
        enable(dir.path(), &[("memory", true), ("pids", true)]).unwrap();
        assert_eq!(read(dir.path(), "cgroup.subtree_control"), "+pids");

        // Unreadable subtree_control is an error naming the file.
        let gone = fixture(&[]);
        let err = enable(gone.path(), &[("cpu", false)]).unwrap_err();
        assert!(err.to_string().contains("cgroup.subtree_control"), "{err}");
    }

    #[test]
    fn memory_events_parsing() {
        let quiet = fixture(&[(
            "memory.events",
            "low 0\nhigh 0\nmax 12\noom 0\noom_kill 0\noom_group_kill 0\n",
        )]);
        assert!(!oom_killed(quiet.path()));
        let killed = fixture(&[(
            "memory.events",
            "low 0\nhigh 0\nmax 40\noom 1\noom_kill 1\noom_group_kill 0\n",
        )]);
        assert!(oom_killed(killed.path()));
        let none = fixture(&[]);
        assert!(!oom_killed(none.path()));
    }

    #[test]
    fn stats_are_read() {
        let dir = fixture(&[
            (
                "cpu.stat",
                "usage_usec 9000\nuser_usec 6000\nsystem_usec 3000\nnr_periods 10\nnr_throttled 4\nthrottled_usec 777\n",
            ),
            ("memory.current", "65536\n"),
            ("memory.peak", "131072\n"),
            ("pids.current", "2\n"),
        ]);
        let stats = stats(dir.path());
        assert_eq!(
            stats.cpu,
            Some(CpuStats {
                usage_usec: Some(9000),
                nr_periods: 10,
                nr_throttled: 4,
                throttled_usec: 777,
            })
        );
        assert_eq!(
            stats.memory,
            Some(MemoryStats {
                current: 65536,
                peak: Some(131072)
            })
        );
        assert_eq!(stats.pids, Some(2));
    }

    #[test]
    fn stats_without_controllers() {
        // Without the cpu controller cpu.stat has only the usage lines.
        let dir = fixture(&[
            ("cpu.stat", "usage_usec 5\nuser_usec 3\nsystem_usec 2\n"),
            ("memory.current", "1"),
        ]);
        let stats = stats(dir.path());
        assert_eq!(
            stats.cpu.map(|c| (c.usage_usec, c.nr_periods)),
            Some((Some(5), 0))
        );
        assert_eq!(
            stats.memory,
            Some(MemoryStats {
                current: 1,
                peak: None
            })
        );
        assert_eq!(stats.pids, None);
    }
}
