//! The cgroup managers as the runtime uses them: against temp dirs standing in
//! for cgroupfs, and for real as root on this host's cgroups.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command};

use isola_test_support::{host_has, root_user};

use super::*;

const LIMITS: Limits = Limits {
    memory: Some(32 << 20),
    cpus: Some(0.5),
    pids: Some(20),
};

/// A fake v1 host: each controller's "mount" is a directory of `tmp`.
fn fake_v1(tmp: &Path, memory: bool) -> Hierarchy {
    let mount = |name: &str| {
        let dir = tmp.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        Some(dir)
    };
    Hierarchy {
        layout: Layout::V1(v1::Mounts {
            memory: if memory { mount("memory") } else { None },
            cpu: mount("cpu"),
            pids: mount("pids"),
            hybrid: false,
        }),
    }
}

#[test]
fn names_are_single_safe_components() {
    for good in ["isola", "abc-123_x.y", "0123456789abcdef"] {
        check_name(good).unwrap();
    }
    for bad in ["", ".", "..", ".hidden", "a/b", "../x", "a b", "a\0b", "é"] {
        assert!(check_name(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn quota_is_rounded_with_a_floor() {
    assert_eq!(cfs_quota(0.5), 50_000);
    assert_eq!(cfs_quota(2.0), 200_000);
    assert_eq!(cfs_quota(0.333_334), 33_333);
    assert_eq!(cfs_quota(0.000_1), 1_000);
}

#[test]
fn bad_cpus_are_refused_before_anything_is_made() {
    let tmp = tempfile::tempdir().unwrap();
    let h = fake_v1(tmp.path(), true);
    for cpus in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = h
            .create_in(
                "p",
                "n",
                &Limits {
                    cpus: Some(cpus),
                    ..Limits::default()
                },
            )
            .unwrap_err();
        assert!(matches!(err, CgroupError::InvalidCpus(_)), "{err}");
    }
    assert!(!tmp.path().join("cpu/p").exists());
}

#[test]
fn a_missing_controller_is_refused_before_anything_is_made() {
    let tmp = tempfile::tempdir().unwrap();
    let h = fake_v1(tmp.path(), false);
    let err = h.create_in("p", "n", &LIMITS).unwrap_err();
    assert!(err.is_host_unavailable());
    assert_eq!(
        err.to_string(),
        "the host has no memory cgroup controller; mount it (cgroup v1), or run without --memory"
    );
    assert!(!tmp.path().join("cpu/p").exists());
}

#[test]
fn unrequested_limits_need_no_controller() {
    let tmp = tempfile::tempdir().unwrap();
    let h = fake_v1(tmp.path(), false);
    // No limit files are written, so plain directories do.
    let cgroup = h.create_in("p", "n", &Limits::default()).unwrap();
    assert_eq!(
        cgroup.paths(),
        vec![tmp.path().join("cpu/p/n"), tmp.path().join("pids/p/n")]
    );
    assert_eq!(cgroup.version(), Version::V1);
    let paths = cgroup.paths();
    cgroup.destroy().unwrap();
    assert!(paths.iter().all(|p| !p.exists()));
    // The shared parent goes with its last member.
    assert!(!tmp.path().join("cpu/p").exists());
}

#[test]
fn a_failed_setup_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let h = fake_v1(tmp.path(), true);
    // Plain directories have no limit files: the first write fails.
    let err = h.create_in("p", "n", &LIMITS).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("memory.limit_in_bytes"), "{msg}");
    for ctrl in ["memory", "cpu", "pids"] {
        assert!(
            !tmp.path().join(ctrl).join("p/n").exists(),
            "{ctrl} left behind"
        );
    }
}

#[test]
fn this_hosts_mountinfo_reads_as_hybrid_v1() {
    let text = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    let h = Hierarchy::from_mountinfo(text).unwrap();
    assert_eq!(h.version(), Version::V1);
    assert_eq!(
        h.to_string(),
        "cgroup v1 (hybrid), memory at /sys/fs/cgroup/memory, cpu at /sys/fs/cgroup/cpu, pids at /sys/fs/cgroup/pids"
    );
    let cgroup = h.open("abc").unwrap();
    assert_eq!(
        cgroup.procs_files(),
        vec![
            PathBuf::from("/sys/fs/cgroup/memory/isola/abc/cgroup.procs"),
            PathBuf::from("/sys/fs/cgroup/cpu/isola/abc/cgroup.procs"),
            PathBuf::from("/sys/fs/cgroup/pids/isola/abc/cgroup.procs"),
        ]
    );
}

#[test]
fn a_v2_cgroup_lives_in_one_directory() {
    let text = "30 22 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
    let h = Hierarchy::from_mountinfo(text).unwrap();
    assert_eq!(h.version(), Version::V2);
    assert_eq!(h.to_string(), "cgroup v2 at /sys/fs/cgroup");
    let cgroup = h.open("abc").unwrap();
    assert_eq!(
        cgroup.paths(),
        vec![PathBuf::from("/sys/fs/cgroup/isola/abc")]
    );
    assert!(h.open("../abc").is_err());
}

// ---- Real cgroups, as root ----

/// A parent cgroup owned by one test, removed with everything in it when the
/// test ends, passed or failed.
struct Scratch {
    h: Hierarchy,
    parent: String,
}

impl Scratch {
    fn new(h: Hierarchy, test: &str) -> Scratch {
        let parent = format!("isola-test-{}-{test}", std::process::id());
        Scratch { h, parent }
    }

    fn create(&self, name: &str, limits: &Limits) -> Result<Cgroup, CgroupError> {
        self.h.create_in(&self.parent, name, limits)
    }

    fn parent_dirs(&self) -> Vec<PathBuf> {
        let probe = self.h.open_in(&self.parent, "probe").unwrap();
        probe
            .paths()
            .iter()
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .collect()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let dirs = self.parent_dirs();
        if let Err(err) = teardown::destroy(&dirs, teardown::TIMEOUT) {
            eprintln!("cleaning up {dirs:?}: {err}");
        }
    }
}

fn sleeper() -> Child {
    Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_owned()
}

/// Waits for the child; it must have died of SIGKILL.
fn assert_killed(mut child: Child) {
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
}

/// The limit files hold what `LIMITS` asks for.
fn assert_limits(cgroup: &Cgroup) {
    match &cgroup.group {
        Group::V1(g) => {
            let memory = g.memory.as_ref().expect("memory controller");
            assert_eq!(read(&memory.join("memory.limit_in_bytes")), "33554432");
            let memsw = memory.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                assert_eq!(read(&memsw), "33554432");
            }
            let cpu = g.cpu.as_ref().expect("cpu controller");
            assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "100000");
            assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "50000");
            let pids = g.pids.as_ref().expect("pids controller");
            assert_eq!(read(&pids.join("pids.max")), "20");
        }
        Group::V2(dir) => {
            assert_eq!(read(&dir.join("memory.max")), "33554432");
            assert_eq!(read(&dir.join("cpu.max")), "50000 100000");
            assert_eq!(read(&dir.join("pids.max")), "20");
            let swap = dir.join("memory.swap.max");
            if swap.exists() {
                assert_eq!(read(&swap), "0");
            }
        }
    }
}

#[test]
fn real_limits_membership_and_teardown() {
    if !root_user() {
        return;
    }
    let scratch = Scratch::new(detect().unwrap(), "limits");
    let cgroup = scratch.create("sandbox", &LIMITS).unwrap();
    let paths = cgroup.paths();
    assert!(paths
        .iter()
        .all(|p| p.starts_with("/sys/fs/cgroup")
            && p.ends_with(format!("{}/sandbox", scratch.parent))));
    assert_limits(&cgroup);

    let child = sleeper();
    let pid = child.id() as i32;
    cgroup.add_pid(pid).unwrap();
    for file in cgroup.procs_files() {
        assert!(
            fs::procs(file.parent().unwrap()).contains(&pid),
            "{} lacks {pid}",
            file.display()
        );
    }
    assert_eq!(cgroup.pids(), vec![pid]);
    assert!(!cgroup.oom_killed());
    let stats = cgroup.stats();
    assert_eq!(stats.pids, Some(1), "{stats:?}");
    assert!(stats.memory.is_some() && stats.cpu.is_some(), "{stats:?}");

    cgroup.destroy().unwrap();
    assert!(paths.iter().all(|p| !p.exists()), "{paths:?} left behind");
    assert_killed(child);
    // The last sandbox out removes the shared parent.
    assert!(scratch.parent_dirs().iter().all(|p| !p.exists()));
    // Destroying again, through a fresh handle, is fine.
    scratch
        .h
        .open_in(&scratch.parent, "sandbox")
        .unwrap()
        .destroy()
        .unwrap();
}

#[test]
fn real_join_from_the_child_before_exec() {
    if !root_user() {
        return;
    }
    let scratch = Scratch::new(detect().unwrap(), "join");
    let cgroup = scratch
        .create(
            "sandbox",
            &Limits {
                pids: Some(5),
                ..Limits::default()
            },
        )
        .unwrap();
    let files: Vec<CString> = cgroup
        .procs_files()
        .iter()
        .map(|f| CString::new(f.as_os_str().as_bytes()).unwrap())
        .collect();
    let mut command = Command::new("sleep");
    command.arg("30");
    // SAFETY: between fork and exec the closure only calls open, write and
    // close on strings prepared beforehand: no allocation, no locks.
    unsafe {
        command.pre_exec(move || {
            for file in &files {
                let fd = libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                libc::close(fd);
                if written != 1 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = command.spawn().expect("spawn sleep in the cgroup");
    let pid = child.id() as i32;
    assert_eq!(cgroup.pids(), vec![pid]);
    let own = read(Path::new(&format!("/proc/{pid}/cgroup")));
    assert!(
        own.contains(&format!("/{}/sandbox", scratch.parent)),
        "{own}"
    );

    cgroup.destroy().unwrap();
    assert_killed(child);
}

#[test]
fn real_leftover_is_cleared_on_create() {
    if !root_user() {
        return;
    }
    let scratch = Scratch::new(detect().unwrap(), "leftover");
    let crashed = scratch.create("sandbox", &Limits::default()).unwrap();
    let child = sleeper();
    crashed.add_pid(child.id() as i32).unwrap();
    // The runtime crashed: its handle is gone, the cgroup and process stay.
    drop(crashed);

    let fresh = scratch.create("sandbox", &LIMITS).unwrap();
    assert_killed(child);
    assert!(fresh.pids().is_empty());
    assert_limits(&fresh);
    fresh.destroy().unwrap();
}

/// The v2 code path on whatever cgroup2 hierarchy the host has: the whole
/// tree on a v2 host, the controller-less one on a hybrid host.
#[test]
fn real_unified_hierarchy() {
    if !root_user() {
        return;
    }
    let mounts = mountinfo::cgroup_mounts(&std::fs::read_to_string(MOUNTINFO).unwrap());
    let root = mounts.iter().find_map(|m| m.unified_mount_point());
    if !host_has("a cgroup2 hierarchy", root.is_some()) {
        return;
    }
    let root = root.unwrap();
    let scratch = Scratch::new(
        Hierarchy {
            layout: Layout::V2(root.clone()),
        },
        "unified",
    );
    let offered = read(&root.join("cgroup.controllers"));
    if !offered.split_whitespace().any(|c| c == "memory") {
        let err = scratch.create("sandbox", &LIMITS).unwrap_err();
        assert!(
            err.to_string().contains("no memory cgroup controller"),
            "{err}"
        );
        assert!(!root.join(&scratch.parent).join("sandbox").exists());
    }

    let cgroup = scratch.create("sandbox", &Limits::default()).unwrap();
    assert_eq!(cgroup.version(), Version::V2);
    assert_eq!(
        cgroup.paths(),
        vec![root.join(&scratch.parent).join("sandbox")]
    );
    let child = sleeper();
    cgroup.add_pid(child.id() as i32).unwrap();
    assert_eq!(cgroup.pids(), vec![child.id() as i32]);
    // cpu.stat has the usage lines with or without the cpu controller.
    assert!(cgroup.stats().cpu.is_some_and(|c| c.usage_usec.is_some()));
    assert!(!cgroup.oom_killed());

    let dir = cgroup.paths().remove(0);
    cgroup.destroy().unwrap();
    assert!(!dir.exists());
    assert_killed(child);
}
