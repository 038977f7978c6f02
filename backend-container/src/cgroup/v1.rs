//! cgroup v1: one directory per controller (memory, cpu, pids), each under
//! that controller's own mount, used on legacy and hybrid hosts.

use std::path::{Path, PathBuf};

use isola_core::spec::Limits;

use super::{fs, CgroupError, CpuStats, MemoryStats, Stats, CFS_PERIOD_US};

/// Where the controllers we use are mounted; `None` when the host lacks one.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Mounts {
    pub memory: Option<PathBuf>,
    pub cpu: Option<PathBuf>,
    pub pids: Option<PathBuf>,
    /// A cgroup2 hierarchy is mounted too, without our controllers.
    pub hybrid: bool,
}

/// One sandbox's directories, one per controller the host has.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Group {
    pub memory: Option<PathBuf>,
    pub cpu: Option<PathBuf>,
    pub pids: Option<PathBuf>,
}

impl Mounts {
    /// The sandbox's directories, whether or not they exist yet.
    pub fn group(&self, parent: &str, name: &str) -> Group {
        let dir = |mount: &Option<PathBuf>| mount.as_ref().map(|m| m.join(parent).join(name));
        Group {
            memory: dir(&self.memory),
            cpu: dir(&self.cpu),
            pids: dir(&self.pids),
        }
    }

    /// Refuses, before anything is created, a limit whose controller is missing.
    pub fn check(&self, limits: &Limits) -> Result<(), CgroupError> {
        let needs = [
            ("memory", "--memory", limits.memory.is_some(), &self.memory),
            ("cpu", "--cpus", limits.cpus.is_some(), &self.cpu),
            ("pids", "--pids-limit", limits.pids.is_some(), &self.pids),
        ];
        for (controller, flag, wanted, mount) in needs {
            if wanted && mount.is_none() {
                return Err(CgroupError::MissingController {
                    controller,
                    flag,
                    remedy: "mount it (cgroup v1)",
                });
            }
        }
        Ok(())
    }
}

impl Group {
    pub fn dirs(&self) -> Vec<PathBuf> {
        [&self.memory, &self.cpu, &self.pids]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// Makes the directories (the parent too, shared by all sandboxes).
    pub fn make(&self) -> Result<(), CgroupError> {
        for dir in self.dirs() {
            if let Some(parent) = dir.parent() {
                fs::mkdir_all(parent)?;
            }
            fs::mkdir(&dir)?;
        }
        Ok(())
    }

    pub fn apply(&self, limits: &Limits) -> Result<(), CgroupError> {
        if let (Some(dir), Some(bytes)) = (&self.memory, limits.memory) {
            apply_memory(dir, bytes)?;
        }
        if let (Some(dir), Some(quota)) = (&self.cpu, limits.cpus.map(super::cfs_quota)) {
            // The period first: the kernel checks the quota against it.
            fs::write(&dir.join("cpu.cfs_period_us"), CFS_PERIOD_US)?;
            fs::write(&dir.join("cpu.cfs_quota_us"), quota)?;
        }
        if let (Some(dir), Some(pids)) = (&self.pids, limits.pids) {
            fs::write(&dir.join("pids.max"), pids)?;
        }
        Ok(())
    }

    pub fn oom_killed(&self) -> bool {
        self.memory.as_deref().is_some_and(oom_killed_in)
    }

    pub fn stats(&self) -> Stats {
        let cpu = self.cpu.as_ref().and_then(|dir| {
            let text = fs::read_to_string(dir.join("cpu.stat")).ok()?;
            let mut stats = cpu_stats(&text);
            // cpuacct shares the directory only where it is co-mounted with cpu.
            stats.usage_usec = fs::read_u64(&dir.join("cpuacct.usage")).map(|ns| ns / 1000);
            Some(stats)
        });
        let memory = self.memory.as_ref().and_then(|dir| {
            Some(MemoryStats {
                current: fs::read_u64(&dir.join("memory.usage_in_bytes"))?,
                peak: fs::read_u64(&dir.join("memory.max_usage_in_bytes")),
            })
        });
        let pids = self
            .pids
            .as_ref()
            .and_then(|dir| fs::read_u64(&dir.join("pids.current")));
        Stats { cpu, memory, pids }
    }
}

fn apply_memory(dir: &Path, bytes: u64) -> Result<(), CgroupError> {
    // The memory limit first: the kernel refuses memory+swap below it.
    fs::write(&dir.join("memory.limit_in_bytes"), bytes)?;
    // Without a memory+swap limit the workload could spill past the limit
    // into swap. The file is absent when swap accounting is off.
    let memsw = dir.join("memory.memsw.limit_in_bytes");
    if memsw.exists() {
        match fs::write(&memsw, bytes) {
            Err(CgroupError::Write { source, .. })
                if matches!(source.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) =>
            {
                tracing::debug!("{}: not limiting swap ({source})", memsw.display());
            }
            other => other?,
        }
    }
    // Best effort, and only a preference: the memsw limit is what holds.
    if let Err(err) = fs::write(&dir.join("memory.swappiness"), 0) {
        tracing::debug!("{err}");
    }
    Ok(())
}

/// Whether the OOM killer killed a process in the memory cgroup `dir`.
pub(super) fn oom_killed_in(dir: &Path) -> bool {
    fs::read_to_string(dir.join("memory.oom_control")).is_ok_and(|text| oom_killed(&text))
}

/// memory.oom_control: `oom_kill N` counts OOM kills (kernel 4.13 and
/// later). Older kernels only say `under_oom 1` while an OOM is in progress.
/// memory.failcnt is not used: reclaiming page cache at the limit counts too,
/// so it would report OOM for workloads that merely filled the limit.
fn oom_killed(oom_control: &str) -> bool {
    match fs::keyed(oom_control, "oom_kill") {
        Some(kills) => kills > 0,
        None => fs::keyed(oom_control, "under_oom").is_some_and(|u| u > 0),
    }
}

/// cpu.stat of the v1 cpu controller; throttled_time is in nanoseconds.
fn cpu_stats(text: &str) -> CpuStats {
    CpuStats {
        usage_usec: None,
        nr_periods: fs::keyed(text, "nr_periods").unwrap_or(0),
        nr_throttled: fs::keyed(text, "nr_throttled").unwrap_or(0),
        throttled_usec: fs::keyed(text, "throttled_time").unwrap_or(0) / 1000,
    }
}

#[cfg(test)]
mod tests {
    use super::fs::{fixture, read_file as read};
    use super::*;

    const UNLIMITED: &str = "9223372036854771712";

    #[test]
    fn memory_limits_memory_and_swap() {
        let tmp = fixture(&[
            ("memory.limit_in_bytes", UNLIMITED),
            ("memory.memsw.limit_in_bytes", UNLIMITED),
            ("memory.swappiness", "60"),
        ]);
        apply_memory(tmp.path(), 32 << 20).unwrap();
        assert_eq!(read(tmp.path(), "memory.limit_in_bytes"), "33554432");
        assert_eq!(read(tmp.path(), "memory.memsw.limit_in_bytes"), "33554432");
        assert_eq!(read(tmp.path(), "memory.swappiness"), "0");
    }

    #[test]
    fn memory_without_swap_accounting_or_swappiness() {
        let tmp = fixture(&[("memory.limit_in_bytes", UNLIMITED)]);
        apply_memory(tmp.path(), 4096).unwrap();
        assert_eq!(read(tmp.path(), "memory.limit_in_bytes"), "4096");
        assert!(!tmp.path().join("memory.memsw.limit_in_bytes").exists());
        assert!(!tmp.path().join("memory.swappiness").exists());
    }

    #[test]
    fn apply_writes_each_controller_in_its_own_directory() {
        let memory = fixture(&[("memory.limit_in_bytes", UNLIMITED)]);
        let cpu = fixture(&[("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "-1")]);
        let pids = fixture(&[("pids.max", "max")]);
        let group = Group {
            memory: Some(memory.path().into()),
            cpu: Some(cpu.path().into()),
            pids: Some(pids.path().into()),
        };
        let limits = Limits {
            memory: Some(1 << 30),
            cpus: Some(0.5),
            pids: Some(20),
        };
        group.apply(&limits).unwrap();
        assert_eq!(read(memory.path(), "memory.limit_in_bytes"), "1073741824");
        assert_eq!(read(cpu.path(), "cpu.cfs_period_us"), "100000");
        assert_eq!(read(cpu.path(), "cpu.cfs_quota_us"), "50000");
        assert_eq!(read(pids.path(), "pids.max"), "20");
    }

    #[test]
    fn unrequested_limits_are_left_alone() {
        let cpu = fixture(&[("cpu.cfs_quota_us", "-1")]);
        let group = Group {
            memory: None,
            cpu: Some(cpu.path().into()),
            pids: None,
        };
        group.apply(&Limits::default()).unwrap();
        assert_eq!(read(cpu.path(), "cpu.cfs_quota_us"), "-1");
    }

    #[test]
    fn a_missing_controller_is_refused_only_when_needed() {
        let mounts = Mounts {
            memory: None,
            cpu: Some("/x/cpu".into()),
            pids: None,
            hybrid: false,
        };
        mounts
            .check(&Limits {
                cpus: Some(1.0),
                ..Limits::default()
            })
            .unwrap();
        let err = mounts
            .check(&Limits {
                memory: Some(1 << 20),
                ..Limits::default()
            })
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("no memory cgroup controller"), "{msg}");
        assert!(msg.contains("--memory"), "{msg}");
        assert_eq!(
            mounts.group("isola", "a").dirs(),
            vec![PathBuf::from("/x/cpu/isola/a")]
        );
    }

    #[test]
    fn oom_control_parsing() {
        assert!(!oom_killed("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"));
        assert!(oom_killed("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"));
        // Before kernel 4.13 there is no oom_kill line.
        assert!(!oom_killed("oom_kill_disable 0\nunder_oom 0\n"));
        assert!(oom_killed("oom_kill_disable 0\nunder_oom 1\n"));
    }

    #[test]
    fn oom_killed_reads_the_memory_directory() {
        let memory = fixture(&[(
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        )]);
        let group = Group {
            memory: Some(memory.path().into()),
            cpu: None,
            pids: None,
        };
        assert!(group.oom_killed());
        let without = Group {
            memory: None,
            ..group
        };
        assert!(!without.oom_killed());
    }

    #[test]
    fn stats_read_cpu_memory_and_pids() {
        let cpu = fixture(&[
            ("cpu.stat", "nr_periods 40\nnr_throttled 7\nthrottled_time 2500000\nnr_bursts 0\nburst_time 0\n"),
            ("cpuacct.usage", "3000000"),
        ]);
        let memory = fixture(&[
            ("memory.usage_in_bytes", "8192"),
            ("memory.max_usage_in_bytes", "16384"),
        ]);
        let pids = fixture(&[("pids.current", "3\n")]);
        let group = Group {
            memory: Some(memory.path().into()),
            cpu: Some(cpu.path().into()),
            pids: Some(pids.path().into()),
        };
        let stats = group.stats();
        assert_eq!(
            stats.cpu,
            Some(CpuStats {
                usage_usec: Some(3000),
                nr_periods: 40,
                nr_throttled: 7,
                throttled_usec: 2500,
            })
        );
        assert_eq!(
            stats.memory,
            Some(MemoryStats {
                current: 8192,
                peak: Some(16384)
            })
        );
        assert_eq!(stats.pids, Some(3));
    }

    #[test]
    fn stats_of_missing_controllers_are_none() {
        let group = Group {
            memory: None,
            cpu: None,
            pids: None,
        };
        assert_eq!(group.stats(), Stats::default());
    }
}
