//! isola's monitor process under the real /dev/kvm, with the test guest:
//! before the guest runs it is in namespaces of its own, pivoted into a
//! jail holding only the kernel and /dev/kvm, an unprivileged uid with no
//! capabilities, no_new_privs, a seccomp filter on every thread; it runs
//! the guest to its exit status, and its jail is gone afterwards.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use isola_test_support::host_has;
use isola_vm::monitor::{Artifact, Input, Isola, Monitor, Running};
use isola_vm::vmm::DEFAULT_USER;

fn guest() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testguest/target/x86_64-unknown-none/release/isola-testguest");
    host_has("the test guest (`make testguest` builds it)", path.exists()).then_some(path)
}

fn root_with_kvm() -> bool {
    host_has(
        "root, to jail the monitor",
        nix::unistd::geteuid().is_root(),
    ) && host_has("/dev/kvm", Path::new("/dev/kvm").exists())
}

fn artifact(kernel: PathBuf, cmdline: &str, vcpus: u8, jail: &Path) -> Artifact {
    Artifact {
        kernel,
        initrds: Vec::new(),
        cmdline: cmdline.into(),
        memory_bytes: 64 << 20,
        vcpus,
        kernel_log: false,
        disks: Vec::new(),
        jail: Some(jail.to_path_buf()),
        agent: None,
        stdio_ports: false,
        stdio_end: None,
        net: None,
    }
}

/// A line of /proc/PID/status (or a task's), its value.
fn status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

#[test]
fn the_monitor_runs_jailed_and_filtered_then_its_jail_is_gone() {
    if !root_with_kvm() {
        return;
    }
    let Some(kernel) = guest() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let jail = dir.path().join("jail");

    // A guest that ends by itself, its second vCPU kicked out of KVM_RUN
    // by the kicker thread under its filter: its exit status comes back.
    let (_control, reader) = nix::unistd::pipe().unwrap();
    let exit = Isola
        .run(
            &artifact(kernel.clone(), "smp exit=42", 2, &jail),
            Input::None,
            reader.into(),
            &Running::default(),
        )
        .expect("the guest ran");
    assert_eq!(exit.status, Some(42));
    assert!(!jail.exists(), "the jail is left behind");

    // "echo2": the guest polls COM2 for seconds, while the monitor is
    // looked at from outside.
    let (_control, reader) = nix::unistd::pipe().unwrap();
    let running = Running::default();
    let theirs = running.clone();
    let (tx, rx) = mpsc::channel();
    let booted = artifact(kernel, "echo2", 1, &jail);
    std::thread::spawn(move || {
        let _ = tx.send(Isola.run(&booted, Input::None, reader.into(), &theirs));
    });
    let start = Instant::now();
    let (pid, status) = loop {
        assert!(start.elapsed() < Duration::from_secs(10), "never filtered");
        if let Some(pid) = running.process() {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            if status_field(&status, "Seccomp") == "2" {
                break (pid, status);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let uid = DEFAULT_USER.0.to_string();
    assert!(
        status_field(&status, "Uid")
            .split_whitespace()
            .all(|u| u == uid),
        "{status}"
    );
    let gid = DEFAULT_USER.1.to_string();
    assert!(
        status_field(&status, "Gid")
            .split_whitespace()
            .all(|g| g == gid),
        "{status}"
    );
    assert_eq!(status_field(&status, "Groups"), "");
    for caps in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(&status, caps), "0000000000000000", "{caps}");
    }
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
    for ns in ["mnt", "pid", "net", "ipc", "uts"] {
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert_ne!(theirs, ours, "the monitor shares isola's {ns} namespace");
    }
    let mut root: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/root"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    root.sort();
    assert_eq!(root, ["dev", "kernel"], "the monitor's root");
    // Every thread but the PIT's set-up one (one ioctl, then it ends)
    // carries exactly one filter, its own kind's, once the main thread's
    // has let the others take theirs.
    let names = loop {
        let mut names = Vec::new();
        let mut unfiltered = Vec::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
            let task = task.unwrap().path();
            let name = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
            let status = std::fs::read_to_string(task.join("status")).unwrap_or_default();
            let name = name.trim().to_string();
            if name == "isola-pit" || status.is_empty() {
                continue;
            }
            match status_field(&status, "Seccomp").as_str() {
                "2" => assert_eq!(status_field(&status, "Seccomp_filters"), "1", "{name}"),
                _ => unfiltered.push(name.clone()),
            }
            names.push(name);
        }
        if unfiltered.is_empty() {
            break names;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "unfiltered: {unfiltered:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(
        names.iter().any(|n| n.starts_with("isola-vcpu")),
        "{names:?}"
    );

    let ran = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the guest ended");
    assert_eq!(ran.expect("the guest ran").status, Some(0));
    assert!(!jail.exists(), "the jail is left behind");
}
