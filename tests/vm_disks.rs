//! The VM backend's disks under QEMU (TCG here, seconds a boot): the image
//! as a read-only erofs disk under an overlay, named volumes as virtio-blk
//! disks shared with containers, and the initramfs fallback for kernels
//! without virtio-blk. isola's own kernel for this host boots here (the PVM
//! test kernel on a PVM host: it runs under QEMU too).

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::Isola;

fn init() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/x86_64-unknown-linux-gnu/release/isola-init")
}

/// A store with the default image and isola's kernel for this host, if
/// QEMU, the kernel, isola-init and mkfs.erofs are here.
fn isola_and_kernel() -> Option<(Isola, PathBuf)> {
    if !common::tool("qemu-system-x86_64") || !common::tool("mkfs.erofs") {
        return None;
    }
    if !common::host_has(
        "isola-init built static (make test builds it)",
        init().is_file(),
    ) {
        return None;
    }
    let kernel = common::isola_kernel_for_host()?;
    let isola = Isola::new();
    isola.ok(["image", "default"]);
    Some((isola, kernel))
}

/// `isola ARGS` with this test's store and isola-init.
fn isola_cmd(isola: &Isola, args: &[&str]) -> Output {
    let mut c = isola.command(args);
    c.env("ISOLA_INIT", init()).stdin(Stdio::null());
    c.output().expect("running isola")
}

/// `isola run --rm --backend vm --vmm qemu --kernel K ARGS`.
fn vm(isola: &Isola, kernel: &Path, args: &[&str]) -> Output {
    let k = kernel.to_string_lossy();
    let mut all = vec![
        "run",
        "--rm",
        "--backend",
        "vm",
        "--vmm",
        "qemu",
        "--kernel",
        &k,
    ];
    all.extend_from_slice(args);
    isola_cmd(isola, &all)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// The files under the store's `vm/DIR` whose names end with `suffix`.
fn cached(isola: &Isola, dir: &str, suffix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(isola.root().join("vm").join(dir))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(suffix))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_image_is_a_read_only_disk_under_an_overlay_and_memory_does_not_grow_with_it() {
    let Some((isola, kernel)) = isola_and_kernel() else {
        return;
    };
    let out = ok(&vm(
        &isola,
        &kernel,
        &[
            "isola/busybox",
            "sh",
            "-c",
            "grep ' / ' /proc/mounts; cat /sys/block/vda/serial; echo; \
             echo written > /new && cat /new; ls -d /.isola 2>&1; true",
        ],
    ));
    assert!(
        out.contains("overlay / overlay rw") && out.contains("lowerdir=/.isola/image"),
        "{out}"
    );
    assert!(out.contains("isola-root\n"), "{out}");
    assert!(out.contains("written\n"), "{out}");
    // The initramfs' own /.isola is left behind, out of the workload's sight.
    assert!(out.contains("No such file"), "{out}");
    let disks = cached(&isola, "rootfs", ".erofs");
    assert_eq!(disks.len(), 1, "one disk per image: {disks:?}");
    let inits = cached(&isola, "init", ".cpio");
    assert_eq!(inits.len(), 1, "{inits:?}");
    let init_size = std::fs::metadata(&inits[0]).unwrap().len();
    let isola_init = std::fs::metadata(init()).unwrap().len();
    assert!(
        init_size < isola_init + (64 << 10),
        "the initramfs is isola-init and little else: {init_size} bytes"
    );
    // The disk is built once: a second run reuses the same file.
    let ino = std::fs::metadata(&disks[0]).unwrap().ino();
    let ro = vm(
        &isola,
        &kernel,
        &["--read-only", "isola/busybox", "sh", "-c", "touch /x"],
    );
    assert_ne!(ro.status.code(), Some(0));
    assert!(
        text(&ro.stderr).contains("Read-only file system"),
        "{}",
        text(&ro.stderr)
    );
    assert_eq!(std::fs::metadata(&disks[0]).unwrap().ino(), ino);

    // An image bigger than the guest's default memory (256 MiB): read from
    // the disk, not copied into RAM, it runs; without virtio-blk (Debian's
    // kernel) the initramfs cannot hold it, which is said before booting.
    let ctx = isola.context(
        "big",
        "FROM isola/busybox\nRUN dd if=/dev/zero of=/big bs=1M count=300 2>/dev/null\n",
        &[],
    );
    isola.ok(["build", "-q", "-t", "big", ctx.to_str().unwrap()]);
    let out = ok(&vm(
        &isola,
        &kernel,
        &["big", "sh", "-c", "wc -c < /big; free -m | grep Mem"],
    ));
    assert!(out.starts_with("314572800\n"), "{out}");
    if let Some(debian) = debian_kernel() {
        let fallback = vm(&isola, &debian, &["big", "true"]);
        assert_eq!(fallback.status.code(), Some(125));
        let e = text(&fallback.stderr);
        assert!(
            e.contains("half of the memory") && e.contains("--memory") && e.contains("virtio-blk"),
            "{e}"
        );
        assert_eq!(e.trim().lines().count(), 1, "{e}");
    }
}

/// A kernel from /boot (Debian's cloud kernel: virtio only as modules).
fn debian_kernel() -> Option<PathBuf> {
    std::fs::read_dir("/boot")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
}

/// The pid of the QEMU running for this test's store.
fn qemu_of(isola: &Isola) -> Option<i32> {
    let root = isola.root().to_string_lossy().into_owned();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline);
        (cmdline.starts_with("qemu-system") && cmdline.contains(&root)).then_some(pid)
    })
}

#[test]
fn a_named_volume_moves_between_containers_and_vms_and_fsynced_data_survives_kill_9() {
    let Some((isola, kernel)) = isola_and_kernel() else {
        return;
    };
    if !common::root_user() {
        return;
    }
    isola.ok(["volume", "create", "shared"]);
    let container = |args: &[&str]| {
        let mut all = vec!["run", "--rm"];
        all.extend_from_slice(args);
        isola_cmd(&isola, &all)
    };
    ok(&container(&[
        "-v",
        "shared:/data",
        "isola/busybox",
        "sh",
        "-c",
        "echo from-container > /data/c",
    ]));
    let out = ok(&vm(
        &isola,
        &kernel,
        &[
            "-v",
            "shared:/data",
            "isola/busybox",
            "sh",
            "-c",
            "cat /data/c; echo from-vm > /data/v; grep /data /proc/mounts",
        ],
    ));
    assert!(out.starts_with("from-container\n"), "{out}");
    assert!(out.contains(" /data ext4 rw"), "{out}");
    // Read-only in the container too: the guest left it clean.
    assert_eq!(
        ok(&container(&[
            "-v",
            "shared:/data:ro",
            "isola/busybox",
            "cat",
            "/data/v"
        ])),
        "from-vm\n"
    );
    let ro = vm(
        &isola,
        &kernel,
        &[
            "-v",
            "shared:/data:ro",
            "isola/busybox",
            "sh",
            "-c",
            "cat /data/v; echo x > /data/w",
        ],
    );
    assert_ne!(ro.status.code(), Some(0));
    assert_eq!(text(&ro.stdout), "from-vm\n");
    assert!(
        text(&ro.stderr).contains("Read-only file system"),
        "{}",
        text(&ro.stderr)
    );

    // A volume a running VM holds read-write is not lent to another sandbox.
    let k = kernel.to_string_lossy();
    let script = "echo durable > /data/d; sync /data/d; echo synced; while :; do sleep 1; done";
    let started = isola_cmd(
        &isola,
        &[
            "run",
            "-d",
            "--name",
            "holder",
            "--backend",
            "vm",
            "--vmm",
            "qemu",
            "--kernel",
            &k,
            "-v",
            "shared:/data",
            "isola/busybox",
            "sh",
            "-c",
            script,
        ],
    );
    assert!(started.status.success(), "{}", text(&started.stderr));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !text(&isola_cmd(&isola, &["logs", "holder"]).stdout).contains("synced") {
        assert!(
            std::time::Instant::now() < deadline,
            "the guest never synced"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let busy = container(&["-v", "shared:/data", "isola/busybox", "true"]);
    assert_eq!(busy.status.code(), Some(125));
    assert!(
        text(&busy.stderr).contains("shared"),
        "{}",
        text(&busy.stderr)
    );
    // The monitor killed outright: what the guest synced is on the disk.
    let qemu = qemu_of(&isola).expect("the holder's QEMU");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(qemu), nix::sys::signal::SIGKILL)
        .expect("killing QEMU");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while qemu_of(&isola).is_some() {
        assert!(std::time::Instant::now() < deadline, "QEMU did not go");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let gone = isola_cmd(&isola, &["rm", "-f", "holder"]);
    assert!(gone.status.success(), "{}", text(&gone.stderr));
    assert_eq!(
        ok(&container(&[
            "-v",
            "shared:/data",
            "isola/busybox",
            "cat",
            "/data/d"
        ])),
        "durable\n"
    );

    // Where the guest's kernel has no virtio-blk, a volume is refused.
    if let Some(debian) = debian_kernel() {
        let e = vm(
            &isola,
            &debian,
            &["-v", "shared:/data", "isola/busybox", "true"],
        );
        assert_eq!(e.status.code(), Some(125));
        let e = text(&e.stderr);
        assert!(
            e.contains("volume shared") && e.contains("virtio-blk"),
            "{e}"
        );
        assert_eq!(e.trim().lines().count(), 1, "{e}");
    }
    isola.ok(["volume", "rm", "shared"]);
}
