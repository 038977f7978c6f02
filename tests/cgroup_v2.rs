//! The container backend's cgroup v2 path for real. This host is cgroup v1
//! (v2 holds only hugetlb), so the containers run inside a guest whose only
//! hierarchy is v2: the Debian kernel under QEMU (`--vmm qemu`), an image
//! holding busybox, a static isola (`make test` builds it) and the guest
//! kernel's overlay module, and a script that runs the same limit checks as
//! tests/container.rs there. One boot, about 25 s under TCG.

mod common;

use std::path::{Path, PathBuf};

use common::fixture::{Layer, Layout, Tar};
use common::Isola;

const RELEASE: &str = "target/x86_64-unknown-linux-gnu/release";

/// The guest kernel and its overlay module, of the same version.
fn kernel_and_overlay() -> Option<(PathBuf, PathBuf)> {
    let mut kernels: Vec<PathBuf> = std::fs::read_dir("/boot")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .collect();
    kernels.sort();
    kernels.into_iter().rev().find_map(|k| {
        let version = k
            .file_name()?
            .to_string_lossy()
            .strip_prefix("vmlinuz-")?
            .to_string();
        let module = Path::new("/lib/modules")
            .join(version)
            .join("kernel/fs/overlayfs/overlay.ko");
        module.is_file().then_some((k, module))
    })
}

/// Runs in the guest as its workload (root, the VM its boundary).
const SCRIPT: &str = r#"
set -e
/bin/busybox --install -s /bin
insmod /overlay.ko
# pivot_root cannot leave the initramfs (the first mount has no parent):
# the containers' host gets a tmpfs root, as after a switch_root.
mkdir /host
mount -t tmpfs -o size=300m tmpfs /host
mkdir -p /host/bin /host/proc /host/sys /host/dev /host/tmp
cp /bin/busybox /isola /host/bin/
mount --rbind /proc /host/proc
mount --rbind /sys /host/sys
mount --rbind /dev /host/dev
mount -t cgroup2 cgroup2 /host/sys/fs/cgroup
exec chroot /host /bin/busybox sh -c '
/bin/busybox --install -s /bin
export ISOLA_ROOT=/tmp/isola
isola image default >/dev/null
isola info | grep "^cgroups:"
isola run --rm --memory 16m isola/busybox sh -c "x=\$(head -c 40000000 /dev/zero | tr \"\\0\" a); echo survived"
echo "oom-status $?"
isola run --rm --pids-limit 10 isola/busybox sh -c "(for i in \$(seq 20); do sleep 30 >/dev/null & echo started; done) 2>/dev/null | wc -l"
isola run --cpus 0.2 isola/busybox sh -c "i=0; while [ \$i -lt 20000 ]; do i=\$((i+1)); done"
echo "cpu-status $?"
isola ps -a --json | tr -d " \n" | grep -o "\"cpu.nr_throttled\",[0-9]*" | sed "s/.*,/throttled /"
ls /sys/fs/cgroup | grep -c "^isola" || true
' || echo "the guest script failed: $?"
"#;

#[test]
fn limits_hold_on_cgroup_v2() {
    if !common::root_user() || !common::tool("qemu-system-x86_64") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (isola_static, init) = (
        root.join(RELEASE).join("isola"),
        root.join(RELEASE).join("isola-init"),
    );
    if !common::host_has(
        "isola and isola-init built static (make test builds them)",
        isola_static.is_file() && init.is_file(),
    ) {
        return;
    }
    let Some((kernel, overlay)) = kernel_and_overlay() else {
        common::host_has(
            "a guest kernel in /boot with its overlay module (scripts/setup installs linux-image-cloud-amd64)",
            false,
        );
        return;
    };
    let isola = Isola::new();
    let layout = isola.scratch("v2-image");
    let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let tar = Tar::new()
        .dir("bin", 0o755)
        .file_with(
            "bin/busybox",
            &read(Path::new("/bin/busybox")),
            0o755,
            0,
            0,
            0,
        )
        .symlink("bin/sh", "busybox")
        .file_with("isola", &read(&isola_static), 0o755, 0, 0, 0)
        .file("overlay.ko", &read(&overlay))
        .build();
    Layout::image(&layout, &[Layer::tar(tar)]);
    isola.ok(["import", layout.to_str().unwrap(), "--name", "v2host:1"]);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_isola"))
        .args([
            "run",
            "--backend",
            "vm",
            "--vmm",
            "qemu",
            "--memory",
            "512m",
            "--kernel",
        ])
        .arg(&kernel)
        .args(["v2host:1", "/bin/sh", "-c", SCRIPT])
        .env("ISOLA_ROOT", isola.root())
        .env("ISOLA_INIT", &init)
        .env_remove("ISOLA_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running isola");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let all = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(out.status.code(), Some(0), "{all}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(!stdout.contains("the guest script failed"), "{all}");
    // The guest's only hierarchy is v2, and isola sees it so.
    assert!(
        lines.contains(&"cgroups:    cgroup v2 at /sys/fs/cgroup"),
        "{all}"
    );
    // memory.max: the OOM killer, reported as on v1.
    assert!(lines.contains(&"oom-status 137"), "{all}");
    assert!(!stdout.contains("survived"), "{all}");
    assert!(
        stderr.contains("out of memory") && stderr.contains("16 MiB"),
        "{all}"
    );
    // pids.max: 10 tasks at most, shells and wc included.
    let started: u32 = lines
        .iter()
        .find_map(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count of started sleeps: {all}"));
    assert!(
        (3..10).contains(&started),
        "{started} sleeps started: {all}"
    );
    // cpu.max: the quota throttles, in the cgroup's own accounting.
    assert!(lines.contains(&"cpu-status 0"), "{all}");
    let throttled: u64 = lines
        .iter()
        .find_map(|l| l.strip_prefix("throttled ")?.parse().ok())
        .unwrap_or_else(|| panic!("no cpu.nr_throttled: {all}"));
    assert!(throttled > 0, "{all}");
    // Nothing of isola's is left in the v2 tree.
    assert_eq!(lines.last(), Some(&"0"), "{all}");
}
