//! Both monitors stop a guest still running once its deadline passes, as a
//! VM sandbox's teardown asks them to (it arms the deadline to now): isola's
//! own with the test guest, QEMU with the host's kernel, which is still
//! booting when it is stopped.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use isola_test_support::host_has;
use isola_vm::guest_exit::{Failure, GuestFailed};
use isola_vm::monitor::qemu::{self, Qemu};
use isola_vm::monitor::{Artifact, Input, Isola, Monitor, MonitorError, QemuError, Running};

fn artifact(kernel: PathBuf, cmdline: &str) -> Artifact {
    Artifact {
        kernel,
        initrds: Vec::new(),
        cmdline: cmdline.into(),
        memory_bytes: 128 << 20,
        vcpus: 1,
        kernel_log: false,
        disks: Vec::new(),
        jail: None,
        agent: None,
        stdio_ports: false,
        stdio_end: None,
        net: None,
    }
}

/// Run `artifact` on `monitor` in a thread, arm its deadline to now after
/// `after`, and return how the run ended and how long it took from then.
fn stopped_after(
    monitor: Box<dyn Monitor>,
    artifact: Artifact,
    after: Duration,
) -> (Result<(), MonitorError>, Duration) {
    let (_control, reader) = nix::unistd::pipe().unwrap();
    let running = Running::default();
    let (tx, rx) = mpsc::channel();
    let theirs = running.clone();
    std::thread::spawn(move || {
        let ran = monitor.run(&artifact, Input::None, reader.into(), &theirs);
        let _ = tx.send(ran.map(drop));
    });
    std::thread::sleep(after);
    let armed = Instant::now();
    running.deadline.arm(Duration::ZERO);
    let ran = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the monitor did not stop the guest");
    (ran, armed.elapsed())
}

#[test]
fn isola_s_monitor_stops_a_running_guest_at_the_deadline() {
    let guest = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testguest/target/x86_64-unknown-none/release/isola-testguest");
    if !guest.exists() && !host_has("the test guest (`make test` builds it)", false) {
        return;
    }
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
        && !host_has(
            "a /dev/kvm this user can open (root, on a host with KVM)",
            false,
        )
    {
        return;
    }
    // "echo" with no input: the guest polls COM1 for seconds.
    let (ran, took) = stopped_after(
        Box::new(Isola),
        artifact(guest, "echo"),
        Duration::from_millis(200),
    );
    assert!(
        matches!(
            ran,
            Err(MonitorError::Guest(GuestFailed {
                what: Failure::Unresponsive(_),
                ..
            }))
        ),
        "{ran:?}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[test]
fn qemu_is_killed_at_the_deadline() {
    let kernel = std::fs::read_dir("/boot").ok().and_then(|d| {
        d.flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
            .map(|e| e.path())
    });
    let Some(kernel) = kernel else {
        host_has(
            "a guest kernel in /boot (scripts/setup installs one)",
            false,
        );
        return;
    };
    if std::process::Command::new(qemu::BINARY)
        .arg("--version")
        .output()
        .is_err()
        && !host_has(
            &format!("{} (scripts/setup installs it)", qemu::BINARY),
            false,
        )
    {
        return;
    }
    // No initrd: left alone, the kernel would boot for seconds and then
    // panic; it is stopped long before.
    let (ran, took) = stopped_after(
        Box::new(Qemu { kvm: false }),
        artifact(kernel, "console=ttyS1 panic=-1"),
        Duration::from_millis(300),
    );
    assert!(
        matches!(ran, Err(MonitorError::Qemu(QemuError::Killed))),
        "{ran:?}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
}
