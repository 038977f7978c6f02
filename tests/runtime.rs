//! isola-runtime driven directly, as containerd's shim and people call
//! runc: a container's life (create, start, state, kill, delete, run),
//! exec, ps, pause and resume, hooks, and the bundles it must refuse.
//! The test process is a subreaper, as the shim is: each container's init
//! becomes its child once `create` exits, and it reaps them.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::oci::{self, guest_init, reap, RUNTIME};
use serde_json::{json, Value};

/// A runtime root and bundles in a temporary directory of the test's.
struct Runtime {
    tmp: tempfile::TempDir,
}

fn runtime() -> Option<Runtime> {
    if !common::root_user() {
        return None;
    }
    oci::become_subreaper();
    Some(Runtime {
        tmp: tempfile::Builder::new()
            .prefix("isola-test-runtime-")
            .tempdir()
            .unwrap(),
    })
}

/// A test that fails midway leaves no container behind: each is deleted
/// by force (killed, its cgroup removed).
impl Drop for Runtime {
    fn drop(&mut self) {
        let Ok(entries) = fs::read_dir(self.root()) else {
            return;
        };
        for e in entries.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            let _ = self.run(&["delete", "--force", &id]);
        }
    }
}

impl Runtime {
    fn root(&self) -> PathBuf {
        self.tmp.path().join("state")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(RUNTIME);
        c.arg("--root").arg(self.root()).args(args);
        c.stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "isola-runtime {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The one-line error of a failed call, and its exit code.
    fn fail(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        assert!(!out.status.success(), "isola-runtime {args:?} succeeded");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )
    }

    fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    /// A bundle `name` of busybox running `args`, its config edited.
    fn bundle(&self, name: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> PathBuf {
        let applets = [
            "sh", "echo", "sleep", "cat", "ls", "id", "true", "hostname", "grep",
        ];
        oci::busybox_bundle(&self.tmp.path().join(name), &applets, args, edit)
    }

    /// `create` with stdout and stderr to files in the bundle; the init's PID.
    fn create(&self, id: &str, bundle: &Path) -> i32 {
        let pid_file = bundle.join("init.pid");
        let out = self
            .cmd(&["create", "--bundle", bundle.to_str().unwrap(), "--pid-file"])
            .arg(&pid_file)
            .arg(id)
            // The guest's init, for bundles in a microVM.
            .env("ISOLA_INIT", guest_init())
            .stdout(fs::File::create(bundle.join("stdout")).unwrap())
            .stderr(fs::File::create(bundle.join("stderr")).unwrap())
            .status()
            .unwrap();
        assert!(
            out.success(),
            "create {id}: {}",
            fs::read_to_string(bundle.join("stderr")).unwrap()
        );
        let text = fs::read_to_string(&pid_file).unwrap();
        assert!(
            text.bytes().all(|b| b.is_ascii_digit()),
            "the pid file holds bare digits: {text:?}"
        );
        text.parse().unwrap()
    }
}

/// Whether the kernel has `pid` frozen: its v1 freezer cgroup's state, or
/// its v2 cgroup's `frozen` event.
fn frozen(pid: i32) -> bool {
    let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in cgroups.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        if controllers.split(',').any(|c| c == "freezer") {
            let state = format!("/sys/fs/cgroup/freezer{path}/freezer.state");
            return fs::read_to_string(state).unwrap().trim() == "FROZEN";
        }
    }
    let path = cgroups.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    fs::read_to_string(format!("/sys/fs/cgroup{path}/cgroup.events"))
        .unwrap()
        .lines()
        .any(|l| l == "frozen 1")
}

/// The cgroup `path` in each hierarchy that has it.
fn cgroup_dirs(path: &str) -> Vec<PathBuf> {
    fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|e| e.path().join(path.trim_start_matches('/')))
        .filter(|p| p.exists())
        .collect()
}

#[test]
fn a_container_is_created_started_stopped_and_deleted() {
    let Some(rt) = runtime() else { return };
    let cgroup = format!("/isola-test-{}-life/c", std::process::id());
    let b = rt.bundle(
        "life",
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
        |c| {
            c["linux"]["cgroupsPath"] = json!(cgroup);
            c["hostname"] = json!("lifehost");
        },
    );
    let pid = rt.create("life", &b);
    let s = rt.state("life");
    assert_eq!(s["status"], "created");
    assert_eq!(s["pid"], pid);
    assert_eq!(s["id"], "life");
    assert_eq!(s["bundle"], b.to_str().unwrap());
    assert!(!cgroup_dirs(&cgroup).is_empty(), "it has its cgroup");
    let (code, err) = rt.fail(&["create", "--bundle", b.to_str().unwrap(), "life"]);
    assert_eq!(code, 1);
    assert!(err.contains("exists"), "{err}");
    rt.ok(&["start", "life"]);
    assert_eq!(reap(pid), 3, "the process's exit code reaches its reaper");
    assert_eq!(rt.state("life")["status"], "stopped");
    assert_eq!(rt.state("life")["pid"], 0);
    assert_eq!(fs::read_to_string(b.join("stdout")).unwrap(), "out\n");
    assert_eq!(fs::read_to_string(b.join("stderr")).unwrap(), "err\n");
    let (_, err) = rt.fail(&["start", "life"]);
    assert!(err.contains("stopped"), "{err}");
    rt.ok(&["delete", "life"]);
    assert!(!rt.root().join("life").exists());
    assert!(cgroup_dirs(&cgroup).is_empty(), "its cgroup went with it");
    let parent = cgroup.rsplit_once('/').unwrap().0;
    assert!(
        cgroup_dirs(parent).is_empty(),
        "and the parent the runtime made"
    );
    let (_, err) = rt.fail(&["state", "life"]);
    assert!(err.contains("does not exist"), "{err}");
    // runc's rule, which containerd's cleanup relies on.
    rt.ok(&["delete", "--force", "life"]);
}

#[test]
fn kill_delete_and_run_end_a_container_with_the_right_code() {
    let Some(rt) = runtime() else { return };
    let b = rt.bundle("killed", &["sleep", "1000"], |_| {});
    let pid = rt.create("killed", &b);
    rt.ok(&["start", "killed"]);
    assert_eq!(rt.state("killed")["status"], "running");
    let (_, err) = rt.fail(&["delete", "killed"]);
    assert!(err.contains("not stopped: running"), "{err}");
    rt.ok(&["kill", "killed", "9"]);
    assert_eq!(reap(pid), 137);
    let (_, err) = rt.fail(&["kill", "killed", "TERM"]);
    assert!(err.contains("not running"), "{err}");
    rt.ok(&["kill", "--all", "killed", "KILL"]);
    rt.ok(&["delete", "killed"]);

    // A created container is deleted without --force: its init is killed.
    let pid = rt.create("parked", &b);
    rt.ok(&["delete", "parked"]);
    assert_eq!(reap(pid), 137);

    // `run` waits and exits with the process's code, then deletes.
    let b = rt.bundle("ran", &["sh", "-c", "exit 7"], |_| {});
    let out = rt.run(&["run", "--bundle", b.to_str().unwrap(), "ran"]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!rt.root().join("ran").exists());
}

#[test]
fn exec_ps_pause_and_resume_work_on_a_running_container() {
    let Some(rt) = runtime() else { return };
    let b = rt.bundle("busy", &["sleep", "1000"], |_| {});
    let pid = rt.create("busy", &b);
    let (_, err) = rt.fail(&["exec", "busy", "true"]);
    assert!(
        err.contains("created"),
        "exec needs a running container: {err}"
    );
    rt.ok(&["start", "busy"]);
    let out = rt.ok(&[
        "exec",
        "busy",
        "sh",
        "-c",
        "cat /proc/1/cmdline; hostname; exit 0",
    ]);
    assert_eq!(out, "sleep\u{0}1000\u{0}isola\n");
    let out = rt.run(&["exec", "busy", "sh", "-c", "exit 5"]);
    assert_eq!(out.status.code(), Some(5));
    let (_, err) = rt.fail(&["exec", "busy", "no-such-program"]);
    assert!(err.contains("no-such-program"), "{err}");

    // containerd's way: a process.json, --detach and a pid file.
    let process = json!({
        "args": ["sleep", "500"], "cwd": "/", "env": ["PATH=/bin"],
        "user": {"uid": 0, "gid": 0}
    });
    let pjson = b.join("process.json");
    fs::write(&pjson, process.to_string()).unwrap();
    let exec_pid = b.join("exec.pid");
    // Its stdio is the caller's, as the shim's pipes are: not ours to wait on.
    let status = rt
        .cmd(&[
            "exec",
            "--process",
            pjson.to_str().unwrap(),
            "--detach",
            "--pid-file",
            exec_pid.to_str().unwrap(),
            "busy",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let exec_pid: i32 = fs::read_to_string(&exec_pid).unwrap().parse().unwrap();
    let pids: Vec<i32> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", "busy"])).unwrap();
    assert!(pids.contains(&pid) && pids.contains(&exec_pid), "{pids:?}");
    let table = rt.ok(&["ps", "busy"]);
    assert!(
        table.starts_with("UID") && table.contains("sleep 500"),
        "{table}"
    );

    rt.ok(&["pause", "busy"]);
    assert_eq!(rt.state("busy")["status"], "paused");
    assert!(frozen(pid), "the kernel has the init frozen");
    rt.ok(&["resume", "busy"]);
    assert_eq!(rt.state("busy")["status"], "running");
    assert!(!frozen(pid));

    rt.ok(&["kill", "--all", "busy", "9"]);
    // The init of a pid namespace ends only once every other process of
    // it is reaped: the exec'd one first, as a shim's reaper would.
    assert_eq!(
        reap(exec_pid),
        137,
        "the exec'd process was ours to reap too"
    );
    assert_eq!(reap(pid), 137);
    rt.ok(&["delete", "busy"]);
}

#[test]
fn hooks_run_at_their_points_with_the_state_on_stdin() {
    let Some(rt) = runtime() else { return };
    let log = rt.tmp.path().join("hooks.log");
    let hook = |point: &str| {
        json!([{
            "path": "/bin/sh",
            "args": ["sh", "-c", format!(
                "read -r state; echo \"{point} $(echo \"$state\" | grep -o '\"status\":\"[a-z]*\"')\" >> {}",
                log.display())]
        }])
    };
    let b = rt.bundle("hooked", &["true"], |c| {
        c["hooks"] = json!({
            "createRuntime": hook("createRuntime"),
            "poststart": hook("poststart"),
            "poststop": hook("poststop"),
        });
    });
    let pid = rt.create("hooked", &b);
    rt.ok(&["start", "hooked"]);
    assert_eq!(reap(pid), 0);
    rt.ok(&["delete", "hooked"]);
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "createRuntime \"status\":\"creating\"\npoststart \"status\":\"running\"\npoststop \"status\":\"stopped\"\n"
    );
}

#[test]
fn bad_bundles_get_one_sentence_and_leave_nothing() {
    let Some(rt) = runtime() else { return };
    let check = |name: &str, bundle: &Path, wanted: &str| {
        let (code, err) = rt.fail(&["create", "--bundle", bundle.to_str().unwrap(), name]);
        assert_eq!(code, 1, "{name}");
        assert!(err.contains(wanted), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: one line: {err}");
        assert!(!rt.root().join(name).exists(), "{name}: nothing left");
    };
    let empty = rt.tmp.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    check("noconfig", &empty, "has no config.json");

    let bad = rt.bundle("badjson", &["true"], |_| {});
    fs::write(bad.join("config.json"), "{\"ociVersion\": ").unwrap();
    check("badjson", &bad, "not a valid OCI runtime configuration");

    let unknown = rt.bundle("unknown", &["true"], |c| {
        c["linux"]["frobnicate"] = json!(1)
    });
    check("unknown", &unknown, "linux.frobnicate");

    let norootfs = rt.bundle("norootfs", &["true"], |c| {
        c["root"]["path"] = json!("nothere")
    });
    check("norootfs", &norootfs, "does not exist");

    let refused = rt.bundle("refused", &["true"], |c| {
        c["linux"]["intelRdt"] = json!({"closID": "x"});
    });
    check("refused", &refused, "linux.intelRdt");

    let systemd = rt.run(&["--systemd-cgroup", "state", "x"]);
    assert!(String::from_utf8_lossy(&systemd.stderr).contains("cgroupfs"));
}

#[test]
fn a_mount_destination_that_climbs_out_by_a_symlink_stays_in_the_rootfs() {
    let Some(rt) = runtime() else { return };
    let host = rt.tmp.path().join("host-data");
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("marker"), "bound").unwrap();
    let outside = rt.tmp.path().join("outside");
    let b = rt.bundle("climb", &["cat", "/escape/marker"], |c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/escape", "type": "bind",
            "source": host.to_str().unwrap(), "options": ["rbind", "ro"]
        }));
    });
    // /escape climbs out of the rootfs, to where the bundle's dir sits.
    let depth = b.join("rootfs").components().count();
    let up = "../".repeat(depth + 2);
    symlink(
        format!("{up}{}", outside.display()),
        b.join("rootfs/escape"),
    )
    .unwrap();
    let pid = rt.create("climb", &b);
    rt.ok(&["start", "climb"]);
    assert_eq!(
        reap(pid),
        0,
        "{}",
        fs::read_to_string(b.join("stderr")).unwrap()
    );
    assert_eq!(fs::read_to_string(b.join("stdout")).unwrap(), "bound");
    assert!(!outside.exists(), "nothing was made on the host");
    rt.ok(&["delete", "climb"]);
}

#[test]
fn a_second_container_joins_the_first_ones_namespaces_by_path_as_a_pod_does() {
    let Some(rt) = runtime() else { return };
    let pause = rt.bundle("pause", &["sleep", "1000"], |c| {
        c["hostname"] = json!("podhost")
    });
    let pause_pid = rt.create("pause", &pause);
    rt.ok(&["start", "pause"]);
    let app = rt.bundle(
        "app",
        &["sh", "-c", "hostname; cat /proc/net/dev | grep -c :"],
        |c| {
            c["hostname"] = json!(null);
            let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
            for n in ns.iter_mut() {
                let t = n["type"].as_str().unwrap().to_string();
                if ["network", "ipc", "uts"].contains(&t.as_str()) {
                    let name = if t == "network" { "net".to_string() } else { t };
                    n["path"] = json!(format!("/proc/{pause_pid}/ns/{name}"));
                }
            }
        },
    );
    let pid = rt.create("app", &app);
    rt.ok(&["start", "app"]);
    assert_eq!(
        reap(pid),
        0,
        "{}",
        fs::read_to_string(app.join("stderr")).unwrap()
    );
    // The pod's hostname, and its network namespace (only lo).
    assert_eq!(
        fs::read_to_string(app.join("stdout")).unwrap(),
        "podhost\n1\n"
    );
    let ns = |pid: i32, kind: &str| fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok();
    assert_ne!(ns(pause_pid, "net"), ns(std::process::id() as i32, "net"));
    rt.ok(&["delete", "app"]);
    rt.ok(&["kill", "pause", "KILL"]);
    assert_eq!(reap(pause_pid), 137);
    rt.ok(&["delete", "pause"]);
}

#[test]
fn update_events_features_spec_and_version_speak_runcs_json() {
    let Some(rt) = runtime() else { return };
    let cgroup = format!("/isola-test-{}-upd/c", std::process::id());
    let b = rt.bundle("upd", &["sleep", "1000"], |c| {
        c["linux"]["cgroupsPath"] = json!(cgroup);
    });
    let pid = rt.create("upd", &b);
    rt.ok(&["start", "upd"]);
    let mut update = rt
        .cmd(&["update", "--resources", "-", "upd"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    update
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"memory":{"limit":67108864},"pids":{"limit":42}}"#)
        .unwrap();
    assert!(update.wait().unwrap().success());
    let read = |controller: &str, file: &str| {
        fs::read_to_string(format!("/sys/fs/cgroup/{controller}{cgroup}/{file}"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    if std::path::Path::new("/sys/fs/cgroup/memory").is_dir() {
        assert_eq!(read("memory", "memory.limit_in_bytes"), "67108864");
        assert_eq!(read("pids", "pids.max"), "42");
    } else {
        assert_eq!(read("", "memory.max"), "67108864");
        assert_eq!(read("", "pids.max"), "42");
    }
    let event: Value = serde_json::from_str(&rt.ok(&["events", "--stats", "upd"])).unwrap();
    assert_eq!(event["type"], "stats");
    assert_eq!(event["id"], "upd");
    assert!(
        event["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0,
        "{event}"
    );
    assert_eq!(event["data"]["pids"]["current"], 1, "{event}");
    rt.ok(&["kill", "upd", "9"]);
    assert_eq!(reap(pid), 137);
    rt.ok(&["delete", "upd"]);

    let features: Value = serde_json::from_str(&rt.ok(&["features"])).unwrap();
    assert_eq!(features["ociVersionMin"], "1.0.0");
    assert_eq!(features["linux"]["seccomp"]["enabled"], true);
    assert!(features["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .contains(&json!("pid")));
    let version = rt.ok(&["--version"]);
    assert!(version.starts_with("isola-runtime version "), "{version}");
    let dir = rt.tmp.path().join("specdir");
    fs::create_dir_all(&dir).unwrap();
    rt.ok(&["spec", "--bundle", dir.to_str().unwrap()]);
    let (_, err) = rt.fail(&["spec", "--bundle", dir.to_str().unwrap()]);
    assert!(err.contains("exists"), "{err}");
    let list: Value = serde_json::from_str(&rt.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(list, json!([]));
}

/// A bundle's config for a microVM of 256 MiB under QEMU (on hardware
/// KVM `auto` would pick isola's monitor, on PVM it cannot boot Debian's
/// kernel; the tests are the same), without the cgroup mount the guest's
/// kernel makes itself.
fn microvm(c: &mut Value) {
    c["annotations"] = json!({
        "io.isola.backend": "vm",
        "io.isola.vm.memory": "256m",
        "io.isola.vm.monitor": "qemu",
    });
    c["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["type"] != "cgroup");
}

#[test]
fn the_vm_annotation_runs_the_same_bundle_in_a_microvm() {
    let Some(rt) = runtime() else { return };
    if !oci::vm_host() {
        return;
    }
    let cgroup = format!("/isola-test-{}-vm/c", std::process::id());
    let vm = microvm;
    let script = "echo in $(uname -r) as $(hostname) with $(grep -c ' /dev/mqueue mqueue' /proc/mounts) mqueue; \
                  trap 'echo TERM; exit 9' TERM; while :; do sleep 1; done";
    let b = rt.bundle("vm", &["sh", "-c", script], |c| {
        vm(c);
        c["hostname"] = json!("guest");
        c["linux"]["cgroupsPath"] = json!(cgroup);
    });
    let pid = rt.create("vm", &b);
    assert_eq!(rt.state("vm")["status"], "created");
    assert!(
        fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .unwrap()
            .contains(&cgroup),
        "the keeper sits in linux.cgroupsPath"
    );
    rt.ok(&["start", "vm"]);
    assert_eq!(rt.state("vm")["status"], "running");
    let pids: Vec<i32> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", "vm"])).unwrap();
    assert!(
        pids.contains(&pid) && pids.len() >= 2,
        "the keeper and QEMU: {pids:?}"
    );
    rt.ok(&["pause", "vm"]);
    assert_eq!(rt.state("vm")["status"], "paused");
    rt.ok(&["resume", "vm"]);
    // Debian's kernel has virtio only as modules: no agent channel.
    let (_, err) = rt.fail(&["exec", "vm", "true"]);
    assert!(err.contains("virtio"), "{err}");
    // The guest's workload must be up to have its trap set.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !fs::read_to_string(b.join("stdout"))
        .unwrap()
        .contains("mqueue")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the guest never said it was up"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    rt.ok(&["kill", "vm", "TERM"]);
    assert_eq!(
        reap(pid),
        9,
        "the guest's exit code: {}",
        fs::read_to_string(b.join("stderr")).unwrap()
    );
    let out = fs::read_to_string(b.join("stdout")).unwrap();
    assert!(
        out.starts_with("in ") && out.ends_with("as guest with 1 mqueue\nTERM\n"),
        "{out}"
    );
    rt.ok(&["delete", "vm"]);
    assert!(cgroup_dirs(&cgroup).is_empty());

    // What a guest cannot have is refused by name.
    let bind = rt.bundle("vmbind", &["true"], |c| {
        vm(c);
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data", "type": "bind", "source": "/tmp", "options": ["rbind"]
        }));
    });
    let (_, err) = rt.fail(&["create", "--bundle", bind.to_str().unwrap(), "vmbind"]);
    assert!(err.contains("mounts[") && err.contains("microVM"), "{err}");
}

/// exec into a microVM on isola's kernel, whose virtio carries the agent
/// channel: the keeper holds it and starts what `exec` asks for, whose
/// relay is the PID containerd's shim waits for and signals.
#[test]
fn exec_reaches_a_microvm_through_its_keeper() {
    let Some(rt) = runtime() else { return };
    if !oci::vm_host() {
        return;
    }
    let Some(kernel) = common::isola_kernel_for_host() else {
        return;
    };
    let cgroup = format!("/isola-test-{}-vmexec/c", std::process::id());
    let b = rt.bundle("vmx", &["sh", "-c", "echo up; exec sleep 1000"], |c| {
        microvm(c);
        c["annotations"]["io.isola.vm.kernel"] = json!(kernel);
        c["linux"]["cgroupsPath"] = json!(cgroup);
    });
    let pid = rt.create("vmx", &b);
    let (_, err) = rt.fail(&["exec", "vmx", "true"]);
    assert!(err.contains("running"), "not before start: {err}");
    rt.ok(&["start", "vmx"]);

    // People's way: the command line, waited for, its output and code.
    let out = rt
        .cmd(&["exec", "--env", "WHO=guest", "vmx", "sh", "-c"])
        .arg("echo $WHO $(cat /proc/1/comm) $(id -u); read line; echo got $line; echo err >&2; exit 3")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"a line\n")?;
            child.wait_with_output()
        })
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "guest init 0\ngot a line\n"
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");

    // containerd's way: --detach and a pid file; the relay is ours to
    // reap, in the VM's cgroup, and passes TERM on.
    let process = json!({
        "args": ["sh", "-c", "trap 'exit 7' TERM; echo waiting; while :; do sleep 1; done"],
        "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}
    });
    let pjson = b.join("process.json");
    fs::write(&pjson, process.to_string()).unwrap();
    let exec_pid = b.join("exec.pid");
    let exec_out = b.join("exec.out");
    let status = rt
        .cmd(&[
            "exec",
            "--process",
            pjson.to_str().unwrap(),
            "--detach",
            "--pid-file",
            exec_pid.to_str().unwrap(),
            "vmx",
        ])
        .stdout(fs::File::create(&exec_out).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let relay: i32 = fs::read_to_string(&exec_pid).unwrap().parse().unwrap();
    let pids: Vec<i32> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", "vmx"])).unwrap();
    assert!(
        pids.contains(&pid) && pids.contains(&relay),
        "the keeper and the relay: {pids:?}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while fs::read_to_string(&exec_out).unwrap() != "waiting\n" {
        assert!(
            std::time::Instant::now() < deadline,
            "the exec'd shell never said it was up"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: kill(2) of the relay, our child.
    unsafe { libc::kill(relay, libc::SIGTERM) };
    assert_eq!(reap(relay), 7, "TERM reached the process in the guest");

    rt.ok(&["kill", "vmx", "KILL"]);
    assert_eq!(reap(pid), 137);
    let (_, err) = rt.fail(&["exec", "vmx", "true"]);
    assert!(err.contains("running"), "not after its end: {err}");
    rt.ok(&["delete", "vmx"]);
    assert!(cgroup_dirs(&cgroup).is_empty());
}

#[test]
fn a_user_namespace_maps_the_containers_root_to_an_unprivileged_host_uid() {
    let Some(rt) = runtime() else { return };
    let b = rt.bundle(
        "userns",
        &[
            "sh",
            "-c",
            "id -u; id -g; cat /proc/self/uid_map; echo made > /tmp/by-root; ls /dev/null",
        ],
        |c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "user"}));
            c["linux"]["uidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            c["linux"]["gidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        },
    );
    // The rootfs belongs to the mapped root, as a user-namespaced
    // snapshot does.
    fn chown_tree(p: &Path) {
        std::os::unix::fs::lchown(p, Some(100000), Some(100000)).unwrap();
        if p.is_dir() && !p.is_symlink() {
            for e in fs::read_dir(p).unwrap() {
                chown_tree(&e.unwrap().path());
            }
        }
    }
    chown_tree(&b.join("rootfs"));
    let pid = rt.create("userns", &b);
    rt.ok(&["start", "userns"]);
    assert_eq!(
        reap(pid),
        0,
        "{}",
        fs::read_to_string(b.join("stderr")).unwrap()
    );
    let out = fs::read_to_string(b.join("stdout")).unwrap();
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["0"], "{out}");
    assert_eq!(lines[1], ["0"], "{out}");
    assert_eq!(lines[2], ["0", "100000", "65536"], "{out}");
    assert_eq!(lines[3], ["/dev/null"], "{out}");
    use std::os::unix::fs::MetadataExt;
    let made = fs::metadata(b.join("rootfs/tmp/by-root")).unwrap();
    assert_eq!(
        (made.uid(), made.gid()),
        (100000, 100000),
        "root inside is 100000 outside"
    );
    rt.ok(&["delete", "userns"]);

    // A process exec'd into it joins its user namespace too.
    fs::write(b.join("config.json"), {
        let mut c: Value =
            serde_json::from_slice(&fs::read(b.join("config.json")).unwrap()).unwrap();
        c["process"]["args"] = json!(["sleep", "1000"]);
        c.to_string()
    })
    .unwrap();
    let pid = rt.create("userns2", &b);
    rt.ok(&["start", "userns2"]);
    let out = rt.ok(&[
        "exec",
        "userns2",
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map",
    ]);
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words, ["0", "0", "100000", "65536"], "{out}");
    rt.ok(&["kill", "userns2", "KILL"]);
    assert_eq!(reap(pid), 137);
    rt.ok(&["delete", "userns2"]);

    let unmapped = rt.bundle("unmapped", &["true"], |c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
    });
    let (_, err) = rt.fail(&["create", "--bundle", unmapped.to_str().unwrap(), "unmapped"]);
    assert!(err.contains("uidMappings"), "{err}");
}
