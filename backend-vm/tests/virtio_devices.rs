//! virtio-blk and virtio-vsock on isola's own monitor with a real Linux
//! kernel (the one `make test` builds for this host: on PVM the PVM test
//! kernel, about a minute per boot, so every check shares one boot). The
//! guest is static busybox running a script from an initramfs: it starts
//! a vsock echo server (a small static C program built here), prints each
//! disk's serial, reads a read-only disk, writes and syncs a read-write
//! one, tries to write the read-only one, waits for the echo to end and
//! resets the machine. The host meanwhile reaches the echo server through
//! the monitor's vsock socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use isola_test_support::{host_has, isola_kernel_for_host, Capture};
use isola_vm::kvm::{self, GuestIo, VmConfig};
use isola_vm::monitor::Disk;

/// Far above a boot on PVM: a guest that takes this long is hung.
const BOUND: Duration = Duration::from_secs(400);
const RO_CONTENT: &[u8] = b"isola-read-only-disk!";
const RW_CONTENT: &str = "written-by-the-guest";
/// Where the guest writes on the read-write disk: sector 8.
const RW_OFFSET: usize = 8 * 512;
const VSOCK_PORT: u32 = 5000;
/// What the host sends the echo server: more than one packet's worth, so
/// that several packets and credit updates carry it.
const ECHO_BYTES: usize = 1 << 20;

const SCRIPT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
/vsock-echo 5000 &
echo_pid=$!
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
wait $echo_pid
echo "GUEST-DONE"
reboot -f
"#;

/// Echoes one vsock stream back until its end, then says how much; gives
/// up after 240 s so that a host that never comes does not hang the boot.
const VSOCK_ECHO: &str = r#"
#include <linux/vm_sockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
    alarm(240);
    int s = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm a = {0};
    a.svm_family = AF_VSOCK;
    a.svm_port = atoi(argv[1]);
    a.svm_cid = VMADDR_CID_ANY;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 1) < 0) {
        perror("VSOCK-ERROR listen");
        return 1;
    }
    int c = accept(s, 0, 0);
    if (c < 0) {
        perror("VSOCK-ERROR accept");
        return 1;
    }
    static char buf[65536];
    long total = 0;
    ssize_t n;
    while ((n = read(c, buf, sizeof buf)) > 0) {
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(c, buf + off, n - off);
            if (w <= 0) {
                perror("VSOCK-ERROR write");
                return 1;
            }
            off += w;
        }
        total += n;
    }
    printf("VSOCK-ECHOED %ld\n", total);
    close(c);
    return 0;
}
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

/// The vsock echo server, built static into `dir`.
fn vsock_echo(dir: &Path) -> Option<PathBuf> {
    let source = dir.join("vsock-echo.c");
    let binary = dir.join("vsock-echo");
    std::fs::write(&source, VSOCK_ECHO).unwrap();
    let built = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&binary)
        .arg(&source)
        .status()
        .is_ok_and(|s| s.success());
    host_has(
        "a C compiler that links static programs (cc -static)",
        built,
    )
    .then_some(binary)
}

/// The initramfs: busybox, the echo server and the script as /test-init.
fn initramfs(busybox: &Path, echo: &Path, dir: &Path) -> Vec<u8> {
    use std::os::unix::fs::PermissionsExt;
    let layer = dir.join("layer");
    std::fs::create_dir_all(layer.join("bin")).unwrap();
    std::fs::copy(busybox, layer.join("bin/busybox")).unwrap();
    std::fs::copy(echo, layer.join("vsock-echo")).unwrap();
    std::fs::write(layer.join("test-init"), SCRIPT).unwrap();
    let executable = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(layer.join("test-init"), executable).unwrap();
    let mut out = Vec::new();
    isola_vm::guest::write_rootfs(&[layer], busybox, &mut out).unwrap();
    out
}

/// The host's side: connect through the monitor's socket until the
/// guest's echo server answers, send it [`ECHO_BYTES`], end the stream
/// and read the echo. Gives up when the guest has gone (the socket is
/// removed) or after `BOUND`.
fn echo_through(socket: &Path) -> Result<Vec<u8>, String> {
    let started = Instant::now();
    let payload: Vec<u8> = (0..ECHO_BYTES).map(|i| (i % 253) as u8).collect();
    loop {
        if started.elapsed() > BOUND {
            return Err("no OK from the guest".into());
        }
        std::thread::sleep(Duration::from_millis(500));
        let Ok(mut stream) = UnixStream::connect(socket) else {
            if started.elapsed() > Duration::from_secs(10) && !socket.exists() {
                return Err("the monitor's socket is gone".into());
            }
            continue;
        };
        stream
            .write_all(format!("CONNECT {VSOCK_PORT}\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
        let mut line = String::new();
        // No line: the guest refused (its server did not listen yet).
        if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            continue;
        }
        if !line.starts_with("OK ") {
            return Err(format!("the monitor answered {line:?}"));
        }
        let writer = std::thread::spawn(move || {
            let sent = stream.write_all(&payload);
            let _ = stream.shutdown(std::net::Shutdown::Write);
            sent.map(|_| payload)
        });
        let echo_started = Instant::now();
        let mut echoed = Vec::new();
        reader.read_to_end(&mut echoed).map_err(|e| e.to_string())?;
        let took = echo_started.elapsed();
        let mib = echoed.len() as f64 / f64::from(1 << 20);
        eprintln!(
            "vsock echo: {mib:.1} MiB there and back in {took:.2?} ({:.1} MiB/s each way)",
            mib / took.as_secs_f64()
        );
        let payload = writer.join().map_err(|_| "the writer panicked")?;
        let payload = payload.map_err(|e| e.to_string())?;
        return if echoed == payload {
            Ok(echoed)
        } else {
            Err(format!(
                "{} bytes came back of {}",
                echoed.len(),
                payload.len()
            ))
        };
    }
}

#[test]
fn a_linux_guest_uses_its_disks_and_vsock() {
    let (Some(kernel), true, Some(busybox)) = (isola_kernel_for_host(), kvm_usable(), busybox())
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some(echo) = vsock_echo(dir.path()) else {
        return;
    };
    let ro_path = dir.path().join("ro.img");
    let rw_path = dir.path().join("rw.img");
    let socket = dir.path().join("vsock.sock");
    let mut ro = vec![0u8; 1 << 20];
    ro[..RO_CONTENT.len()].copy_from_slice(RO_CONTENT);
    std::fs::write(&ro_path, &ro).unwrap();
    std::fs::write(&rw_path, vec![0u8; 2 << 20]).unwrap();

    let config = VmConfig {
        kernel,
        initrd: Some(initramfs(&busybox, &echo, dir.path())),
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
        net: None,
        vsock: Some(socket.clone()),
        console: false,
    };
    let com1 = Capture::default();
    let io = GuestIo {
        com1_out: Box::new(com1.clone()),
        com2_out: Box::new(std::io::sink()),
        com1_in: None,
        com2_in: None,
        on_mark: Vec::new(),
    };
    let host = {
        let socket = socket.clone();
        std::thread::spawn(move || echo_through(&socket))
    };
    let started = Instant::now();
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
    assert!(out.contains(&format!("VSOCK-ECHOED {ECHO_BYTES}")), "{out}");
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

    let echoed = host.join().expect("the host's side panicked");
    assert_eq!(echoed.map(|e| e.len()), Ok(ECHO_BYTES));
    assert!(!socket.exists(), "the monitor removed its socket");
}
