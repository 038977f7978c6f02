//! A container's cgroup as an OCI runtime makes it: config.json's
//! `linux.cgroupsPath` in every mounted v1 hierarchy (or once in the v2 tree),
//! with `linux.resources` written there; then paused, signalled, measured, removed.

mod bpf;
mod check;
mod devices;
mod fields;
mod freezer;
mod host;
mod hugetlb;
mod path;
mod stats;
mod write_v1;
mod write_v2;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use self::devices::Rule;
use self::fields::{CONFIG, UPDATE};
use self::host::Host;
use super::{fs, teardown, v1, v2, CgroupError, Entry, Version};

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// A resource the host cannot honour, or a value no kernel takes.
    #[error("{field} {why}")]
    Refused { field: String, why: String },
    #[error("config.json's linux.cgroupsPath {path:?} {why}")]
    Path { path: String, why: &'static str },
    #[error(
        "the cgroup {path} already holds processes {pids:?}: another container is using it; \
         choose another linux.cgroupsPath, or delete that container first"
    )]
    InUse { path: String, pids: Vec<i32> },
    #[error("cannot {what} the container: this host has no {controller} cgroup controller")]
    NoController {
        what: &'static str,
        controller: &'static str,
    },
    #[error(
        "the cgroup {} did not freeze within {waited:?} (it reads {state}), so it was thawed \
         back; a process may be in uninterruptible sleep: try again", .path.display()
    )]
    Freeze {
        path: PathBuf,
        state: String,
        waited: Duration,
    },
    #[error(
        "the cgroup {} is still frozen {waited:?} after thawing it (it reads {state}); \
         is a parent cgroup frozen?", .path.display()
    )]
    Thaw {
        path: PathBuf,
        state: String,
        waited: Duration,
    },
    #[error(
        "cannot {step} for the cgroup {}: cgroup v2 enforces device rules with an eBPF \
         program, which needs a kernel with CONFIG_CGROUP_BPF and a runtime with \
         CAP_SYS_ADMIN", .path.display()
    )]
    Bpf {
        path: PathBuf,
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot send {signal} to process {pid} of the container")]
    Signal {
        pid: i32,
        signal: Signal,
        #[source]
        source: Errno,
    },
}

/// One container's cgroup. Dropping it leaves the cgroup in place; call
/// [`OciCgroup::destroy`] to remove it.
#[derive(Debug, Clone)]
pub struct OciCgroup {
    /// The normalised path, absolute below each hierarchy's root.
    path: String,
    host: Host,
    group: Group,
    /// How many of the leaf's ancestors `create` made (and `destroy` may remove).
    parents_made: usize,
}

/// The container's directories, each with the controllers of its hierarchy
/// (v2: one directory, all controllers). Never empty.
#[derive(Debug, Clone, PartialEq)]
struct Group {
    version: Version,
    dirs: Vec<(Vec<String>, PathBuf)>,
}

impl Group {
    fn new(host: &Host, components: &[String]) -> Result<Group, CgroupError> {
        let dirs: Vec<_> = host
            .controllers()
            .into_iter()
            .zip(host.dirs(components))
            .collect();
        if dirs.is_empty() {
            return Err(CgroupError::NotMounted);
        }
        Ok(Group {
            version: host.version(),
            dirs,
        })
    }

    /// The directory where `controller`'s files are (v2: the one directory).
    fn dir(&self, controller: &str) -> Option<&Path> {
        match self.version {
            Version::V1 => self
                .dirs
                .iter()
                .find(|(c, _)| c.iter().any(|c| c == controller))
                .map(|(_, d)| d.as_path()),
            Version::V2 => Some(self.main()),
        }
    }

    /// The v2 directory; on v1 the first hierarchy's.
    fn main(&self) -> &Path {
        // `new` refuses an empty group.
        &self.dirs[0].1
    }

    fn paths(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|(_, d)| d.clone()).collect()
    }
}

/// runc reads 0 as "not set" in most numeric resources; so do callers.
fn set<T: Default + PartialEq + Copy>(value: Option<T>) -> Option<T> {
    value.filter(|v| *v != T::default())
}

/// pids.max for config.json's pids.limit: 0 or below is no limit.
fn pids_max(limit: i64) -> String {
    if limit > 0 {
        limit.to_string()
    } else {
        "max".to_owned()
    }
}

/// The kernel's name for a page size `check` accepted.
fn hugepage_name(page_size: &str) -> Result<String, CgroupError> {
    hugetlb::kernel_name(page_size).ok_or_else(|| {
        OciError::Refused {
            field: CONFIG.at("hugepageLimits"),
            why: format!("has page size {page_size:?}, which this host does not have"),
        }
        .into()
    })
}

/// rdma.max lines: "mlx4_0 hca_handle=2 hca_object=2000", sorted by device.
fn rdma_lines(r: &LinuxResources) -> Vec<String> {
    let mut out: Vec<String> = r
        .rdma()
        .iter()
        .flatten()
        .map(|(device, limits)| {
            let mut line = device.clone();
            if let Some(n) = limits.hca_handles() {
                line += &format!(" hca_handle={n}");
            }
            if let Some(n) = limits.hca_objects() {
                line += &format!(" hca_object={n}");
            }
            line
        })
        .collect();
    out.sort();
    out
}

impl OciCgroup {
    /// Refuses, before anything is made, a resource this host cannot honour:
    /// its controller missing, a v1-only knob on v2 or the reverse, a file
    /// the kernel lacks, a value no kernel takes. Each error names the
    /// config.json field.
    pub fn check(resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        let host = Host::detect()?;
        if let Some(r) = resources {
            check::check(&host, r, CONFIG)?;
        }
        Ok(())
    }

    /// Makes the cgroup at `path` (absolute from each hierarchy's root, as
    /// containerd passes "/default/c1"; relative under isola's parent) and
    /// writes the resources. Every container is denied every device but
    /// its rules and runc's defaults. A leftover cgroup at that path with no
    /// process is reused; one with processes is refused. When it fails,
    /// whatever it made is removed.
    pub fn create(
        path: &str,
        resources: Option<&LinuxResources>,
    ) -> Result<OciCgroup, CgroupError> {
        let components = path::parse(path)?;
        let host = Host::detect()?;
        OciCgroup::create_on(host, &components, resources)
    }

    fn create_on(
        host: Host,
        components: &[String],
        resources: Option<&LinuxResources>,
    ) -> Result<OciCgroup, CgroupError> {
        let none = LinuxResources::default();
        let r = resources.unwrap_or(&none);
        check::check(&host, r, CONFIG)?;
        let rules = devices::rules(r.devices().as_ref(), CONFIG)?;
        let group = Group::new(&host, components)?;
        let mut cgroup = OciCgroup {
            path: path::display(components),
            host,
            group,
            parents_made: 0,
        };
        // A parent another container's teardown removes between our
        // finding (or making) it and making the next level is made again.
        let mut attempts = 0;
        loop {
            let mut made = Vec::new();
            cgroup.parents_made = 0;
            let result = cgroup.make(components, r, &mut made).and_then(|leftover| {
                if leftover {
                    cgroup.refuse_if_busy()?;
                }
                cgroup.apply(r, Some(&rules))
            });
            let Err(err) = result else {
                tracing::debug!("cgroup {} created: {:?}", cgroup.path, cgroup.paths());
                return Ok(cgroup);
            };
            // Deepest first: each made directory is empty again.
            for dir in made.iter().rev() {
                if let Err(e) = std::fs::remove_dir(dir) {
                    tracing::warn!(
                        "after a failed cgroup setup, removing {}: {e}",
                        dir.display()
                    );
                }
            }
            match err {
                CgroupError::Create { ref source, .. }
                    if source.kind() == io::ErrorKind::NotFound && attempts < 3 =>
                {
                    attempts += 1;
                }
                err => return Err(err),
            }
        }
    }

    /// Makes the directories, recording each one made in `made` (in order)
    /// and the count of ancestors made; true when the leaf was already there.
    fn make(
        &mut self,
        components: &[String],
        r: &LinuxResources,
        made: &mut Vec<PathBuf>,
    ) -> Result<bool, CgroupError> {
        let mut leftover = false;
        // v2: the controllers the resources need are enabled on the way
        // down; in parents isola makes, every one the root offers too, for
        // statistics. The host's own cgroups (the root, parents made by
        // others) get only what is needed: isola changes no more of them.
        let v2_controllers = match &self.host {
            Host::V2 { root, controllers } => {
                let needs = needs_v2(r);
                let all: Vec<(String, bool)> = controllers
                    .iter()
                    .map(|c| (c.clone(), needs.contains(&c.as_str())))
                    .collect();
                let needed: Vec<(String, bool)> = all.iter().filter(|c| c.1).cloned().collect();
                v2::enable(root, &needed)?;
                Some((all, needed))
            }
            Host::V1(_) => None,
        };
        let roots: Vec<PathBuf> = self
            .host
            .roots()
            .into_iter()
            .map(Path::to_path_buf)
            .collect();
        for ((controllers, _), root) in self.group.dirs.iter().zip(roots) {
            let cpuset = controllers.iter().any(|c| c == "cpuset");
            let mut dir = root;
            let mut ancestors_made = 0;
            for (depth, name) in components.iter().enumerate() {
                let leaf = depth + 1 == components.len();
                let parent = dir.clone();
                dir.push(name);
                let ours = match std::fs::create_dir(&dir) {
                    Ok(()) => {
                        made.push(dir.clone());
                        if !leaf {
                            ancestors_made += 1;
                        }
                        true
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        leftover |= leaf;
                        false
                    }
                    Err(source) => {
                        return Err(CgroupError::Create {
                            hint: fs::hint(&source),
                            path: dir,
                            source,
                        })
                    }
                };
                // v1 cpuset starts a cgroup with no CPUs and no memory
                // nodes, where no task may join: inherit the parent's.
                if cpuset {
                    copy_cpuset(&parent, &dir)?;
                }
                if let (Some((all, needed)), false) = (&v2_controllers, leaf) {
                    v2::enable(&dir, if ours { all } else { needed })?;
                }
            }
            self.parents_made = self.parents_made.max(ancestors_made);
        }
        Ok(leftover)
    }

    /// A leftover cgroup may be reused only when nothing runs in it.
    fn refuse_if_busy(&self) -> Result<(), CgroupError> {
        let mut pids: Vec<i32> = self
            .group
            .paths()
            .iter()
            .flat_map(|d| fs::tree_deepest_first(d))
            .flat_map(|d| fs::procs(&d))
            .collect();
        if pids.is_empty() {
            tracing::info!("reusing the empty leftover cgroup {}", self.path);
            return Ok(());
        }
        pids.sort_unstable();
        pids.dedup();
        Err(OciError::InUse {
            path: self.path.clone(),
            pids,
        }
        .into())
    }

    /// Writes the resources; `rules`, the device rules, only at create.
    fn apply(&self, r: &LinuxResources, rules: Option<&[Rule]>) -> Result<(), CgroupError> {
        match self.group.version {
            Version::V1 => write_v1::apply(&self.group, r, rules),
            Version::V2 => {
                write_v2::apply(self.group.main(), r)?;
                match rules {
                    Some(rules) => bpf::install(self.group.main(), rules),
                    None => Ok(()),
                }
            }
        }
    }

    /// The cgroup at `path` as it is, made earlier (perhaps by another
    /// process), for the later calls: kill, pause, stats, delete. Nothing
    /// is made. `destroy` of it leaves the parents alone unless told with
    /// [`OciCgroup::with_parents_made`].
    pub fn open(path: &str) -> Result<OciCgroup, CgroupError> {
        let components = path::parse(path)?;
        let host = Host::detect()?;
        let group = Group::new(&host, &components)?;
        Ok(OciCgroup {
            path: path::display(&components),
            host,
            group,
            parents_made: 0,
        })
    }

    /// The normalised path ("/default/c1"; a relative one under isola's
    /// parent): what to record, and give to [`OciCgroup::open`] later.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn version(&self) -> Version {
        self.group.version
    }

    /// The cgroup's directories: one per v1 hierarchy, one on v2.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.group.paths()
    }

    /// v1: each hierarchy's name (its controllers, comma-joined, as the
    /// host mounts it) and the container's directory in it, for a `cgroup`
    /// mount inside the container; `None` on v2.
    pub fn hierarchy_dirs(&self) -> Option<Vec<(String, PathBuf)>> {
        (self.group.version == Version::V1).then(|| {
            self.group
                .dirs
                .iter()
                .map(|(controllers, dir)| {
                    // name=systemd is mounted as "systemd", as runc mounts it.
                    let name = controllers.join(",");
                    let name = name.strip_prefix("name=").unwrap_or(&name).to_string();
                    (name, dir.clone())
                })
                .collect()
        })
    }

    /// How many of the path's parents `create` made. Record it with the
    /// path, so that a later process's `destroy` removes them too once empty
    /// (and never a parent someone else made, such as kubelet's pod cgroup).
    pub fn parents_made(&self) -> usize {
        self.parents_made
    }

    /// This handle, with `n` of the path's parents to remove once empty
    /// (see [`OciCgroup::parents_made`]). More than the path has is capped.
    pub fn with_parents_made(mut self, n: usize) -> OciCgroup {
        let depth = self.path.matches('/').count();
        self.parents_made = n.min(depth.saturating_sub(1));
        self
    }

    /// What the container's first process needs to join before it execs
    /// (see [`super::Cgroup::entry`]): v2, the directory for
    /// CLONE_INTO_CGROUP; v1, every hierarchy's `tasks` file for
    /// [`super::move_self`].
    pub fn entry(&self) -> Result<Entry, CgroupError> {
        super::entry(self.group.version, &self.group.paths())
    }

    /// Moves process `pid` in, in every hierarchy.
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        for dir in self.group.paths() {
            fs::write(&dir.join(fs::PROCS), pid)?;
        }
        Ok(())
    }

    /// Every process in the cgroup and in cgroups below it (v1: as the
    /// first hierarchy that has the cgroup lists them), sorted.
    pub fn pids(&self) -> Vec<i32> {
        let Some(dir) = self.group.paths().into_iter().find(|d| d.exists()) else {
            return Vec::new();
        };
        let mut pids: Vec<i32> = fs::tree_deepest_first(&dir)
            .iter()
            .flat_map(|d| fs::procs(d))
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Stops every process in the cgroup (`pause`), waiting until the
    /// kernel says all have stopped; if they don't in time, thaws them back.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        freezer::freeze(&self.group)
    }

    /// Lets them run again (`resume`).
    pub fn thaw(&self) -> Result<(), CgroupError> {
        freezer::thaw(&self.group)
    }

    /// Whether the cgroup is frozen now.
    pub fn frozen(&self) -> bool {
        freezer::frozen(&self.group)
    }

    /// `update --resources`: the same writes as create, after the same
    /// refusals. The device rules made at create stay (containerd sends
    /// them back unchanged; rewriting them would deny every device to the
    /// running container for a moment), as runc keeps them.
    pub fn update(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        check::check(&self.host, resources, UPDATE)?;
        if resources.devices().as_ref().is_some_and(|d| !d.is_empty()) {
            tracing::debug!("update of {}: device rules stay as created", self.path);
        }
        if let Some(m) = resources.memory() {
            if let (Some(true), Some(limit)) = (m.check_before_update(), set(m.limit())) {
                let usage = self.memory_usage();
                if limit > 0 && usage.is_some_and(|u| u > limit as u64) {
                    return Err(OciError::Refused {
                        field: UPDATE.at("memory.limit"),
                        why: format!(
                            "is {limit}, below the {} bytes the container uses now, and \
                             memory.checkBeforeUpdate asks to refuse that",
                            usage.unwrap_or(0)
                        ),
                    }
                    .into());
                }
            }
        }
        self.apply(resources, None)
    }

    fn memory_usage(&self) -> Option<u64> {
        match self.group.version {
            Version::V1 => fs::read_u64(&self.group.dir("memory")?.join("memory.usage_in_bytes")),
            Version::V2 => fs::read_u64(&self.group.main().join("memory.current")),
        }
    }

    /// Whether the kernel's OOM killer killed a process in the cgroup.
    pub fn oom_killed(&self) -> bool {
        match self.group.version {
            Version::V1 => self.group.dir("memory").is_some_and(v1::oom_killed_in),
            Version::V2 => v2::oom_killed(self.group.main()),
        }
    }

    /// One sample for `events --stats`: runc's `data` object, with what
    /// this host's controllers count.
    pub fn stats_json(&self) -> serde_json::Value {
        stats::json(&self.group)
    }

    /// `kill --all`: sends `signal` to every process, with the cgroup frozen
    /// meanwhile (as runc does) so that none forks a child we miss. A paused
    /// container stays paused, unless the signal is SIGKILL, which a frozen
    /// v1 process only acts on once thawed.
    pub fn kill_all(&self, signal: Signal) -> Result<(), CgroupError> {
        if signal == Signal::SIGKILL && self.group.version == Version::V2 {
            // cgroup.kill (Linux 5.14) kills the whole tree at once.
            let file = self.group.main().join("cgroup.kill");
            if file.exists() {
                return fs::write(&file, 1);
            }
        }
        let was_frozen = self.frozen();
        let froze = !was_frozen
            && match self.freeze() {
                Ok(()) => true,
                Err(err) => {
                    tracing::debug!("signalling {} without freezing it: {err}", self.path);
                    false
                }
            };
        let sent = self.signal_each(signal);
        if froze || (was_frozen && signal == Signal::SIGKILL) {
            self.thaw()?;
        }
        sent
    }

    /// Sends `signal` to each process listed now (never to this one).
    fn signal_each(&self, signal: Signal) -> Result<(), CgroupError> {
        let me = std::process::id() as i32;
        for pid in self.pids().into_iter().filter(|&p| p != me) {
            match kill(Pid::from_raw(pid), signal) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(source) => {
                    return Err(OciError::Signal {
                        pid,
                        signal,
                        source,
                    }
                    .into())
                }
            }
        }
        Ok(())
    }

    /// Kills what is left in the cgroup, removes its directory in every
    /// hierarchy (child cgroups first), then the parents `create` made once
    /// they are empty. Destroying a cgroup already gone succeeds.
    pub fn destroy(self) -> Result<(), CgroupError> {
        // A frozen v1 process dies of SIGKILL only once thawed: kill first,
        // so that nothing runs in between.
        if self.frozen() {
            if let Err(err) = self.signal_each(Signal::SIGKILL) {
                tracing::debug!("{err}");
            }
            if let Err(err) = self.thaw() {
                tracing::debug!("{err}");
            }
        }
        teardown::destroy(&self.group.paths(), teardown::TIMEOUT)?;
        self.remove_parents();
        tracing::debug!("cgroup {} destroyed", self.path);
        Ok(())
    }

    /// Removes the parents `create` made, nearest first, each only when
    /// empty: a sibling container still there (or being made right now)
    /// keeps it, and whichever leaves it empty removes it.
    fn remove_parents(&self) {
        for dir in self.group.paths() {
            let mut parent = dir.parent();
            for _ in 0..self.parents_made {
                let Some(p) = parent else { break };
                match std::fs::remove_dir(p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::debug!("leaving {}: {e}", p.display());
                        break;
                    }
                }
                parent = p.parent();
            }
        }
    }
}

/// v1 cpuset: fill an empty cpuset.cpus/cpuset.mems from the parent's.
fn copy_cpuset(parent: &Path, dir: &Path) -> Result<(), CgroupError> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if fs::read(&dir.join(file))?.trim().is_empty() {
            let inherited = fs::read(&parent.join(file))?;
            fs::write(&dir.join(file), inherited.trim())?;
        }
    }
    Ok(())
}

/// The v2 controllers `r` writes files of: enabling them on the way down
/// must succeed (others are enabled for statistics, best effort).
fn needs_v2(r: &LinuxResources) -> Vec<&str> {
    let mut out = Vec::new();
    if let Some(m) = r.memory() {
        if set(m.limit()).is_some() || set(m.swap()).is_some() || set(m.reservation()).is_some() {
            out.push("memory");
        }
    }
    if let Some(c) = r.cpu() {
        if set(c.shares()).is_some()
            || set(c.quota()).is_some()
            || set(c.period()).is_some()
            || c.burst().is_some()
            || c.idle().is_some()
        {
            out.push("cpu");
        }
        let listed = |l: &Option<String>| l.as_deref().is_some_and(|l| !l.trim().is_empty());
        if listed(c.cpus()) || listed(c.mems()) {
            out.push("cpuset");
        }
    }
    if r.pids().is_some_and(|p| p.limit() > 0) {
        out.push("pids");
    }
    if let Some(b) = r.block_io() {
        let devices = [
            b.throttle_read_bps_device(),
            b.throttle_write_bps_device(),
            b.throttle_read_iops_device(),
            b.throttle_write_iops_device(),
        ];
        if set(b.weight()).is_some()
            || b.weight_device().as_ref().is_some_and(|d| !d.is_empty())
            || devices
                .iter()
                .any(|d| d.as_ref().is_some_and(|d| !d.is_empty()))
        {
            out.push("io");
        }
    }
    if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
        out.push("hugetlb");
    }
    if r.rdma().as_ref().is_some_and(|h| !h.is_empty()) {
        out.push("rdma");
    }
    for key in r.unified().iter().flat_map(|u| u.keys()) {
        if let Some(controller) = key.split('.').next().filter(|c| *c != "cgroup") {
            out.push(controller);
        }
    }
    out
}

#[cfg(test)]
mod tests;
