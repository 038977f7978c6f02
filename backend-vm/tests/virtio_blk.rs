//! virtio-blk on isola's own monitor with a real Linux kernel (the one
//! `make test` builds for this host: on PVM the PVM test kernel, about a
//! minute per boot, so every check shares one boot). The guest is static
//! busybox running a script from an initramfs: it prints each disk's
//! serial, reads a read-only disk, writes and syncs a read-write one,
//! tries to write the read-only one, and resets the machine.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use isola_test_support::{host_has, isola_kernel_for_host, Capture};
use isola_vm::kvm::{self, GuestIo, VmConfig};
use isola_vm::monitor::Disk;

/// Far above a boot on PVM: a guest that takes this long is hung.
const BOUND: Duration = Duration::from_secs(400);
const RO_CONTENT: &[u8] = b"isola-read-only-disk!";
const RW_CONTENT: &str = "written-by-the-guest";
/// Where the guest writes on the read-write disk: sector 8.
const RW_OFFSET: usize = 8 * 512;

const SCRIPT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
for d in /sys/block/vd*; do
  n=${d##*/}
  echo "DISK $n serial=$(cat $d/serial) sectors=$(cat $d/size) ro=$(cat $d/ro)"
  case $(cat $d/serial) in
    ro-disk) ro=/dev/$n ;;
    rw-disk) rw=/dev/$n ;;
  esac
done
echo "RO-READ $(head -c 21 $ro)"
if printf 'written-by-the-guest' | dd of=$rw bs=512 seek=8 conv=fsync 2>/dev/null; then echo "RW-WRITE ok"; else echo "RW-WRITE failed"; fi
if printf x | dd of=$ro bs=512 conv=fsync 2>/dev/null; then echo "RO-WRITE accepted"; else echo "RO-WRITE refused"; fi
echo "GUEST-DONE"
reboot -f
"#;

fn kvm_usable() -> bool {
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm");
    host_has(
        "a /dev/kvm this user can open (root, on a host with KVM)",
        opened.is_ok(),
    )
}

fn busybox() -> Option<PathBuf> {
    let path = PathBuf::from("/bin/busybox");
    let is_static = Command::new("file")
        .arg(&path)
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("statically linked"));
    host_has(
        "a static /bin/busybox (scripts/setup installs busybox-static)",
        is_static,
    )
    .then_some(path)
}

/// The initramfs: busybox and the script as /test-init.
fn initramfs(busybox: &Path, dir: &Path) -> Vec<u8> {
    let layer = dir.join("layer");
    std::fs::create_dir_all(layer.join("bin")).unwrap();
    std::fs::copy(busybox, layer.join("bin/busybox")).unwrap();
    std::fs::write(layer.join("test-init"), SCRIPT).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        layer.join("test-init"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let mut out = Vec::new();
    isola_vm::guest::write_rootfs(&[layer], busybox, &mut out).unwrap();
    out
}

#[test]
fn a_linux_guest_reads_writes_and_flushes_its_disks() {
    let (Some(kernel), true, Some(busybox)) = (isola_kernel_for_host(), kvm_usable(), busybox())
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ro_path = dir.path().join("ro.img");
    let rw_path = dir.path().join("rw.img");
    let mut ro = vec![0u8; 1 << 20];
    ro[..RO_CONTENT.len()].copy_from_slice(RO_CONTENT);
    std::fs::write(&ro_path, &ro).unwrap();
    std::fs::write(&rw_path, vec![0u8; 2 << 20]).unwrap();

    let config = VmConfig {
        kernel,
        initrd: Some(initramfs(&busybox, dir.path())),
        cmdline: "rdinit=/test-init console=ttyS0 loglevel=4 panic=-1 reboot=k i8042.noaux edd=off"
            .into(),
        memory_bytes: 256 << 20,
        vcpus: 1,
        protocol: kvm::Protocol::Auto,
        input_after_mark: None,
        timeout: Some(BOUND),
        deadline: Default::default(),
        disks: vec![
            Disk {
                path: ro_path.clone(),
                read_only: true,
                serial: "ro-disk".into(),
            },
            Disk {
                path: rw_path.clone(),
                read_only: false,
                serial: "rw-disk".into(),
            },
        ],
        vsock: None,
    };
    let com1 = Capture::default();
    let io = GuestIo {
        com1_out: Box::new(com1.clone()),
        com2_out: Box::new(std::io::sink()),
        com1_in: None,
        com2_in: None,
        on_mark: Vec::new(),
    };
    let started = std::time::Instant::now();
    let outcome = kvm::run(&config, io);
    let took = started.elapsed();
    let out = com1.text();
    eprintln!("the guest ran {took:?}; COM1:\n{out}");
    let exit = outcome.unwrap_or_else(|e| panic!("{e}\nCOM1:\n{out}"));
    assert_eq!(exit.status, None, "the guest reset the machine");

    assert!(
        out.contains("DISK vda serial=ro-disk sectors=2048 ro=1"),
        "{out}"
    );
    assert!(
        out.contains("DISK vdb serial=rw-disk sectors=4096 ro=0"),
        "{out}"
    );
    assert!(out.contains("RO-READ isola-read-only-disk!"), "{out}");
    assert!(out.contains("RW-WRITE ok"), "{out}");
    assert!(out.contains("RO-WRITE refused"), "{out}");
    assert!(out.contains("GUEST-DONE"), "{out}");

    let rw = std::fs::read(&rw_path).unwrap();
    assert_eq!(
        &rw[RW_OFFSET..RW_OFFSET + RW_CONTENT.len()],
        RW_CONTENT.as_bytes()
    );
    assert_eq!(
        std::fs::read(&ro_path).unwrap(),
        ro,
        "the read-only disk is unchanged"
    );
}
