//! Real images made at test time with umoci and skopeo (OCI layout and
//! docker-archive; gzip, zstd and uncompressed layers) that share a base
//! layer: imported, the base is unpacked and stored once.

mod common;

use std::fs;
use std::path::Path;

use common::{sh, Isola};
use serde_json::Value;

/// base → app1 and app2, each adding a file and deleting one of base's.
fn umoci_layout(dir: &Path) -> String {
    let layout = dir.join("layout");
    let l = layout.to_str().unwrap().to_string();
    sh("umoci", &["init", "--layout", &l]);
    sh("umoci", &["new", "--image", &format!("{l}:base")]);
    let bundle = dir.join("bundle");
    let b = bundle.to_str().unwrap();
    sh("umoci", &["unpack", "--image", &format!("{l}:base"), b]);
    let rootfs = bundle.join("rootfs");
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::write(rootfs.join("etc/base.txt"), "base\n").unwrap();
    fs::write(rootfs.join("etc/doomed.txt"), "deleted by the apps\n").unwrap();
    // Something big enough that sharing it shows in `isola du`.
    let big: Vec<u8> = (0..2_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(rootfs.join("etc/big.bin"), big).unwrap();
    sh("umoci", &["repack", "--image", &format!("{l}:base"), b]);
    fs::remove_dir_all(&bundle).unwrap();
    for app in ["app1", "app2"] {
        sh("umoci", &["tag", "--image", &format!("{l}:base"), app]);
        sh("umoci", &["unpack", "--image", &format!("{l}:{app}"), b]);
        fs::write(rootfs.join(format!("{app}.txt")), app).unwrap();
        fs::remove_file(rootfs.join("etc/doomed.txt")).unwrap();
        sh("umoci", &["repack", "--image", &format!("{l}:{app}"), b]);
        fs::remove_dir_all(&bundle).unwrap();
    }
    l
}

fn skopeo(args: &[&str]) {
    let mut all = vec!["--insecure-policy", "copy", "--quiet"];
    all.extend_from_slice(args);
    sh("skopeo", &all);
}

fn diff_ids(v: &Value) -> Vec<String> {
    v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["diff_id"].as_str().unwrap().to_string())
        .collect()
}

fn layer_dirs(isola: &Isola) -> usize {
    fs::read_dir(isola.root().join("layers"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count()
}

#[test]
fn images_sharing_a_base_store_it_once() {
    if !(common::root_user() && common::tool("umoci") && common::tool("skopeo")) {
        return;
    }
    let isola = Isola::new();
    let work = isola.scratch("fixtures");
    let l = umoci_layout(&work);
    let w = work.to_str().unwrap();
    skopeo(&[
        &format!("oci:{l}:app1"),
        &format!("docker-archive:{w}/app1.tar:app1:v1"),
    ]);
    skopeo(&[
        &format!("oci:{l}:app2"),
        &format!("oci-archive:{w}/app2.tar:v2"),
    ]);
    skopeo(&[
        "--dest-decompress",
        &format!("oci:{l}:base"),
        &format!("oci:{w}/plain:base"),
    ]);
    skopeo(&[
        "--dest-compress-format",
        "zstd",
        &format!("oci:{l}:app2"),
        &format!("oci:{w}/zstd:app2"),
    ]);

    // docker-archive, uncompressed layers, named by its RepoTags.
    let first = isola.json(["import", &format!("{w}/app1.tar"), "--json"]);
    assert_eq!(first["name"], "app1:v1");
    assert_eq!(first["layers_unpacked"], 2);
    // OCI archive, gzip layers: the base is found already unpacked.
    let second = isola.json([
        "import",
        &format!("{w}/app2.tar"),
        "--name",
        "app2",
        "--json",
    ]);
    assert_eq!(second["name"], "app2:latest");
    assert_eq!(
        (
            second["layers_unpacked"].as_u64(),
            second["layers_reused"].as_u64()
        ),
        (Some(1), Some(1))
    );

    let app1 = isola.json(["inspect", "app1:v1"]);
    let app2 = isola.json(["inspect", "app2"]);
    assert_eq!(diff_ids(&app1).len(), 2);
    assert_eq!(
        diff_ids(&app1)[0],
        diff_ids(&app2)[0],
        "both images start from the same base layer"
    );
    assert_ne!(diff_ids(&app1)[1], diff_ids(&app2)[1]);
    assert_eq!(
        layer_dirs(&isola),
        3,
        "base, app1's layer and app2's layer, each unpacked once"
    );

    // The OCI directory with uncompressed layers and the zstd one add no layer.
    let plain = isola.json([
        "import",
        &format!("{w}/plain"),
        "--name",
        "base:plain",
        "--json",
    ]);
    assert_eq!(plain["layers_unpacked"], 0);
    let zstd = isola.json([
        "import",
        &format!("{w}/zstd"),
        "--name",
        "app2:zstd",
        "--json",
    ]);
    assert_eq!(
        (
            zstd["layers_unpacked"].as_u64(),
            zstd["layers_reused"].as_u64()
        ),
        (Some(0), Some(2))
    );
    let app2z = isola.json(["inspect", "app2:zstd"]);
    assert!(app2z["layers"][0]["media_type"]
        .as_str()
        .unwrap()
        .ends_with("zstd"));
    assert_eq!(diff_ids(&app2z), diff_ids(&app2));
    assert_eq!(layer_dirs(&isola), 3);

    let du = isola.json(["du", "--json"]);
    let images = du["images"].as_array().unwrap();
    assert_eq!(images.len(), 4);
    for i in images {
        assert!(
            i["shared"].as_u64().unwrap() > 2_000_000,
            "every image shares the 2 MB base: {i}"
        );
        assert_eq!(
            i["size"].as_u64().unwrap(),
            i["shared"].as_u64().unwrap() + i["unique"].as_u64().unwrap()
        );
    }
    let sum = du["sum_of_images"].as_u64().unwrap();
    let total = du["store_total"].as_u64().unwrap();
    assert!(
        total < sum * 2 / 3,
        "the base is stored once: store {total} vs images {sum}"
    );
    let table = isola.ok(["du"]);
    assert!(
        table.contains("SHARED") && table.contains("app1:v1") && table.contains("store holds"),
        "{table}"
    );

    // The whiteout of etc/doomed.txt is applied when the layers are stacked.
    let out = isola.scratch("export");
    isola.ok(["export", "app1:v1", out.join("app1").to_str().unwrap()]);
    assert_eq!(
        fs::read_to_string(out.join("app1/app1.txt")).unwrap(),
        "app1"
    );
    assert_eq!(
        fs::read_to_string(out.join("app1/etc/base.txt")).unwrap(),
        "base\n"
    );
    assert!(!out.join("app1/etc/doomed.txt").exists());
    isola.ok(["export", "base:plain", out.join("base").to_str().unwrap()]);
    assert!(out.join("base/etc/doomed.txt").exists());

    let listing = isola.ok(["images"]);
    for name in ["app1:v1", "app2:latest", "app2:zstd", "base:plain"] {
        assert!(listing.contains(name), "{name} missing from:\n{listing}");
    }
}
