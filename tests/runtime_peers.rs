//! isola-runtime beside its peers: containerd 1.6 running containers through
//! it (ctr, the runc shim, `--runc-binary`), and runc on the same bundles,
//! compared field by field (state, exit codes, what the process sees).

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::process::CommandExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::background::Background;
use common::fixture::{Layer, Layout, Tar};
use common::oci::{self, guest_init, reap, vm_host, RUNTIME};
use isola_bench::lifecycle::containerd::Containerd;
use serde_json::{json, Value};

const RUNC: &str = "/usr/sbin/runc";
/// The busybox applets the bundles and the image link.
const APPLETS: [&str; 15] = [
    "sh", "echo", "sleep", "cat", "ls", "id", "true", "hostname", "grep", "env", "sort", "mkdir",
    "rmdir", "tr", "tty",
];
/// Longer than any one call takes: a call still running then is a hang.
const CALL_LIMIT: Duration = Duration::from_secs(60);

/// `cmd`'s output, within CALL_LIMIT or the test fails (the process killed).
fn output(mut cmd: Command) -> Output {
    let what = format!("{cmd:?}");
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(CALL_LIMIT) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: kill only sends a signal, to our child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{what} still ran after {CALL_LIMIT:?}");
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Polls `check` every 50 ms for up to 10 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// containerd

/// `ctr` on our containerd, every call bounded.
struct Ctr<'a> {
    d: &'a Containerd,
}

impl Ctr<'_> {
    fn command(&self, args: &[&str]) -> Command {
        argv_command(&self.d.ctr(args))
    }

    fn run(&self, args: &[&str]) -> Output {
        output(self.command(args))
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "ctr {args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    }

    /// `ctr task ls`: each task's PID and STATUS.
    fn tasks(&self) -> Vec<(String, u32, String)> {
        self.ok(&["task", "ls"])
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                Some((
                    f.first()?.to_string(),
                    f.get(1)?.parse().ok()?,
                    f.get(2)?.to_string(),
                ))
            })
            .collect()
    }

    fn task(&self, id: &str) -> Option<(u32, String)> {
        self.tasks()
            .into_iter()
            .find(|t| t.0 == id)
            .map(|(_, pid, status)| (pid, status))
    }

    fn status(&self, id: &str) -> String {
        self.task(id).map(|t| t.1).unwrap_or_default()
    }
}

fn argv_command(argv: &[String]) -> Command {
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]).stdin(Stdio::null());
    c
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Single-quoted for sh.
fn quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// An OCI archive of a busybox image (PATH=/bin, `sh`), as `ctr image
/// import` takes it: the layout's files at the top of a tar.
fn image_archive(dir: &Path) -> PathBuf {
    let mut layer = Tar::new();
    for d in ["bin", "proc", "sys", "dev", "etc"] {
        layer = layer.dir(d, 0o755);
    }
    layer = layer.dir("tmp", 0o1777);
    let busybox = fs::read("/bin/busybox").unwrap();
    layer = layer.file_with("bin/busybox", &busybox, 0o755, 0, 0, 1_600_000_000);
    for applet in APPLETS {
        layer = layer.symlink(&format!("bin/{applet}"), "busybox");
    }
    let layout = Layout::image(&dir.join("layout"), &[Layer::tar(layer.build())]);
    let archive = dir.join("image.tar");
    let mut tar = tar::Builder::new(fs::File::create(&archive).unwrap());
    tar.append_dir_all(".", &layout.dir).unwrap();
    tar.finish().unwrap();
    archive
}

/// Directories named `name` at the top of any cgroup hierarchy.
fn top_cgroups(name: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|e| e.path().join(name))
        .filter(|p| p.is_dir())
        .collect();
    found.extend(Some(Path::new("/sys/fs/cgroup").join(name)).filter(|p| p.is_dir()));
    found
}

/// The processes whose command line mentions `needle`.
fn processes_naming(needle: &str) -> Vec<String> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| {
            let cmdline = fs::read(e.path().join("cmdline")).ok()?;
            let line = text(&cmdline).replace('\0', " ");
            line.contains(needle)
                .then(|| format!("{}: {line}", e.file_name().to_string_lossy()))
        })
        .collect()
}

#[test]
fn containerd_runs_containers_through_isola_runtime() {
    if !common::root_user()
        || !common::tool("containerd")
        || !common::tool("ctr")
        || !common::tool("containerd-shim-runc-v2")
        || !common::tool("script")
    {
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("isola-test-ctrd-")
        .tempdir()
        .unwrap();
    let tmp_path = tmp.path().display().to_string();
    let archive = image_archive(tmp.path());
    // The microVM's init, for the VM annotation's runs.
    let init = guest_init();
    let ctrd = Containerd::start_with_env(
        &tmp.path().join("containerd"),
        &[("ISOLA_INIT", init.as_os_str())],
    )
    .expect("starting containerd");
    let namespace = ctrd.namespace().to_string();
    // A failed check still lets the cleanup below be checked; then it
    // fails the test.
    let checked = panic::catch_unwind(AssertUnwindSafe(|| {
        check_containerd(&Ctr { d: &ctrd }, &archive)
    }));

    // Containerd's own cleanup: tasks and containers (none, unless a
    // check failed), images, the namespace, the daemon, the cgroups ctr
    // made. Then nothing of it may be left.
    drop(ctrd);
    assert_eq!(
        top_cgroups(&namespace),
        Vec::<PathBuf>::new(),
        "the namespace's cgroup is gone"
    );
    assert_eq!(
        processes_naming(&tmp_path),
        Vec::<String>::new(),
        "no containerd, shim or isola-runtime of ours is left"
    );
    if let Err(failed) = checked {
        panic::resume_unwind(failed);
    }
}

/// `ctr ARGS` on a terminal of script(1)'s.
fn on_a_terminal(ctr: &Ctr, args: &[String]) -> Output {
    let line: Vec<String> = ctr.d.ctr(&strs(args)).iter().map(|a| quote(a)).collect();
    let mut script = Command::new("script");
    script
        .args(["-qec", &line.join(" "), "/dev/null"])
        .stdin(Stdio::null());
    output(script)
}

fn check_containerd(ctr: &Ctr, archive: &Path) {
    let out = output(argv_command(
        &ctr.d.import(archive, Some("localhost/isola-peers")),
    ));
    assert!(
        out.status.success(),
        "ctr image import: {}",
        text(&out.stderr)
    );
    let image = "localhost/isola-peers:latest";
    let fifo = ctr.d.fifo_dir().display().to_string();
    // `ctr run` with our runtime: the shim runs it for every runc call.
    let run = |extra: &[&str], id: &str, cmd: &[&str]| -> Vec<String> {
        let mut a = vec!["run", "--fifo-dir", &fifo, "--runc-binary", RUNTIME];
        a.extend(extra);
        a.push(image);
        a.push(id);
        a.extend(cmd);
        a.into_iter().map(String::from).collect()
    };

    // 1. run --rm: the process's output, then its exit code as ctr's.
    let out = ctr.run(&strs(&run(
        &["--rm"],
        "c-rm",
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
    )));
    assert_eq!(
        out.status.code(),
        Some(3),
        "ctr run --rm: {}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "out\n");
    assert_eq!(text(&out.stderr), "err\n");
    assert!(
        !ctr.ok(&["container", "ls", "-q"]).contains("c-rm"),
        "--rm removed it"
    );

    // 2. run -d, then exec, ps, pause/resume, metrics, kill, rm.
    ctr.ok(&strs(&run(&["-d"], "c-life", &["sleep", "1000"])));
    let (init, status) = ctr.task("c-life").expect("task ls lists c-life");
    assert_eq!(status, "RUNNING");
    // The shim ran isola-runtime, not runc: the runtime's --root (in
    // containerd's private /run, seen through the shim's root) holds
    // isola-runtime's record of the container, which names its backend.
    let shim = ctr.d.shim_pid("c-life").expect("c-life's shim");
    let record = format!(
        "/proc/{shim}/root/run/containerd/runc/{}/c-life/state.json",
        ctr.d.namespace()
    );
    let record: Value =
        serde_json::from_slice(&fs::read(&record).unwrap_or_else(|e| panic!("{record}: {e}")))
            .unwrap();
    assert_eq!(record["backend"], "container", "{record}");
    let out = ctr.run(&[
        "task",
        "exec",
        "--fifo-dir",
        &fifo,
        "--exec-id",
        "e1",
        "c-life",
        "sh",
        "-c",
        "echo from-exec; exit 7",
    ]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "task exec: {}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "from-exec\n");
    let ps = ctr.ok(&["task", "ps", "c-life"]);
    assert!(
        ps.lines()
            .skip(1)
            .any(|l| l.split_whitespace().next() == Some(&init.to_string())),
        "task ps lists the init, {init}: {ps}"
    );
    ctr.ok(&["task", "pause", "c-life"]);
    assert_eq!(ctr.status("c-life"), "PAUSED");
    ctr.ok(&["task", "resume", "c-life"]);
    assert_eq!(ctr.status("c-life"), "RUNNING");
    // The shim reads the init's cgroup itself: the runtime must have put
    // it in every hierarchy the shim looks in.
    let metrics = ctr.ok(&["task", "metrics", "c-life"]);
    assert!(metrics.contains("memory.usage_in_bytes"), "{metrics}");
    ctr.ok(&["task", "kill", "-s", "SIGKILL", "c-life"]);
    eventually("c-life STOPPED", || ctr.status("c-life") == "STOPPED");
    let out = ctr.run(&["task", "rm", "c-life"]);
    assert!(out.status.success(), "task rm: {}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("exit code 137"),
        "ctr tells the task's status: {}",
        text(&out.stderr)
    );
    assert_eq!(ctr.task("c-life"), None);
    ctr.ok(&["container", "rm", "c-life"]);

    // 3. An attached run ends with the status of its killed task.
    let attached = Background::start(ctr.command(&strs(&run(&[], "c-att", &["sleep", "1000"]))));
    eventually("c-att RUNNING", || ctr.status("c-att") == "RUNNING");
    ctr.ok(&["task", "kill", "-s", "SIGKILL", "c-att"]);
    let out = attached.collect_within(Duration::from_secs(30), "ctr run of a killed task");
    assert_eq!(out.status.code(), Some(137), "{}", text(&out.stderr));
    ctr.ok(&["container", "rm", "c-att"]);

    // 4. A detached task is listed, then deleted running (kill --all, delete).
    ctr.ok(&strs(&run(&["-d"], "c-gone", &["sleep", "1000"])));
    assert_eq!(ctr.status("c-gone"), "RUNNING");
    ctr.ok(&["task", "rm", "-f", "c-gone"]);
    assert_eq!(ctr.task("c-gone"), None);
    ctr.ok(&["container", "rm", "c-gone"]);

    // 5. A terminal: the pty master reaches the shim by --console-socket.
    let out = on_a_terminal(
        ctr,
        &run(&["--rm", "-t"], "c-tty", &["sh", "-c", "tty; exit 5"]),
    );
    assert_eq!(
        out.status.code(),
        Some(5),
        "ctr run -t: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("/dev/pts/0"),
        "{}",
        text(&out.stdout)
    );

    // 6. A process that cannot be run fails the task's creation, as with
    // runc (ctr exits 1 with the runtime's message): it is not a process
    // that starts and exits 127.
    let out = ctr.run(&strs(&run(&["--rm"], "c-missing", &["/nonexistent"])));
    assert_eq!(
        out.status.code(),
        Some(1),
        "ctr run of a missing program fails at create; ctr said: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("OCI runtime create failed")
            && text(&out.stderr).contains("/nonexistent"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(ctr.ok(&["container", "ls", "-q"]), "", "nothing is left");

    // 7. The same door, the same image, in a microVM: one annotation.
    if !vm_host() {
        return;
    }
    let vm = [
        "--annotation",
        "io.isola.backend=vm",
        "--annotation",
        "io.isola.vm.memory=256m",
        "--annotation",
        "io.isola.vm.monitor=qemu",
    ];
    let mut rm = vec!["--rm"];
    rm.extend(vm);
    let out = ctr.run(&strs(&run(
        &rm,
        "v-rm",
        &["sh", "-c", "echo in $(uname -r); exit 4"],
    )));
    assert_eq!(
        out.status.code(),
        Some(4),
        "ctr run --rm in a microVM: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).starts_with("in "),
        "{}",
        text(&out.stdout)
    );
    // On isola's kernel, whose virtio carries the agent channel: exec.
    let Some(kernel) = common::isola_kernel_for_host() else {
        return;
    };
    let kernel = format!("io.isola.vm.kernel={}", kernel.display());
    let mut detached = vec!["-d", "--annotation", &kernel];
    detached.extend(vm);
    let script = "trap 'exit 9' TERM; echo up; while :; do sleep 1; done";
    ctr.ok(&strs(&run(&detached, "v-life", &["sh", "-c", script])));
    assert_eq!(ctr.status("v-life"), "RUNNING");
    let exec = |extra: &[&str], id: &str, script: &str| -> Vec<String> {
        let mut a = vec!["task", "exec", "--fifo-dir", &fifo];
        a.extend(extra);
        a.extend(["--exec-id", id, "v-life", "sh", "-c", script]);
        a.into_iter().map(String::from).collect()
    };
    let out = ctr.run(&strs(&exec(
        &[],
        "ve1",
        "echo from $(cat /proc/1/comm); echo err >&2; exit 7",
    )));
    assert_eq!(
        out.status.code(),
        Some(7),
        "task exec in a microVM: {}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "from init\n");
    assert_eq!(text(&out.stderr), "err\n");
    // A terminal: the guest's pty, its master handed to the shim.
    let out = on_a_terminal(ctr, &exec(&["-t"], "ve-tty", "tty; exit 6"));
    assert_eq!(
        out.status.code(),
        Some(6),
        "task exec -t in a microVM: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("/dev/pts/"),
        "{}",
        text(&out.stdout)
    );
    // An exec'd process killed by containerd: TERM reaches the guest.
    let mut waiting = ctr
        .command(&strs(&exec(
            &[],
            "ve-term",
            "trap 'exit 5' TERM; echo waiting; while :; do sleep 1; done",
        )))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 8];
    std::io::Read::read_exact(waiting.stdout.as_mut().unwrap(), &mut first).unwrap();
    assert_eq!(&first, b"waiting\n");
    let ps = ctr.ok(&["task", "ps", "v-life"]);
    assert!(
        ps.lines().count() >= 4,
        "the keeper, QEMU and the exec's relay: {ps}"
    );
    ctr.ok(&["task", "kill", "--exec-id", "ve-term", "v-life"]);
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "the exec'd process's TERM: {}",
        text(&out.stderr)
    );
    ctr.ok(&["task", "pause", "v-life"]);
    assert_eq!(ctr.status("v-life"), "PAUSED");
    ctr.ok(&["task", "resume", "v-life"]);
    let metrics = ctr.ok(&["task", "metrics", "v-life"]);
    assert!(
        metrics.contains("memory.usage_in_bytes"),
        "the VM's cgroup: {metrics}"
    );
    // The guest's shell sets its trap once it runs: TERM until it ends
    // (a guest boots in seconds under TCG, more on a busy host).
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let _ = ctr.run(&["task", "kill", "v-life"]);
        if ctr.status("v-life") == "STOPPED" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "v-life did not stop on TERM within 90 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = ctr.run(&["task", "rm", "v-life"]);
    assert!(
        text(&out.stderr).contains("exit code 9"),
        "the guest's exit code: {}",
        text(&out.stderr)
    );
    ctr.ok(&["container", "rm", "v-life"]);

    // A detached microVM listed, then deleted running.
    let mut detached = vec!["-d"];
    detached.extend(vm);
    ctr.ok(&strs(&run(&detached, "v-gone", &["sleep", "1000"])));
    assert_eq!(ctr.status("v-gone"), "RUNNING");
    ctr.ok(&["task", "rm", "-f", "v-gone"]);
    assert_eq!(ctr.task("v-gone"), None);
    ctr.ok(&["container", "rm", "v-gone"]);
}

// ---------------------------------------------------------------------------
// runc, on the same bundles

/// One runtime binary on a root of its own.
struct Rt {
    name: &'static str,
    bin: &'static str,
    root: PathBuf,
}

impl Rt {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.bin);
        c.arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        output(self.cmd(args))
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{} {args:?}: {}",
            self.name,
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    /// A file of ours for container `id`, beside the root.
    fn file(&self, id: &str, what: &str) -> PathBuf {
        self.root
            .parent()
            .unwrap()
            .join(format!("{}-{id}.{what}", self.name))
    }

    /// `create`, the init's stdout and stderr to a file beside the root
    /// (on a pipe, the init would hold it open): its exit code and stderr.
    fn try_create(&self, id: &str, bundle: &Path) -> (Option<i32>, String) {
        let err = self.file(id, "err");
        let mut c = self.cmd(&["create", "--bundle", bundle.to_str().unwrap(), "--pid-file"]);
        c.arg(self.file(id, "pid"))
            .arg(id)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&err).unwrap());
        let status = c.status().unwrap();
        (status.code(), fs::read_to_string(&err).unwrap())
    }

    /// `create` that must work: the init's PID.
    fn create(&self, id: &str, bundle: &Path) -> i32 {
        let (code, err) = self.try_create(id, bundle);
        assert_eq!(code, Some(0), "{} create {id}: {err}", self.name);
        fs::read_to_string(self.file(id, "pid"))
            .unwrap()
            .parse()
            .unwrap()
    }

    /// `run` of `bundle` as `id`, with a stray fd 9 of the caller's that
    /// must not reach the container: its output and exit code.
    fn run_bundle(&self, id: &str, bundle: &Path) -> Output {
        let mut c = self.cmd(&["run", "--bundle", bundle.to_str().unwrap(), id]);
        // SAFETY: dup2 between fork and exec is async-signal-safe; the new
        // fd has no close-on-exec flag, as a careless caller's would not.
        unsafe {
            c.pre_exec(|| {
                libc::dup2(2, 9);
                Ok(())
            })
        };
        output(c)
    }
}

/// isola-runtime and runc, each on a root of its own, and the bundles in
/// one temporary directory.
struct Pair {
    tmp: tempfile::TempDir,
    isola: Rt,
    runc: Rt,
}

fn pair() -> Option<Pair> {
    if !common::root_user()
        || !common::host_has(
            "runc at /usr/sbin/runc (scripts/setup --peers)",
            Path::new(RUNC).is_file(),
        )
    {
        return None;
    }
    oci::become_subreaper();
    let tmp = tempfile::Builder::new()
        .prefix("isola-test-peers-")
        .tempdir()
        .unwrap();
    let rt = |name, bin| Rt {
        name,
        bin,
        root: tmp.path().join(format!("{name}-root")),
    };
    Some(Pair {
        isola: rt("isola-runtime", RUNTIME),
        runc: rt("runc", RUNC),
        tmp,
    })
}

/// A test that fails midway leaves no container of either runtime.
impl Drop for Pair {
    fn drop(&mut self) {
        for rt in [&self.isola, &self.runc] {
            let Ok(entries) = fs::read_dir(&rt.root) else {
                continue;
            };
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = rt.cmd(&["delete", "--force", &id]).output();
            }
        }
    }
}

impl Pair {
    fn both(&self) -> [&Rt; 2] {
        [&self.isola, &self.runc]
    }

    /// A busybox bundle `name` from `isola-runtime spec`, running `args`,
    /// its config edited.
    fn bundle(&self, name: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> PathBuf {
        oci::busybox_bundle(&self.tmp.path().join(name), &APPLETS, args, |config| {
            // A cgroup of this bundle's, with no parent to leave behind (runc
            // removes only the leaf), and no clash with another test's or
            // runc's default `/<id>` or isola-runtime's `/isola-runtime/<id>`.
            config["linux"]["cgroupsPath"] =
                json!(format!("/isola-test-peers-{}-{name}", std::process::id()));
            edit(config);
        })
    }

    /// What `probe` prints in `bundle`, run by each runtime: (isola, runc).
    fn probe(&self, bundle: &Path, id: &str) -> (Probe, Probe) {
        let [a, b] = self.both().map(|rt| {
            let out = rt.run_bundle(id, bundle);
            assert!(
                out.status.success(),
                "{} run {id}: {}",
                rt.name,
                text(&out.stderr)
            );
            Probe::parse(&text(&out.stdout))
        });
        (a, b)
    }
}

#[test]
fn state_and_exit_codes_match_runc() {
    let Some(p) = pair() else { return };
    let sleeper = p.bundle("sleeper", &["sleep", "1000"], |_| {});
    let mut keys = Vec::new();
    for rt in p.both() {
        let pid = rt.create("life", &sleeper);
        let mut states = vec![rt.state("life")];
        rt.ok(&["start", "life"]);
        states.push(rt.state("life"));
        let ps: Value = serde_json::from_str(&rt.ok(&["ps", "--format", "json", "life"])).unwrap();
        assert_eq!(ps, json!([pid]), "{}: ps --format json", rt.name);
        rt.ok(&["pause", "life"]);
        states.push(rt.state("life"));
        rt.ok(&["resume", "life"]);
        rt.ok(&["kill", "life", "9"]);
        assert_eq!(reap(pid), 137, "{}", rt.name);
        states.push(rt.state("life"));
        let statuses: Vec<&str> = states
            .iter()
            .map(|s| s["status"].as_str().unwrap())
            .collect();
        assert_eq!(
            statuses,
            ["created", "running", "paused", "stopped"],
            "{}",
            rt.name
        );
        let pids: Vec<i64> = states.iter().map(|s| s["pid"].as_i64().unwrap()).collect();
        assert_eq!(
            pids,
            [pid as i64, pid as i64, pid as i64, 0],
            "{}: pid 0 once stopped",
            rt.name
        );
        for s in &states {
            assert_eq!(s["id"], "life", "{}", rt.name);
            assert_eq!(s["bundle"], sleeper.to_str().unwrap(), "{}", rt.name);
            assert_eq!(
                s["rootfs"],
                sleeper.join("rootfs").to_str().unwrap(),
                "{}",
                rt.name
            );
            assert_eq!(s["created"], states[0]["created"], "{}", rt.name);
            assert!(
                s["ociVersion"]
                    .as_str()
                    .is_some_and(|v| v.starts_with("1.")),
                "{s}"
            );
        }
        keys.push(
            states[0]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<BTreeSet<_>>(),
        );
        rt.ok(&["delete", "life"]);
    }
    assert_eq!(
        keys[0], keys[1],
        "state's keys: isola-runtime's, then runc's"
    );

    // Exit codes: the init's, as its reaper sees it and as `run` ends with.
    let zero = p.bundle("zero", &["true"], |_| {});
    let three = p.bundle("three", &["sh", "-c", "exit 3"], |_| {});
    let mut codes = Vec::new();
    for rt in p.both() {
        let mut got = Vec::new();
        for (id, bundle) in [("zero", &zero), ("three", &three)] {
            let pid = rt.create(id, bundle);
            rt.ok(&["start", id]);
            got.push(reap(pid));
            rt.ok(&["delete", id]);
            got.push(rt.run_bundle(id, bundle).status.code().unwrap_or(-1));
        }
        // `run` of a process killed by SIGKILL from a `kill` call.
        let mut c = rt.cmd(&["run", "--bundle", sleeper.to_str().unwrap(), "killed"]);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        let mut running = KillOnDrop(c.spawn().unwrap());
        eventually("the killed container running", || {
            rt.run(&["state", "killed"]).status.success()
                && rt.state("killed")["status"] == "running"
        });
        rt.ok(&["kill", "killed", "9"]);
        got.push(running.0.wait().unwrap().code().unwrap_or(-1));
        codes.push(got);
    }
    assert_eq!(
        codes[0],
        [0, 0, 3, 3, 137],
        "isola-runtime: create+start and run of 0, 3, killed"
    );
    assert_eq!(
        codes[0], codes[1],
        "exit codes: isola-runtime's, then runc's"
    );
}

/// A child killed if a test fails while it still runs.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn a_process_that_cannot_be_run_fails_create_as_with_runc() {
    let Some(p) = pair() else { return };
    let missing = p.bundle("missing", &["/nonexistent"], |_| {});
    // runc first: what is expected is what runc does.
    for rt in [&p.runc, &p.isola] {
        let (code, err) = rt.try_create("missing", &missing);
        assert_eq!(
            code,
            Some(1),
            "{}: create fails, as runc's does, before any start (containerd reports it as \
             \"OCI runtime create failed\"); stderr: {err}",
            rt.name,
        );
        assert!(err.contains("/nonexistent"), "{}: {err}", rt.name);
        assert!(
            !rt.run(&["state", "missing"]).status.success(),
            "{}: nothing left",
            rt.name
        );
    }
}

/// What the probe script prints, by field.
#[derive(Debug, Default)]
struct Probe {
    /// /proc/self/status's lines named in PROBE.
    status: Vec<String>,
    /// (mount point, fstype) of each mount, sorted.
    mounts: Vec<(String, String)>,
    /// Each mount point's options.
    options: Vec<(String, String)>,
    /// The rest, one `name=value` line each.
    rest: Vec<(String, String)>,
}

/// Prints each field of what the init sees; `$$` is the shell, which the
/// runtime exec'd as the container's process.
const PROBE: &str = r#"
grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/$$/status
echo ---
cat /proc/$$/mounts
echo ---
echo "hostname=$(hostname)"
echo "nofile soft=$(ulimit -n)"
echo "nofile hard=$(ulimit -Hn)"
echo "id=$(id)"
echo "cwd=$(pwd)"
echo "env=$(env | grep -v -E '^(PWD|SHLVL|_)=' | sort | tr '\n' ' ')"
printf 'fds='; for fd in /proc/$$/fd/*; do printf '%s ' "${fd##*/}"; done; echo
echo "oom_score_adj=$(cat /proc/$$/oom_score_adj)"
echo "mkdir=$(mkdir /tmp/made 2>&1 && rmdir /tmp/made && echo made)"
echo "rmdir=$(rmdir /nonexistent 2>&1)"
"#;

impl Probe {
    fn parse(out: &str) -> Probe {
        let mut parts = out.split("---\n");
        let mut p = Probe {
            status: parts
                .next()
                .unwrap_or("")
                .lines()
                .map(str::to_string)
                .collect(),
            ..Probe::default()
        };
        for line in parts.next().unwrap_or("").lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let [_, point, fstype, options, ..] = f[..] {
                p.mounts.push((point.into(), fstype.into()));
                p.options.push((point.into(), options.into()));
            }
        }
        p.mounts.sort();
        for line in parts.next().unwrap_or("").lines() {
            if let Some((k, v)) = line.split_once('=') {
                p.rest.push((k.into(), v.into()));
            }
        }
        p
    }

    fn get(&self, key: &str) -> &str {
        self.rest
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or("(not printed)")
    }

    /// Is the mount at `point` (the last one there) read-only?
    fn read_only(&self, point: &str) -> Option<bool> {
        self.options
            .iter()
            .rev()
            .find(|(p, _)| p == point)
            .map(|(_, o)| o.split(',').any(|o| o == "ro"))
    }

    /// Every field where `self` (isola-runtime's) and `runc` differ.
    fn differences(&self, runc: &Probe) -> Vec<String> {
        let mut diffs = Vec::new();
        let mut field = |name: &str, a: String, b: String| {
            if a != b {
                diffs.push(format!(
                    "{name}:\n  isola-runtime: {a}\n  runc:          {b}"
                ));
            }
        };
        for key in [
            "CapInh",
            "CapPrm",
            "CapEff",
            "CapBnd",
            "CapAmb",
            "NoNewPrivs",
            "Seccomp",
        ] {
            let line = |p: &Probe| {
                p.status
                    .iter()
                    .find(|l| l.starts_with(&format!("{key}:")))
                    .cloned()
                    .unwrap_or_default()
            };
            field(key, line(self), line(runc));
        }
        let only = |a: &Probe, b: &Probe| {
            a.mounts
                .iter()
                .filter(|m| !b.mounts.contains(m))
                .map(|(p, t)| format!("{p} ({t})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        field(
            "mounts (point, fstype) only one has",
            only(self, runc),
            only(runc, self),
        );
        for point in ["/sys", "/proc/sys"] {
            field(
                &format!("{point} read-only"),
                format!("{:?}", self.read_only(point)),
                format!("{:?}", runc.read_only(point)),
            );
        }
        for (key, _) in &runc.rest {
            field(key, self.get(key).into(), runc.get(key).into());
        }
        diffs
    }
}

/// The fields where the two differ, none expected.
fn assert_same(isola: &Probe, runc: &Probe) {
    let diffs = isola.differences(runc);
    assert!(
        diffs.is_empty(),
        "the process sees a different world under isola-runtime than under runc:\n{}",
        diffs.join("\n")
    );
}

#[test]
fn the_process_sees_what_it_sees_under_runc() {
    let Some(p) = pair() else { return };
    // The spec's defaults, as root: caps, no seccomp, masked and
    // read-only paths, the default mounts, RLIMIT_NOFILE 1024.
    let b = p.bundle("default", &["sh", "-c", PROBE], |c| {
        c["hostname"] = json!("peers");
    });
    let (isola, runc) = p.probe(&b, "default");
    assert_eq!(runc.get("hostname"), "peers");
    assert_eq!(runc.get("nofile soft"), "1024");
    assert!(
        runc.status.contains(&"Seccomp:\t0".to_string()),
        "{:?}",
        runc.status
    );
    assert_eq!(runc.read_only("/sys"), Some(true));
    assert_eq!(runc.read_only("/proc/sys"), Some(true));
    // 3 is the directory the shell's glob reads; the caller's fd 9 stays out.
    assert_eq!(runc.get("fds"), "0 1 2 3 ");
    assert_same(&isola, &runc);
}

#[test]
fn a_user_with_groups_cwd_env_and_seccomp_match_runc() {
    let Some(p) = pair() else { return };
    // A profile that lets everything through but mkdir (EPERM by the
    // action's default errno) and rmdir (ENOSYS, given).
    let b = p.bundle("user", &["sh", "-c", PROBE], |c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20]});
        c["process"]["cwd"] = json!("/tmp");
        c["process"]["env"] = json!(["PATH=/bin", "WITH_SPACE=a b", "EMPTY="]);
        c["process"]["oomScoreAdj"] = json!(100);
        // With the inheritable set, the ambient set can be raised: a
        // non-root user keeps the caps through exec.
        c["process"]["capabilities"]["inheritable"] =
            c["process"]["capabilities"]["ambient"].clone();
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            ],
        });
    });
    // runc takes HOME, absent from the env, from the image's passwd.
    fs::write(
        b.join("rootfs/etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\n",
    )
    .unwrap();
    // /tmp is the user's to write in, so only the profile stops mkdir.
    fs::set_permissions(
        b.join("rootfs/tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let (isola, runc) = p.probe(&b, "user");
    assert_eq!(runc.get("id"), "uid=1000(u) gid=1000 groups=10,20");
    assert!(
        runc.get("env").contains("HOME=/home/u "),
        "{}",
        runc.get("env")
    );
    assert_eq!(runc.get("cwd"), "/tmp");
    assert!(
        runc.status.contains(&"Seccomp:\t2".to_string()),
        "{:?}",
        runc.status
    );
    assert!(
        runc.get("mkdir").contains("Operation not permitted"),
        "{}",
        runc.get("mkdir")
    );
    assert!(
        runc.status
            .contains(&"CapAmb:\t0000000020000420".to_string()),
        "{:?}",
        runc.status
    );
    assert_same(&isola, &runc);
}

#[test]
fn containerd_reads_the_runtime_entries_docs_runtime_md_gives() {
    if !common::tool("containerd") {
        return;
    }
    // The CRI runtime entries exactly as the documentation shows them.
    let doc = include_str!("../docs/runtime.md");
    let start = doc
        .find("```toml\n")
        .expect("docs/runtime.md has a toml block")
        + 8;
    let end = start + doc[start..].find("```").unwrap();
    let tmp = tempfile::Builder::new()
        .prefix("isola-test-cri-")
        .tempdir()
        .unwrap();
    let config = tmp.path().join("config.toml");
    fs::write(&config, format!("version = 2\n{}", &doc[start..end])).unwrap();
    let out = Command::new("containerd")
        .arg("--config")
        .arg(&config)
        .args(["config", "dump"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dump = text(&out.stdout);
    for runtime in ["isola", "isola-vm"] {
        let table = format!(
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{runtime}.options]"
        );
        let at = dump
            .find(&table)
            .unwrap_or_else(|| panic!("{runtime}: {dump}"));
        let options: String = dump[at..]
            .lines()
            .skip(1)
            .take(2)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            options.contains("BinaryName = \"/usr/local/bin/isola-runtime\"")
                && options.contains("SystemdCgroup = false"),
            "{runtime}: {options}"
        );
    }
    assert!(
        dump.contains("pod_annotations = [\"io.isola.*\"]"),
        "{dump}"
    );
}
