//! Hostile and broken images: each is refused with an error naming the image
//! and the layer, isola exits non-zero, and the store is left exactly as it
//! was (compared file by file), with nothing written outside it.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::fixture::{gzip, sha256, Layer, Layout, Tar};
use common::Isola;
use tar::EntryType;

/// A store holding one good image, and where to put fixtures.
fn setup() -> (Isola, PathBuf) {
    let isola = Isola::new();
    let work = isola.scratch("fixtures");
    Layout::image(
        &work.join("good"),
        &[Layer::gzip(
            Tar::new().dir("etc", 0o755).file("etc/ok", b"ok").build(),
        )],
    );
    isola.ok([
        "import",
        work.join("good").to_str().unwrap(),
        "--name",
        "good:1",
    ]);
    (isola, work)
}

/// Import `dir`, expect a refusal mentioning every one of `expect`, and
/// check the store did not change.
fn refused(isola: &Isola, dir: &Path, expect: &[&str]) -> String {
    let before = isola.snapshot();
    let err = isola.fail(["import", dir.to_str().unwrap(), "--name", "bad:1"]);
    for e in expect {
        assert!(err.contains(e), "error should mention {e:?}:\n{err}");
    }
    assert_eq!(err.trim().lines().count(), 1, "one clear line:\n{err}");
    assert_eq!(
        before,
        isola.snapshot(),
        "the store changed after a refused import:\n{err}"
    );
    assert!(
        fs::read_dir(isola.root().join("tmp"))
            .unwrap()
            .next()
            .is_none(),
        "staging left behind"
    );
    err
}

fn one_layer(dir: &Path, tar: Vec<u8>) {
    Layout::image(dir, &[Layer::gzip(tar)]);
}

#[test]
fn parent_dir_components_are_refused() {
    if !common::root_user() {
        return;
    }
    let (isola, work) = setup();
    let dir = work.join("dotdot");
    one_layer(
        &dir,
        Tar::new()
            .file("a", b"a")
            .raw(b"../../etc/x", EntryType::Regular, b"pwned", None)
            .build(),
    );
    refused(
        &isola,
        &dir,
        &[
            "bad:1",
            "layer 1/1",
            "../../etc/x",
            "escapes the layer",
            "'..'",
        ],
    );
    assert!(!work.parent().unwrap().join("etc/x").exists());
}

#[test]
fn absolute_paths_are_refused() {
    if !common::root_user() {
        return;
    }
    let (isola, work) = setup();
    let dir = work.join("abs");
    let target = work.join("abs-target");
    one_layer(
        &dir,
        Tar::new()
            .raw(
                target.to_str().unwrap().as_bytes(),
                EntryType::Regular,
                b"pwned",
                None,
            )
            .build(),
    );
    refused(&isola, &dir, &["bad:1", "layer 1/1", "absolute path"]);
    assert!(!target.exists());
}

#[test]
fn writing_through_a_symlink_is_refused() {
    if !common::root_user() {
        return;
    }
    let (isola, work) = setup();
    let outside = work.join("outside");
    fs::create_dir(&outside).unwrap();
    for (name, link) in [
        ("abs", outside.to_str().unwrap().to_string()),
        ("rel", "../../../../../../..".to_string()),
    ] {
        let dir = work.join(format!("symlink-{name}"));
        one_layer(
            &dir,
            Tar::new()
                .symlink("evil", &link)
                .raw(b"evil/pwned", EntryType::Regular, b"pwned", None)
                .build(),
        );
        refused(
            &isola,
            &dir,
            &["bad:1", "layer 1/1", "evil/pwned", "symbolic link \"evil\""],
        );
    }
    assert!(
        fs::read_dir(&outside).unwrap().next().is_none(),
        "nothing written outside"
    );
}

#[test]
fn hardlinks_out_of_the_layer_are_refused() {
    if !common::root_user() {
        return;
    }
    let (isola, work) = setup();
    let victim = work.join("victim");
    fs::write(&victim, "secret").unwrap();
    let cases: [(&str, &[u8]); 3] = [
        ("dotdot", b"../../../../../../../../etc/passwd"),
        ("abs", victim.to_str().unwrap().as_bytes()),
        // Through a symlink that leaves the layer.
        ("via-symlink", b"out/victim"),
    ];
    for (name, target) in cases {
        let dir = work.join(format!("hardlink-{name}"));
        let tar = Tar::new()
            .symlink("out", work.to_str().unwrap())
            .raw(b"link", EntryType::Link, b"", Some(target))
            .build();
        one_layer(&dir, tar);
        refused(
            &isola,
            &dir,
            &[
                "bad:1",
                "layer 1/1",
                "hard link",
                "not a file inside the layer",
            ],
        );
    }
    assert_eq!(
        fs::metadata(&victim)
            .map(|m| std::os::unix::fs::MetadataExt::nlink(&m))
            .unwrap(),
        1
    );
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_refused() {
    if !common::root_user() {
        return;
    }
    let (isola, work) = setup();
    let dir = work.join("mismatch");
    let layer = Layer::tar(Tar::new().file("f", &[7u8; 5000]).build());
    let layout = Layout::image(&dir, std::slice::from_ref(&layer));
    // Same size, one byte of file data changed: only the digest can tell.
    let path = layout.blob_path(&sha256(&layer.blob));
    let mut bytes = fs::read(&path).unwrap();
    bytes[600] ^= 0xff;
    fs::write(&path, bytes).unwrap();
    refused(
        &isola,
        &dir,
        &["bad:1", "layer 1/1", "digest", "corrupt or altered"],
    );
}

#[test]
fn a_truncated_gzip_layer_is_refused() {
    if !common::root_user() {
        return;
    }
    let (isola, work) = setup();
    let dir = work.join("truncated");
    let tar = Tar::new()
        .file("big", &vec![1u8; 200_000])
        .file("after", b"x")
        .build();
    let gz = gzip(&tar);
    // The descriptor matches the truncated bytes: only decompression can tell.
    let cut = Layer {
        blob: gz[..gz.len() / 2].to_vec(),
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        diff_id: sha256(&tar),
    };
    Layout::image(&dir, &[cut]);
    refused(
        &isola,
        &dir,
        &["bad:1", "layer 1/1", "corrupt or truncated"],
    );
}

#[test]
fn a_missing_blob_is_refused() {
    if !common::root_user() {
        return;
    }
    let (isola, work) = setup();
    let dir = work.join("missing");
    let base = Layer::gzip(Tar::new().file("a", b"a").build());
    let top = Layer::gzip(Tar::new().file("b", b"b").build());
    let layout = Layout::image(&dir, &[base, top.clone()]);
    fs::remove_file(layout.blob_path(&sha256(&top.blob))).unwrap();
    refused(&isola, &dir, &["bad:1", "layer 2/2", "missing"]);
}

#[test]
fn malformed_json_is_refused() {
    if !common::root_user() {
        return;
    }
    let (isola, work) = setup();
    let dir = work.join("badmanifest");
    let mut layout = Layout::new(&dir);
    let mut desc = layout.blob(b"{\"schemaVersion\": 2, \"layers\": [");
    desc["mediaType"] = "application/vnd.oci.image.manifest.v1+json".into();
    layout.add(desc, Some("latest"));
    refused(
        &isola,
        &dir,
        &["bad:1", "manifest", "not a valid image manifest"],
    );

    let dir = work.join("badindex");
    Layout::new(&dir);
    fs::write(dir.join("index.json"), "{]").unwrap();
    refused(
        &isola,
        &dir,
        &["badindex", "index.json is not a valid OCI image index"],
    );
}

#[test]
fn an_unknown_layer_media_type_is_refused() {
    if !common::root_user() {
        return;
    }
    let (isola, work) = setup();
    let dir = work.join("mediatype");
    let mut layer = Layer::tar(Tar::new().file("a", b"a").build());
    layer.media_type = "application/x-squashfs".into();
    Layout::image(&dir, &[layer]);
    refused(
        &isola,
        &dir,
        &[
            "bad:1",
            "layer 1/1",
            "application/x-squashfs",
            "cannot unpack",
        ],
    );
}

#[test]
fn a_diff_id_that_does_not_match_is_refused() {
    if !common::root_user() {
        return;
    }
    let (isola, work) = setup();
    let dir = work.join("diffid");
    let mut layer = Layer::gzip(Tar::new().file("a", b"a").build());
    layer.diff_id = sha256(b"something else");
    Layout::image(&dir, &[layer]);
    refused(&isola, &dir, &["bad:1", "layer 1/1", "diff-id"]);
}

#[test]
fn unknown_images_and_paths_get_clear_errors() {
    if !common::root_user() {
        return;
    }
    let (isola, work) = setup();
    let before = isola.snapshot();
    for args in [
        vec!["inspect", "nope:1"],
        vec!["history", "nope"],
        vec!["rmi", "nope"],
        vec!["tag", "nope", "x:1"],
        vec!["export", "nope", "/nonexistent-dir"],
    ] {
        let err = isola.fail(&args);
        assert!(
            err.contains("\"nope") && err.contains("not found") && err.contains("isola images"),
            "{args:?}: {err}"
        );
    }
    let err = isola.fail(["import", work.join("no-such-file").to_str().unwrap()]);
    assert!(
        err.contains("no-such-file") && err.contains("No such file"),
        "{err}"
    );
    let err = isola.fail(["import", work.to_str().unwrap()]);
    assert!(err.contains("neither an OCI image layout"), "{err}");
    let err = isola.fail(["tag", "good:1", "Bad Name"]);
    assert!(err.contains("invalid image name"), "{err}");
    assert_eq!(before, isola.snapshot());
}
