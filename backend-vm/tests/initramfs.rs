//! The guest's initramfs archives read back by GNU cpio, an independent newc
//! implementation: built from small layer directories with whiteouts, an
//! opaque directory, symlinks, hard links, a fifo and devices; the cache
//! under `vm/rootfs/`; the per-run spec archive; and the image's erofs disk,
//! read back by erofs-utils' fsck and compared with the initramfs.

use std::fs::{self, File};
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use isola_core::image::unpack::OPAQUE_XATTR;
use isola_guest_spec::GuestSpec;
use isola_test_support::host_has;
use isola_vm::guest;
use nix::sys::stat::{makedev, mknod, Mode, SFlag};

const MTIME: i64 = 1_600_000_000;
const INIT: &[u8] = b"\x7fELF not really isola-init";

fn have_cpio() -> bool {
    let found = Command::new("cpio")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    host_has("GNU cpio (scripts/setup installs it)", found)
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Every node under `dir` (and `dir`) dated MTIME, symlinks themselves too,
/// so two copies of a tree differ only in inode numbers.
fn pin_times(dir: &Path) {
    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    let ts = TimeSpec::new(MTIME, 0);
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            pin_times(&path);
        }
        utimensat(
            nix::fcntl::AT_FDCWD,
            &path,
            &ts,
            &ts,
            UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
    }
}

/// Two layers in the store's overlay form. Whiteouts, the opaque xattr and
/// device nodes need root; without it those parts are left out.
fn make_layers(base: &Path) -> Vec<PathBuf> {
    let (l1, l2) = (base.join("l1"), base.join("l2"));
    for d in ["bin", "etc", "hard", "opq", "var/tmp"] {
        fs::create_dir_all(l1.join(d)).unwrap();
    }
    fs::write(l1.join("bin/sh"), "#!shell").unwrap();
    fs::set_permissions(l1.join("bin/sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(l1.join("init"), "the image's own init").unwrap();
    fs::write(l1.join("opq/old"), "hidden by the opaque upper").unwrap();
    fs::write(l1.join("hard/a"), "shared").unwrap();
    fs::hard_link(l1.join("hard/a"), l1.join("hard/b")).unwrap();
    // One inode, two names; the upper layer deletes one of them.
    fs::write(l1.join("hard/c"), "outlives its other name").unwrap();
    fs::hard_link(l1.join("hard/c"), l1.join("etc/gone")).unwrap();
    symlink("bin/sh", l1.join("link")).unwrap();
    symlink("/etc/passwd", l1.join("escape")).unwrap();
    symlink("var/tmp", l1.join("tmp")).unwrap();
    nix::unistd::mkfifo(&l1.join("fifo"), Mode::from_bits_truncate(0o640)).unwrap();

    fs::create_dir_all(l2.join("etc")).unwrap();
    fs::create_dir_all(l2.join("opq")).unwrap();
    fs::write(l2.join("etc/hostname"), "box\n").unwrap();
    fs::write(l2.join("opq/new"), "upper").unwrap();
    if is_root() {
        std::os::unix::fs::lchown(l1.join("bin/sh"), Some(1000), Some(1000)).unwrap();
        mknod(&l2.join("etc/gone"), SFlag::S_IFCHR, Mode::empty(), 0).unwrap();
        xattr::set(l2.join("opq"), OPAQUE_XATTR, b"y").unwrap();
        fs::create_dir_all(l2.join("dev")).unwrap();
        let sda = makedev(8, 0);
        mknod(
            &l2.join("dev/sda"),
            SFlag::S_IFBLK,
            Mode::from_bits_truncate(0o660),
            sda,
        )
        .unwrap();
        // mknod is subject to the umask.
        fs::set_permissions(l2.join("dev/sda"), fs::Permissions::from_mode(0o660)).unwrap();
        // The image's own console is replaced by isola's.
        mknod(
            &l2.join("dev/console"),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(4, 1),
        )
        .unwrap();
    }
    pin_times(&l1);
    pin_times(&l2);
    vec![l1, l2]
}

fn expected_paths() -> Vec<&'static str> {
    let mut paths = vec![
        ".",
        ".isola",
        ".isola/init",
        "bin",
        "bin/sh",
        "dev",
        "dev/console",
        "dev/null",
        "escape",
        "etc",
        "etc/hostname",
        "fifo",
        "hard",
        "hard/a",
        "hard/b",
        "hard/c",
        "init",
        "link",
        "opq",
        "opq/new",
        "proc",
        "run",
        "sys",
        "tmp",
        "var",
        "var/tmp",
    ];
    if is_root() {
        paths.push("dev/sda");
    } else {
        paths.extend(["etc/gone", "opq/old"]);
    }
    // Sorted, parents first: the order the builder promises.
    paths.sort();
    paths
}

fn write_init(dir: &Path, bytes: &[u8]) -> PathBuf {
    let init = dir.join("isola-init");
    fs::write(&init, bytes).unwrap();
    init
}

fn build(layers: &[PathBuf], init: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let stats = guest::write_rootfs(layers, init, &mut out).unwrap();
    assert_eq!(stats.bytes, out.len() as u64);
    out
}

fn cpio_list(archive: &Path) -> Vec<String> {
    let out = Command::new("cpio")
        .args(["-it", "--quiet"])
        .stdin(File::open(archive).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn cpio_extract(archive: &Path, into: &Path) {
    fs::create_dir_all(into).unwrap();
    let out = Command::new("cpio")
        .args(["-idm", "--quiet", "--no-absolute-filenames"])
        .current_dir(into)
        .stdin(File::open(archive).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn gnu_cpio_reads_the_merged_image_with_init_and_guest_nodes() {
    if !have_cpio() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layers = make_layers(&tmp.path().join("layers"));
    let init = write_init(tmp.path(), INIT);
    let archive = tmp.path().join("rootfs.cpio");
    fs::write(&archive, build(&layers, &init)).unwrap();
    // Whole 4-byte units, so a second archive can follow it.
    assert_eq!(fs::metadata(&archive).unwrap().len() % 4, 0);

    assert_eq!(cpio_list(&archive), expected_paths());

    if !is_root() {
        eprintln!("SKIPPED: extracting device nodes needs root; only the listing was checked");
        return;
    }
    let x = tmp.path().join("x");
    cpio_extract(&archive, &x);
    let meta = |p: &str| fs::symlink_metadata(x.join(p)).unwrap();
    let perm = |p: &str| meta(p).mode() & 0o7777;

    assert_eq!(fs::read(x.join(".isola/init")).unwrap(), INIT);
    assert_eq!(
        (
            perm(".isola/init"),
            meta(".isola/init").uid(),
            meta(".isola/init").gid()
        ),
        (0o755, 0, 0)
    );
    // The image's own /init is left alone.
    assert_eq!(
        fs::read_to_string(x.join("init")).unwrap(),
        "the image's own init"
    );

    assert_eq!(fs::read_to_string(x.join("bin/sh")).unwrap(), "#!shell");
    let sh = meta("bin/sh");
    assert_eq!(
        (sh.mode() & 0o7777, sh.uid(), sh.gid(), sh.mtime()),
        (0o755, 1000, 1000, MTIME)
    );

    assert_eq!(fs::read_link(x.join("link")).unwrap(), Path::new("bin/sh"));
    assert_eq!(
        fs::read_link(x.join("escape")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert_eq!(fs::read_link(x.join("tmp")).unwrap(), Path::new("var/tmp"));

    assert_eq!(fs::read_to_string(x.join("hard/b")).unwrap(), "shared");
    assert_eq!(meta("hard/a").ino(), meta("hard/b").ino());
    assert_eq!(meta("hard/a").nlink(), 2);
    assert_eq!(
        fs::read_to_string(x.join("hard/c")).unwrap(),
        "outlives its other name"
    );
    assert_eq!(meta("hard/c").nlink(), 1);

    assert!(meta("fifo").file_type().is_fifo());
    assert_eq!(perm("fifo"), 0o640);

    let console = meta("dev/console");
    assert!(console.file_type().is_char_device());
    assert_eq!(
        (console.rdev(), console.mode() & 0o7777),
        (makedev(5, 1), 0o600)
    );
    let null = meta("dev/null");
    assert!(null.file_type().is_char_device());
    assert_eq!((null.rdev(), null.mode() & 0o7777), (makedev(1, 3), 0o666));
    let sda = meta("dev/sda");
    assert!(sda.file_type().is_block_device());
    assert_eq!((sda.rdev(), sda.mode() & 0o7777), (makedev(8, 0), 0o660));

    assert_eq!((perm("."), meta(".").uid()), (0o755, 0));
    assert_eq!(perm("proc"), 0o555);
    assert_eq!(perm("run"), 0o755);
    assert!(meta(".isola").is_dir());
    assert!(!x.join("etc/gone").exists());
    assert!(!x.join("opq/old").exists());
    assert_eq!(fs::read_to_string(x.join("opq/new")).unwrap(), "upper");
}

#[test]
fn the_same_image_gives_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let init = write_init(tmp.path(), INIT);
    // Two copies of the image: the same content under other inode numbers.
    let a = make_layers(&tmp.path().join("a"));
    let b = make_layers(&tmp.path().join("b"));
    let first = build(&a, &init);
    assert_eq!(first, build(&a, &init));
    assert_eq!(first, build(&b, &init));
}

#[test]
fn the_cache_builds_once_per_image_and_init() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let layers = make_layers(&tmp.path().join("layers"));
    let init = write_init(tmp.path(), INIT);
    let hex = "0123456789abcdef".repeat(4);
    let digest = format!("sha256:{hex}");

    let path = guest::rootfs(&state, &digest, &layers, &init).unwrap();
    let name = path.file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(path.parent().unwrap(), state.join("vm/rootfs"));
    assert!(
        name.starts_with(&format!("{hex}-")) && name.ends_with(".cpio"),
        "{name}"
    );
    assert_eq!(name.len(), 64 + 1 + 16 + 5);
    assert_eq!(fs::read(&path).unwrap(), build(&layers, &init));
    let before = fs::metadata(&path).unwrap();

    let again = guest::rootfs(&state, &digest, &layers, &init).unwrap();
    assert_eq!(again, path);
    let after = fs::metadata(&path).unwrap();
    assert_eq!(
        (after.ino(), after.mtime(), after.mtime_nsec()),
        (before.ino(), before.mtime(), before.mtime_nsec())
    );

    fs::create_dir(tmp.path().join("other")).unwrap();
    let other_init = write_init(&tmp.path().join("other"), b"a newer isola-init");
    let other = guest::rootfs(&state, &digest, &layers, &other_init).unwrap();
    assert_ne!(other, path);
    assert!(other.is_file() && path.is_file());

    // Nothing half-written is left beside the archives.
    let mut names: Vec<_> = fs::read_dir(state.join("vm/rootfs"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");

    // Each init's hash is remembered; rewriting the file in place (same
    // path and inode) gives a new hash, not the remembered one.
    assert_eq!(fs::read_dir(state.join("vm/init-ids")).unwrap().count(), 2);
    std::thread::sleep(std::time::Duration::from_millis(10));
    fs::write(&other_init, b"rebuilt in place").unwrap();
    let rebuilt = guest::rootfs(&state, &digest, &layers, &other_init).unwrap();
    assert_ne!(rebuilt, other);
}

#[test]
fn the_cache_names_the_image_when_a_layer_is_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let init = write_init(tmp.path(), INIT);
    let digest = format!("sha256:{}", "ab".repeat(32));
    let gone = tmp.path().join("layers/gone");
    let err = guest::rootfs(tmp.path(), &digest, std::slice::from_ref(&gone), &init).unwrap_err();
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(
        chain.contains(&digest) && chain.contains(&gone.display().to_string()),
        "{chain}"
    );
    // The failed build leaves no file behind.
    let left = fs::read_dir(tmp.path().join("vm/rootfs")).unwrap().count();
    assert_eq!(left, 0);
}

#[test]
fn the_spec_archive_unpacks_to_the_spec_json() {
    if !have_cpio() {
        return;
    }
    let spec = GuestSpec {
        version: isola_guest_spec::VERSION,
        args: vec!["sh".into(), "-c".into(), "echo hi".into()],
        env: vec!["PATH=/bin".into()],
        cwd: "/".into(),
        uid: 0,
        gid: 0,
        groups: vec![],
        hostname: "box".into(),
        read_only: false,
        pids_limit: None,
        stdin: false,
        tty: false,
        tty_size: None,
        park: false,
        root_disk: None,
        volumes: vec![],
        stdio_ports: false,
        stdio_end: None,
        net: None,
    };
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("spec.cpio");
    let bytes = guest::spec_archive(&spec);
    assert_eq!(bytes.len() % 4, 0);
    fs::write(&archive, bytes).unwrap();
    assert_eq!(cpio_list(&archive), [".isola", ".isola/spec.json"]);

    let x = tmp.path().join("x");
    cpio_extract(&archive, &x);
    let json = x.join(isola_guest_spec::PATH.trim_start_matches('/'));
    assert_eq!(
        GuestSpec::from_json(&fs::read(&json).unwrap()).unwrap(),
        spec
    );
    assert_eq!(fs::metadata(&json).unwrap().mode() & 0o7777, 0o600);
}

/// Each node under `dir` by path: its type and mode, owner, time, device
/// number, and content or link target.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<String, String> {
    fn walk(dir: &Path, rel: &str, out: &mut std::collections::BTreeMap<String, String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let path = entry.path();
            let m = fs::symlink_metadata(&path).unwrap();
            let body = if m.file_type().is_symlink() {
                fs::read_link(&path).unwrap().display().to_string()
            } else if m.is_file() {
                String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned()
            } else {
                String::new()
            };
            // GNU cpio sets no link's time, and a directory's changes as
            // its children are made.
            let mtime = if m.is_file() || m.file_type().is_fifo() || m.file_type().is_block_device()
            {
                m.mtime()
            } else {
                0
            };
            out.insert(
                rel.clone(),
                format!(
                    "{:o} {}:{} {} {} {body}",
                    m.mode(),
                    m.uid(),
                    m.gid(),
                    mtime,
                    m.rdev()
                ),
            );
            if m.is_dir() {
                walk(&path, &rel, out);
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, "", &mut out);
    out
}

#[test]
fn the_image_s_disk_holds_what_its_initramfs_holds_but_isola_init() {
    if !is_root() {
        // chown and mknod in the staged tree, as for a real image.
        host_has(
            "root (the disk's staged tree keeps owners and devices)",
            false,
        );
        return;
    }
    let have = |tool: &str| {
        Command::new(tool)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    if !host_has(
        "erofs-utils (scripts/setup installs it)",
        have("mkfs.erofs") && have("fsck.erofs"),
    ) || !have_cpio()
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let layers = make_layers(&tmp.path().join("layers"));
    let init = write_init(tmp.path(), INIT);
    let digest = format!("sha256:{}", "ab".repeat(32));
    let disk = guest::root_disk(&state, &digest, &layers).unwrap();
    assert_eq!(guest::root_disk(&state, &digest, &layers).unwrap(), disk);
    // Nothing staged is left beside it.
    let left: Vec<_> = fs::read_dir(disk.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    // The store's files have their one name back.
    assert_eq!(
        fs::metadata(layers[1].join("etc/hostname"))
            .unwrap()
            .nlink(),
        1
    );

    let from_disk = tmp.path().join("disk");
    let out = Command::new("fsck.erofs")
        .arg(format!("--extract={}", from_disk.display()))
        .arg(&disk)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let archive = tmp.path().join("rootfs.cpio");
    fs::write(&archive, build(&layers, &init)).unwrap();
    let from_cpio = tmp.path().join("cpio");
    cpio_extract(&archive, &from_cpio);

    let mut want = snapshot(&from_cpio);
    // isola-init and its nodes are the initramfs' alone; the disk keeps
    // the image's own console.
    for gone in [".isola", ".isola/init", "dev/console", "dev/null"] {
        want.remove(gone);
    }
    let mut got = snapshot(&from_disk);
    let console = got.remove("dev/console").expect("the image's console");
    assert!(
        console.contains(&format!(" {} ", makedev(4, 1))),
        "{console}"
    );
    assert_eq!(got, want);
}
