//! Finding the cgroup filesystems in /proc/self/mountinfo, and from them the
//! host's layout: unified (v2), legacy (v1) or hybrid (v1 doing the work).

use std::path::PathBuf;

use super::v1::Mounts;
use super::{CgroupError, Layout};

/// One cgroup or cgroup2 mount.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct CgroupMount {
    /// The super options of a v1 mount ("rw,cpu,cpuacct"); empty for v2.
    options: Vec<String>,
    mount_point: PathBuf,
    unified: bool,
}

/// Super options of a v1 mount that name no controller.
const NOT_CONTROLLERS: &[&str] = &[
    "rw",
    "ro",
    "none",
    "all",
    "noprefix",
    "xattr",
    "clone_children",
    "cpuset_v2_mode",
    "favordynmods",
    "nofavordynmods",
];

impl CgroupMount {
    fn has(&self, controller: &str) -> bool {
        self.options.iter().any(|o| o == controller)
    }

    /// The controllers a v1 mount carries ("cpu", "cpuacct"). A named
    /// hierarchy (name=systemd) carries none: it only groups processes.
    fn controllers(&self) -> Vec<String> {
        self.options
            .iter()
            .filter(|o| !o.contains('=') && !NOT_CONTROLLERS.contains(&o.as_str()))
            .cloned()
            .collect()
    }

    /// Where a cgroup2 hierarchy is mounted; `None` for a v1 mount.
    #[cfg(test)]
    pub fn unified_mount_point(&self) -> Option<PathBuf> {
        self.unified.then(|| self.mount_point.clone())
    }

    /// Mounts under /sys/fs/cgroup win over bind mounts elsewhere.
    fn standard(&self) -> bool {
        self.mount_point.starts_with("/sys/fs/cgroup")
    }
}

/// The cgroup mounts listed in mountinfo text, in order. Lines that are not
/// cgroup mounts, or are malformed, are skipped.
pub(super) fn cgroup_mounts(text: &str) -> Vec<CgroupMount> {
    text.lines().filter_map(parse_line).collect()
}

/// `ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS`
fn parse_line(line: &str) -> Option<CgroupMount> {
    let fields: Vec<&str> = line.split(' ').collect();
    let mount_point = fields.get(4)?;
    // The optional fields vary in number; the separator ends them.
    let dash = fields.iter().skip(6).position(|f| *f == "-")? + 6;
    let fstype = *fields.get(dash + 1)?;
    let super_options = fields.get(dash + 3).copied().unwrap_or("");
    let unified = match fstype {
        "cgroup2" => true,
        "cgroup" => false,
        _ => return None,
    };
    Some(CgroupMount {
        options: if unified {
            Vec::new()
        } else {
            super_options.split(',').map(str::to_owned).collect()
        },
        mount_point: PathBuf::from(unescape(mount_point)),
        unified,
    })
}

/// mountinfo writes space, tab, newline and backslash in paths as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decides the layout. Any of our controllers (memory, cpu, pids) on a v1
/// mount means v1, even when a cgroup2 hierarchy is also mounted: on hybrid
/// hosts that hierarchy holds no controllers we could use.
pub(super) fn layout(mounts: &[CgroupMount]) -> Result<Layout, CgroupError> {
    let v1 = |controller: &str| best(mounts.iter().filter(|m| !m.unified && m.has(controller)));
    let v1 = Mounts {
        memory: v1("memory"),
        cpu: v1("cpu"),
        pids: v1("pids"),
        hybrid: mounts.iter().any(|m| m.unified),
    };
    if v1.memory.is_some() || v1.cpu.is_some() || v1.pids.is_some() {
        return Ok(Layout::V1(v1));
    }
    match best(mounts.iter().filter(|m| m.unified)) {
        Some(root) => Ok(Layout::V2(root)),
        None => Err(CgroupError::NotMounted),
    }
}

/// Every v1 hierarchy that carries controllers, once each (a hierarchy
/// bind-mounted elsewhere too is the same one): its controllers and where
/// it is mounted, in mountinfo's order.
pub(super) fn v1_hierarchies(mounts: &[CgroupMount]) -> Vec<(Vec<String>, PathBuf)> {
    let mut out: Vec<(Vec<String>, PathBuf)> = Vec::new();
    for mount in mounts.iter().filter(|m| !m.unified) {
        let controllers = mount.controllers();
        if controllers.is_empty() || out.iter().any(|(c, _)| *c == controllers) {
            continue;
        }
        let same = mounts
            .iter()
            .filter(|m| !m.unified && m.controllers() == controllers);
        if let Some(point) = best(same) {
            out.push((controllers, point));
        }
    }
    out
}

/// Every named v1 hierarchy (`name=systemd`): its name as a one-item
/// list and where it is mounted. runc puts a container in these too, and
/// mounts them in its /sys/fs/cgroup.
pub(super) fn v1_named_hierarchies(mounts: &[CgroupMount]) -> Vec<(Vec<String>, PathBuf)> {
    let mut out: Vec<(Vec<String>, PathBuf)> = Vec::new();
    for mount in mounts
        .iter()
        .filter(|m| !m.unified && m.controllers().is_empty())
    {
        let Some(name) = mount.options.iter().find(|o| o.starts_with("name=")) else {
            continue;
        };
        if out.iter().any(|(n, _)| n[0] == *name) {
            continue;
        }
        let same = mounts
            .iter()
            .filter(|m| !m.unified && m.options.iter().any(|o| o == name));
        if let Some(point) = best(same) {
            out.push((vec![name.clone()], point));
        }
    }
    out
}

/// The first standard mount, else the first one.
fn best<'a>(candidates: impl Iterator<Item = &'a CgroupMount> + Clone) -> Option<PathBuf> {
    candidates
        .clone()
        .find(|m| m.standard())
        .or_else(|| candidates.clone().next())
        .map(|m| m.mount_point.clone())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// This development host: v1 controllers, cpu and cpuacct mounted apart,
    /// and a cgroup2 hierarchy on /sys/fs/cgroup/unified holding only hugetlb.
    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// A systemd v1 host: cpu and cpuacct share a mount, with optional fields.
    const LEGACY: &str = "\
25 18 0:21 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:22 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd
29 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
30 25 0:26 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
31 25 0:27 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,pids
";

    /// A current systemd v2 host.
    const UNIFIED: &str = "\
22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/root rw
30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    fn v1(layout: Layout) -> Mounts {
        match layout {
            Layout::V1(m) => m,
            Layout::V2(root) => panic!("expected v1, got v2 at {}", root.display()),
        }
    }

    #[test]
    fn hybrid_host_is_v1() {
        let m = v1(layout(&cgroup_mounts(HYBRID)).unwrap());
        assert_eq!(
            m.memory.as_deref(),
            Some(Path::new("/sys/fs/cgroup/memory"))
        );
        // "cpu" must not match the cpuacct or cpuset mounts.
        assert_eq!(m.cpu.as_deref(), Some(Path::new("/sys/fs/cgroup/cpu")));
        assert_eq!(m.pids.as_deref(), Some(Path::new("/sys/fs/cgroup/pids")));
        assert!(m.hybrid);
    }

    #[test]
    fn legacy_host_with_comounted_cpu_is_v1() {
        let m = v1(layout(&cgroup_mounts(LEGACY)).unwrap());
        assert_eq!(
            m.cpu.as_deref(),
            Some(Path::new("/sys/fs/cgroup/cpu,cpuacct"))
        );
        assert_eq!(
            m.memory.as_deref(),
            Some(Path::new("/sys/fs/cgroup/memory"))
        );
        assert!(!m.hybrid);
    }

    #[test]
    fn unified_host_is_v2() {
        match layout(&cgroup_mounts(UNIFIED)).unwrap() {
            Layout::V2(root) => assert_eq!(root, Path::new("/sys/fs/cgroup")),
            Layout::V1(m) => panic!("expected v2, got {m:?}"),
        }
    }

    #[test]
    fn v2_with_a_stray_named_v1_hierarchy_is_v2() {
        // Some v2 hosts still mount name=systemd v1 for old container tools.
        let text = format!(
            "{UNIFIED}50 30 0:40 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n"
        );
        assert!(matches!(
            layout(&cgroup_mounts(&text)).unwrap(),
            Layout::V2(_)
        ));
    }

    #[test]
    fn standard_mount_wins_over_a_bind_mount() {
        let text = "\
90 22 0:26 / /run/elsewhere\\040dir rw - cgroup2 cgroup2 rw
30 22 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
";
        let mounts = cgroup_mounts(text);
        assert_eq!(mounts[0].mount_point, Path::new("/run/elsewhere dir"));
        match layout(&mounts).unwrap() {
            Layout::V2(root) => assert_eq!(root, Path::new("/sys/fs/cgroup")),
            Layout::V1(m) => panic!("expected v2, got {m:?}"),
        }
    }

    #[test]
    fn no_cgroup_mount_is_an_error_saying_what_to_do() {
        let err = layout(&cgroup_mounts("22 1 259:2 / / rw - ext4 /dev/root rw\n")).unwrap_err();
        assert!(matches!(err, CgroupError::NotMounted));
        assert!(err.to_string().contains("mount"), "{err}");
    }

    #[test]
    fn malformed_lines_are_skipped() {
        assert!(cgroup_mounts("garbage\n1 2 3\n1 2 3 / /x rw no-dash cgroup2\n").is_empty());
    }

    #[test]
    fn v1_hierarchies_are_every_controller_mount_once() {
        let found = v1_hierarchies(&cgroup_mounts(HYBRID));
        let names: Vec<String> = found.iter().map(|(c, _)| c.join(",")).collect();
        assert_eq!(
            names,
            ["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids"]
        );
        assert_eq!(found[3].1, Path::new("/sys/fs/cgroup/memory"));

        // Co-mounted controllers are one hierarchy; a bind mount of it
        // elsewhere (listed first) loses to the standard place.
        let text = format!("90 22 0:25 / /run/x rw - cgroup cgroup rw,cpu,cpuacct\n{LEGACY}");
        let found = v1_hierarchies(&cgroup_mounts(&text));
        assert_eq!(
            found[0],
            (
                vec!["cpu".to_string(), "cpuacct".to_string()],
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
            )
        );
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(v1_hierarchies(&cgroup_mounts(UNIFIED)).is_empty());
    }

    #[test]
    fn mount_options_are_not_controllers() {
        let text = "1 2 0:9 / /c rw - cgroup cgroup rw,xattr,noprefix,release_agent=/x,cpuset,clone_children\n";
        assert_eq!(cgroup_mounts(text)[0].controllers(), ["cpuset"]);
    }

    #[test]
    fn unescape_decodes_octal() {
        assert_eq!(unescape("/a\\040b\\134c"), "/a b\\c");
        assert_eq!(unescape("/trailing\\04"), "/trailing\\04");
    }
}
