//! `isola pull`, `push`, `login` and `logout` against registries the test
//! starts on 127.0.0.1 (isola-test-support's registry harness): the
//! distribution registry in its four modes (plain HTTP, TLS with a CA of
//! the test's, htpasswd, bearer tokens), round trips checked with skopeo,
//! shared layers not downloaded twice, multi-platform indexes, zstd, a
//! download broken halfway and resumed, and hostile registries that must
//! each end in a clear error, in bounded time, with the store unchanged.
//! The `harness_` tests check the harness itself with skopeo and plain
//! HTTP, without isola.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::fixture::{sha256, Layer, Layout, Tar};
use common::Isola;
use isola_test_support::registry::{
    self, base64, diff_ids, Escape, Fault, HostileRegistry, Mode, Proxy, Scenario, TestRegistry,
    PASSWORD, USER,
};
use serde_json::{json, Value};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// How long an isola command may take before the test kills it and fails.
const BOUND: Duration = Duration::from_secs(120);
/// The same for a pull from a hostile registry, with
/// ISOLA_REGISTRY_TIMEOUT=[`HOSTILE_TIMEOUT`].
const HOSTILE_BOUND: Duration = Duration::from_secs(30);
const HOSTILE_TIMEOUT: &str = "3";

// ---------------------------------------------------------------------------
// The client side: isola with a store and a home of its own.

/// A store, and HOME and DOCKER_CONFIG in the test's temp dir, so that
/// root's real ~/.docker is never read or written.
struct Client {
    isola: Isola,
}

impl Client {
    fn new() -> Client {
        let c = Client {
            isola: Isola::new(),
        };
        fs::create_dir_all(c.docker_config()).unwrap();
        c
    }

    fn home(&self) -> PathBuf {
        self.isola.scratch("home")
    }

    /// $DOCKER_CONFIG, whose config.json is the default auth file.
    fn docker_config(&self) -> PathBuf {
        self.home().join(".docker")
    }

    fn scratch(&self, name: &str) -> PathBuf {
        self.isola.scratch(name)
    }

    /// `isola ARGS` with that home, not yet run.
    fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = self.isola.command(args);
        c.env("HOME", self.home())
            .env("DOCKER_CONFIG", self.docker_config())
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("ISOLA_REGISTRY_TIMEOUT");
        c
    }

    /// Run `isola ARGS` within [`BOUND`].
    fn run(&self, args: &[&str]) -> Output {
        finish(self.command(args), b"", BOUND, &format!("isola {args:?}"))
    }

    fn expect(&self, args: &[&str], success: bool) -> Output {
        let out = self.run(args);
        assert_eq!(
            out.status.success(),
            success,
            "isola {args:?} exited {}:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Run, insist on success, return stdout.
    fn ok(&self, args: &[&str]) -> String {
        String::from_utf8(self.expect(args, true).stdout).unwrap()
    }

    /// Run, insist on failure, return stderr.
    fn fail(&self, args: &[&str]) -> String {
        String::from_utf8(self.expect(args, false).stderr).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).expect("isola printed valid JSON")
    }

    /// `isola pull ARGS`: the image ID it printed (the manifest digest).
    fn pull(&self, args: &[&str]) -> String {
        let mut all = vec!["pull"];
        all.extend_from_slice(args);
        let id = self.ok(&all).trim().to_string();
        assert!(
            id.starts_with("sha256:") && id.len() == 71,
            "pull printed {id:?}"
        );
        id
    }

    /// `isola push ARGS`: the digest it printed.
    fn push(&self, args: &[&str]) -> String {
        let mut all = vec!["push"];
        all.extend_from_slice(args);
        let d = self.ok(&all).trim().to_string();
        assert!(
            d.starts_with("sha256:") && d.len() == 71,
            "push printed {d:?}"
        );
        d
    }

    /// What a failed pull must leave as it was: the images and the files
    /// of blobs/ and layers/ (with their content hashes) and images.json.
    fn store_state(&self) -> (Value, BTreeMap<PathBuf, String>) {
        let files = self
            .isola
            .snapshot()
            .into_iter()
            .filter(|(p, _)| {
                p.starts_with("blobs") || p.starts_with("layers") || p.starts_with("images.json")
            })
            .collect();
        (self.json(&["images", "--json"]), files)
    }

    /// Import an image made here, so a store is not empty.
    fn import(&self, name: &str, layers: &[Layer]) {
        let dir = self.scratch(&format!("import-{}", name.replace([':', '/'], "-")));
        Layout::image(&dir, layers);
        self.ok(&["import", dir.to_str().unwrap(), "--name", name]);
    }

    /// The stored image `name`'s files, exported to a fresh directory.
    fn export(&self, name: &str) -> PathBuf {
        let out = self.scratch("exports").join(name.replace([':', '/'], "-"));
        let _ = fs::remove_dir_all(&out);
        self.ok(&["export", name, out.to_str().unwrap()]);
        out
    }

    /// A pull that must fail within `bound`: its output.
    fn pull_fails(&self, args: &[&str], env: &[(&str, &str)], bound: Duration) -> Output {
        let mut all = vec!["pull"];
        all.extend_from_slice(args);
        let mut cmd = self.command(&all);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = finish(cmd, b"", bound, &format!("isola {all:?}"));
        assert!(
            !out.status.success(),
            "isola {all:?} should have failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// Run `cmd` with `stdin` as its input; a run longer than `bound` is killed
/// (by its pid) and the test fails, saying what ran and what it printed.
fn finish(mut cmd: Command, stdin: &[u8], bound: Duration, what: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {what}: {e}"));
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            let err = err.join().unwrap_or_default();
            panic!(
                "{what} still ran after {bound:?}:\n{}",
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = writer.join();
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

// ---------------------------------------------------------------------------
// Images made here.

fn has_busybox() -> bool {
    common::host_has(
        "a static busybox (busybox-static)",
        Path::new("/bin/busybox").exists(),
    )
}

/// Everything the isola-facing tests need: root, skopeo, the registry
/// modes asked for, and busybox for images that run.
fn ready(modes: &[Mode]) -> bool {
    common::root_user()
        && common::tool("skopeo")
        && modes.iter().all(|m| m.available())
        && has_busybox()
}

/// /bin/busybox with sh, echo and cat, and a passwd: an image that runs.
fn busybox() -> Layer {
    let bb = fs::read("/bin/busybox").expect("reading /bin/busybox");
    Layer::gzip(
        Tar::new()
            .dir("bin", 0o755)
            .file_with("bin/busybox", &bb, 0o755, 0, 0, 1_600_000_000)
            .symlink("bin/sh", "busybox")
            .symlink("bin/echo", "busybox")
            .symlink("bin/cat", "busybox")
            .dir("etc", 0o755)
            .file("etc/passwd", b"root:x:0:0:root:/:/bin/sh\n")
            .build(),
    )
}

fn file_layer(name: &str, content: &[u8]) -> Layer {
    Layer::gzip(Tar::new().file(name, content).build())
}

/// `n` bytes no compressor shrinks.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

/// A gzip layer of random bytes, stored (level 0): big on the wire, quick
/// to make.
fn big_layer(bytes: usize) -> Layer {
    let tar = Tar::new()
        .file("big.bin", &noise(bytes, 42))
        .file("resumed.txt", b"the big layer arrived whole\n")
        .build();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    e.write_all(&tar).unwrap();
    Layer {
        diff_id: sha256(&tar),
        blob: e.finish().unwrap(),
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
    }
}

/// Make an OCI layout of `layers` and copy it into `reg` as `repo` (with
/// skopeo's `extra` flags); the manifest digest the registry gives it.
fn put(reg: &TestRegistry, repo: &str, layers: &[Layer], extra: &[&str]) -> String {
    let dir = reg.scratch(&repo.replace([':', '/'], "-"));
    Layout::image(&dir, layers);
    reg.copy_in(&format!("oci:{}:latest", dir.display()), repo, extra);
    reg.manifest_digest(repo)
}

/// A linux/`arch` image of `layer` in `layout`: its descriptor, with the
/// platform, for an index.
fn platform_image(layout: &Layout, layer: &Layer, arch: &str) -> Value {
    let config = json!({
        "architecture": arch, "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
    });
    let mut c = layout.blob(&serde_json::to_vec(&config).unwrap());
    c["mediaType"] = CONFIG.into();
    let mut l = layout.blob(&layer.blob);
    l["mediaType"] = layer.media_type.clone().into();
    let m = json!({"schemaVersion": 2, "mediaType": MANIFEST, "config": c, "layers": [l]});
    let mut d = layout.blob(&serde_json::to_vec(&m).unwrap());
    d["mediaType"] = MANIFEST.into();
    d["platform"] = json!({"os": "linux", "architecture": arch});
    d
}

fn inspect_diff_ids(client: &Client, name: &str) -> Vec<String> {
    client.json(&["inspect", name])["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["diff_id"].as_str().unwrap().to_string())
        .collect()
}

fn layer_media_types(manifest: &[u8]) -> Vec<String> {
    let m: Value = serde_json::from_slice(manifest).unwrap();
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap().to_string())
        .collect()
}

fn contains_ci(text: &str, word: &str) -> bool {
    text.to_lowercase().contains(&word.to_lowercase())
}

/// The auth file `isola login` wrote: mode 0600, docker's shape.
fn assert_login_saved(file: &Path, host: &str) {
    let mode = fs::metadata(file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{} has mode {mode:o}", file.display());
    let v: Value = serde_json::from_slice(&fs::read(file).unwrap()).unwrap();
    assert_eq!(
        v["auths"][host]["auth"],
        base64(format!("{USER}:{PASSWORD}").as_bytes()),
        "{v}"
    );
}

fn login(client: &Client, host: &str, password: &str, extra: &[&str]) -> Output {
    let mut args = vec!["login", "-u", USER, "--password-stdin"];
    args.extend_from_slice(extra);
    args.push(host);
    finish(
        client.command(&args),
        format!("{password}\n").as_bytes(),
        BOUND,
        &format!("isola {args:?}"),
    )
}

// ---------------------------------------------------------------------------
// isola against the distribution registry.

#[test]
fn pull_from_a_plain_registry_then_run() {
    if !ready(&[Mode::Plain]) {
        return;
    }
    let reg = TestRegistry::start(Mode::Plain);
    let layers = [busybox(), file_layer("hello.txt", b"pulled\n")];
    let digest = put(&reg, "busybox:1", &layers, &[]);
    let client = Client::new();
    let name = reg.reference("busybox:1");
    assert_eq!(client.pull(&[&name]), digest);
    let images = client.ok(&["images", "--digests"]);
    assert!(
        images.contains("DIGEST") && images.contains(&digest),
        "{images}"
    );
    assert_eq!(
        client.json(&["inspect", &name])["digest"],
        digest.as_str(),
        "stored under the name as given"
    );
    let out = client.ok(&["run", "--rm", &name, "cat", "/hello.txt"]);
    assert_eq!(out, "pulled\n");
    // Pulled again: no layer fetched again, the same ID.
    let layer_gets = || {
        reg.blob_gets()
            .into_iter()
            .filter(|g| layers.iter().any(|l| sha256(&l.blob) == g.digest))
            .count()
    };
    let gets = layer_gets();
    assert_eq!(gets, 2);
    assert_eq!(client.pull(&["-q", &name]), digest);
    assert_eq!(layer_gets(), gets, "a second pull fetched layers again");
    // By digest.
    assert_eq!(
        client.pull(&[&reg.reference(&format!("busybox@{digest}"))]),
        digest
    );
}

#[test]
fn push_round_trips_through_skopeo() {
    if !ready(&[Mode::Plain]) {
        return;
    }
    let reg = TestRegistry::start(Mode::Plain);
    let client = Client::new();
    client.import(
        "local:1",
        &[busybox(), file_layer("pushed.txt", b"pushed\n")],
    );
    let target = reg.reference("pushed:1");
    let digest = client.push(&["local:1", &target]);
    assert_eq!(reg.manifest_digest("pushed:1"), digest);
    assert_eq!(
        diff_ids(&reg.config("pushed:1")),
        inspect_diff_ids(&client, "local:1")
    );
    let back = reg.scratch("back");
    reg.copy_out("pushed:1", &format!("oci:{}:x", back.display()), &[]);
    assert!(back.join("index.json").exists());
    // Pushed again: the registry has every blob, only the manifest goes.
    assert_eq!(client.push(&["-q", "local:1", &target]), digest);
    // Without REF the name is the reference; a tag made with `isola tag`.
    let tagged = reg.reference("tagged:2");
    client.ok(&["tag", "local:1", &tagged]);
    assert_eq!(client.push(&[&tagged]), digest);
    assert_eq!(reg.manifest_digest("tagged:2"), digest);
    // What went up comes down whole into another store.
    let other = Client::new();
    assert_eq!(other.pull(&[&target]), digest);
    assert_eq!(
        fs::read(other.export(&target).join("pushed.txt")).unwrap(),
        b"pushed\n"
    );
}

#[test]
fn a_shared_base_is_downloaded_once() {
    if !ready(&[Mode::Plain]) {
        return;
    }
    let reg = TestRegistry::start(Mode::Plain);
    let base = busybox();
    let (app1, app2) = (file_layer("app1", b"one"), file_layer("app2", b"two"));
    let base_digest = sha256(&base.blob);
    let app2_digest = sha256(&app2.blob);
    put(&reg, "app1:1", &[base.clone(), app1], &[]);
    put(&reg, "app2:1", &[base, app2], &[]);
    let app2_manifest: Value = serde_json::from_slice(&reg.inspect_raw("app2:1")).unwrap();
    let config_digest = app2_manifest["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let client = Client::new();
    client.pull(&[&reg.reference("app1:1")]);
    let before = reg.blob_gets().len();
    client.pull(&[&reg.reference("app2:1")]);
    let second: Vec<_> = reg.blob_gets().split_off(before);
    assert_eq!(
        reg.blob_get_count(Some(&base_digest)),
        1,
        "the base was fetched twice: {:?}",
        reg.blob_gets()
    );
    // The second pull fetched app2's layer and config, nothing else.
    for get in &second {
        assert!(
            get.digest == app2_digest || get.digest == config_digest,
            "the second pull fetched {get:?}; all its GETs: {second:?}"
        );
    }
    assert!(second.iter().any(|g| g.digest == app2_digest), "{second:?}");
    let layers = fs::read_dir(client.isola.root().join("layers"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(layers, 3, "base, app1 and app2 unpacked once each");
}

#[test]
fn a_multi_platform_index_gives_the_asked_platform() {
    if !ready(&[Mode::Plain]) {
        return;
    }
    let reg = TestRegistry::start(Mode::Plain);
    let dir = reg.scratch("multi");
    let mut layout = Layout::new(&dir);
    let amd = platform_image(&layout, &file_layer("amd64", b"amd64"), "amd64");
    let arm = platform_image(&layout, &file_layer("arm64", b"arm64"), "arm64");
    let mut index = layout.blob(
        &serde_json::to_vec(
            &json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [amd, arm]}),
        )
        .unwrap(),
    );
    index["mediaType"] = INDEX.into();
    layout.add(index, Some("latest"));
    reg.copy_in(
        &format!("oci:{}:latest", dir.display()),
        "multi:1",
        &["--all"],
    );
    let raw: Value = serde_json::from_slice(&reg.inspect_raw("multi:1")).unwrap();
    let digest_of = |arch: &str| {
        raw["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == arch)
            .unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let name = reg.reference("multi:1");
    let client = Client::new();
    assert_eq!(
        client.pull(&[&name]),
        digest_of("amd64"),
        "the host's platform"
    );
    assert!(client.export(&name).join("amd64").exists());
    assert_eq!(
        client.pull(&["--platform", "linux/arm64", &name]),
        digest_of("arm64")
    );
    assert!(client.export(&name).join("arm64").exists());
    assert_eq!(client.json(&["inspect", &name])["architecture"], "arm64");
    let before = client.store_state();
    let err = client.fail(&["pull", "--platform", "linux/s390x", &name]);
    for want in ["linux/s390x", "linux/amd64", "linux/arm64", &reg.host()] {
        assert!(err.contains(want), "{want:?} not in:\n{err}");
    }
    assert_eq!(before, client.store_state());
}

#[test]
fn zstd_layers_pull_and_push() {
    if !ready(&[Mode::Plain]) {
        return;
    }
    let reg = TestRegistry::start(Mode::Plain);
    put(
        &reg,
        "zstd:1",
        &[busybox(), file_layer("z.txt", b"zstd\n")],
        &["--format", "oci", "--dest-compress-format", "zstd"],
    );
    let types = layer_media_types(&reg.inspect_raw("zstd:1"));
    assert!(types.iter().all(|t| t.ends_with("+zstd")), "{types:?}");
    let client = Client::new();
    let name = reg.reference("zstd:1");
    assert_eq!(client.pull(&[&name]), reg.manifest_digest("zstd:1"));
    assert_eq!(
        fs::read(client.export(&name).join("z.txt")).unwrap(),
        b"zstd\n"
    );

    client.import("gz:1", &[busybox(), file_layer("g.txt", b"was gzip\n")]);
    let target = reg.reference("zpushed:1");
    let digest = client.push(&["--compress", "zstd", "gz:1", &target]);
    assert_eq!(reg.manifest_digest("zpushed:1"), digest);
    let types = layer_media_types(&reg.inspect_raw("zpushed:1"));
    assert!(
        types
            .iter()
            .all(|t| t == "application/vnd.oci.image.layer.v1.tar+zstd"),
        "{types:?}"
    );
    assert_eq!(
        diff_ids(&reg.config("zpushed:1")),
        inspect_diff_ids(&client, "gz:1"),
        "recompressed, the same content"
    );
    let back = reg.scratch("zback");
    reg.copy_out("zpushed:1", &format!("oci:{}:x", back.display()), &[]);
}

#[test]
fn tls_needs_the_registrys_ca() {
    if !ready(&[Mode::Tls]) {
        return;
    }
    let reg = TestRegistry::start(Mode::Tls);
    let digest = put(&reg, "tls:1", &[busybox()], &[]);
    let name = reg.reference("tls:1");
    let cert_dir = reg.cert_dir();
    let cert_dir = cert_dir.to_str().unwrap();

    let untrusting = Client::new();
    untrusting.import("good:1", &[file_layer("good", b"good")]);
    let before = untrusting.store_state();
    let err = untrusting.fail(&["pull", &name]);
    assert!(
        contains_ci(&err, "certificate") && err.contains(&reg.host()),
        "a certificate error naming the registry:\n{err}"
    );
    assert_eq!(before, untrusting.store_state());
    assert_eq!(untrusting.pull(&["--tls-verify=false", &name]), digest);

    let client = Client::new();
    assert_eq!(client.pull(&["--cert-dir", cert_dir, &name]), digest);
    let pushed = client.push(&[
        "--cert-dir",
        cert_dir,
        &name,
        &reg.reference("tls-pushed:1"),
    ]);
    assert_eq!(pushed, digest);
    assert_eq!(reg.manifest_digest("tls-pushed:1"), digest);
}

#[test]
fn basic_auth_login_pull_push_logout() {
    if !ready(&[Mode::Basic]) {
        return;
    }
    let reg = TestRegistry::start(Mode::Basic);
    let host = reg.host();
    let digest = put(&reg, "private:1", &[busybox()], &[]);
    let name = reg.reference("private:1");
    let client = Client::new();

    // Without credentials: refused, clearly.
    let err = client.fail(&["pull", &name]);
    assert!(err.contains(&host), "{err}");
    assert!(
        ["unauthorized", "authentication", "credentials", "login"]
            .iter()
            .any(|w| contains_ci(&err, w)),
        "says that credentials are wanted:\n{err}"
    );

    // A wrong password: refused, nothing saved.
    let wrong = client.scratch("auth").join("wrong.json");
    let out = login(
        &client,
        &host,
        "not-the-password",
        &["--authfile", wrong.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(&host), "{err}");
    assert!(
        !wrong.exists() || !fs::read_to_string(&wrong).unwrap().contains(&host),
        "a refused login was saved"
    );

    // --authfile, kept beside what another tool put there.
    let auth = client.scratch("auth").join("auth.json");
    fs::write(
        &auth,
        r#"{"auths": {"other.example:5000": {"auth": "b3RoZXI6b3RoZXI="}}, "psFormat": "table"}"#,
    )
    .unwrap();
    let a = auth.to_str().unwrap();
    let out = login(&client, &host, PASSWORD, &["--authfile", a]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_login_saved(&auth, &host);
    let saved: Value = serde_json::from_slice(&fs::read(&auth).unwrap()).unwrap();
    assert_eq!(
        saved["auths"]["other.example:5000"]["auth"],
        "b3RoZXI6b3RoZXI="
    );
    assert_eq!(
        saved["psFormat"], "table",
        "what isola does not know is kept"
    );
    assert_eq!(client.pull(&["--authfile", a, &name]), digest);
    client.import("mine:1", &[busybox(), file_layer("mine", b"mine")]);
    let pushed = client.push(&["--authfile", a, "mine:1", &reg.reference("mine:1")]);
    assert_eq!(reg.manifest_digest("mine:1"), pushed);

    // REGISTRY_AUTH_FILE.
    let other = Client::new();
    let mut cmd = other.command(["pull", &name]);
    cmd.env("REGISTRY_AUTH_FILE", &auth);
    let out = finish(cmd, b"", BOUND, "pull with REGISTRY_AUTH_FILE");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // $DOCKER_CONFIG/config.json, written as docker writes it.
    let third = Client::new();
    fs::write(
        third.docker_config().join("config.json"),
        json!({"auths": {&host: {"auth": base64(format!("{USER}:{PASSWORD}").as_bytes())}}})
            .to_string(),
    )
    .unwrap();
    assert_eq!(third.pull(&[&name]), digest);

    // login without --authfile writes $DOCKER_CONFIG/config.json.
    let fourth = Client::new();
    let out = login(&fourth, &host, PASSWORD, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_login_saved(&fourth.docker_config().join("config.json"), &host);
    assert_eq!(fourth.pull(&[&name]), digest);

    // logout removes that registry, and only it.
    client.ok(&["logout", "--authfile", a, &host]);
    let saved: Value = serde_json::from_slice(&fs::read(&auth).unwrap()).unwrap();
    assert!(saved["auths"].get(&host).is_none(), "{saved}");
    assert_eq!(
        saved["auths"]["other.example:5000"]["auth"],
        "b3RoZXI6b3RoZXI="
    );
    let err = Client::new().fail(&["pull", "--authfile", a, &name]);
    assert!(err.contains(&host), "{err}");
    fourth.ok(&["logout", "--all"]);
    if let Ok(bytes) = fs::read(fourth.docker_config().join("config.json")) {
        let saved: Value = serde_json::from_slice(&bytes).unwrap();
        assert!(
            saved["auths"].as_object().is_none_or(|a| a.is_empty()),
            "{saved}"
        );
    }
}

#[test]
fn bearer_tokens_are_fetched_and_reused() {
    if !ready(&[Mode::Token]) {
        return;
    }
    let reg = TestRegistry::start(Mode::Token);
    let tokens = reg.token_server().unwrap();
    let host = reg.host();
    let digest = put(&reg, "tok:1", &[busybox(), file_layer("t", b"t")], &[]);
    let name = reg.reference("tok:1");
    let client = Client::new();

    let err = client.fail(&["pull", &name]);
    assert!(err.contains(&host), "{err}");
    let wrong = client.scratch("auth").join("wrong.json");
    let out = login(
        &client,
        &host,
        "not-the-password",
        &["--authfile", wrong.to_str().unwrap()],
    );
    assert!(!out.status.success());

    let auth = client.scratch("auth").join("auth.json");
    let a = auth.to_str().unwrap();
    let served = tokens.served();
    let out = login(&client, &host, PASSWORD, &["--authfile", a]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_login_saved(&auth, &host);
    assert!(
        tokens.served() > served,
        "login asked for no token: {:?}",
        tokens.requests()
    );

    let (served, gets) = (tokens.served(), reg.blob_get_count(None));
    assert_eq!(client.pull(&["--authfile", a, &name]), digest);
    let (new_tokens, new_gets) = (tokens.served() - served, reg.blob_get_count(None) - gets);
    assert!(new_gets >= 3, "config and two layers: {new_gets}");
    assert!(
        (1..=2).contains(&new_tokens),
        "{new_tokens} tokens for {new_gets} blobs: fetched once and reused, not per request: {:?}",
        tokens.requests()
    );
    assert!(tokens
        .requests()
        .iter()
        .any(|r| r.granted && r.scopes.iter().any(|s| s == "repository:tok:pull")));

    client.import("mine:1", &[busybox(), file_layer("mine", b"mine")]);
    let served = tokens.served();
    let pushed = client.push(&["--authfile", a, "mine:1", &reg.reference("mine:1")]);
    assert_eq!(reg.manifest_digest("mine:1"), pushed);
    assert!(tokens.served() > served);
    assert!(tokens.requests().iter().any(|r| r.granted
        && r.scopes
            .iter()
            .any(|s| s.starts_with("repository:mine:") && s.contains("push"))));
}

// ---------------------------------------------------------------------------
// A download broken halfway.

/// A registry holding `resume:1` (busybox and a big layer), and the big
/// layer's digest and size.
fn resume_fixture() -> (TestRegistry, String, u64, String) {
    let reg = TestRegistry::start(Mode::Plain);
    let big = big_layer(24 << 20);
    let (big_digest, size) = (sha256(&big.blob), big.blob.len() as u64);
    let digest = put(&reg, "resume:1", &[busybox(), big], &[]);
    (reg, big_digest, size, digest)
}

/// The proxy's GETs of `digest`: the N of their Range and their status.
fn blob_gets(proxy: &Proxy, digest: &str) -> Vec<(Option<u64>, Option<u16>)> {
    proxy
        .exchanges()
        .iter()
        .filter(|e| e.gets_blob(digest))
        .map(|e| (e.range_start(), e.status))
        .collect()
}

#[test]
fn a_body_cut_halfway_is_resumed_with_range() {
    if !ready(&[Mode::Plain]) {
        return;
    }
    let (reg, big, size, digest) = resume_fixture();
    let proxy = Proxy::start(
        &reg.host(),
        Fault::CutAfter {
            digest: big.clone(),
            after: size / 2,
        },
    );
    let client = Client::new();
    let name = format!("{}/resume:1", proxy.host());
    assert_eq!(client.pull(&[&name]), digest);
    assert!(proxy.wait_tripped(Duration::ZERO));
    let gets = blob_gets(&proxy, &big);
    assert!(
        gets.iter()
            .any(|(n, status)| n.is_some_and(|n| n > 0 && n <= size / 2) && *status == Some(206)),
        "no ranged GET after the cut: {gets:?}"
    );
    assert_eq!(
        client.ok(&["run", "--rm", &name, "cat", "/resumed.txt"]),
        "the big layer arrived whole\n"
    );
}

#[test]
fn a_pull_killed_halfway_resumes_where_it_stopped() {
    if !ready(&[Mode::Plain]) {
        return;
    }
    let (reg, big, size, digest) = resume_fixture();
    let proxy = Proxy::start(
        &reg.host(),
        Fault::StallAfter {
            digest: big.clone(),
            after: size / 2,
        },
    );
    let client = Client::new();
    let name = format!("{}/resume:1", proxy.host());
    let logs = client.scratch("logs");
    let mut child = client
        .command(["pull", &name])
        .stdin(Stdio::null())
        .stdout(fs::File::create(logs.join("out")).unwrap())
        .stderr(fs::File::create(logs.join("err")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut tripped = false;
    while !tripped && Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        tripped = proxy.wait_tripped(Duration::from_millis(200));
    }
    // Give isola a moment to write what it got, then kill it (by its pid).
    std::thread::sleep(Duration::from_secs(1));
    let still_running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    let err = fs::read_to_string(logs.join("err")).unwrap();
    assert!(
        tripped && still_running,
        "the pull did not stall halfway:\n{err}"
    );
    assert_eq!(
        client.json(&["images", "--json"]),
        json!([]),
        "a killed pull added an image"
    );

    assert_eq!(client.pull(&[&name]), digest);
    let gets = blob_gets(&proxy, &big);
    assert!(
        gets.iter()
            .skip(1)
            .any(|(n, status)| n.is_some_and(|n| n > 0 && n <= size / 2) && *status == Some(206)),
        "the second pull did not resume with Range: bytes=N- (N>0): {gets:?}"
    );
    assert_eq!(
        client.ok(&["run", "--rm", &name, "cat", "/resumed.txt"]),
        "the big layer arrived whole\n"
    );
}

// ---------------------------------------------------------------------------
// Hostile registries.

/// Pull from a registry set up with `scenario`: isola must fail within
/// [`HOSTILE_BOUND`] (ISOLA_REGISTRY_TIMEOUT lowered), naming the
/// registry, the image, the blob at fault and each of `words` (any case),
/// and leave the store (images, blobs, layers) as it was.
fn refused(scenario: Scenario, words: &[&str]) {
    if !common::root_user() {
        return;
    }
    let client = Client::new();
    client.import("good:1", &[file_layer("good", b"good")]);
    let reg = HostileRegistry::start(scenario);
    let before = client.store_state();
    let started = Instant::now();
    let out = client.pull_fails(
        &[&reg.reference()],
        &[("ISOLA_REGISTRY_TIMEOUT", HOSTILE_TIMEOUT)],
        HOSTILE_BOUND,
    );
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code().is_some_and(|c| c != 0),
        "{scenario:?}: exit {}:\n{err}",
        out.status
    );
    let mut wanted = vec![reg.host(), "hostile/image".to_string()];
    wanted.extend(reg.faulty_digest());
    for w in &wanted {
        assert!(
            err.contains(w.as_str()),
            "{scenario:?}: {w:?} not in:\n{err}"
        );
    }
    for w in words {
        assert!(contains_ci(&err, w), "{scenario:?}: {w:?} not in:\n{err}");
    }
    assert_eq!(
        before,
        client.store_state(),
        "{scenario:?}: the store changed:\n{err}"
    );
    assert!(
        !reg.escape_target().exists(),
        "{scenario:?} wrote {}",
        reg.escape_target().display()
    );
    eprintln!(
        "{scenario:?}: refused in {took:?}: {}",
        err.trim().lines().last().unwrap_or("")
    );
}

#[test]
fn hostile_a_blob_that_is_not_its_digest() {
    refused(Scenario::WrongDigest, &["digest"]);
}

#[test]
fn hostile_a_manifest_that_is_not_json() {
    refused(Scenario::NotJson, &["manifest"]);
}

#[test]
fn hostile_a_layer_with_a_parent_dir_entry() {
    refused(
        Scenario::TarEscape(Escape::ParentDir),
        &["escapes the layer"],
    );
}

#[test]
fn hostile_a_layer_with_an_absolute_path() {
    refused(
        Scenario::TarEscape(Escape::AbsolutePath),
        &["absolute path"],
    );
}

#[test]
fn hostile_a_layer_writing_through_a_symlink() {
    refused(
        Scenario::TarEscape(Escape::ThroughSymlink),
        &["symbolic link"],
    );
}

#[test]
fn hostile_a_tar_bomb_whose_diff_id_lies() {
    refused(Scenario::TarBomb, &["diff-id"]);
}

#[test]
fn hostile_a_huge_content_length_that_stalls() {
    refused(Scenario::HugeContentLength, &["manifest"]);
}

#[test]
fn hostile_a_redirect_loop() {
    refused(Scenario::RedirectLoop, &["redirect"]);
}

#[test]
fn hostile_a_token_endpoint_that_never_answers() {
    refused(Scenario::TokenNeverAnswers, &["token"]);
}

#[test]
fn hostile_a_body_that_stops() {
    refused(
        Scenario::SlowLoris {
            every: Duration::from_secs(3600),
        },
        &["timeout"],
    );
}

/// A byte a second, less than ISOLA_REGISTRY_TIMEOUT between two: a
/// timeout on each read alone never fires; isola needs a floor on the
/// rate (or a bound on a blob's whole time).
#[test]
fn hostile_a_slow_loris_body() {
    refused(
        Scenario::SlowLoris {
            every: Duration::from_secs(1),
        },
        &["stalled"],
    );
}

// ---------------------------------------------------------------------------
// The harness itself, checked with skopeo and plain HTTP (no isola).

#[test]
fn harness_registries_in_every_mode_take_skopeo_copies() {
    let modes = [Mode::Plain, Mode::Tls, Mode::Basic, Mode::Token];
    if !(common::tool("skopeo") && modes.iter().all(|m| m.available())) {
        return;
    }
    let layers = [
        file_layer("etc/a", b"a"),
        Layer::gzip(Tar::new().file("b", &noise(100_000, 7)).build()),
    ];
    for mode in modes {
        let started = Instant::now();
        let reg = TestRegistry::start(mode);
        let took = started.elapsed();
        assert!(reg.url().starts_with(if mode == Mode::Tls {
            "https://"
        } else {
            "http://"
        }));
        let dir = reg.scratch("layout");
        let mut layout = Layout::new(&dir);
        let m = layout.manifest(&layers);
        let want = m["digest"].as_str().unwrap().to_string();
        layout.add(m, Some("latest"));
        reg.copy_in(&format!("oci:{}:latest", dir.display()), "h/img:1", &[]);
        assert_eq!(reg.manifest_digest("h/img:1"), want, "{mode:?}");
        assert_eq!(
            diff_ids(&reg.config("h/img:1")),
            layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()
        );
        let gets = reg.blob_get_count(None);
        reg.copy_out(
            "h/img:1",
            &format!("oci:{}:back", reg.scratch("back").display()),
            &[],
        );
        let layer = sha256(&layers[1].blob);
        assert_eq!(
            reg.blob_get_count(Some(&layer)),
            1,
            "{mode:?}: {:?}",
            reg.blob_gets()
        );
        assert_eq!(reg.blob_get_count(None), gets + 3, "config and two layers");

        let anonymous = reg.skopeo().run(&[
            "inspect",
            "--raw",
            if mode == Mode::Tls {
                "--tls-verify=true"
            } else {
                "--tls-verify=false"
            },
            &format!("docker://{}", reg.reference("h/img:1")),
        ]);
        let err = String::from_utf8_lossy(&anonymous.stderr);
        match mode {
            Mode::Plain => assert!(anonymous.status.success(), "{err}"),
            Mode::Tls => assert!(
                !anonymous.status.success() && err.contains("certificate"),
                "{err}"
            ),
            Mode::Basic | Mode::Token => assert!(
                !anonymous.status.success() && contains_ci(&err, "unauthorized"),
                "{err}"
            ),
        }
        match mode {
            Mode::Tls => {
                let ca = reg.cert_dir().join("ca.crt");
                assert_eq!(fs::read(ca).unwrap(), fs::read(reg.ca().unwrap()).unwrap());
                assert_eq!(reg.cert_dir().parent().unwrap(), reg.certs_d());
                assert!(reg.cert_dir().ends_with(reg.host()));
            }
            Mode::Token => {
                let t = reg.token_server().unwrap();
                assert!(t.served() >= 1);
                assert!(
                    t.requests().iter().any(|r| !r.granted),
                    "the anonymous inspect asked and was refused: {:?}",
                    t.requests()
                );
                assert!(t
                    .requests()
                    .iter()
                    .all(|r| r.service.as_deref() == Some(registry::SERVICE)));
            }
            _ => {}
        }
        eprintln!("{mode:?} registry started in {took:?}");
    }
}

#[test]
fn harness_registries_are_gone_when_dropped() {
    if !Mode::Plain.available() {
        return;
    }
    let reg = TestRegistry::start(Mode::Plain);
    let (host, pid) = (reg.host(), reg.pid());
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(
        cmdline.contains("docker-registry serve /tmp/isola-test-registry-"),
        "{cmdline}"
    );
    assert_eq!(registry::http_get(&host, "/v2/", &[]).unwrap().status, 200);
    drop(reg);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "docker-registry {pid} outlived its TestRegistry"
    );
    assert!(registry::http_get(&host, "/v2/", &[]).is_err());
}

#[test]
fn harness_hostile_registries_lie_as_designed() {
    use registry::{http_get, http_request};
    let short = Duration::from_secs(2);
    let layer_path = |r: &HostileRegistry| {
        format!(
            "/v2/hostile/image/blobs/{}",
            r.image().layers[0].blob.digest
        )
    };

    let r = HostileRegistry::start(Scenario::WrongDigest);
    assert_eq!(http_get(&r.host(), "/v2/", &[]).unwrap().status, 200);
    let m = http_get(&r.host(), "/v2/hostile/image/manifests/latest", &[]).unwrap();
    assert_eq!(registry::sha256(&m.body), r.image().manifest.digest);
    let digest = r.faulty_digest().unwrap();
    let b = http_get(&r.host(), &layer_path(&r), &[]).unwrap();
    assert_eq!(b.body.len(), r.image().layers[0].blob.data.len());
    assert_ne!(registry::sha256(&b.body), digest);
    let config = http_get(
        &r.host(),
        &format!("/v2/hostile/image/blobs/{}", r.image().config.digest),
        &[],
    )
    .unwrap();
    assert_eq!(registry::sha256(&config.body), r.image().config.digest);
    if common::tool("skopeo") {
        let tmp = Isola::new();
        let out = registry::Skopeo::new(&tmp.scratch("skopeo")).run(&[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{}", r.reference()),
            &format!("oci:{}:x", tmp.scratch("x").display()),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(&digest),
            "skopeo too refuses it:\n{err}"
        );
    }

    let r = HostileRegistry::start(Scenario::NotJson);
    let m = http_get(&r.host(), "/v2/hostile/image/manifests/latest", &[]).unwrap();
    assert!(serde_json::from_slice::<Value>(&m.body).is_err());
    assert_eq!(
        m.header("docker-content-digest"),
        Some(registry::sha256(&m.body).as_str())
    );

    for (how, bad) in [
        (Escape::ParentDir, "../../"),
        (Escape::AbsolutePath, "/tmp/isola-test-escape-"),
        (Escape::ThroughSymlink, "evil/isola-test-escape-"),
    ] {
        let r = HostileRegistry::start(Scenario::TarEscape(how));
        let b = http_get(&r.host(), &layer_path(&r), &[]).unwrap();
        assert_eq!(registry::sha256(&b.body), r.faulty_digest().unwrap());
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&b.body[..])
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(sha256(&tar), r.image().layers[0].diff_id);
        let names: Vec<String> = tar::Archive::new(&tar[..])
            .entries()
            .unwrap()
            .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
            .collect();
        assert!(
            names.iter().any(|n| n.starts_with(bad)),
            "{how:?}: {names:?}"
        );
        assert!(r.escape_target().starts_with("/tmp"));
    }

    let r = HostileRegistry::start(Scenario::TarBomb);
    let b = http_get(&r.host(), &layer_path(&r), &[]).unwrap();
    assert_eq!(registry::sha256(&b.body), r.faulty_digest().unwrap());
    assert!(b.body.len() < 1 << 20, "{} bytes", b.body.len());
    let mut gz = flate2::read::GzDecoder::new(&b.body[..]);
    let mut first = vec![0u8; 512];
    gz.read_exact(&mut first).unwrap();
    let header = tar::Header::from_byte_slice(&first);
    assert_eq!(header.size().unwrap(), registry::BOMB_BYTES);
    let config: Value = serde_json::from_slice(&r.image().config.data).unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        r.image().layers[0].diff_id.as_str()
    );

    let r = HostileRegistry::start(Scenario::HugeContentLength);
    let head = http_request(
        "HEAD",
        &r.host(),
        "/v2/hostile/image/manifests/latest",
        &[],
        short,
    )
    .unwrap();
    assert_eq!(head.header("content-length"), Some("10000000000"));
    let started = Instant::now();
    let got = http_request(
        "GET",
        &r.host(),
        "/v2/hostile/image/manifests/latest",
        &[],
        short,
    );
    assert!(got.is_err() && started.elapsed() >= short, "{got:?}");

    let r = HostileRegistry::start(Scenario::RedirectLoop);
    let mut path = layer_path(&r);
    for hop in 1..=12 {
        let resp = http_get(&r.host(), &path, &[]).unwrap();
        assert_eq!(resp.status, 307);
        let to = resp.header("location").unwrap();
        assert!(to.ends_with(&format!("?hop={hop}")), "{to}");
        path = to
            .strip_prefix(&format!("http://{}", r.host()))
            .unwrap()
            .to_string();
    }

    let r = HostileRegistry::start(Scenario::TokenNeverAnswers);
    let resp = http_get(&r.host(), "/v2/hostile/image/manifests/latest", &[]).unwrap();
    assert_eq!(resp.status, 401);
    let silent = r.silent_host().unwrap();
    let challenge = resp.header("www-authenticate").unwrap();
    assert!(
        challenge.starts_with(&format!("Bearer realm=\"http://{silent}/token\"")),
        "{challenge}"
    );
    let started = Instant::now();
    assert!(http_request("GET", &silent, "/token?service=x", &[], short).is_err());
    assert!(started.elapsed() >= short);

    let r = HostileRegistry::start(Scenario::SlowLoris {
        every: Duration::from_millis(400),
    });
    let resp = http_request(
        "GET",
        &r.host(),
        &layer_path(&r),
        &[],
        Duration::from_millis(200),
    );
    assert!(resp.is_err(), "a byte per 400 ms, a 200 ms read timeout");
    let mut s = std::net::TcpStream::connect(r.host()).unwrap();
    write!(s, "GET {} HTTP/1.1\r\nHost: x\r\n\r\n", layer_path(&r)).unwrap();
    let mut reader = std::io::BufReader::new(s);
    let mut line = String::new();
    while line != "\r\n" {
        line.clear();
        std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    }
    let started = Instant::now();
    let mut three = [0u8; 3];
    reader.read_exact(&mut three).unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(three, r.image().layers[0].blob.data[..3]);
    let requests = r.requests();
    assert!(requests.iter().all(|q| q.method == "GET"));
}

#[test]
fn harness_proxy_cuts_and_stalls_the_first_blob_get() {
    if !Mode::Plain.available() || !common::tool("skopeo") {
        return;
    }
    let reg = TestRegistry::start(Mode::Plain);
    let layer = big_layer(1 << 20);
    let (digest, size) = (sha256(&layer.blob), layer.blob.len() as u64);
    put(&reg, "p:1", &[layer], &[]);
    let path = format!("/v2/p/blobs/{digest}");

    let cut = Proxy::start(
        &reg.host(),
        Fault::CutAfter {
            digest: digest.clone(),
            after: 1000,
        },
    );
    let first = registry::http_get(&cut.host(), &path, &[]).unwrap();
    assert_eq!((first.status, first.body.len()), (200, 1000));
    assert!(cut.wait_tripped(Duration::ZERO));
    let rest = registry::http_get(&cut.host(), &path, &[("Range", "bytes=1000-")]).unwrap();
    assert_eq!(rest.status, 206);
    assert_eq!(
        rest.header("content-range"),
        Some(format!("bytes 1000-{}/{size}", size - 1).as_str())
    );
    let whole = [first.body, rest.body].concat();
    assert_eq!(sha256(&whole), digest);
    let ex = cut.exchanges();
    assert_eq!(ex.len(), 2);
    assert_eq!(
        (ex[0].range_start(), ex[0].status, ex[0].body_bytes),
        (None, Some(200), 1000)
    );
    assert_eq!((ex[1].range_start(), ex[1].status), (Some(1000), Some(206)));

    let stall = Proxy::start(
        &reg.host(),
        Fault::StallAfter {
            digest: digest.clone(),
            after: size / 2,
        },
    );
    let got = registry::http_request("GET", &stall.host(), &path, &[], Duration::from_secs(1));
    assert!(got.is_err(), "the stalled body timed out");
    assert!(stall.wait_tripped(Duration::ZERO));
    assert_eq!(stall.exchanges()[0].body_bytes, size / 2);
    // Once only: the next GET passes whole.
    let again = registry::http_get(&stall.host(), &path, &[]).unwrap();
    assert_eq!(sha256(&again.body), digest);
    // And through the proxy skopeo copies as it would from the registry.
    reg.skopeo().copy(
        &format!("docker://{}/p:1", stall.host()),
        &format!("oci:{}:p", reg.scratch("via-proxy").display()),
        &["--src-tls-verify=false"],
    );
}

// ---------------------------------------------------------------------------
// Mistakes a user makes: each gets one clear line and changes nothing.

#[test]
fn mistakes_get_clear_errors() {
    let client = Client::new();
    client.import("good:1", &[file_layer("good", b"good")]);
    let before = client.store_state();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["pull", "Bad Name"],
            &["invalid image reference", "Bad Name"],
        ),
        (&["pull", "x@sha256:12"], &["invalid image reference"]),
        // Port 1 on this machine: nothing listens there.
        (
            &["pull", "127.0.0.1:1/team/app:v1"],
            &["cannot reach registry 127.0.0.1:1"],
        ),
        (
            &["push", "nosuch:1", "127.0.0.1:1/x:1"],
            &["nosuch:1", "not found"],
        ),
        (
            &["pull", "--platform", "linux", "127.0.0.1:1/x"],
            &["invalid platform"],
        ),
        (
            &["push", "--compress", "lz4", "good:1", "127.0.0.1:1/x"],
            &["lz4"],
        ),
        (
            &["logout", "127.0.0.1:1"],
            &["not logged in to 127.0.0.1:1"],
        ),
        // No terminal to ask for a password on, and none given.
        (&["login", "-u", "me", "127.0.0.1:1"], &["--password-stdin"]),
    ];
    for (args, words) in cases {
        let err = client.fail(args);
        for w in *words {
            assert!(err.contains(w), "isola {args:?}: {w:?} not in:\n{err}");
        }
        assert_eq!(
            before,
            client.store_state(),
            "isola {args:?} changed the store"
        );
    }
}

/// Registries send blob downloads elsewhere (to storage) with a redirect:
/// followed, and the layer arrives whole.
#[test]
fn a_redirect_to_blob_storage_is_followed() {
    if !common::root_user() {
        return;
    }
    let client = Client::new();
    let reg = HostileRegistry::start(Scenario::RedirectToStorage);
    client.pull(&[&reg.reference()]);
    let stored = reg
        .requests()
        .iter()
        .filter(|r| {
            r.method == "GET" && r.target.contains("/blobs/") && r.target.contains("storage=1")
        })
        .count();
    assert!(
        stored >= 2,
        "config and layer came through the redirect ({stored} did)"
    );
}
