//! After real work (imports that land, imports that are refused, removals,
//! 100 sandboxes with volumes) nothing of isola's is left on the host: no mount, cgroup, loop device,
//! process, or staging directory. `make test` runs the same check once more
//! after the whole suite.

mod common;

use std::process::Command;

use common::fixture::{Layer, Layout, Tar};
use common::Isola;
use tar::EntryType;

#[test]
fn nothing_is_left_behind() {
    if !(common::root_user() && common::tool("mkfs.ext4")) {
        return;
    }
    let isola = Isola::new();
    let work = isola.scratch("fx");
    Layout::image(
        &work.join("good"),
        &[Layer::gzip(Tar::new().file("a", b"a").build())],
    );
    Layout::image(
        &work.join("bad"),
        &[Layer::gzip(
            Tar::new()
                .raw(b"../x", EntryType::Regular, b"x", None)
                .build(),
        )],
    );
    isola.ok([
        "import",
        work.join("good").to_str().unwrap(),
        "--name",
        "good:1",
    ]);
    isola.fail([
        "import",
        work.join("bad").to_str().unwrap(),
        "--name",
        "bad:1",
    ]);
    isola.ok(["export", "good:1", work.join("out").to_str().unwrap()]);
    isola.ok(["rmi", "good:1"]);

    // 100 sandboxes one after another (with a volume, a bind, a pty-less
    // stdin), and one that fails to start.
    isola.ok(["image", "default"]);
    let bind = format!("{}:/b", work.display());
    for _ in 0..100 {
        isola.ok([
            "run",
            "--rm",
            "-v",
            "vol:/v",
            "-v",
            &bind,
            "isola/busybox",
            "true",
        ]);
    }
    isola.expect(["run", "--rm", "isola/busybox", "no-such-program"], false);
    // Only the pool of pristine scratch dirs stays, and it is bounded.
    let instances = isola.root().join("instances");
    let left: Vec<_> = std::fs::read_dir(&instances)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from(".pool")],
        "instance dirs left behind"
    );
    assert!(std::fs::read_dir(instances.join(".pool")).unwrap().count() <= 8);

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/check-leftovers");
    let out = Command::new(script)
        .arg(isola.root())
        .output()
        .expect("running check-leftovers");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The check itself must be able to fail: a stray staging dir is caught.
    std::fs::create_dir(isola.root().join("tmp/import-stray")).unwrap();
    let out = Command::new(script).arg(isola.root()).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("import-stray"));
}
