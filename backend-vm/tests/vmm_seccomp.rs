//! Each thread kind's seccomp filter holds: a monitor whose test hook
//! (debug builds only) makes a syscall outside the filter on one kind of
//! thread dies of SIGSYS, and isola names that thread in one sentence.
//! One test, so that the hook's environment variable is set for one run
//! at a time.

use std::path::PathBuf;

use isola_test_support::host_has;
use isola_vm::jail::ThreadKind;
use isola_vm::monitor::{Artifact, Input, Isola, Monitor, MonitorError, Running};
use isola_vm::vmm::VmmError;

#[test]
fn a_forbidden_syscall_on_each_kind_of_thread_kills_the_monitor() {
    let kernel = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testguest/target/x86_64-unknown-none/release/isola-testguest");
    if !host_has(
        "the test guest (`make testguest` builds it)",
        kernel.exists(),
    ) || !host_has("/dev/kvm", std::path::Path::new("/dev/kvm").exists())
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for kind in ThreadKind::ALL {
        std::env::set_var("ISOLA_VMM_TEST_FORBIDDEN", kind.name());
        let jail = dir.path().join("jail");
        let artifact = Artifact {
            kernel: kernel.clone(),
            initrds: Vec::new(),
            // "echo2" reads COM2: the control channel's feeder threads run.
            cmdline: "echo2".into(),
            memory_bytes: 64 << 20,
            vcpus: 1,
            kernel_log: false,
            disks: Vec::new(),
            jail: Some(jail.clone()),
            agent: None,
            stdio_ports: false,
            stdio_end: None,
            net: None,
        };
        let (_control, reader) = nix::unistd::pipe().unwrap();
        let ran = Isola.run(&artifact, Input::None, reader.into(), &Running::default());
        std::env::remove_var("ISOLA_VMM_TEST_FORBIDDEN");
        let e = ran.expect_err("the monitor survived a forbidden syscall");
        assert!(
            matches!(
                e,
                MonitorError::Vmm(VmmError::Seccomp { kind: Some(k), nr }) if k == kind && nr == libc::SYS_reboot
            ),
            "{kind:?}: {e:?}"
        );
        let sentence = e.to_string();
        assert!(
            sentence.starts_with("the VM monitor was killed by its seccomp filter: ")
                && sentence.contains(kind.described())
                && !sentence.contains('\n'),
            "{sentence}"
        );
        assert!(!jail.exists(), "the jail is left behind");
    }
}
