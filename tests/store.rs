//! The store's life cycle through the CLI: names, IDs, history, removal with
//! garbage collection, multi-arch selection, concurrent imports of images
//! that share layers, whiteouts applied by export, and the default image.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::thread;

use common::fixture::{gzip, sha256, Layer, Layout, Tar};
use common::Isola;
use serde_json::json;

fn base() -> Layer {
    Layer::gzip(
        Tar::new()
            .dir("etc", 0o755)
            .file("etc/os-release", b"ID=fixture\n")
            .file("etc/shared", &vec![3u8; 300_000])
            .build(),
    )
}

fn app(name: &str) -> Layer {
    Layer::gzip(Tar::new().file(name, name.as_bytes()).build())
}

fn count(dir: &Path) -> usize {
    fs::read_dir(dir).unwrap().count()
}

#[test]
fn tag_history_and_rmi_collect_what_nothing_uses() {
    if !common::root_user() {
        return;
    }
    let isola = Isola::new();
    let work = isola.scratch("fx");
    Layout::image(&work.join("one"), &[base(), app("one")]);
    Layout::image(&work.join("two"), &[base(), app("two")]);
    isola.ok([
        "import",
        work.join("one").to_str().unwrap(),
        "--name",
        "one:1",
    ]);
    isola.ok([
        "import",
        work.join("two").to_str().unwrap(),
        "--name",
        "two:1",
    ]);
    let root = isola.root();
    assert_eq!(
        count(&root.join("layers")),
        6,
        "3 layer dirs + 3 facts files"
    );

    isola.ok(["tag", "one:1", "one:alias"]);
    let id = isola.json(["inspect", "one:alias"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        isola.json(["inspect", &id])["names"],
        json!(["one:1", "one:alias"])
    );
    let err = isola.fail(["rmi", &id]);
    assert!(
        err.contains("also named") && err.contains("--force"),
        "{err}"
    );

    let history = isola.json(["history", "one:1", "--json"]);
    assert_eq!(history.as_array().unwrap().len(), 2);
    assert_eq!(history[0]["created_by"], "step 2", "newest first");
    assert_eq!(history[1]["size"], 300_000 + 11);
    assert!(isola.ok(["history", "one:1"]).contains("CREATED BY"));

    // Removing one name keeps the image; the last name takes it.
    isola.ok(["rmi", "one:alias"]);
    assert_eq!(count(&root.join("layers")), 6);
    isola.ok(["rmi", "one:1"]);
    assert_eq!(
        count(&root.join("layers")),
        4,
        "one's own layer went; the shared base stayed"
    );
    isola.json(["inspect", "two:1"]);
    let two_dir = root.join("layers");
    isola.ok(["export", "two:1", work.join("two-root").to_str().unwrap()]);
    assert_eq!(
        fs::read(work.join("two-root/etc/shared")).unwrap().len(),
        300_000
    );
    isola.ok(["rmi", "two:1"]);
    assert_eq!(count(&two_dir), 0);
    assert_eq!(count(&root.join("blobs/sha256")), 0);
    assert_eq!(isola.json(["images", "--json"]), json!([]));
}

#[test]
fn rmi_force_by_id_removes_every_name() {
    if !common::root_user() {
        return;
    }
    let isola = Isola::new();
    let work = isola.scratch("fx");
    Layout::image(&work.join("one"), &[base()]);
    isola.ok([
        "import",
        work.join("one").to_str().unwrap(),
        "--name",
        "a:1",
    ]);
    isola.ok(["tag", "a:1", "b:2"]);
    let id = isola.json(["inspect", "b:2"])["digest"]
        .as_str()
        .unwrap()
        .to_string();
    // A guest root filesystem the VM backend cached for it, and one of
    // another image still being built.
    let rootfs = isola.root().join("vm/rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    let hex = id.trim_start_matches("sha256:");
    std::fs::write(
        rootfs.join(format!("{hex}-0123456789abcdef.cpio")),
        "archive",
    )
    .unwrap();
    std::fs::write(rootfs.join(".building-x.cpio"), "in progress").unwrap();
    isola.ok(["rmi", "--force", &id]);
    assert_eq!(isola.json(["images", "--json"]), json!([]));
    assert_eq!(count(&isola.root().join("layers")), 0);
    let left: Vec<_> = std::fs::read_dir(&rootfs)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        [".building-x.cpio"],
        "the image's archive goes, a fresh build stays"
    );
}

#[test]
fn a_name_moved_to_another_image_takes_the_old_one_with_it() {
    if !common::root_user() {
        return;
    }
    let isola = Isola::new();
    let work = isola.scratch("fx");
    Layout::image(&work.join("old"), &[base(), app("old")]);
    Layout::image(&work.join("new"), &[base(), app("new")]);
    isola.ok([
        "import",
        work.join("old").to_str().unwrap(),
        "--name",
        "x:1",
    ]);
    isola.ok([
        "import",
        work.join("new").to_str().unwrap(),
        "--name",
        "x:1",
    ]);
    // Nothing may linger unnamed: only base and the new top layer remain.
    assert_eq!(count(&isola.root().join("layers")), 4);
    assert_eq!(
        isola.json(["images", "--json"]).as_array().unwrap().len(),
        1
    );
    // The same through `tag`: x:1 moves from new to a third image.
    Layout::image(&work.join("third"), &[app("third")]);
    isola.ok([
        "import",
        work.join("third").to_str().unwrap(),
        "--name",
        "z:1",
    ]);
    isola.ok(["tag", "z:1", "x:1"]);
    assert_eq!(count(&isola.root().join("layers")), 2);
}

#[test]
fn legacy_docker_save_archives_import() {
    if !common::root_user() {
        return;
    }
    // The `docker save` layout of old: <id>/layer.tar, a repeated layer as a
    // symlink to the first copy, and a layer someone gzipped by hand.
    let isola = Isola::new();
    let work = isola.scratch("fx");
    let one = Tar::new().file("one", b"1").build();
    let two = Tar::new().file("two", b"2").build();
    let diff_ids = [sha256(&one), sha256(&one), sha256(&two)];
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_name = format!("{}.json", sha256(&config).trim_start_matches("sha256:"));
    let manifest = serde_json::to_vec(&json!([{
        "Config": config_name,
        "RepoTags": ["docker.io/library/legacy:7"],
        "Layers": ["aaa/layer.tar", "bbb/layer.tar", "ccc/layer.tar"],
    }]))
    .unwrap();
    let archive = Tar::new()
        .file("manifest.json", &manifest)
        .file(&config_name, &config)
        .file("aaa/layer.tar", &one)
        .symlink("bbb/layer.tar", "../aaa/layer.tar")
        .file("ccc/layer.tar", &gzip(&two))
        .build();
    let path = work.join("legacy.tar");
    fs::write(&path, archive).unwrap();
    let imported = isola.json(["import", path.to_str().unwrap(), "--json"]);
    assert_eq!(imported["name"], "legacy:7");
    assert_eq!(
        (
            imported["layers_unpacked"].as_u64(),
            imported["layers_reused"].as_u64()
        ),
        (Some(2), Some(1))
    );
    let out = work.join("root");
    isola.ok(["export", "legacy:7", out.to_str().unwrap()]);
    assert!(out.join("one").exists() && out.join("two").exists());
}

#[test]
fn multi_arch_index_takes_the_asked_platform() {
    if !common::root_user() {
        return;
    }
    let isola = Isola::new();
    let work = isola.scratch("fx");
    let dir = work.join("multi");
    let mut layout = Layout::new(&dir);
    let amd = layout.manifest(&[app("amd64")]);
    let arm = layout.manifest(&[app("arm64")]);
    let mut index = layout.blob(
        &serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": amd["mediaType"], "digest": amd["digest"], "size": amd["size"], "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": arm["mediaType"], "digest": arm["digest"], "size": arm["size"], "platform": {"os": "linux", "architecture": "arm64"}},
            ]
        }))
        .unwrap(),
    );
    index["mediaType"] = "application/vnd.oci.image.index.v1+json".into();
    layout.add(index, Some("v1"));
    let d = dir.to_str().unwrap();
    assert_eq!(isola.json(["import", d, "--json"])["name"], "multi:v1");
    isola.ok([
        "import",
        d,
        "--platform",
        "linux/arm64",
        "--name",
        "multi:arm",
    ]);
    for (name, file) in [("multi:v1", "amd64"), ("multi:arm", "arm64")] {
        let out = work.join(format!("x-{file}"));
        isola.ok(["export", name, out.to_str().unwrap()]);
        assert!(out.join(file).exists(), "{name} should hold {file}");
    }
    let err = isola.fail(["import", d, "--platform", "linux/s390x"]);
    assert!(err.contains("no image for linux/s390x"), "{err}");
    let err = isola.fail(["import", d, "--ref", "v9"]);
    assert!(
        err.contains("no image named \"v9\"") && err.contains("v1"),
        "{err}"
    );
}

#[test]
fn concurrent_imports_sharing_a_layer_both_land() {
    if !common::root_user() {
        return;
    }
    let isola = Isola::new();
    let work = isola.scratch("fx");
    let big = Layer::gzip(
        Tar::new()
            .file(
                "big",
                &(0..8_000_000u32)
                    .map(|i| (i % 251) as u8)
                    .collect::<Vec<_>>(),
            )
            .build(),
    );
    for n in 0..4 {
        Layout::image(
            &work.join(format!("img{n}")),
            &[big.clone(), app(&format!("app{n}"))],
        );
    }
    thread::scope(|s| {
        for n in 0..4 {
            let (isola, work) = (&isola, &work);
            s.spawn(move || {
                isola.ok([
                    "import",
                    work.join(format!("img{n}")).to_str().unwrap(),
                    "--name",
                    &format!("img:{n}"),
                ])
            });
        }
    });
    assert_eq!(
        isola.json(["images", "--json"]).as_array().unwrap().len(),
        4
    );
    let dirs = fs::read_dir(isola.root().join("layers"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(
        dirs, 5,
        "the shared layer is stored once, plus one layer per image"
    );
    assert_eq!(count(&isola.root().join("tmp")), 0);
    for n in 0..4 {
        let out = work.join(format!("out{n}"));
        isola.ok(["export", &format!("img:{n}"), out.to_str().unwrap()]);
        assert_eq!(fs::metadata(out.join("big")).unwrap().len(), 8_000_000);
    }
}

#[test]
fn export_applies_whiteouts_and_opaque_dirs() {
    if !common::root_user() {
        return;
    }
    let isola = Isola::new();
    let work = isola.scratch("fx");
    let lower = Tar::new()
        .dir("a", 0o755)
        .file("a/x", b"x")
        .file("a/y", b"y")
        .file("f", b"f")
        .dir("d", 0o755)
        .file("d/1", b"1")
        .symlink("s", "/etc")
        .build();
    let upper = Tar::new()
        .file(".wh.f", b"")
        .file("a/.wh.x", b"")
        .dir("d", 0o755)
        .file("d/.wh..wh..opq", b"")
        .file("d/2", b"2")
        .dir("s", 0o755)
        .file("s/inside", b"i")
        .build();
    Layout::image(&work.join("wh"), &[Layer::gzip(lower), Layer::tar(upper)]);
    isola.ok([
        "import",
        work.join("wh").to_str().unwrap(),
        "--name",
        "wh:1",
    ]);
    let out = work.join("root");
    isola.ok(["export", "wh:1", out.to_str().unwrap()]);
    assert!(out.join("a/y").exists() && !out.join("a/x").exists());
    assert!(!out.join("f").exists());
    assert!(!out.join("d/1").exists() && out.join("d/2").exists());
    assert!(
        fs::symlink_metadata(out.join("s")).unwrap().is_dir(),
        "a directory replaces the lower symlink"
    );
    assert!(out.join("s/inside").exists() && !Path::new("/etc/inside").exists());
    // The stored upper layer holds the overlayfs form of the same whiteouts.
    let top = isola.json(["inspect", "wh:1"])["layers"][1]["path"]
        .as_str()
        .unwrap()
        .to_string();
    let m = fs::symlink_metadata(Path::new(&top).join("f")).unwrap();
    assert!(m.file_type().is_char_device() && m.rdev() == 0);
    let err = isola.fail(["export", "wh:1", out.to_str().unwrap()]);
    assert!(err.contains("not empty"), "{err}");
}

#[test]
fn the_default_image_is_busybox_with_its_applets() {
    if !(common::root_user()
        && common::host_has(
            "a static busybox (busybox-static)",
            Path::new("/bin/busybox").exists(),
        ))
    {
        return;
    }
    let isola = Isola::new();
    // Built on first use, then found.
    let first = isola.json(["inspect", "isola/busybox"]);
    assert!(isola.ok(["image", "default"]).is_empty());
    // Deterministic: a rebuild from the same busybox is the same image.
    isola.ok(["image", "default", "--rebuild"]);
    assert_eq!(
        isola.json(["inspect", "isola/busybox:latest"])["digest"],
        first["digest"]
    );
    let layer = Path::new(first["layers"][0]["path"].as_str().unwrap()).to_path_buf();
    assert!(fs::metadata(layer.join("bin/busybox")).unwrap().mode() & 0o111 != 0);
    assert_eq!(
        fs::read_link(layer.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert!(fs::read_to_string(layer.join("etc/passwd"))
        .unwrap()
        .starts_with("root:x:0:0:"));
    assert_eq!(
        fs::metadata(layer.join("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
    assert_eq!(first["config"]["Cmd"], json!(["sh"]));
    let table = isola.ok(["images"]);
    assert!(table.contains("isola/busybox:latest"), "{table}");
}
