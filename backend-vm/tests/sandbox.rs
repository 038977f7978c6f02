//! A VM sandbox's stages driven as the trait allows, beyond what `isola run`
//! does (create, start, wait, teardown): a signal sent before the workload
//! runs reaches it once it does, and a guest still running is stopped by
//! teardown with nothing left; a parked create (`isola create`) returns
//! with the guest booted and its workload waiting for `start`, and a signal
//! then ends it with 128+N. On QEMU (a software CPU on hosts without
//! hardware KVM), with the host's kernel, a busybox layer and the static
//! isola-init `make test` builds.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use isola_core::backend::{Backend, ExitStatus, Phase, RunContext};
use isola_core::spec::RunSpec;
use isola_test_support::host_has;
use isola_vm::backend::{VmBackend, Vmm};
use nix::sys::signal::Signal;

/// A VM backend on QEMU and a spec running `script` in a busybox layer, if
/// this host has what it takes.
struct Setup {
    dir: tempfile::TempDir,
    backend: VmBackend,
    spec: RunSpec,
}

/// One guest at a time: a test counts this process's children.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn setup(script: &str) -> Option<Setup> {
    let init = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/x86_64-unknown-linux-gnu/release/isola-init");
    let kernel = std::fs::read_dir("/boot").ok().and_then(|d| {
        d.flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
            .map(|e| e.path())
    });
    let qemu = std::process::Command::new(isola_vm::monitor::qemu::BINARY)
        .arg("--version")
        .output()
        .is_ok();
    let busybox = Path::new("/bin/busybox");
    let (Some(kernel), true, true, true) = (kernel, qemu, init.is_file(), busybox.is_file()) else {
        host_has("QEMU, a kernel in /boot, /bin/busybox (static) and isola-init built static (make test)", false);
        return None;
    };
    // Read by the backend when it builds the guest's root filesystem; the
    // same for every test here.
    std::env::set_var("ISOLA_INIT", &init);
    let dir = tempfile::tempdir().unwrap();
    let layer = dir.path().join("layer");
    std::fs::create_dir_all(layer.join("bin")).unwrap();
    std::fs::copy(busybox, layer.join("bin/busybox")).unwrap();
    for applet in ["sh", "sleep"] {
        std::os::unix::fs::symlink("busybox", layer.join("bin").join(applet)).unwrap();
    }
    let digest = format!("sha256:{}", "5a".repeat(32));
    let args = ["/bin/sh", "-c", script].map(String::from).to_vec();
    let spec = RunSpec::new("vmsandboxtest", "busybox", &digest, vec![layer], args);
    let backend = VmBackend {
        vmm: Vmm::Qemu,
        kernel: Some(kernel),
        state_dir: dir.path().join("state"),
    };
    Some(Setup { dir, backend, spec })
}

fn context(setup: &Setup, park: bool) -> RunContext {
    let instance_dir = setup.dir.path().join("instance");
    std::fs::create_dir_all(&instance_dir).unwrap();
    RunContext {
        instance_dir,
        state_dir: setup.backend.state_dir.clone(),
        explain: Default::default(),
        idle: Default::default(),
        ephemeral: true,
        park,
        clock: Instant::now(),
    }
}

#[test]
fn a_signal_sent_before_the_workload_runs_reaches_it_once_it_does() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(setup) = setup("sleep 600") else {
        return;
    };
    let ctx = context(&setup, false);
    let mut sandbox = setup.backend.create(&setup.spec, &ctx).unwrap();
    sandbox.signal(Signal::SIGKILL).unwrap();
    sandbox.start().unwrap();
    let outcome = sandbox.wait().unwrap();
    assert_eq!(outcome.status, ExitStatus::Exited(137));
    sandbox.teardown().unwrap();
    assert!(!ctx.instance_dir.join("spec.cpio").exists());
}

#[test]
fn teardown_stops_a_guest_still_running_and_leaves_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(setup) = setup("sleep 600") else {
        return;
    };
    let ctx = context(&setup, false);
    let mut sandbox = setup.backend.create(&setup.spec, &ctx).unwrap();
    sandbox.start().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let stats = sandbox.stats().unwrap();
    assert_eq!(stats.memory_limit, Some(256 << 20));
    assert!(stats.memory_bytes.is_some_and(|b| b > 0), "{stats:?}");
    let stopping = Instant::now();
    sandbox.teardown().unwrap();
    assert!(stopping.elapsed() < Duration::from_secs(5));
    // QEMU was reaped: this process has no child left.
    assert_eq!(
        nix::sys::wait::waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG)),
        Err(nix::errno::Errno::ECHILD)
    );
    assert!(!ctx.instance_dir.join("spec.cpio").exists());
    assert!(sandbox.wait().is_err());
    drop(sandbox);
}

#[test]
fn a_parked_create_boots_the_guest_and_start_lets_the_workload_run() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(setup) = setup("exit 7") else {
        return;
    };
    let ctx = context(&setup, true);
    let mut sandbox = setup.backend.create(&setup.spec, &ctx).unwrap();
    let created = ctx.clock.elapsed();
    // Booted and parked: QEMU runs, and the workload has not ended.
    let stats = sandbox.stats().unwrap();
    assert!(stats.memory_bytes.is_some_and(|b| b > 0), "{stats:?}");
    std::thread::sleep(Duration::from_secs(1));
    let exit_fd = sandbox.exit_fd().expect("a booted guest's exit fd");
    let mut fds = [nix::poll::PollFd::new(
        exit_fd,
        nix::poll::PollFlags::POLLIN,
    )];
    assert_eq!(
        nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).unwrap(),
        0,
        "the parked guest ended before start"
    );
    let starting = ctx.clock.elapsed();
    sandbox.start().unwrap();
    let outcome = sandbox.wait().unwrap();
    assert_eq!(outcome.status, ExitStatus::Exited(7));
    let phase = |p: Phase| {
        outcome
            .phases
            .iter()
            .find(|(q, _)| *q == p)
            .map(|(_, at)| *at)
            .unwrap_or_else(|| panic!("no {p:?} in {:?}", outcome.phases))
    };
    // Created (parked) before create returned; started only after start.
    assert!(phase(Phase::SandboxCreated) <= created, "{outcome:?}");
    assert!(phase(Phase::WorkloadStarted) >= starting, "{outcome:?}");
    sandbox.teardown().unwrap();
    assert!(!ctx.instance_dir.join("spec.cpio").exists());
}

#[test]
fn a_signal_to_a_parked_guest_ends_it_with_128_plus_n() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(setup) = setup("sleep 600") else {
        return;
    };
    let ctx = context(&setup, true);
    let mut sandbox = setup.backend.create(&setup.spec, &ctx).unwrap();
    // Dropped, as the workload would ignore it: the guest stays parked.
    sandbox.signal(Signal::SIGWINCH).unwrap();
    sandbox.signal(Signal::SIGTERM).unwrap();
    let ending = Instant::now();
    let outcome = sandbox.wait().unwrap();
    assert_eq!(outcome.status, ExitStatus::Exited(143));
    assert!(ending.elapsed() < Duration::from_secs(10), "{outcome:?}");
    assert!(
        !outcome
            .phases
            .iter()
            .any(|(p, _)| *p == Phase::WorkloadStarted),
        "{outcome:?}"
    );
    assert!(sandbox.start().is_err());
    sandbox.teardown().unwrap();
}
