//! `isola build` for real, as root, on the default image: every instruction
//! checked by what it produced (files, modes, owners, whiteouts, config
//! fields), multi-stage builds, the layer cache, reproducible digests,
//! and one test per kind of bad input.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::Isola;

/// A store with the default image, or `None` (skipped) without root.
fn isola() -> Option<Isola> {
    if !common::root_user() {
        return None;
    }
    let isola = Isola::new();
    isola.ok(["image", "default"]);
    Some(isola)
}

/// Build `dir` as `tag`; (image ID from stdout, stderr).
fn build(isola: &Isola, dir: &Path, extra: &[&str]) -> (String, String) {
    let mut args = vec!["build".to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(dir.display().to_string());
    let out = isola.expect(&args, true);
    (
        String::from_utf8(out.stdout).unwrap().trim().to_string(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The image's root filesystem, exported to a fresh directory.
fn rootfs(isola: &Isola, image: &str, name: &str) -> PathBuf {
    let dir = isola.tmp.path().join(name);
    isola.ok(["export", image, dir.to_str().unwrap()]);
    dir
}

fn config(isola: &Isola, image: &str) -> serde_json::Value {
    isola.json(["inspect", image])["config"].clone()
}

const EVERY_INSTRUCTION: &str = r#"# escape=\
ARG BASE=isola/busybox
FROM ${BASE} AS base
MAINTAINER corpus@example.org
ARG GREETING=hello
ENV APP_HOME=/srv/app \
    MODE="two words"
LABEL org.example.title="the corpus" version=1
WORKDIR $APP_HOME
COPY --chmod=0750 tool.sh bin/
COPY --chown=1000:1001 data/ data/
COPY <<EOF /etc/motd
welcome to ${APP_HOME}
EOF
ADD bundle.tar.gz /opt/
RUN echo "$GREETING from $MODE" > greeting.txt && ln greeting.txt hardlink.txt
RUN ["/bin/sh", "-c", "mkdir -p /var/gone/sub && echo x > /var/gone/sub/f && rm /etc/group.bak 2>/dev/null; true"]
RUN <<SCRIPT
set -e
rm -rf /var/gone
mkdir -p /var/gone
echo fresh > /var/gone/new
rm /bin/vi
SCRIPT
SHELL ["/bin/sh", "-ec"]
RUN test "$GREETING" = hello
USER 1000:1001
EXPOSE 8080 53/udp
VOLUME /data
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --retries=3 CMD ["/bin/true"]
ONBUILD RUN echo child
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat greeting.txt"]
"#;

#[test]
fn every_instruction_lands_in_files_and_config() {
    let Some(isola) = isola() else { return };
    let dir = isola.context(
        "corpus",
        EVERY_INSTRUCTION,
        &[
            ("tool.sh", "#!/bin/sh\necho tool\n"),
            ("data/a.txt", "a\n"),
            ("data/sub/b.txt", "b\n"),
        ],
    );
    // A gzipped tar for ADD to unpack.
    let tar_src = isola.scratch("tar-src");
    fs::create_dir_all(tar_src.join("pkg")).unwrap();
    fs::write(tar_src.join("pkg/readme"), "from the archive\n").unwrap();
    let ok = std::process::Command::new("tar")
        .args(["-czf"])
        .arg(dir.join("bundle.tar.gz"))
        .arg("-C")
        .arg(&tar_src)
        .arg("pkg")
        .status()
        .unwrap();
    assert!(ok.success());

    let (id, log) = build(&isola, &dir, &["-t", "corpus:1"]);
    assert!(id.starts_with("sha256:"), "{id}");
    assert!(log.contains("STEP 1/"), "{log}");
    let root = rootfs(&isola, "corpus:1", "corpus-root");
    let read = |p: &str| fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let meta = |p: &str| fs::symlink_metadata(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));

    // COPY: modes, owners, directory contents, heredoc with expansion.
    assert_eq!(read("srv/app/bin/tool.sh"), "#!/bin/sh\necho tool\n");
    assert_eq!(
        meta("srv/app/bin/tool.sh").permissions().mode() & 0o7777,
        0o750
    );
    assert_eq!(meta("srv/app/bin/tool.sh").uid(), 0);
    assert_eq!(read("srv/app/data/sub/b.txt"), "b\n");
    let a = meta("srv/app/data/a.txt");
    assert_eq!((a.uid(), a.gid()), (1000, 1001));
    assert_eq!(read("etc/motd"), "welcome to /srv/app\n");
    // ADD unpacked the archive.
    assert_eq!(read("opt/pkg/readme"), "from the archive\n");
    // RUN: build args and env reach it; hard links stay links.
    assert_eq!(read("srv/app/greeting.txt"), "hello from two words\n");
    assert_eq!(
        meta("srv/app/greeting.txt").ino(),
        meta("srv/app/hardlink.txt").ino()
    );
    // Whiteouts applied: a removed file is gone, a replaced dir is opaque.
    assert!(has_in_base(&isola, "bin/vi"));
    assert!(
        fs::symlink_metadata(root.join("bin/vi")).is_err(),
        "a base file a RUN removed is still there"
    );
    assert!(!root.join("var/gone/sub").exists());
    assert_eq!(read("var/gone/new"), "fresh\n");
    // The runtime's mount points are no changes of the image's.
    assert!(root.join("proc").is_dir());

    let c = config(&isola, "corpus:1");
    let env: Vec<String> = serde_json::from_value(c["Env"].clone()).unwrap();
    assert!(env.contains(&"APP_HOME=/srv/app".to_string()), "{env:?}");
    assert!(env.contains(&"MODE=two words".to_string()), "{env:?}");
    assert!(
        !env.iter().any(|e| e.starts_with("GREETING=")),
        "ARGs are not ENV: {env:?}"
    );
    assert_eq!(c["WorkingDir"], "/srv/app");
    assert_eq!(c["User"], "1000:1001");
    assert_eq!(c["Labels"]["org.example.title"], "the corpus");
    assert_eq!(c["Labels"]["version"], "1");
    assert!(c["ExposedPorts"]["8080/tcp"].is_object());
    assert!(c["ExposedPorts"]["53/udp"].is_object());
    assert!(c["Volumes"]["/data"].is_object());
    assert_eq!(c["StopSignal"], "SIGINT");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(c["Cmd"], serde_json::json!(["cat greeting.txt"]));
    let raw = raw_config(&isola, "corpus:1");
    assert_eq!(
        raw["config"]["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "/bin/true"])
    );
    assert_eq!(raw["config"]["Healthcheck"]["Interval"], 30_000_000_000u64);
    assert_eq!(
        raw["config"]["OnBuild"],
        serde_json::json!(["RUN echo child"])
    );
    assert_eq!(
        raw["config"]["Shell"],
        serde_json::json!(["/bin/sh", "-ec"])
    );
    assert_eq!(raw["author"], "corpus@example.org");

    // The image runs: its CMD through its ENTRYPOINT, as its USER.
    let out = isola.ok(["run", "--rm", "corpus:1"]);
    assert_eq!(out, "hello from two words\n");
    let who = isola.ok(["run", "--rm", "corpus:1", "id -u; id -g; pwd"]);
    assert_eq!(who, "1000\n1001\n/srv/app\n");

    // history: one row per step, each with what made it.
    let history = isola.ok(["history", "corpus:1"]);
    for step in [
        "WORKDIR /srv/app",
        "ENV APP_HOME=/srv/app",
        "COPY --chmod=0750 tool.sh bin/",
    ] {
        assert!(history.contains(step), "{step} not in\n{history}");
    }
}

/// The image config as stored (with docker's own fields, which `inspect`
/// may not show).
fn raw_config(isola: &Isola, image: &str) -> serde_json::Value {
    let v = isola.json(["inspect", image]);
    let digest = v["config_digest"]
        .as_str()
        .expect("config_digest")
        .to_string();
    let hex = digest.trim_start_matches("sha256:");
    let bytes = fs::read(isola.root().join("blobs/sha256").join(hex)).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn has_in_base(isola: &Isola, path: &str) -> bool {
    let root = rootfs(
        isola,
        "isola/busybox",
        &format!("base-{}", path.replace('/', "-")),
    );
    fs::symlink_metadata(root.join(path)).is_ok()
}

#[test]
fn stages_are_built_only_when_the_target_needs_them() {
    let Some(isola) = isola() else { return };
    let dir = isola.context("stages",
        "FROM isola/busybox AS builder\nRUN echo built > /artifact\n\
         FROM isola/busybox AS broken\nRUN exit 3\n\
         FROM scratch\nCOPY --from=builder /artifact /artifact\nCOPY --from=0 /bin/busybox /busybox\n",
        &[],
    );
    let (_, log) = build(&isola, &dir, &["-t", "stages:final"]);
    assert!(!log.contains("exit 3"), "the unused stage ran:\n{log}");
    let root = rootfs(&isola, "stages:final", "stages-root");
    assert_eq!(
        fs::read_to_string(root.join("artifact")).unwrap(),
        "built\n"
    );
    assert!(root.join("busybox").is_file());
    // --target builds that stage (and so runs its failing RUN).
    let out = isola.cmd([
        "build",
        "--target",
        "broken",
        "-t",
        "stages:broken",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(isola.cmd(["inspect", "stages:broken"]).status.code() != Some(0));
}

#[test]
fn the_cache_keys_on_content_not_mtimes() {
    let Some(isola) = isola() else { return };
    let dir = isola.context("cache",
        "FROM isola/busybox\nARG LEVEL=1\nCOPY app.txt /app/\nRUN cat /app/app.txt > /app/copy; echo $LEVEL > /app/level\nCMD [\"cat\", \"/app/copy\"]\n",
        &[("app.txt", "v1\n")],
    );
    let (first, log) = build(&isola, &dir, &["-t", "cached"]);
    assert!(!log.contains("Using cache"), "{log}");
    let (second, log) = build(&isola, &dir, &["-t", "cached"]);
    assert_eq!(first, second);
    assert_eq!(log.matches("Using cache").count(), 2, "{log}");
    // A new mtime alone changes nothing.
    let f = fs::File::options()
        .write(true)
        .open(dir.join("app.txt"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(60))
        .unwrap();
    let (third, log) = build(&isola, &dir, &["-t", "cached"]);
    assert_eq!(first, third, "{log}");
    // New content: COPY and the RUN after it are made again.
    fs::write(dir.join("app.txt"), "v2\n").unwrap();
    let (fourth, log) = build(&isola, &dir, &["-t", "cached"]);
    assert_ne!(first, fourth);
    assert!(!log.contains("Using cache"), "{log}");
    assert_eq!(isola.ok(["run", "--rm", "cached"]), "v2\n");
    // A build arg the RUN sees is part of its key.
    let (_, log) = build(&isola, &dir, &["-t", "cached", "--build-arg", "LEVEL=2"]);
    assert_eq!(log.matches("Using cache").count(), 1, "{log}");
    // --no-cache makes everything afresh, with the same result.
    let (fifth, log) = build(&isola, &dir, &["-t", "cached", "--no-cache"]);
    assert!(!log.contains("Using cache"), "{log}");
    assert_eq!(fourth, fifth, "a step made again gives the same layer");

    // The cache lives with the images built with it.
    let cache_dir = isola.root().join("build-cache");
    assert!(fs::read_dir(&cache_dir).unwrap().count() > 0);
    isola.ok(["rmi", "cached"]);
    let left: Vec<_> = fs::read_dir(&cache_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        left.is_empty(),
        "cache entries outlived their images: {left:?}"
    );
    let layers: Vec<_> = fs::read_dir(isola.root().join("layers"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(
        layers.len(),
        2,
        "only the default image's layer (dir + facts) is left"
    );
    // A failed build's steps are cached (a fixed build goes on from them)
    // until `isola prune` finds no image that uses them.
    fs::write(
        dir.join("Dockerfile"),
        "FROM isola/busybox\nCOPY app.txt /app/\nRUN false\n",
    )
    .unwrap();
    build_fails(&isola, &dir, &[]);
    assert_eq!(fs::read_dir(&cache_dir).unwrap().count(), 1);
    isola.ok(["prune"]);
    assert_eq!(fs::read_dir(&cache_dir).unwrap().count(), 0);
    let layers = fs::read_dir(isola.root().join("layers")).unwrap().count();
    assert_eq!(
        layers, 2,
        "the failed build's COPY layer went with its entry"
    );
}

#[test]
fn the_same_build_gives_the_same_digest_in_another_store() {
    let Some(a) = isola() else { return };
    let b = isola().unwrap();
    // The RUN makes files now and in the future; the two contexts' files
    // have other mtimes: clamped, none of it reaches the layers.
    let text = "FROM isola/busybox\nCOPY . /src/\nRUN echo made > /src/new; touch -d 2030-01-01 /src/future; chmod 600 /src/x.txt\nCMD [\"ls\", \"/src\"]\n";
    let files = [("x.txt", "x\n"), ("dir/y.txt", "y\n")];
    let ctx_a = a.context("repro", text, &files);
    let ctx_b = b.context("repro", text, &files);
    let f = fs::File::options()
        .write(true)
        .open(ctx_b.join("x.txt"))
        .unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
        .unwrap();
    let (id_a, _) = build(&a, &ctx_a, &["-t", "repro"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (id_b, _) = build(&b, &ctx_b, &["-t", "repro"]);
    assert_eq!(id_a, id_b, "two stores, one digest");
    // SOURCE_DATE_EPOCH is the time the image records.
    let out = a
        .command(["build", "-q", "-t", "repro:epoch", ctx_a.to_str().unwrap()])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id_epoch = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_ne!(id_epoch, id_a);
    assert_eq!(
        a.json(["inspect", "repro:epoch"])["created"],
        "2023-11-14T22:13:20Z"
    );
}

/// Build and expect failure: (exit code, stderr).
fn build_fails(isola: &Isola, dir: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["build".to_string(), "-t".into(), "bad:1".into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(dir.display().to_string());
    let out = isola.cmd(&args);
    assert!(
        !out.status.success(),
        "built: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        isola.cmd(["inspect", "bad:1"]).status.code() != Some(0),
        "bad:1 was tagged"
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_input_gets_one_message_and_no_image() {
    let Some(isola) = isola() else { return };
    let before = isola.ok(["images"]);
    let cases: &[(&str, &str, &[&str], &[&str])] = &[
        ("syntax", "FROM isola/busybox\nFRUM x\n", &[], &["Dockerfile:2", "FRUM"]),
        ("nobase", "FROM nosuch/image:1\n", &[], &["nosuch/image:1", "isola pull", "--pull"]),
        ("parent", "FROM isola/busybox\nCOPY ../x /x\n", &[], &["Dockerfile:2", "../x"]),
        ("absolute", "FROM isola/busybox\nCOPY /etc/passwd /x\n", &[], &["Dockerfile:2", "/etc/passwd"]),
        ("escape", "FROM isola/busybox\nCOPY out /x\n", &[], &["Dockerfile:2", "out"]),
        ("argunused", "FROM isola/busybox\n", &["--build-arg", "NOPE=1"], &["NOPE", "ARG"]),
        ("cycle", "FROM isola/busybox AS a\nCOPY --from=b /x /x\nFROM isola/busybox AS b\nCOPY --from=a /y /y\n", &["--target", "a"], &["cycle"]),
        ("heredoc", "FROM isola/busybox\nRUN <<EOF\necho never ends\n", &[], &["Dockerfile:2", "EOF"]),
        ("vm", "FROM isola/busybox\n", &["--backend", "vm"], &["--backend vm", "container"]),
    ];
    for (name, dockerfile, flags, words) in cases {
        let dir = isola.context(&format!("bad-{name}"), dockerfile, &[]);
        if *name == "escape" {
            std::os::unix::fs::symlink("/etc/passwd", dir.join("out")).unwrap();
        }
        let (code, err) = build_fails(&isola, &dir, flags);
        assert_eq!(code, 125, "{name}: {err}");
        for w in *words {
            assert!(err.contains(w), "{name}: {w:?} not in {err}");
        }
        let messages = err.lines().filter(|l| l.starts_with("isola:")).count();
        assert_eq!(messages, 1, "{name}: one message: {err}");
    }
    // A failing RUN: its code, the step, nothing tagged, no sandbox left.
    let dir = isola.context(
        "bad-run",
        "FROM isola/busybox\nRUN echo trying; exit 7\n",
        &[],
    );
    let (code, err) = build_fails(&isola, &dir, &[]);
    assert_eq!(code, 7, "{err}");
    assert!(
        err.contains("Dockerfile:2") && err.contains("exit 7") && err.contains("code 7"),
        "{err}"
    );
    assert_eq!(isola.ok(["images"]), before, "the store changed");
    assert_eq!(isola.ok(["ps", "-a", "-q"]), "");
    let tmp: Vec<_> = fs::read_dir(isola.root().join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(tmp.is_empty(), "build scratch left: {tmp:?}");
}

#[test]
fn dockerignore_keeps_files_out_and_dash_reads_stdin() {
    let Some(isola) = isola() else { return };
    let dir = isola.context(
        "ignore",
        "",
        &[
            (".dockerignore", "*.log\nsecret/\n!secret/public.txt\n"),
            ("keep.txt", "k\n"),
            ("debug.log", "d\n"),
            ("secret/key", "s\n"),
            ("secret/public.txt", "p\n"),
        ],
    );
    let mut child = isola
        .command([
            "build",
            "-q",
            "-f",
            "-",
            "-t",
            "ignored",
            dir.to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM scratch\nCOPY . /ctx/\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap();
    assert_eq!(id.lines().count(), 1, "-q prints only the ID: {id}");
    assert!(
        out.stderr.is_empty(),
        "-q is quiet: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = rootfs(&isola, "ignored", "ignored-root");
    assert!(root.join("ctx/keep.txt").exists());
    assert!(!root.join("ctx/debug.log").exists());
    assert!(!root.join("ctx/secret/key").exists());
    assert!(root.join("ctx/secret/public.txt").exists());
}

#[test]
fn add_fetches_a_url_and_pull_fetches_the_base() {
    let Some(isola) = isola() else { return };
    if !isola_test_support::tool("docker-registry") {
        return;
    }
    use isola_test_support::registry::{read_request, respond, HttpServer, Mode, TestRegistry};
    // A file server on 127.0.0.1 for ADD.
    let web = HttpServer::start(|stream, _| {
        let mut r = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut w = stream;
        while let Ok(Some(req)) = read_request(&mut r, &mut w) {
            let (status, body): (u16, &[u8]) = match req.path() {
                "/files/notes.txt" => (200, b"fetched over http\n"),
                _ => (404, b"no\n"),
            };
            if respond(&mut w, status, &[], body, req.method == "HEAD").is_err() {
                break;
            }
        }
    });
    // A registry holding the base image, for --pull.
    let reg = TestRegistry::start(Mode::Plain);
    let base = reg.reference("build/base:1");
    isola.ok(["push", "isola/busybox", &base]);
    let dockerfile = format!(
        "FROM {base}\nADD http://{}/files/notes.txt /srv/\nRUN cat /srv/notes.txt > /srv/copy\n",
        web.host()
    );
    let dir = isola.context("fetch", &dockerfile, &[]);
    // Not in the store: without --pull the build says how to get it.
    let err = isola.fail(["build", "-t", "fetched", dir.to_str().unwrap()]);
    assert!(err.contains("--pull"), "{err}");
    build(&isola, &dir, &["--pull", "-t", "fetched"]);
    let root = rootfs(&isola, "fetched", "fetched-root");
    assert_eq!(
        fs::read_to_string(root.join("srv/copy")).unwrap(),
        "fetched over http\n"
    );
    let mode = fs::metadata(root.join("srv/notes.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "a download is 0600, as docker makes it"
    );
    // A URL that answers 404: one message naming it, nothing tagged.
    let bad = format!("FROM {base}\nADD http://{}/files/missing /x\n", web.host());
    fs::write(dir.join("Dockerfile"), bad).unwrap();
    let (code, err) = build_fails(&isola, &dir, &[]);
    assert_eq!(code, 125);
    assert!(
        err.contains("/files/missing") && err.contains("404"),
        "{err}"
    );
}

#[test]
fn an_untagged_build_is_known_by_its_id() {
    let Some(isola) = isola() else { return };
    let dir = isola.context("untagged", "FROM isola/busybox\nRUN echo u > /u\n", &[]);
    let (id, _) = build(&isola, &dir, &["-q"]);
    let images = isola.ok(["images"]);
    assert!(images.contains("<none>"), "{images}");
    let short = &id["sha256:".len().."sha256:".len() + 12];
    assert_eq!(isola.ok(["run", "--rm", short, "cat", "/u"]), "u\n");
    // Tagged later by a build: the ID's entry goes, the name stays.
    let (same, _) = build(&isola, &dir, &["-t", "named"]);
    assert_eq!(same, id);
    let images = isola.ok(["images"]);
    assert!(
        !images.contains("<none>") && images.contains("named:latest"),
        "{images}"
    );
    // --label makes another config, so another image; --iidfile names it.
    let iid = isola.tmp.path().join("iid");
    let (labelled, _) = build(
        &isola,
        &dir,
        &[
            "-t",
            "labelled",
            "--iidfile",
            iid.to_str().unwrap(),
            "--label",
            "a=b",
        ],
    );
    assert_eq!(fs::read_to_string(&iid).unwrap(), labelled);
    assert_ne!(labelled, id);
    assert_eq!(config(&isola, "labelled")["Labels"]["a"], "b");
}

/// The sandbox ID of the RUN step a build is in, once it is there.
fn running_step(isola: &Isola) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let found = fs::read_dir(isola.root().join("tmp"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("build-"))
            .flat_map(|b| fs::read_dir(b.path()).into_iter().flatten().flatten())
            .find_map(|step| fs::read_to_string(step.path().join("id")).ok());
        if let Some(id) = found {
            // The sandbox is made right after its ID is written.
            std::thread::sleep(std::time::Duration::from_millis(500));
            return id;
        }
        assert!(std::time::Instant::now() < deadline, "no RUN step started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The sandbox's cgroup directories, cgroup v1 (one per hierarchy) or v2.
fn cgroups_of(id: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|h| h.path().join("isola").join(id))
        .collect();
    dirs.push(PathBuf::from("/sys/fs/cgroup/isola").join(id));
    dirs.into_iter().filter(|p| p.exists()).collect()
}

#[test]
fn an_interrupted_build_stops_at_once_and_a_killed_one_is_swept() {
    use common::background::Background;
    use nix::sys::signal::Signal;
    let Some(isola) = isola() else { return };
    // The step's shell is PID 1 and ignores SIGTERM: the build kills it.
    let dir = isola.context("interrupt", "FROM isola/busybox\nRUN sleep 600\n", &[]);
    let args = ["build", "-t", "never", dir.to_str().unwrap()];
    let started = std::time::Instant::now();
    let run = Background::start(isola.command(args));
    running_step(&isola);
    run.signal(Signal::SIGTERM);
    let out = run.collect_within(std::time::Duration::from_secs(30), "an interrupted build");
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    assert!(isola.cmd(["inspect", "never"]).status.code() != Some(0));

    // SIGKILL: the step's processes die with isola (parent-death signal);
    // its cgroups and the build's scratch stay until a sweep.
    let run = Background::start(isola.command(args));
    let id = running_step(&isola);
    run.signal(Signal::SIGKILL);
    run.collect_within(std::time::Duration::from_secs(30), "a killed build");
    assert!(
        !cgroups_of(&id).is_empty(),
        "the killed step's cgroup should be there to sweep"
    );
    isola.ok(["prune"]);
    assert!(cgroups_of(&id).is_empty(), "left: {:?}", cgroups_of(&id));
    let tmp: Vec<_> = fs::read_dir(isola.root().join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(tmp.is_empty(), "{tmp:?}");
}

#[test]
fn run_steps_get_the_build_limits_and_no_network_unless_asked() {
    let Some(isola) = isola() else { return };
    // A 64 MiB buffer: the OOM killer stops it under --memory 16m.
    let dir = isola.context("limits",
        "FROM isola/busybox\nRUN dd if=/dev/zero of=/dev/null bs=64M count=1 && grep -c : /proc/net/dev > /interfaces\n",
        &[],
    );
    let (code, err) = build_fails(&isola, &dir, &["--memory", "16m"]);
    assert_eq!(code, 137, "{err}");
    assert!(err.contains("code 137"), "{err}");
    build(&isola, &dir, &["-t", "limited", "--memory", "256m"]);
    let root = rootfs(&isola, "limited", "limited-root");
    // --network none: the step sees only its own loopback.
    assert_eq!(
        fs::read_to_string(root.join("interfaces")).unwrap().trim(),
        "1"
    );
    let host_interfaces = fs::read_to_string("/proc/net/dev")
        .unwrap()
        .matches(':')
        .count();
    build(&isola, &dir, &["-t", "hostnet", "--network", "host"]);
    let root = rootfs(&isola, "hostnet", "hostnet-root");
    let seen: usize = fs::read_to_string(root.join("interfaces"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(seen, host_interfaces);
}

#[test]
fn onbuild_triggers_run_in_the_child_build() {
    let Some(isola) = isola() else { return };
    let parent = isola.context("onbuild-parent",
        "FROM isola/busybox\nONBUILD COPY marker.txt /from-child-context\nONBUILD RUN echo ran > /trigger-ran\n",
        &[],
    );
    build(&isola, &parent, &["-t", "parent"]);
    // The parent itself did not run them.
    assert!(!rootfs(&isola, "parent", "parent-root")
        .join("trigger-ran")
        .exists());
    let child = isola.context(
        "onbuild-child",
        "FROM parent\nRUN true\n",
        &[("marker.txt", "m\n")],
    );
    let (_, log) = build(&isola, &child, &["-t", "child"]);
    assert!(log.contains("ONBUILD RUN echo ran"), "{log}");
    let root = rootfs(&isola, "child", "child-root");
    assert_eq!(
        fs::read_to_string(root.join("trigger-ran")).unwrap(),
        "ran\n"
    );
    assert_eq!(
        fs::read_to_string(root.join("from-child-context")).unwrap(),
        "m\n"
    );
    assert!(
        raw_config(&isola, "child")["config"]["OnBuild"].is_null(),
        "not passed on"
    );
}
