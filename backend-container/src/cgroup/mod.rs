//! Cgroup managers (v1 and v2): limits, membership, statistics, teardown.
//! `detect` finds the host's layout once; `Hierarchy::create` makes one sandbox's cgroup.

mod fs;
mod mountinfo;
pub mod oci;
mod teardown;
mod v1;
mod v2;

use std::fmt;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Duration;

use isola_core::spec::Limits;

/// The parent of every sandbox's cgroup, shared by all sandboxes.
pub const DEFAULT_PARENT: &str = "isola";

/// The CFS period the cpu limit is expressed over, in microseconds.
const CFS_PERIOD_US: u64 = 100_000;
/// The smallest quota the kernel accepts, in microseconds.
const CFS_MIN_QUOTA_US: u64 = 1_000;

const MOUNTINFO: &str = "/proc/self/mountinfo";

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot read {MOUNTINFO} to find the cgroup filesystems; mount /proc")]
    MountInfo(#[source] io::Error),
    #[error(
        "no cgroup filesystem with a memory, cpu or pids controller is mounted; \
         mount cgroup2 on /sys/fs/cgroup (or the v1 controllers under it)"
    )]
    NotMounted,
    #[error("the host has no {controller} cgroup controller; {remedy}, or run without {flag}")]
    MissingController {
        controller: &'static str,
        flag: &'static str,
        remedy: &'static str,
    },
    #[error(
        "invalid cgroup name {0:?}: use letters, digits, '-', '_' and '.', not starting with '.'"
    )]
    InvalidName(String),
    #[error("invalid cpus limit {0}: give a positive number of CPUs, such as 0.5")]
    InvalidCpus(f64),
    #[error("cannot create the cgroup directory {path}: {hint}")]
    Create {
        path: PathBuf,
        hint: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {value:?} to {path}: {hint}")]
    Write {
        path: PathBuf,
        value: String,
        hint: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot open {path}: {hint}")]
    Open {
        path: PathBuf,
        hint: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot read {path}; check that the cgroup filesystem is mounted")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "processes {pids:?} are still in {path} {waited:?} after SIGKILL; they may be stuck \
         in uninterruptible sleep (state D in /proc/PID/stat): remove the sandbox again later"
    )]
    Busy {
        path: PathBuf,
        pids: Vec<i32>,
        waited: Duration,
    },
    #[error(
        "cannot remove the cgroup directory {path}; remove it by hand (rmdir) once it is empty"
    )]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "this process (pid {pid}) is itself in {path}; it would kill itself: move it out first"
    )]
    SelfInside { pid: i32, path: PathBuf },
    #[error(transparent)]
    Oci(#[from] oci::OciError),
}

impl CgroupError {
    /// True when the host lacks something (a controller, a mount), as opposed
    /// to an operation failing: callers report these as "unavailable".
    pub fn is_host_unavailable(&self) -> bool {
        matches!(
            self,
            CgroupError::NotMounted
                | CgroupError::MissingController { .. }
                | CgroupError::MountInfo(_)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        })
    }
}

/// Where the cgroup filesystems we use are mounted.
#[derive(Debug, Clone, PartialEq)]
enum Layout {
    V1(v1::Mounts),
    /// The mount point of the unified hierarchy.
    V2(PathBuf),
}

/// The host's cgroup layout, found once by [`detect`].
#[derive(Debug, Clone, PartialEq)]
pub struct Hierarchy {
    layout: Layout,
}

/// Whether /sys/fs/cgroup is a cgroup2 mount (a unified host): one statfs,
/// where [`detect`] reads and parses all of mountinfo.
pub fn unified_at_default() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// Detects the host's cgroup layout from /proc/self/mountinfo: v2 (unified),
/// v1, or hybrid (v1 controllers beside a v2 hierarchy that holds none of
/// ours), which is used as v1.
pub fn detect() -> Result<Hierarchy, CgroupError> {
    let text = fs::read_to_string(MOUNTINFO).map_err(CgroupError::MountInfo)?;
    let hierarchy = Hierarchy::from_mountinfo(&text)?;
    tracing::debug!("cgroups: {hierarchy}");
    Ok(hierarchy)
}

impl Hierarchy {
    /// The layout described by mountinfo text (the format of /proc/self/mountinfo).
    pub fn from_mountinfo(text: &str) -> Result<Hierarchy, CgroupError> {
        let layout = mountinfo::layout(&mountinfo::cgroup_mounts(text))?;
        Ok(Hierarchy { layout })
    }

    pub fn version(&self) -> Version {
        match self.layout {
            Layout::V1(_) => Version::V1,
            Layout::V2(_) => Version::V2,
        }
    }

    /// Refuses, before anything is made, a limit whose controller the
    /// host lacks.
    pub fn check(&self, limits: &Limits) -> Result<(), CgroupError> {
        match &self.layout {
            Layout::V1(mounts) => mounts.check(limits),
            Layout::V2(root) => v2::controllers(root, limits).map(|_| ()),
        }
    }

    /// Makes the cgroup `isola/<name>` with the limits. See [`Hierarchy::create_in`].
    pub fn create(&self, name: &str, limits: &Limits) -> Result<Cgroup, CgroupError> {
        self.create_in(DEFAULT_PARENT, name, limits)
    }

    /// Makes the cgroup `<parent>/<name>` in each controller we use (v1) or in
    /// the unified tree (v2), and sets the limits. The parent is shared and
    /// removed by whichever sandbox leaves it empty. A leftover cgroup of that name (from a crash) is
    /// destroyed first. A limit whose controller the host lacks is refused
    /// before anything is made.
    pub fn create_in(
        &self,
        parent: &str,
        name: &str,
        limits: &Limits,
    ) -> Result<Cgroup, CgroupError> {
        check_name(parent)?;
        check_name(name)?;
        if let Some(cpus) = limits.cpus {
            if !(cpus.is_finite() && cpus > 0.0) {
                return Err(CgroupError::InvalidCpus(cpus));
            }
        }
        // The shared parent is removed by the last sandbox to leave; one
        // removed between our mkdir of it and of the sandbox's dir is made again.
        let mut attempt = 0;
        loop {
            match self.make_once(parent, name, limits) {
                Err(CgroupError::Create { ref source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && attempt < 3 =>
                {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn make_once(&self, parent: &str, name: &str, limits: &Limits) -> Result<Cgroup, CgroupError> {
        let cgroup = match &self.layout {
            Layout::V1(mounts) => {
                mounts.check(limits)?;
                let group = mounts.group(parent, name);
                let cgroup = Cgroup::new(name, Group::V1(group.clone()));
                let made = cgroup.unless_leftover(|| group.make());
                cgroup.or_rollback(made.and_then(|()| group.apply(limits)))?
            }
            Layout::V2(root) => {
                let controllers = v2::controllers(root, limits)?;
                let dir = v2::dir(root, parent, name);
                let cgroup = Cgroup::new(name, Group::V2(dir.clone()));
                let made = cgroup.unless_leftover(|| v2::make(root, parent, &dir, &controllers));
                cgroup.or_rollback(made.and_then(|()| v2::apply(&dir, limits)))?
            }
        };
        tracing::debug!("cgroup {name} created: {:?}", cgroup.paths());
        Ok(cgroup)
    }

    /// The cgroup `isola/<name>` as it is (made earlier, perhaps by another
    /// process), to read or destroy it. Nothing is created.
    pub fn open(&self, name: &str) -> Result<Cgroup, CgroupError> {
        self.open_in(DEFAULT_PARENT, name)
    }

    pub fn open_in(&self, parent: &str, name: &str) -> Result<Cgroup, CgroupError> {
        check_name(parent)?;
        check_name(name)?;
        let group = match &self.layout {
            Layout::V1(mounts) => Group::V1(mounts.group(parent, name)),
            Layout::V2(root) => Group::V2(v2::dir(root, parent, name)),
        };
        Ok(Cgroup::new(name, group))
    }
}

impl fmt::Display for Hierarchy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.layout {
            Layout::V2(root) => write!(f, "cgroup v2 at {}", root.display()),
            Layout::V1(m) => {
                write!(f, "cgroup v1{}", if m.hybrid { " (hybrid)" } else { "" })?;
                for (name, mount) in [("memory", &m.memory), ("cpu", &m.cpu), ("pids", &m.pids)] {
                    match mount {
                        Some(path) => write!(f, ", {name} at {}", path.display())?,
                        None => write!(f, ", no {name}")?,
                    }
                }
                Ok(())
            }
        }
    }
}

/// A name becomes one path component under cgroupfs: nothing that could
/// climb out of it or clash with the kernel's files.
fn check_name(name: &str) -> Result<(), CgroupError> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(CgroupError::InvalidName(name.to_owned()))
    }
}

/// The CFS quota for `cpus` CPUs' worth of time per period.
fn cfs_quota(cpus: f64) -> u64 {
    // `as` saturates: an absurd count means "no practical limit", not a wrap.
    ((cpus * CFS_PERIOD_US as f64).round() as u64).max(CFS_MIN_QUOTA_US)
}

/// Move the calling thread, the only one of its process, into the cgroup
/// whose `tasks` files these are (v1; see [`Cgroup::entry`]).
pub fn move_self(tasks: &[impl std::os::fd::AsFd]) -> nix::Result<()> {
    for file in tasks {
        nix::unistd::write(file, b"0")?;
    }
    Ok(())
}

/// How a new process joins the cgroup in `dirs` (see [`Cgroup::entry`]):
/// v1, each `tasks` file open for writing; v2, the one directory.
fn entry(version: Version, dirs: &[PathBuf]) -> Result<Entry, CgroupError> {
    let open = |path: PathBuf, write: bool| {
        std::fs::OpenOptions::new()
            .write(write)
            .read(!write)
            .custom_flags(if write { 0 } else { libc::O_DIRECTORY })
            .open(&path)
            .map_err(|source| CgroupError::Open {
                hint: fs::hint(&source),
                path,
                source,
            })
    };
    match (version, dirs) {
        (Version::V2, [dir]) => Ok(Entry::Directory(open(dir.clone(), false)?)),
        _ => Ok(Entry::Tasks(
            dirs.iter()
                .map(|d| open(d.join("tasks"), true))
                .collect::<Result<_, _>>()?,
        )),
    }
}

/// See [`Cgroup::entry`].
#[derive(Debug)]
pub enum Entry {
    /// v1: each controller's `tasks` file, open for writing.
    Tasks(Vec<std::fs::File>),
    /// v2: the cgroup's directory, for CLONE_INTO_CGROUP.
    Directory(std::fs::File),
}

#[derive(Debug, Clone, PartialEq)]
enum Group {
    V1(v1::Group),
    V2(PathBuf),
}

/// One sandbox's cgroup. Dropping it leaves the cgroup in place; call
/// [`Cgroup::destroy`] to tear it down.
#[derive(Debug)]
pub struct Cgroup {
    name: String,
    group: Group,
}

/// A snapshot of the cgroup's accounting; `None` where the host's
/// controllers don't provide the figure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
    /// Tasks (processes and threads) in the cgroup now.
    pub pids: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuStats {
    /// CPU time used; v1 has it only where cpuacct is mounted with cpu.
    pub usage_usec: Option<u64>,
    /// CFS periods that had runnable tasks, and those throttled by the quota.
    pub nr_periods: u64,
    pub nr_throttled: u64,
    /// Time the tasks spent throttled, in microseconds.
    pub throttled_usec: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Bytes charged now (page cache included).
    pub current: u64,
    /// The most ever charged; v2 needs Linux 5.19 for it.
    pub peak: Option<u64>,
}

impl Cgroup {
    fn new(name: &str, group: Group) -> Cgroup {
        Cgroup {
            name: name.to_owned(),
            group,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> Version {
        match self.group {
            Group::V1(_) => Version::V1,
            Group::V2(_) => Version::V2,
        }
    }

    /// The cgroup's directories: one per controller on v1, one on v2.
    pub fn paths(&self) -> Vec<PathBuf> {
        match &self.group {
            Group::V1(group) => group.dirs(),
            Group::V2(dir) => vec![dir.clone()],
        }
    }

    /// The cgroup.procs file of each directory. Writing a pid to all of them
    /// moves that process in; a child writing "0" moves itself, which lets
    /// it join before exec so the workload never runs outside the limits.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.paths().iter().map(|d| d.join(fs::PROCS)).collect()
    }

    /// How a new process gets in without the global lock that moving a
    /// process from outside takes (`cgroup_threadgroup_rwsem`: the write
    /// waits for an RCU grace period, milliseconds on an idle host). On
    /// v1 a single thread writing "0" to each controller's `tasks` file
    /// moves only itself and skips that lock; on v2 clone3 can create the
    /// process inside the cgroup (CLONE_INTO_CGROUP).
    pub fn entry(&self) -> Result<Entry, CgroupError> {
        entry(self.version(), &self.paths())
    }

    /// Moves process `pid` (0: the calling process) into the cgroup.
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        for file in self.procs_files() {
            fs::write(&file, pid)?;
        }
        Ok(())
    }

    /// The processes in the cgroup (v1: as listed by the first controller).
    pub fn pids(&self) -> Vec<i32> {
        self.paths()
            .first()
            .map(|d| fs::procs(d))
            .unwrap_or_default()
    }

    /// Whether the kernel's OOM killer killed a process in the cgroup.
    pub fn oom_killed(&self) -> bool {
        match &self.group {
            Group::V1(group) => group.oom_killed(),
            Group::V2(dir) => v2::oom_killed(dir),
        }
    }

    pub fn stats(&self) -> Stats {
        match &self.group {
            Group::V1(group) => group.stats(),
            Group::V2(dir) => v2::stats(dir),
        }
    }

    /// Kills every process still in the cgroup (waiting up to about a
    /// second for them to go), then removes its directories. The shared
    /// parent stays. Destroying a cgroup that is already gone succeeds.
    pub fn destroy(self) -> Result<(), CgroupError> {
        self.kill_and_remove()?;
        // Leave no `isola` parent behind once the last sandbox is gone; while
        // others are in it, rmdir fails with EBUSY and it stays.
        for path in self.paths() {
            if let Some(parent) = path.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
        tracing::debug!("cgroup {} destroyed", self.name);
        Ok(())
    }

    fn kill_and_remove(&self) -> Result<(), CgroupError> {
        teardown::destroy(&self.paths(), teardown::TIMEOUT)
    }

    /// Run `make`; if a cgroup of this name was left by a crash (a
    /// directory already there), tear it down and make it again, so that
    /// the new sandbox starts with no strangers, counters or limits in it.
    /// Asking mkdir rather than checking first saves a stat per controller
    /// on every run.
    fn unless_leftover(
        &self,
        make: impl Fn() -> Result<(), CgroupError>,
    ) -> Result<(), CgroupError> {
        match make() {
            Err(CgroupError::Create { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                tracing::info!("removing the leftover cgroup {:?}", self.paths());
                self.kill_and_remove()?;
                make()
            }
            other => other,
        }
    }

    /// The cgroup when it was made whole; otherwise whatever was made of it
    /// is removed, so nothing half-made is left behind.
    fn or_rollback(self, made: Result<(), CgroupError>) -> Result<Cgroup, CgroupError> {
        let Err(err) = made else {
            return Ok(self);
        };
        if let Err(cleanup) = self.kill_and_remove() {
            tracing::warn!("after a failed cgroup setup: {cleanup}");
        }
        Err(err)
    }
}

#[cfg(test)]
mod tests;
