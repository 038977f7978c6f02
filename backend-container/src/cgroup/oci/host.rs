//! Where an OCI container's cgroup goes: every mounted v1 hierarchy, the
//! named ones (name=systemd, as runc does) with the controllers', or the
//! v2 tree.

use std::path::{Path, PathBuf};

use crate::cgroup::{fs, mountinfo, CgroupError, Layout, Version, MOUNTINFO};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Host {
    V1(Vec<V1Mount>),
    V2 {
        root: PathBuf,
        /// What the root's cgroup.controllers offers.
        controllers: Vec<String>,
    },
}

/// One v1 hierarchy: its controllers ("cpu", "cpuacct") and mount point.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct V1Mount {
    pub controllers: Vec<String>,
    pub root: PathBuf,
}

impl Host {
    pub fn detect() -> Result<Host, CgroupError> {
        let text = fs::read_to_string(MOUNTINFO).map_err(CgroupError::MountInfo)?;
        Host::from_mountinfo(&text)
    }

    /// The host described by mountinfo text. The version is decided as for
    /// isola's own cgroups, so both managers agree on a hybrid host.
    pub fn from_mountinfo(text: &str) -> Result<Host, CgroupError> {
        let mounts = mountinfo::cgroup_mounts(text);
        match mountinfo::layout(&mounts)? {
            Layout::V1(_) => Ok(Host::V1(
                mountinfo::v1_hierarchies(&mounts)
                    .into_iter()
                    .chain(mountinfo::v1_named_hierarchies(&mounts))
                    .map(|(controllers, root)| V1Mount { controllers, root })
                    .collect(),
            )),
            Layout::V2(root) => {
                let controllers = fs::read(&root.join("cgroup.controllers"))?
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect();
                Ok(Host::V2 { root, controllers })
            }
        }
    }

    pub fn version(&self) -> Version {
        match self {
            Host::V1(_) => Version::V1,
            Host::V2 { .. } => Version::V2,
        }
    }

    /// Whether the host has `controller` to give a container.
    pub fn has(&self, controller: &str) -> bool {
        match self {
            Host::V1(_) => self.v1_root(controller).is_some(),
            Host::V2 { controllers, .. } => controllers.iter().any(|c| c == controller),
        }
    }

    /// v1: where the hierarchy carrying `controller` is mounted.
    pub fn v1_root(&self, controller: &str) -> Option<&Path> {
        match self {
            Host::V1(mounts) => mounts
                .iter()
                .find(|m| m.controllers.iter().any(|c| c == controller))
                .map(|m| m.root.as_path()),
            Host::V2 { .. } => None,
        }
    }

    /// v1: whether the kernel offers `file` in `controller`'s hierarchy. Its
    /// root cgroup has the same files as any other on v1, so a knob the
    /// kernel lacks (blkio.weight without CFQ or BFQ) is seen before anything
    /// is made.
    pub fn v1_offers(&self, controller: &str, file: &str) -> bool {
        self.v1_root(controller)
            .is_some_and(|root| root.join(file).exists())
    }

    /// The container's directories for `components`: one per v1 hierarchy,
    /// or one in the v2 tree.
    pub fn dirs(&self, components: &[String]) -> Vec<PathBuf> {
        let below = |root: &Path| components.iter().fold(root.to_path_buf(), |p, c| p.join(c));
        match self {
            Host::V1(mounts) => mounts.iter().map(|m| below(&m.root)).collect(),
            Host::V2 { root, .. } => vec![below(root)],
        }
    }

    /// The roots the directories of [`Host::dirs`] hang from, in the same order.
    pub fn roots(&self) -> Vec<&Path> {
        match self {
            Host::V1(mounts) => mounts.iter().map(|m| m.root.as_path()).collect(),
            Host::V2 { root, .. } => vec![root.as_path()],
        }
    }

    /// The hierarchies' controllers, in the order of [`Host::dirs`] (v2: all
    /// in one).
    pub fn controllers(&self) -> Vec<Vec<String>> {
        match self {
            Host::V1(mounts) => mounts.iter().map(|m| m.controllers.clone()).collect(),
            Host::V2 { controllers, .. } => vec![controllers.clone()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/net_cls,net_prio rw,relatime - cgroup cgroup rw,net_cls,net_prio
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn a_v1_host_has_every_hierarchy_named_ones_last() {
        let host = Host::from_mountinfo(HYBRID).unwrap();
        assert_eq!(host.version(), Version::V1);
        assert_eq!(
            host.dirs(&["default".into(), "c1".into()]),
            vec![
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/default/c1"),
                PathBuf::from("/sys/fs/cgroup/memory/default/c1"),
                PathBuf::from("/sys/fs/cgroup/net_cls,net_prio/default/c1"),
                PathBuf::from("/sys/fs/cgroup/systemd/default/c1"),
            ]
        );
        assert_eq!(
            host.v1_root("cpuacct"),
            Some(Path::new("/sys/fs/cgroup/cpu,cpuacct"))
        );
        assert!(host.has("net_prio"));
        assert!(!host.has("pids"));
        // hugetlb may sit in the hybrid host's v2 tree; it is not ours there.
        assert!(!host.has("hugetlb"));
    }

    #[test]
    fn a_v2_host_is_one_tree_with_the_roots_controllers() {
        let root = crate::cgroup::fs::fixture(&[("cgroup.controllers", "cpu io memory pids\n")]);
        let text = format!(
            "30 22 0:26 / {} rw - cgroup2 cgroup2 rw\n",
            root.path().display()
        );
        let host = Host::from_mountinfo(&text).unwrap();
        assert_eq!(host.version(), Version::V2);
        assert!(host.has("io") && !host.has("hugetlb"));
        assert_eq!(host.dirs(&["c".into()]), vec![root.path().join("c")]);
        assert_eq!(host.v1_root("cpu"), None);
    }
}
