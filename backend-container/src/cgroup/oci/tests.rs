//! OCI cgroups against temp dirs standing in for cgroupfs (refusals, rollback,
//! leftovers), and for real as root on this host's hierarchies.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command};

use isola_test_support::{host_has, root_user};

use super::host::V1Mount;
use super::*;

fn resources(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

/// A fake v1 host: one "mount" per entry, a directory of `tmp` named for
/// its controllers, holding the files listed (empty).
fn fake_v1(tmp: &Path, hierarchies: &[(&str, &[&str])]) -> Host {
    Host::V1(
        hierarchies
            .iter()
            .map(|(controllers, files)| {
                let root = tmp.join(controllers);
                std::fs::create_dir_all(&root).unwrap();
                for file in *files {
                    std::fs::write(root.join(file), "").unwrap();
                }
                V1Mount {
                    controllers: controllers.split(',').map(str::to_owned).collect(),
                    root,
                }
            })
            .collect(),
    )
}

fn fake_v2(tmp: &Path, controllers: &str) -> Host {
    Host::V2 {
        root: tmp.to_path_buf(),
        controllers: controllers.split_whitespace().map(str::to_owned).collect(),
    }
}

fn refusal(host: &Host, json: &str) -> String {
    match check::check(host, &resources(json), CONFIG) {
        Ok(()) => panic!("{json} accepted"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn a_missing_controller_is_refused_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let host = fake_v1(tmp.path(), &[("memory", &[]), ("cpu,cpuacct", &[])]);
    assert_eq!(
        refusal(&host, r#"{"blockIO": {"weight": 500}}"#),
        "config.json's linux.resources.blockIO.weight needs the blkio controller, \
         which this host has not mounted"
    );
    assert_eq!(
        refusal(&host, r#"{"pids": {"limit": 10}}"#),
        "config.json's linux.resources.pids.limit needs the pids controller, \
         which this host has not mounted"
    );
    assert!(refusal(&host, r#"{"cpu": {"cpus": "0-1"}}"#)
        .contains("cpu.cpus needs the cpuset controller"));
    assert!(refusal(
        &host,
        r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}"#
    )
    .contains("hugepageLimits[0] needs the hugetlb controller"));
    assert!(refusal(&host, r#"{"network": {"classID": 5}}"#).contains("net_cls"));
    assert!(refusal(&host, r#"{"rdma": {"mlx4_0": {"hcaHandles": 2}}}"#)
        .contains("needs the rdma controller"));
    assert!(
        refusal(&host, r#"{"devices": [{"allow": false, "access": "rwm"}]}"#)
            .contains("devices needs the devices controller")
    );
    // No limit needs no controller.
    check::check(
        &host,
        &resources(r#"{"pids": {"limit": -1}, "devices": []}"#),
        CONFIG,
    )
    .unwrap();
}

#[test]
fn a_knob_the_kernel_lacks_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // This host's blkio: throttling only, no CFQ/BFQ weights; no RT groups.
    let host = fake_v1(
        tmp.path(),
        &[
            ("blkio", &["blkio.throttle.read_bps_device"]),
            ("cpu", &["cpu.shares", "cpu.cfs_quota_us"]),
        ],
    );
    assert_eq!(
        refusal(&host, r#"{"blockIO": {"weight": 500}}"#),
        "config.json's linux.resources.blockIO.weight needs blkio.weight, which this host's \
         kernel does not offer (proportional I/O weights need the BFQ or CFQ I/O scheduler)"
    );
    assert!(refusal(&host, r#"{"cpu": {"realtimeRuntime": 950000}}"#)
        .contains("cpu.realtimeRuntime needs cpu.rt_runtime_us"));
    assert!(
        refusal(&host, r#"{"cpu": {"burst": 1000}}"#).contains("cpu.burst needs cpu.cfs_burst_us")
    );
    assert!(refusal(
        &host,
        r#"{"blockIO": {"throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 1}]}}"#
    )
    .contains("blockIO.throttleWriteBpsDevice[0] needs blkio.throttle.write_bps_device"));
    // A zero realtime budget asks for nothing.
    let ok = r#"{"cpu": {"realtimeRuntime": 0, "shares": 512},
                 "blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1}]}}"#;
    check::check(&host, &resources(ok), CONFIG).unwrap();
}

#[test]
fn values_no_kernel_takes_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let host = fake_v1(
        tmp.path(),
        &[
            ("memory", &[]),
            ("cpu", &[]),
            ("cpuset", &[]),
            ("blkio", &["blkio.weight"]),
        ],
    );
    for (json, expect) in [
        (r#"{"memory": {"limit": -5}}"#, "memory.limit is -5"),
        (
            r#"{"memory": {"limit": 100, "swap": 50}}"#,
            "memory.swap is 50, below memory.limit",
        ),
        (
            r#"{"memory": {"swappiness": 101}}"#,
            "memory.swappiness is 101",
        ),
        (
            r#"{"memory": {"kernel": 1048576}}"#,
            "memory.kernel is a kernel memory limit",
        ),
        (
            r#"{"memory": {"kernelTCP": 1048576}}"#,
            "memory.kernelTCP is a kernel memory limit",
        ),
        (r#"{"cpu": {"quota": -2}}"#, "cpu.quota is -2"),
        (r#"{"cpu": {"cpus": "0;1"}}"#, "cpu.cpus is \"0;1\""),
        (
            r#"{"blockIO": {"weight": 5}}"#,
            "blockIO.weight is 5; give 10 to 1000",
        ),
        (
            r#"{"blockIO": {"weightDevice": [{"major": -1, "minor": 0, "weight": 100}]}}"#,
            "weightDevice[0] names device -1:0",
        ),
        (
            r#"{"devices": [{"allow": true, "type": "c", "access": "rwx"}]}"#,
            "devices[0] has access \"rwx\"",
        ),
    ] {
        let err = refusal(&host, json);
        assert!(err.contains(expect), "{json}: {err}");
    }
    // Unset kernel memory (0, -1) is not a request.
    check::check(
        &host,
        &resources(r#"{"memory": {"kernel": 0, "kernelTCP": -1}}"#),
        CONFIG,
    )
    .unwrap();
}

#[test]
fn each_version_refuses_the_others_knobs() {
    let tmp = tempfile::tempdir().unwrap();
    let v1 = fake_v1(tmp.path(), &[("memory", &[])]);
    assert_eq!(
        refusal(&v1, r#"{"unified": {"memory.high": "1G"}}"#),
        "config.json's linux.resources.unified sets cgroup v2 files, and this host uses \
         cgroup v1; use the other resources fields"
    );
    check::check(&v1, &resources(r#"{"unified": {}}"#), CONFIG).unwrap();

    let v2 = fake_v2(tmp.path(), "cpu io memory pids");
    for (json, expect) in [
        (
            r#"{"memory": {"swappiness": 10}}"#,
            "memory.swappiness is a cgroup v1 setting",
        ),
        (
            r#"{"memory": {"disableOOMKiller": true}}"#,
            "memory.disableOOMKiller is a cgroup v1 setting",
        ),
        (
            r#"{"memory": {"swap": 100}}"#,
            "memory.swap is 100 with no memory.limit",
        ),
        (
            r#"{"cpu": {"realtimeRuntime": 1000}}"#,
            "cpu.realtimeRuntime is a realtime scheduling budget",
        ),
        (
            r#"{"blockIO": {"leafWeight": 100}}"#,
            "blockIO.leafWeight is a cgroup v1 setting",
        ),
        (
            r#"{"network": {"classID": 1}}"#,
            "network.classID is a cgroup v1 setting",
        ),
        (
            r#"{"unified": {"../x": "1"}}"#,
            "unified[\"../x\"] is not a file name",
        ),
        (
            r#"{"unified": {"cgroup.procs": "1"}}"#,
            "isola manages that file itself",
        ),
        (
            r#"{"unified": {"hugetlb.2MB.max": "0"}}"#,
            "needs the hugetlb controller, which this host's cgroup v2 root does not offer",
        ),
    ] {
        let err = refusal(&v2, json);
        assert!(err.contains(expect), "{json}: {err}");
    }
    let ok = r#"{"memory": {"limit": 100, "swap": 200, "disableOOMKiller": false},
                 "cpu": {"shares": 1024, "quota": 5000},
                 "unified": {"memory.high": "80", "cgroup.max.depth": "3"}}"#;
    check::check(&v2, &resources(ok), CONFIG).unwrap();
}

#[test]
fn refusals_of_an_update_name_the_update() {
    let tmp = tempfile::tempdir().unwrap();
    let host = fake_v1(tmp.path(), &[("memory", &[])]);
    let err = check::check(&host, &resources(r#"{"pids": {"limit": 3}}"#), UPDATE).unwrap_err();
    assert!(
        err.to_string().starts_with("the update's pids.limit needs"),
        "{err}"
    );
}

#[test]
fn a_failed_create_leaves_nothing_and_keeps_what_was_there() {
    let tmp = tempfile::tempdir().unwrap();
    let host = fake_v1(tmp.path(), &[("memory", &[]), ("pids", &[])]);
    // Another container's parent was there already.
    std::fs::create_dir_all(tmp.path().join("pids/ns")).unwrap();
    let components = path::parse("/ns/deep/c1").unwrap();
    // Plain directories have no limit files: the first write fails.
    let err = OciCgroup::create_on(
        host,
        &components,
        Some(&resources(r#"{"memory": {"limit": 1048576}}"#)),
    )
    .unwrap_err();
    assert!(err.to_string().contains("memory.limit_in_bytes"), "{err}");
    assert!(!tmp.path().join("memory/ns").exists());
    assert!(!tmp.path().join("pids/ns/deep").exists());
    assert!(tmp.path().join("pids/ns").exists());
}

#[test]
fn create_counts_the_parents_it_made_and_destroy_removes_only_those() {
    let tmp = tempfile::tempdir().unwrap();
    let host = fake_v1(tmp.path(), &[("memory", &[]), ("pids", &[])]);
    std::fs::create_dir_all(tmp.path().join("memory/kubepods/pod1")).unwrap();
    std::fs::create_dir_all(tmp.path().join("pids/kubepods/pod1")).unwrap();
    let components = path::parse("/kubepods/pod1/ns/c1").unwrap();
    let cgroup = OciCgroup::create_on(host.clone(), &components, None).unwrap();
    assert_eq!(cgroup.path(), "/kubepods/pod1/ns/c1");
    assert_eq!(cgroup.parents_made(), 1);
    assert_eq!(
        cgroup.paths(),
        vec![
            tmp.path().join("memory/kubepods/pod1/ns/c1"),
            tmp.path().join("pids/kubepods/pod1/ns/c1")
        ]
    );
    cgroup.destroy().unwrap();
    for c in ["memory", "pids"] {
        assert!(!tmp.path().join(c).join("kubepods/pod1/ns").exists());
        // Made by someone else: stays, though empty.
        assert!(tmp.path().join(c).join("kubepods/pod1").exists());
    }

    // A later process's handle removes the parents it is told of, capped
    // at the path's own.
    let again = OciCgroup::create_on(host.clone(), &components, None).unwrap();
    let group = again.group.clone();
    drop(again);
    let opened = OciCgroup {
        path: path::display(&components),
        host,
        group,
        parents_made: 0,
    }
    .with_parents_made(99);
    assert_eq!(opened.parents_made(), 3);
    opened.destroy().unwrap();
    assert!(!tmp.path().join("memory/kubepods").exists());
}

#[test]
fn a_leftover_is_reused_when_empty_and_refused_when_busy() {
    let tmp = tempfile::tempdir().unwrap();
    let host = fake_v1(tmp.path(), &[("pids", &[])]);
    let leaf = tmp.path().join("pids/ns/c1");
    std::fs::create_dir_all(&leaf).unwrap();
    std::fs::write(leaf.join(fs::PROCS), "").unwrap();
    let components = path::parse("/ns/c1").unwrap();
    let reused = OciCgroup::create_on(host.clone(), &components, None).unwrap();
    assert_eq!(reused.parents_made(), 0);

    std::fs::write(leaf.join(fs::PROCS), "4242\n").unwrap();
    let err = OciCgroup::create_on(host, &components, None).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("the cgroup /ns/c1 already holds processes [4242]"),
        "{err}"
    );
    // Refusing it removed nothing.
    assert!(leaf.join(fs::PROCS).exists());
}

#[test]
fn v1_cpuset_is_inherited_before_anything_joins() {
    let tmp = tempfile::tempdir().unwrap();
    let host = fake_v1(tmp.path(), &[("cpuset", &[])]);
    let root = tmp.path().join("cpuset");
    std::fs::write(root.join("cpuset.cpus"), "0-3\n").unwrap();
    std::fs::write(root.join("cpuset.mems"), "0\n").unwrap();
    // Plain directories have no cpuset files; make them as the kernel would.
    let parent = root.join("p");
    std::fs::create_dir(&parent).unwrap();
    for f in ["cpuset.cpus", "cpuset.mems"] {
        std::fs::write(parent.join(f), "\n").unwrap();
    }
    copy_cpuset(&root, &parent).unwrap();
    assert_eq!(fs::read_file(&parent, "cpuset.cpus"), "0-3");
    assert_eq!(fs::read_file(&parent, "cpuset.mems"), "0");
    // Values of its own are kept.
    std::fs::write(parent.join("cpuset.cpus"), "2").unwrap();
    copy_cpuset(&root, &parent).unwrap();
    assert_eq!(fs::read_file(&parent, "cpuset.cpus"), "2");
    drop(host);
}

#[test]
fn rdma_lines_name_each_device() {
    let r = resources(
        r#"{"rdma": {"mlx5_1": {"hcaObjects": 10}, "mlx4_0": {"hcaHandles": 2, "hcaObjects": 2000}}}"#,
    );
    assert_eq!(
        rdma_lines(&r),
        [
            "mlx4_0 hca_handle=2 hca_object=2000",
            "mlx5_1 hca_object=10"
        ]
    );
}

// ---- Real cgroups, as root ----

/// The test's own top cgroup, "/isola-test-<pid>-<name>", removed with
/// everything below it in every hierarchy when the test ends, passed or failed.
struct Scratch {
    top: String,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        Scratch {
            top: format!("/isola-test-{}-{name}", std::process::id()),
        }
    }

    fn path(&self, below: &str) -> String {
        format!("{}/{below}", self.top)
    }

    fn dirs(&self) -> Vec<PathBuf> {
        let host = Host::detect().unwrap();
        let mut dirs = host.dirs(&path::parse(&self.top).unwrap());
        if let Some(unified) = unified_root() {
            dirs.push(unified.join(self.top.trim_start_matches('/')));
        }
        dirs
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(err) = teardown::destroy(&self.dirs(), teardown::TIMEOUT) {
            eprintln!("cleaning up {}: {err}", self.top);
        }
    }
}

fn sleeper() -> Child {
    Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep")
}

/// A `sleep` that joins `cgroup` before it execs, as the container's init
/// does, so all it ever uses is charged there.
fn sleeper_in(cgroup: &OciCgroup) -> Child {
    let mut command = Command::new("sleep");
    command.arg("30");
    match cgroup.entry().unwrap() {
        Entry::Tasks(files) => {
            // SAFETY: between fork and exec the closure only writes to
            // files opened beforehand: no allocation, no locks.
            unsafe {
                command.pre_exec(move || {
                    crate::cgroup::move_self(&files).map_err(std::io::Error::from)
                });
            }
            command.spawn().expect("spawn sleep in the cgroup")
        }
        // CLONE_INTO_CGROUP is the container child's; here, join after.
        Entry::Directory(_) => {
            let child = command.spawn().expect("spawn sleep");
            cgroup.add_pid(child.id() as i32).unwrap();
            child
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_owned()
}

/// A block device this host has, as "MAJOR:MINOR".
fn block_device() -> Option<String> {
    std::fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .find(|e| !e.file_name().to_string_lossy().starts_with("loop"))
        .and_then(|e| std::fs::read_to_string(e.path().join("dev")).ok())
        .map(|d| d.trim().to_owned())
}

/// A cgroup2 hierarchy, wherever it is mounted (on a hybrid host, the
/// controller-less one).
fn unified_root() -> Option<PathBuf> {
    let text = std::fs::read_to_string(crate::cgroup::MOUNTINFO).ok()?;
    crate::cgroup::mountinfo::cgroup_mounts(&text)
        .iter()
        .find_map(|m| m.unified_mount_point())
}

#[test]
fn real_v1_resources_membership_freezer_and_teardown() {
    if !root_user() {
        return;
    }
    let host = Host::detect().unwrap();
    if !host_has("a cgroup v1 host", host.version() == Version::V1) {
        return;
    }
    let scratch = Scratch::new("oci");
    let device = block_device();
    let throttle = device
        .as_deref()
        .and_then(|d| d.split_once(':'))
        .filter(|_| host.v1_offers("blkio", "blkio.throttle.read_bps_device"))
        .map(|(major, minor)| {
            format!(r#""blockIO": {{"throttleReadBpsDevice": [{{"major": {major}, "minor": {minor}, "rate": 1048576}}]}},"#)
        })
        .unwrap_or_default();
    let r = resources(&format!(
        r#"{{
        "memory": {{"limit": 67108864, "reservation": 33554432}},
        "cpu": {{"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"}},
        "pids": {{"limit": 32}},
        {throttle}
        "devices": [
            {{"allow": false, "access": "rwm"}},
            {{"allow": true, "type": "c", "major": 4, "minor": 1, "access": "rw"}}
        ]
    }}"#
    ));
    OciCgroup::check(Some(&r)).unwrap();
    let cgroup = OciCgroup::create(&scratch.path("c1"), Some(&r)).unwrap();
    assert_eq!(cgroup.version(), Version::V1);
    assert_eq!(cgroup.parents_made(), 1);
    let paths = cgroup.paths();
    // Every hierarchy with controllers, and the named ones (runc's way).
    for controller in [
        "memory", "cpu", "cpuacct", "cpuset", "pids", "devices", "freezer",
    ] {
        if host.has(controller) {
            let dir = cgroup.group.dir(controller).expect(controller);
            assert!(dir.is_dir(), "{}", dir.display());
        }
    }
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("/sys/fs/cgroup/systemd"))
            == Path::new("/sys/fs/cgroup/systemd").is_dir(),
        "{paths:?}"
    );

    let dir = |c: &str| cgroup.group.dir(c).unwrap().to_path_buf();
    assert_eq!(
        read(&dir("memory").join("memory.limit_in_bytes")),
        "67108864"
    );
    assert_eq!(
        read(&dir("memory").join("memory.soft_limit_in_bytes")),
        "33554432"
    );
    assert_eq!(read(&dir("cpu").join("cpu.shares")), "512");
    assert_eq!(read(&dir("cpu").join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read(&dir("cpuset").join("cpuset.cpus")), "0");
    assert_eq!(read(&dir("pids").join("pids.max")), "32");
    let devices = read(&dir("devices").join("devices.list"));
    assert!(!devices.contains("a *:* rwm"), "{devices}");
    for rule in [
        "c 4:1 rw",
        "c 1:3 rwm",
        "c 136:* rwm",
        "c 10:200 rwm",
        "c *:* m",
    ] {
        assert!(
            devices.lines().any(|l| l == rule),
            "{rule} not in {devices}"
        );
    }
    if let (false, Some(device)) = (throttle.is_empty(), &device) {
        assert_eq!(
            read(&dir("blkio").join("blkio.throttle.read_bps_device")),
            format!("{device} 1048576")
        );
    }
    // The parent copied the root's cpuset before the leaf could be made.
    let parent = dir("cpuset").parent().unwrap().to_path_buf();
    assert!(!read(&parent.join("cpuset.cpus")).is_empty());

    let child = sleeper_in(&cgroup);
    let pid = child.id() as i32;
    assert_eq!(cgroup.pids(), vec![pid]);
    // Moving a process in from outside works as well.
    let other = sleeper();
    cgroup.add_pid(other.id() as i32).unwrap();
    let mut both = vec![pid, other.id() as i32];
    both.sort_unstable();
    assert_eq!(cgroup.pids(), both);
    let own = read(Path::new(&format!("/proc/{pid}/cgroup")));
    let inside = own
        .lines()
        .filter(|l| l.ends_with(&scratch.path("c1")))
        .count();
    assert_eq!(inside, paths.len(), "{own}");
    assert!(!cgroup.oom_killed());

    cgroup.freeze().unwrap();
    assert!(cgroup.frozen());
    cgroup.thaw().unwrap();
    assert!(!cgroup.frozen());

    let stats = cgroup.stats_json();
    assert!(
        stats["memory"]["usage"]["usage"]
            .as_u64()
            .is_some_and(|u| u > 0),
        "{stats}"
    );
    assert_eq!(stats["memory"]["usage"]["limit"], 67108864, "{stats}");
    assert_eq!(
        stats["pids"],
        serde_json::json!({"current": 2, "limit": 32})
    );
    assert!(stats["memory"]["raw"]["cache"].is_u64(), "{stats}");

    // update: same writes, refusals named for the update.
    cgroup
        .update(&resources(
            r#"{"pids": {"limit": 64}, "memory": {"limit": 134217728}}"#,
        ))
        .unwrap();
    assert_eq!(read(&dir("pids").join("pids.max")), "64");
    assert_eq!(
        read(&dir("memory").join("memory.limit_in_bytes")),
        "134217728"
    );
    let err = cgroup
        .update(&resources(
            r#"{"memory": {"limit": 4096, "checkBeforeUpdate": true}}"#,
        ))
        .unwrap_err();
    assert!(
        err.to_string().contains("memory.checkBeforeUpdate"),
        "{err}"
    );

    cgroup.kill_all(Signal::SIGTERM).unwrap();
    for mut child in [child, other] {
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGTERM));
    }
    assert!(!cgroup.frozen());

    cgroup.destroy().unwrap();
    // Neither the leaf nor the parent it made, in any hierarchy.
    for dir in scratch.dirs() {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

#[test]
fn real_join_before_exec_through_entry() {
    if !root_user() {
        return;
    }
    let scratch = Scratch::new("entry");
    let cgroup = OciCgroup::create(&scratch.path("c1"), None).unwrap();
    let mut child = sleeper_in(&cgroup);
    let pid = child.id() as i32;
    assert_eq!(cgroup.pids(), vec![pid]);
    // A v1 paused container killed: SIGKILL lands once thawed.
    if cgroup.version() == Version::V1 {
        cgroup.freeze().unwrap();
        cgroup.kill_all(Signal::SIGKILL).unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
        assert!(!cgroup.frozen());
    }
    cgroup.destroy().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    for dir in scratch.dirs() {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

#[test]
fn real_leftover_with_a_process_is_refused_then_reused_when_empty() {
    if !root_user() {
        return;
    }
    let scratch = Scratch::new("leftover");
    let crashed = OciCgroup::create(&scratch.path("c1"), None).unwrap();
    let mut child = sleeper();
    crashed.add_pid(child.id() as i32).unwrap();
    // The runtime crashed: its handle is gone; the cgroup and process stay.
    drop(crashed);

    let err = OciCgroup::create(&scratch.path("c1"), None).unwrap_err();
    assert!(
        matches!(err, CgroupError::Oci(OciError::InUse { .. })),
        "{err}"
    );
    assert!(OciCgroup::open(&scratch.path("c1")).unwrap().pids() == vec![child.id() as i32]);

    child.kill().unwrap();
    child.wait().unwrap();
    let reused = OciCgroup::create(
        &scratch.path("c1"),
        Some(&resources(r#"{"pids": {"limit": 5}}"#)),
    );
    let reused = reused.unwrap();
    // Its parent was there: the handle did not make it.
    assert_eq!(reused.parents_made(), 0);
    reused.destroy().unwrap();
}

#[test]
fn real_destroy_of_a_paused_container() {
    if !root_user() {
        return;
    }
    let scratch = Scratch::new("paused");
    let cgroup = OciCgroup::create(&scratch.path("c1"), None).unwrap();
    let mut child = sleeper();
    cgroup.add_pid(child.id() as i32).unwrap();
    cgroup.freeze().unwrap();
    // Another process's handle, as `delete --force` has.
    let opened = OciCgroup::open(&scratch.path("c1"))
        .unwrap()
        .with_parents_made(1);
    assert!(opened.frozen());
    opened.destroy().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    for dir in scratch.dirs() {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

#[test]
fn real_refusals_of_this_host() {
    if !root_user() {
        return;
    }
    let host = Host::detect().unwrap();
    if host.version() == Version::V1
        && !host.v1_offers("blkio", "blkio.weight")
        && !host.v1_offers("blkio", "blkio.bfq.weight")
    {
        let err =
            OciCgroup::check(Some(&resources(r#"{"blockIO": {"weight": 500}}"#))).unwrap_err();
        assert!(err.to_string().contains("blockIO.weight"), "{err}");
    }
    let scratch = Scratch::new("refused");
    let err = OciCgroup::create(
        &scratch.path("c1"),
        Some(&resources(r#"{"memory": {"kernelTCP": 1048576}}"#)),
    )
    .unwrap_err();
    assert!(err.to_string().contains("memory.kernelTCP"), "{err}");
    for dir in scratch.dirs() {
        assert!(!dir.exists(), "{} made before refusing", dir.display());
    }
}

/// The v2 code path on whatever cgroup2 hierarchy the host has: the whole
/// tree on a v2 host, the controller-less one on a hybrid host (where the
/// freezer, cgroup.kill and membership still work).
#[test]
fn real_unified_tree() {
    if !root_user() {
        return;
    }
    let root = unified_root();
    if !host_has("a cgroup2 hierarchy", root.is_some()) {
        return;
    }
    let Some(root) = root else { return };
    let controllers = read(&root.join("cgroup.controllers"));
    let host = Host::V2 {
        root: root.clone(),
        controllers: controllers.split_whitespace().map(str::to_owned).collect(),
    };
    let scratch = Scratch::new("unified");
    let components = path::parse(&scratch.path("c1")).unwrap();
    let cgroup = OciCgroup::create_on(host.clone(), &components, None).unwrap();
    assert_eq!(
        cgroup.paths(),
        vec![root.join(scratch.top.trim_start_matches('/')).join("c1")]
    );
    assert!(matches!(cgroup.entry().unwrap(), Entry::Directory(_)));
    let mut child = sleeper();
    let pid = child.id() as i32;
    cgroup.add_pid(pid).unwrap();
    assert_eq!(cgroup.pids(), vec![pid]);

    cgroup.freeze().unwrap();
    assert!(cgroup.frozen());
    cgroup.thaw().unwrap();
    assert!(!cgroup.frozen());
    let stats = cgroup.stats_json();
    assert!(stats["cpu"]["usage"]["user"].is_u64(), "{stats}");

    cgroup.kill_all(Signal::SIGKILL).unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    cgroup.destroy().unwrap();
    for dir in scratch.dirs() {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

/// The v2 device program, enforced: on a hybrid host the cgroup2 tree's
/// programs apply to its processes beside v1's devices controller.
#[test]
fn real_v2_device_program_is_enforced() {
    if !root_user() {
        return;
    }
    let root = unified_root();
    if !host_has("a cgroup2 hierarchy", root.is_some()) {
        return;
    }
    let Some(root) = root else { return };
    let probe = "head -c0 /dev/null || exit 10; head -c0 /dev/kmsg 2>/dev/null && exit 11; exit 0";
    let control = Command::new("head")
        .args(["-c0", "/dev/kmsg"])
        .status()
        .unwrap();
    if !host_has("a readable /dev/kmsg", control.success()) {
        return;
    }
    let controllers = read(&root.join("cgroup.controllers"));
    let host = Host::V2 {
        root: root.clone(),
        controllers: controllers.split_whitespace().map(str::to_owned).collect(),
    };
    let scratch = Scratch::new("bpf");
    let components = path::parse(&scratch.path("c1")).unwrap();
    let r = resources(r#"{"devices": [{"allow": false, "access": "rwm"}]}"#);
    let cgroup = OciCgroup::create_on(host.clone(), &components, Some(&r)).unwrap();
    let procs = std::fs::OpenOptions::new()
        .write(true)
        .open(cgroup.paths()[0].join(fs::PROCS))
        .unwrap();
    let mut command = Command::new("sh");
    command.args(["-c", probe]);
    // SAFETY: between fork and exec the closure only writes to a file
    // opened beforehand: no allocation, no locks.
    unsafe {
        command.pre_exec(move || crate::cgroup::move_self(&[&procs]).map_err(std::io::Error::from));
    }
    let status = command.status().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "{status}: /dev/null refused (10) or /dev/kmsg allowed (11)"
    );

    // Creating it again over the empty leftover replaces the program: now
    // everything is allowed, /dev/kmsg too.
    drop(cgroup);
    let all = resources(r#"{"devices": [{"allow": true, "access": "rwm"}]}"#);
    let cgroup = OciCgroup::create_on(host, &components, Some(&all)).unwrap();
    let procs = std::fs::OpenOptions::new()
        .write(true)
        .open(cgroup.paths()[0].join(fs::PROCS))
        .unwrap();
    let mut command = Command::new("sh");
    command.args(["-c", "head -c0 /dev/kmsg"]);
    // SAFETY: as above.
    unsafe {
        command.pre_exec(move || crate::cgroup::move_self(&[&procs]).map_err(std::io::Error::from));
    }
    assert!(command.status().unwrap().success());
    cgroup.with_parents_made(1).destroy().unwrap();
    for dir in scratch.dirs() {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}
