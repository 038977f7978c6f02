//! isola's KVM monitor alone: create the VM, load the test guest
//! (backend-vm/testguest, built by `make`), run it to its exit-port write,
//! tear down. On a PVM host the guest's own code is emulated, so most of the
//! time is the guest's; on hardware KVM it is the monitor's.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use isola_vm::kvm::{self, GuestIo, Protocol, VmConfig};

fn bench(c: &mut Criterion) {
    let guest = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../backend-vm/testguest/target/x86_64-unknown-none/release/isola-testguest");
    if !guest.is_file()
        || std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_err()
    {
        eprintln!("SKIPPED: needs the test guest (make testguest) and a usable /dev/kvm");
        return;
    }
    let mut group = c.benchmark_group("vm_boot");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    for (name, protocol) in [
        ("testguest_pvh", Protocol::Auto),
        ("testguest_linux64", Protocol::Linux64),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let config = VmConfig {
                    kernel: guest.clone(),
                    initrd: None,
                    // Straight to the exit port: the monitor's cost, not the
                    // guest's serial output (emulated instruction by instruction
                    // under PVM).
                    cmdline: "quiet exit=0".into(),
                    memory_bytes: 128 << 20,
                    vcpus: 1,
                    protocol,
                    input_after_mark: None,
                    timeout: Some(Duration::from_secs(10)),
                    deadline: Default::default(),
                    disks: Vec::new(),
                    net: None,
                    vsock: None,
                    console: false,
                };
                let io = GuestIo {
                    com1_out: Box::new(std::io::sink()),
                    com2_out: Box::new(std::io::sink()),
                    com1_in: None,
                    com2_in: None,
                    on_mark: Vec::new(),
                };
                let exit = kvm::run(&config, io).expect("boot");
                assert_eq!(exit.status, Some(0));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
