//! `isola bench --quick` for real: both backends (the VM on QEMU where this
//! host's KVM cannot boot Linux, and labelled so), figures for each in every
//! dimension, an isolation matrix that tells a container from a VM, the
//! report rendered by headless Chromium, and `--compare` reading it back;
//! and `isola bench lifecycle --quick`, detached sandboxes against their
//! peers, `isola bench distribution --quick`, pulls and pushes against
//! theirs, `isola bench build` with one run, against buildah, and `isola
//! bench oci --quick`, isola-runtime against runc, crun and through
//! containerd, each leaving nothing behind.

#[path = "../bench/tests/common/browser.rs"]
mod browser;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Isola;
use serde_json::Value;

fn built(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/x86_64-unknown-linux-gnu/release")
        .join(name)
}

/// Is `name` installed? (Peers are optional: absent is no failure.)
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

fn has_guest_kernel() -> bool {
    std::fs::read_dir("/boot")
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
        })
        .unwrap_or(false)
}

fn bench(isola: &Isola, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_isola"))
        .arg("bench")
        .args(args)
        .env("ISOLA_ROOT", isola.root())
        .env("ISOLA_INIT", built("isola-init"))
        .env("ISOLA_PROBE", built("isola-probe"))
        .env_remove("ISOLA_LOG")
        .output()
        .expect("running isola bench")
}

/// The entries of `list` (objects with a `subject`) for `subject`.
fn of<'a>(list: &'a Value, subject: &str) -> Vec<&'a Value> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .filter(|v| v["subject"] == subject)
        .collect()
}

fn rows_of(r: &Value) -> &Value {
    &r["isolation"]["rows"]
}

/// The `(subject, value)` pairs of an isolation row, as a lookup.
fn cell<'a>(rows: &'a Value, key: &str, subject: &str) -> &'a str {
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == key)
        .unwrap_or_else(|| panic!("no isolation row {key}"));
    row["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v[0] == subject)
        .and_then(|v| v[1].as_str())
        .unwrap_or_else(|| panic!("no {subject} in row {key}: {row}"))
}

/// The one runtime figure of `subject` for `workload`, with a rate.
fn runtime_figure<'a>(r: &'a Value, subject: &str, workload: &str) -> &'a Value {
    let f: Vec<_> = of(&r["runtime"], subject)
        .into_iter()
        .filter(|f| f["workload"] == workload)
        .collect();
    assert_eq!(f.len(), 1, "{subject} {workload}");
    assert!(f[0]["rate"].as_f64().unwrap() > 0.0, "{}", f[0]);
    f[0]
}

#[test]
fn a_quick_benchmark_measures_both_backends_and_writes_its_report() {
    if !(common::root_user()
        && common::tool("qemu-system-x86_64")
        && common::host_has(
            "a guest kernel in /boot (scripts/setup installs linux-image-cloud-amd64)",
            has_guest_kernel(),
        )
        && common::host_has(
            "isola-init and isola-probe built static (make test builds them)",
            built("isola-init").is_file() && built("isola-probe").is_file(),
        )
        && common::host_has(
            "headless Chromium (scripts/setup installs chromium-headless-shell)",
            Path::new(browser::CHROMIUM).exists(),
        ))
    {
        return;
    }
    // On a PVM host, the whole path on isola's monitor with isola's PVM
    // test kernel, once: a boot takes a minute or two there.
    let pvm_kernel = if Path::new("/sys/module/kvm_pvm").exists() {
        match common::isola_kernel_for_host() {
            Some(k) => Some(k),
            None => return,
        }
    } else {
        None
    };
    let isola = Isola::new();
    let dir = isola.scratch("report");
    let mut args = vec!["--quick", "--peers", "auto", "--out", dir.to_str().unwrap()];
    let kernel_arg = pvm_kernel.as_ref().map(|k| k.display().to_string());
    if let Some(k) = &kernel_arg {
        args.extend(["--kernels", k.as_str()]);
    }
    let out = bench(&isola, &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "isola bench failed:\n{stderr}");
    for title in [
        "Startup, warm",
        "Memory",
        "Disk",
        "Runtime",
        "Density",
        "Lifecycle",
        "Isolation",
    ] {
        assert!(stderr.contains(title), "no {title} table:\n{stderr}");
    }

    let r: Value =
        serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(r["schema"], 1);
    assert!(r["machine"]["cores"].as_u64().unwrap() >= 1);
    let overhead = r["harness"]["overhead_ms"].as_f64().unwrap();
    assert!(overhead.is_finite() && overhead > 0.0, "{overhead}");

    // The VM is labelled emulated exactly when KVM here cannot boot Linux.
    let info: Value = serde_json::from_str(&isola.ok(["info", "--json"])).unwrap();
    let vm = r["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "vm")
        .expect("a vm subject");
    let emulated = info["vm_linux_guests"] != true;
    assert_eq!(vm["emulated"], emulated);
    assert_eq!(
        vm["label"]
            .as_str()
            .unwrap()
            .contains("emulated, not KVM speed"),
        emulated
    );

    // The guest kernels: isola's PVM test kernel booted on isola's
    // monitor, timed to init and to exit, and labelled as what it is.
    if pvm_kernel.is_some() {
        let k = &r["startup"]["kernels"][0];
        assert_eq!(k["vmm"], "isola", "{k}");
        let to_init = k["to_init_median_ms"].as_f64().unwrap_or(0.0);
        let to_exit = k["to_exit_median_ms"].as_f64().unwrap_or(0.0);
        assert!(0.0 < to_init && to_init < to_exit, "{k}");
        let subject = r["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == k["subject"])
            .expect("a subject for the kernel row");
        let label = subject["label"].as_str().unwrap();
        assert!(label.contains("isola monitor + PVM test kernel"), "{label}");
        assert_eq!(subject["emulated"], true);
        assert!(stderr.contains("Guest kernels"), "{stderr}");
    }

    // Every dimension has figures for both backends.
    for backend in ["container", "vm"] {
        let warm = of(&r["startup"]["warm"], backend);
        assert_eq!(warm[0]["ms"].as_array().unwrap().len(), 3, "{backend}");
        assert_eq!(of(&r["startup"]["cold"], backend).len(), 1, "{backend}");
        let phases = &of(&r["startup"]["phases"], backend)[0]["at_ms"];
        assert!(phases.as_array().unwrap().len() >= 4, "{backend}: {phases}");
        let memory = of(&r["memory"], backend)[0];
        assert!(memory["host_pss_kib"].as_u64().unwrap() > 0, "{memory}");
        assert!(memory["inside_total_kib"].as_u64().unwrap() > 0, "{memory}");
        assert_eq!(of(&r["disk"]["per_sandbox"], backend).len(), 1);
        for workload in [
            "cpu",
            "getpid",
            "fork_exec",
            "write_fsync",
            "memcpy",
            "stdout",
        ] {
            let f = runtime_figure(&r, backend, workload);
            assert!(f["ratio_to_host"].as_f64().unwrap() > 0.0, "{f}");
        }
        let density = of(&r["density"], backend)[0];
        assert_eq!(density["sandboxes"], 2);
        assert!(density["host_pss_kib"].as_u64().unwrap() > 0);
    }
    // Sequential I/O through a named volume (the host: its own directory),
    // and TCP over a bridge network (the host: its loopback).
    for subject in ["host", "container"] {
        for workload in ["seq_write", "seq_read", "tcp_stream", "tcp_rr"] {
            runtime_figure(&r, subject, workload);
        }
    }
    // Detached, the container's density counts each shim too; and the
    // lifecycle dimension ran with the container backend.
    let detached = of(&r["density"], "container-detached");
    assert_eq!(detached.len(), 1, "{}", r["density"]);
    assert!(detached[0]["host_pss_kib"].as_u64().unwrap() > 0);
    for series in ["start", "exec"] {
        assert_eq!(
            of(&r["lifecycle"][series], "container").len(),
            1,
            "{series}"
        );
    }
    assert_eq!(of(&r["lifecycle"]["shims"], "container").len(), 1);
    // A container costs the host its processes; a VM its guest's memory too.
    let pss = |b| of(&r["memory"], b)[0]["host_pss_kib"].as_u64().unwrap();
    assert!(pss("vm") > pss("container"));
    assert!(
        of(&r["memory"], "vm")[0]["guest_touched_kib"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(of(&r["memory"], "container")[0]["cgroup_kib"]
        .as_u64()
        .is_some());
    // What a VM needs besides the store, and layer sharing on real data.
    // The kernel, and the image's root disk (with the initramfs beside it)
    // or its rootfs initramfs: both where the kernels' rows booted isola's
    // own kernel and the vm row another.
    let extra: Vec<String> = of(&r["disk"]["vm_extra"], "vm")
        .iter()
        .map(|i| i["what"].as_str().unwrap().to_string())
        .collect();
    assert!(extra[0].starts_with("guest kernel"), "{extra:?}");
    assert!(
        extra
            .iter()
            .any(|w| w.starts_with("rootfs initramfs") || w.starts_with("root disk")),
        "{extra:?}"
    );
    let sharing = r["disk"]["sharing"].as_array().unwrap();
    assert_eq!(sharing.len(), 3);
    let last = &sharing[2];
    assert!(last["store_bytes"].as_u64() < last["sum_of_images_bytes"].as_u64());
    // Every peer installed here ran, or says why not; runc and crun that
    // ran are measured like isola's backends beyond startup.
    let ran = |id: &str| of(&r["startup"]["warm"], id).len() == 1;
    let said = |id: &str| {
        r["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["subject"] == id && !e["message"].as_str().unwrap().is_empty())
    };
    assert!(ran("floor"), "the floor peer ran");
    // A pull of the benchmark image into a store holding its base fetches
    // the probe's layer only; without docker-registry, it says why not.
    match r["disk"].get("distribution") {
        Some(p) => {
            assert_eq!(
                (&p["layers"], &p["layers_fetched"]),
                (&2.into(), &1.into()),
                "{p}"
            );
            assert!(
                p["bytes_fetched"].as_u64() < p["bytes_total"].as_u64(),
                "{p}"
            );
        }
        None => assert!(
            !on_path("docker-registry") && said("store"),
            "{}",
            r["errors"]
        ),
    }
    for peer in ["runc", "crun"] {
        if on_path(peer) {
            assert!(
                ran(peer) || said(peer),
                "{peer}: neither figures nor a reason"
            );
        }
        if ran(peer) {
            assert_eq!(of(&r["memory"], peer).len(), 1, "{peer}");
            assert_eq!(of(&r["density"], peer).len(), 1, "{peer}");
            assert!(cell(rows_of(&r), "memory_limit", peer).starts_with("enforced"));
        }
    }

    // The isolation matrix, from facts observed in each.
    let facts = |s: &str| {
        r["isolation"]["facts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f[0] == s)
            .map(|f| f[1].clone())
            .unwrap_or_else(|| panic!("no facts for {s}"))
    };
    let (host, container, guest) = (facts("host"), facts("container"), facts("vm"));
    assert_eq!(container["boot_id"], host["boot_id"]);
    assert_ne!(guest["boot_id"], host["boot_id"]);
    let rows = rows_of(&r);
    assert!(cell(rows, "kernel", "container").starts_with("host's"));
    assert!(cell(rows, "kernel", "vm").starts_with("own"));
    assert_eq!(cell(rows, "processes", "container"), "1");
    assert!(cell(rows, "syscalls", "vm").starts_with("0 "));
    assert!(cell(rows, "memory_limit", "container").starts_with("enforced"));
    assert!(cell(rows, "memory_limit", "vm").starts_with("enforced"));
    assert!(cell(rows, "memory_limit", "host").starts_with("none"));
    assert!(cell(rows, "pids_limit", "container").starts_with("enforced"));
    // Only peers and the bare monitor may be missing, each with its reason.
    for e in r["errors"].as_array().unwrap() {
        let subject = e["subject"].as_str().unwrap();
        assert!(
            !["host", "container", "vm", "floor"].contains(&subject),
            "{e}"
        );
    }

    // The report: charts beside it and inline, and a page that renders.
    for svg in ["startup.svg", "phases.svg", "memory.svg", "disk.svg"] {
        assert!(dir.join(svg).is_file(), "{svg}");
    }
    let html = dir.join("report.html");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && !page.contains("https://"));
    let pixels = browser::screenshot(&html, &dir.join("report.png"), std::time::Instant::now());
    let white = pixels.iter().filter(|p| **p == [255, 255, 255]).count();
    assert!(
        white < pixels.len() * 96 / 100,
        "the rendered report is blank"
    );
    assert!(
        browser::hues(&pixels).len() >= 3,
        "the rendered report shows no charts in colour"
    );

    // --compare reads two results back: the same file changes nothing.
    let same = bench(
        &isola,
        &[
            "--compare",
            dir.join("results.json").to_str().unwrap(),
            dir.join("results.json").to_str().unwrap(),
        ],
    );
    assert!(same.status.success());
    let text = String::from_utf8_lossy(&same.stdout);
    assert!(
        text.contains("startup.warm[container].summary.median"),
        "{text}"
    );
}

/// `isola bench ARGS` as [`bench`], and its PID.
fn bench_with_pid(isola: &Isola, args: &[&str]) -> (u32, std::process::Output) {
    let child = Command::new(env!("CARGO_BIN_EXE_isola"))
        .arg("bench")
        .args(args)
        .env("ISOLA_ROOT", isola.root())
        .env_remove("ISOLA_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running isola bench");
    let pid = child.id();
    (
        pid,
        child.wait_with_output().expect("waiting for isola bench"),
    )
}

/// The cgroups named `isola-bench-PID-*` at the top of any hierarchy: the
/// lifecycle's peers make their containers' cgroups under such a parent,
/// named for the benchmark's PID.
fn bench_cgroups(pid: u32) -> Vec<PathBuf> {
    let prefix = format!("isola-bench-{pid}-");
    let mut out = Vec::new();
    let tops = std::fs::read_dir("/sys/fs/cgroup")
        .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default();
    for dir in std::iter::once(PathBuf::from("/sys/fs/cgroup")).chain(tops) {
        if let Ok(d) = std::fs::read_dir(&dir) {
            out.extend(
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .map(|e| e.path()),
            );
        }
    }
    out
}

/// Every process whose command line names `path`.
fn processes_naming(path: &Path) -> Vec<String> {
    let needle = path.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .filter(|c| c.contains(&needle))
                .collect()
        })
        .unwrap_or_default()
}

/// `isola bench lifecycle --quick` for real: isola's `run -d`, `exec` and
/// shim measured, each peer installed here measured or said why not (under
/// CI, those scripts/setup --peers installs must run), and afterwards
/// nothing left of isola's, podman's, runc's or containerd's.
#[test]
fn a_quick_lifecycle_benchmark_measures_detached_sandboxes_and_leaves_nothing() {
    if !(common::root_user() && common::tool("busybox")) {
        return;
    }
    let isola = Isola::new();
    let run_containerd_before = Path::new("/run/containerd").exists();
    let (pid, out) = bench_with_pid(&isola, &["lifecycle", "--quick", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "isola bench lifecycle failed:\n{stderr}"
    );
    for title in [
        "Lifecycle: a sandbox started detached",
        "Lifecycle: true run in a running sandbox",
        "Lifecycle: the supervisor of one idle sandbox",
        "Lifecycle: goals",
    ] {
        assert!(stderr.contains(title), "no {title} table:\n{stderr}");
    }
    let r: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    let l = &r["lifecycle"];

    // isola's own figures, and which build its shim was.
    for series in ["start", "exec"] {
        let s = of(&l[series], "container");
        assert_eq!(s.len(), 1, "{series}: {l}");
        assert_eq!(s[0]["ms"].as_array().unwrap().len(), 3, "{series}");
        assert!(s[0]["summary"]["median"].as_f64().unwrap() > 0.0);
    }
    let shim = of(&l["shims"], "container")[0];
    assert_eq!(shim["process"], "isola", "{shim}");
    for field in ["rss_kib", "pss_kib", "rss_after_exec_kib"] {
        assert!(shim[field].as_u64().unwrap() > 0, "{field}: {shim}");
    }
    assert_eq!(l["isola"]["path"], env!("CARGO_BIN_EXE_isola"));
    assert!(l["isola"]["profile"].as_str().unwrap().starts_with("debug"));
    let goals: Vec<&str> = l["goals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        goals,
        [
            "start_vs_floor",
            "exec_vs_runc",
            "exec_vs_nsenter",
            "shim_rss"
        ]
    );

    // Every peer ran, or says why not.
    let ran_in = |series: &str, id: &str| of(&l[series], id).len() == 1;
    let said = |id: &str| {
        r["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["subject"] == id && !e["message"].as_str().unwrap().is_empty())
    };
    let ci = std::env::var("CI").as_deref() == Ok("true");
    // (peer, its programs, the figures it gives when it runs)
    let peers: [(&str, &[&str], bool); 4] = [
        (
            "floor",
            &["unshare", "chroot", "nsenter"],
            ran_in("start", "floor") && ran_in("exec", "nsenter"),
        ),
        (
            "runc",
            &["runc"],
            ran_in("start", "runc") && ran_in("exec", "runc"),
        ),
        (
            "podman",
            &["podman", "conmon", "runc"],
            ran_in("start", "podman") && of(&l["shims"], "podman").len() == 1,
        ),
        (
            "containerd",
            &["containerd", "ctr", "containerd-shim-runc-v2", "runc"],
            ran_in("start", "containerd") && of(&l["shims"], "containerd").len() == 1,
        ),
    ];
    for (peer, programs, ran) in peers {
        let installed = programs.iter().all(|p| on_path(p));
        if !installed {
            // Missing: said so; a failure under CI, whose host
            // scripts/setup --peers prepares.
            assert!(said(peer), "{peer} is missing and no reason is given");
            common::host_has(&format!("{peer} (scripts/setup --peers)"), false);
            continue;
        }
        // The floor's exec figure is nsenter's.
        let said = said(peer) || (peer == "floor" && said("nsenter"));
        assert!(ran || said, "{peer}: neither figures nor a reason");
        assert!(
            !ci || ran,
            "{peer} is installed but did not run: {}",
            r["errors"]
        );
    }

    // Nothing left behind: isola's sandboxes, shims and mounts, the
    // peers' processes, cgroups, and containerd's socket directories.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/check-leftovers");
    let check = Command::new(script).arg(isola.root()).output().unwrap();
    let leftovers = String::from_utf8_lossy(&check.stderr);
    let ours: Vec<&str> = leftovers
        .lines()
        .filter(|l| l.contains(isola.root().to_str().unwrap()) || l.contains("shim socket"))
        .collect();
    assert!(ours.is_empty(), "left behind:\n{}", ours.join("\n"));
    assert_eq!(
        processes_naming(isola.tmp.path()),
        Vec::<String>::new(),
        "processes still running on this test's root"
    );
    assert_eq!(
        bench_cgroups(pid),
        Vec::<PathBuf>::new(),
        "cgroups left behind"
    );
    assert_eq!(Path::new("/run/containerd").exists(), run_containerd_before);
    let instances: Vec<_> = std::fs::read_dir(isola.root().join("instances"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        instances
            .iter()
            .all(|n| n.to_string_lossy().starts_with('.')),
        "sandboxes left: {instances:?}"
    );
    assert_eq!(
        std::fs::read_dir(isola.root().join("tmp")).map_or(0, |d| d.count()),
        0,
        "the work directory is left"
    );
}

/// `isola bench distribution --quick` for real, on the tiny synthetic image:
/// isola's pull, fetch part and push timed, each peer installed here timed
/// or said why not, what a pull on a stored base fetched, and afterwards no
/// registry, store or directory of it left.
#[test]
fn a_quick_distribution_benchmark_pulls_and_pushes_and_leaves_nothing() {
    if !(common::root_user()
        && common::tool("busybox")
        && common::host_has(
            "docker-registry (scripts/setup --registry installs it)",
            on_path("docker-registry"),
        ))
    {
        return;
    }
    let isola = Isola::new();
    let (_, out) = bench_with_pid(&isola, &["distribution", "--quick", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "isola bench distribution failed:\n{stderr}"
    );
    for title in [
        "Distribution: pull of synthetic",
        "Distribution: push",
        "Distribution: the image pulled into a store that holds its base",
        "Distribution: goals",
    ] {
        assert!(stderr.contains(title), "no {title} table:\n{stderr}");
    }
    let r: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    let d = &r["distribution"];
    assert_eq!(d["image"]["layers"], 3, "{d}");
    assert!(
        d["image"]["unpacked_bytes"].as_u64().unwrap() > 1 << 20,
        "{d}"
    );
    for (series, id) in [
        ("pull", "isola"),
        ("pull", "isola-fetch"),
        ("push", "isola"),
    ] {
        let s = of(&d[series], id);
        assert_eq!(s.len(), 1, "{series} {id}: {d}");
        assert_eq!(s[0]["ms"].as_array().unwrap().len(), 2, "{series} {id}");
        assert!(s[0]["mib_per_s"].as_f64().unwrap() > 0.0, "{series} {id}");
        assert!(
            s[0]["cpu_median_ms"].as_f64().unwrap() > 0.0,
            "{series} {id}"
        );
    }
    // The base's one layer stored: the image's two others fetched.
    let base = &d["on_base"];
    assert_eq!(
        (&base["layers"], &base["layers_fetched"]),
        (&3.into(), &2.into()),
        "{base}"
    );
    let (fetched, total) = (
        base["bytes_fetched"].as_u64().unwrap(),
        base["bytes_total"].as_u64().unwrap(),
    );
    assert!(0 < fetched && fetched < total, "{base}");
    assert_eq!(d["isola"]["path"], env!("CARGO_BIN_EXE_isola"));

    // Every peer ran, or says why not; under CI those scripts/setup
    // --peers installs must run.
    let said = |id: &str| {
        r["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["subject"] == id && !e["message"].as_str().unwrap().is_empty())
    };
    let ci = std::env::var("CI").as_deref() == Ok("true");
    for (peer, ran) in [
        ("podman", of(&d["pull"], "podman").len() == 1),
        (
            "skopeo",
            of(&d["pull"], "skopeo").len() == 1 && of(&d["push"], "skopeo").len() == 1,
        ),
    ] {
        if !on_path(peer) {
            assert!(said(peer), "{peer} is missing and no reason is given");
            common::host_has(&format!("{peer} (scripts/setup --peers)"), false);
            continue;
        }
        assert!(ran || said(peer), "{peer}: neither figures nor a reason");
        assert!(
            !ci || ran,
            "{peer} is installed but did not run: {}",
            r["errors"]
        );
    }
    if of(&d["pull"], "podman").len() == 1 {
        let ratio = &of(&d["pull"], "isola")[0]["paired"];
        assert!(ratio.to_string().contains("podman"), "{ratio}");
    }

    // Nothing left: no registry or other process on this root.
    nothing_left_on(&isola);
}

/// No process on `isola`'s root, no mount under it, no work directory.
fn nothing_left_on(isola: &Isola) {
    assert_eq!(
        processes_naming(isola.tmp.path()),
        Vec::<String>::new(),
        "processes still running on this test's root"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = isola.root().to_string_lossy().into_owned();
    assert!(!mounts.contains(&root), "mounts left under {root}");
    assert_eq!(
        std::fs::read_dir(isola.root().join("tmp")).map_or(0, |d| d.count()),
        0,
        "the work directory is left"
    );
}

/// `isola bench build` with one run: the Dockerfile built cold and cached
/// by isola and by buildah, the paired ratios and the goals read from
/// them, and afterwards no store, mount or process of it left.
#[test]
fn a_one_run_build_benchmark_times_isola_and_buildah_cold_and_cached() {
    if !(common::root_user() && common::tool("busybox") && common::tool("buildah")) {
        return;
    }
    let isola = Isola::new();
    let (_, out) = bench_with_pid(&isola, &["build", "--runs", "1", "--warmup", "0", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "isola bench build failed:\n{stderr}");
    for title in [
        "Build: 11-line two-stage Dockerfile",
        "Build: the same build again, every step cached",
        "Build: goals",
    ] {
        assert!(stderr.contains(title), "no {title} table:\n{stderr}");
    }
    let r: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(r["errors"], serde_json::json!([]), "{r}");
    let b = &r["build"];
    for series in ["cold", "cached"] {
        for id in ["isola", "buildah"] {
            let s = of(&b[series], id);
            assert_eq!(s.len(), 1, "{series} {id}: {b}");
            assert_eq!(s[0]["ms"].as_array().unwrap().len(), 1, "{series} {id}");
        }
        let paired = &of(&b[series], "isola")[0]["paired"];
        assert!(paired.to_string().contains("buildah"), "{paired}");
    }
    // A cached build does less than a cold one, in both tools.
    let median =
        |series: &str, id: &str| of(&b[series], id)[0]["summary"]["median"].as_f64().unwrap();
    for id in ["isola", "buildah"] {
        assert!(median("cached", id) < median("cold", id), "{id}: {b}");
    }
    let goals: Vec<&str> = b["goals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| !g["value"].is_null())
        .map(|g| g["key"].as_str().unwrap())
        .collect();
    assert_eq!(goals, ["cold_vs_buildah", "cached_vs_buildah", "cached_ms"]);
    nothing_left_on(&isola);
}

/// `isola bench oci --quick` for real: isola-runtime (built beside isola)
/// through create/start/delete and run, against every runtime installed
/// here, and through containerd where it is; each peer measured or said
/// why not (crun refuses a cgroup v1 hybrid host: its own words), the
/// figures' shape, and afterwards no container, cgroup or process of it.
#[test]
fn a_quick_oci_benchmark_times_isola_runtime_against_its_peers_and_leaves_nothing() {
    if !(common::root_user() && common::tool("busybox")) {
        return;
    }
    let isola = Isola::new();
    let (pid, out) = bench_with_pid(&isola, &["oci", "--quick", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "isola bench oci failed:\n{stderr}");
    for title in [
        "OCI runtime: create, start, the init reaped, delete",
        "OCI runtime: each step's median",
        "OCI runtime: run, the same life in one call",
        "OCI runtime: goals",
        "isola-runtime create+start+delete:",
    ] {
        assert!(stderr.contains(title), "no {title:?} in:\n{stderr}");
    }
    let r: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    let o = &r["oci"];
    let runtime = PathBuf::from(env!("CARGO_BIN_EXE_isola")).with_file_name("isola-runtime");
    assert_eq!(o["runtime"]["path"], runtime.to_str().unwrap());
    assert!(o["runtime"]["profile"]
        .as_str()
        .unwrap()
        .starts_with("debug"));

    // isola-runtime's own figures, in every shape it was asked for.
    for shape in ["create_start_delete", "run"] {
        let s = of(&o[shape], "isola-runtime");
        assert_eq!(s.len(), 1, "{shape}: {o}");
        assert_eq!(s[0]["ms"].as_array().unwrap().len(), 3, "{shape}");
        assert!(s[0]["summary"]["median"].as_f64().unwrap() > 0.0, "{shape}");
    }
    let steps = &of(&o["steps"], "isola-runtime")[0]["median_ms"];
    let names: Vec<&str> = steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s[0].as_str().unwrap())
        .collect();
    assert_eq!(names, ["create", "start", "exited", "delete"]);
    let goals: Vec<&str> = o["goals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["key"].as_str().unwrap())
        .collect();
    assert_eq!(goals, ["vs_crun"]);

    // Each peer installed here ran, with isola-runtime's ratio to it, or
    // says in its own words why not.
    let said =
        |id: &str| {
            r["errors"].as_array().unwrap().iter().any(|e| {
                e["subject"] == id && e["message"].as_str().unwrap().starts_with("not run")
            })
        };
    let paired_with = |series: &Value, peer: &str| {
        of(series, "isola-runtime")[0]["paired"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p[0] == peer)
    };
    for peer in ["runc", "crun"] {
        if !on_path(peer) {
            assert!(said(peer), "{peer} is missing and no reason is given");
            continue;
        }
        for shape in ["create_start_delete", "run"] {
            let ran = of(&o[shape], peer).len() == 1 && paired_with(&o[shape], peer);
            assert!(
                ran || said(peer),
                "{peer} {shape}: neither figures nor a reason"
            );
            // Where crun would refuse the host's cgroups, they are hidden
            // from every runtime, and then crun runs.
            if o["cgroup_view"].is_string() {
                assert!(ran, "{peer} {shape} did not run with cgroup2 hidden: {r}");
            }
        }
    }
    let hybrid = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
        .is_ok_and(|c| !c.trim().is_empty());
    assert_eq!(
        o["cgroup_view"].is_string(),
        hybrid && on_path("crun"),
        "cgroup2 is hidden exactly where crun would refuse it: {}",
        o["cgroup_view"]
    );
    let containerd = ["containerd", "ctr", "containerd-shim-runc-v2"]
        .iter()
        .all(|p| on_path(p));
    if containerd {
        let c = &o["containerd"];
        assert!(
            c["label"].as_str().unwrap().starts_with("containerd "),
            "{c}"
        );
        let first: Vec<&str> = c["first"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["subject"].as_str().unwrap())
            .collect();
        assert_eq!(first.first(), Some(&"isola-runtime"), "{c}");
        assert_eq!(
            of(&c["warm"], "isola-runtime")[0]["ms"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        for peer in ["runc", "crun"].into_iter().filter(|p| on_path(p)) {
            let ran = first.contains(&peer) && paired_with(&c["warm"], peer);
            assert!(
                ran || said(peer),
                "{peer} through containerd: neither figures nor a reason"
            );
        }
    } else {
        assert!(
            said("containerd"),
            "containerd is missing and no reason is given"
        );
    }

    // Nothing left: no container's cgroup named for the benchmark, no
    // process or mount on this root, no work directory.
    assert_eq!(bench_cgroups(pid), Vec::<PathBuf>::new(), "cgroups left");
    nothing_left_on(&isola);
}

#[test]
fn bad_bench_flags_are_refused_with_what_to_do() {
    let isola = Isola::new();
    let err = String::from_utf8_lossy(&bench(&isola, &["--peers", "docker"]).stderr).into_owned();
    assert!(err.contains("unknown peer \"docker\""), "{err}");
    let err =
        String::from_utf8_lossy(&bench(&isola, &["--backends", "gvisor"]).stderr).into_owned();
    assert!(err.contains("gvisor") && err.contains("container"), "{err}");
    let file = isola.scratch("cmp").join("bad.json");
    std::fs::write(&file, "{\"schema\": 99}").unwrap();
    let good = isola.scratch("cmp").join("good.json");
    std::fs::write(&good, "{\"schema\": 1}").unwrap();
    let out = bench(
        &isola,
        &["--compare", good.to_str().unwrap(), file.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("schema"), "{err}");
    let err = String::from_utf8_lossy(&bench(&isola, &["no/such:image"]).stderr).into_owned();
    assert!(err.contains("no/such:image"), "{err}");
    // Nothing was stored by any of them.
    assert!(!isola.root().join("images.json").exists());
}
