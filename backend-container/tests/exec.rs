//! `Sandbox::exec` on real containers (needs root): the process joins the
//! first one's namespaces, cgroup and confinement, runs as the user asked
//! or on a terminal of the sandbox's, takes signals through its handle,
//! dies with the sandbox, and leaves nothing behind. What it sees is written to a bind-mounted temporary directory.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use isola_container::ContainerBackend;
use isola_core::backend::{Backend, BackendError, ExecSpec, ExitStatus, RunContext, Sandbox};
use isola_core::chain::chain;
use isola_core::image::{default_image, ImageStore};
use isola_core::spec::{Mount, MountSource, Process, RunSpec, User};
use isola_core::Root;
use nix::sys::signal::Signal;

const NAMESPACES: [&str; 6] = ["pid", "mnt", "uts", "ipc", "net", "cgroup"];

struct Host {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    layers: Vec<PathBuf>,
    digest: String,
    /// Bound at /out in every sandbox.
    out: PathBuf,
    backend: ContainerBackend,
}

impl Host {
    fn new() -> Host {
        let tmp = tempfile::Builder::new()
            .prefix("isola-exec-test-")
            .tempdir()
            .expect("temp root");
        let root = tmp.path().to_path_buf();
        let store = ImageStore::open(Root::new(&root)).expect("store");
        let image = default_image::ensure(&store).expect("the default image (static busybox)");
        let out = root.join("out");
        fs::create_dir(&out).expect("out dir");
        Host {
            layers: store.layer_dirs(&image),
            digest: image.digest.to_string(),
            _tmp: tmp,
            root,
            out,
            backend: ContainerBackend::default(),
        }
    }

    /// A created sandbox running `args`, and its ID.
    fn create(&self, args: &[&str]) -> (Box<dyn Sandbox>, String) {
        let id = isola_core::id::new_id().expect("id");
        let mut spec = RunSpec::new(
            &id,
            "isola/busybox",
            &self.digest,
            self.layers.clone(),
            args.iter().map(|a| a.to_string()).collect(),
        );
        spec.mounts.push(Mount {
            source: MountSource::Bind(self.out.clone()),
            target: "/out".into(),
            read_only: false,
        });
        let instance_dir = self.root.join("instances").join(&id);
        fs::create_dir_all(&instance_dir).expect("instance dir");
        let ctx = RunContext {
            instance_dir,
            state_dir: self.root.clone(),
            explain: Default::default(),
            idle: Default::default(),
            ephemeral: false,
            park: false,
            clock: Instant::now(),
        };
        self.backend.check(&spec).expect("check");
        let sandbox = self.backend.create(&spec, &ctx).expect("create");
        (sandbox, id)
    }

    fn read(&self, name: &str) -> String {
        fs::read_to_string(self.out.join(name)).unwrap_or_else(|e| panic!("/out/{name}: {e}"))
    }
}

fn shell(script: &str) -> Process {
    Process {
        args: vec!["sh".into(), "-c".into(), script.into()],
        env: vec![
            format!("PATH={}", isola_core::spec::DEFAULT_PATH),
            "GREETING=hello from exec".into(),
        ],
        cwd: "/".into(),
        user: User::default(),
        tty: false,
        stdin: false,
    }
}

/// The sandbox's cgroup, as the host's hierarchy names it.
fn cgroup(id: &str) -> isola_container::cgroup::Cgroup {
    isola_container::cgroup::detect()
        .and_then(|h| h.open(id))
        .expect("the sandbox's cgroup")
}

/// `/proc/<pid>/ns/<name>` for each namespace.
fn namespaces(proc_dir: &Path) -> BTreeMap<String, String> {
    NAMESPACES
        .iter()
        .map(|n| {
            let link = fs::read_link(proc_dir.join("ns").join(n)).expect("ns link");
            (n.to_string(), link.to_string_lossy().into_owned())
        })
        .collect()
}

/// The lines of a /proc status file that say how a process is confined.
fn confinement(status: &str) -> Vec<String> {
    status
        .lines()
        .filter(|l| {
            ["CapEff:", "CapPrm:", "CapBnd:", "NoNewPrivs:", "Seccomp:"]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .map(str::to_owned)
        .collect()
}

/// One test, its sandboxes one after the other: isola clones from the
/// calling thread, and the fewer threads run meanwhile the better.
#[test]
fn exec_in_a_container() {
    if !isola_test_support::root_user() {
        return;
    }
    let host = Host::new();
    // The harness has threads of its own, which do not block SIGCHLD:
    // isola sees its children end on their pidfds.
    let _watchdog = Watchdog::start(Duration::from_secs(240));
    exec_joins_the_sandbox_and_leaves_nothing_behind(&host);
    an_exec_dies_with_the_first_process_and_wait_still_works(&host);
}

/// Ends the test if it hangs (a process isola waits for that never ends
/// would otherwise hold it until CI's own limit).
struct Watchdog {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(limit: Duration) -> Watchdog {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    if started.elapsed() > limit {
                        eprintln!("the exec test hangs; ending it");
                        std::process::abort();
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        });
        Watchdog {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn exec_joins_the_sandbox_and_leaves_nothing_behind(host: &Host) {
    let (mut sandbox, id) = host.create(&["sleep", "30"]);

    assert!(matches!(
        run(&mut sandbox, shell("exit 0")),
        Err(BackendError::State(_))
    ));
    sandbox.start().expect("start");
    // A terminal of the sandbox's own devpts, whose master comes back.
    let tty = Process {
        tty: true,
        ..shell("test -t 0 && test -t 1 && tty | grep -qx '/dev/pts/[0-9]*'")
    };
    let mut execd = sandbox.exec(&exec_spec(tty)).expect("exec -t");
    let master = execd.take_terminal().expect("the terminal's master end");
    assert_eq!(execd.wait().expect("wait"), ExitStatus::Exited(0));
    drop(master);

    // What the process sees, from inside.
    let script = "for n in pid mnt uts ipc net cgroup; do echo $n $(readlink /proc/self/ns/$n); done > /out/ns
        cat /proc/self/cgroup > /out/cgroup; cat /proc/1/cgroup > /out/cgroup-1
        cat /proc/self/status > /out/status
        pwd > /out/pwd; hostname > /out/hostname; echo \"$GREETING\" > /out/env
        exit 3";
    let in_bin = Process {
        cwd: "/bin".into(),
        ..shell(script)
    };
    assert_eq!(
        run(&mut sandbox, in_bin).expect("exec"),
        ExitStatus::Exited(3)
    );

    // Only the first process is left in the cgroup now: the host sees it.
    let first = cgroup(&id).pids();
    assert_eq!(first.len(), 1, "the cgroup holds {first:?}");
    let first = PathBuf::from(format!("/proc/{}", first[0]));
    let seen: BTreeMap<String, String> = host
        .read("ns")
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, link)| (n.to_owned(), link.to_owned()))
        .collect();
    assert_eq!(seen, namespaces(&first), "the first process's namespaces");
    let ours = namespaces(Path::new("/proc/self"));
    for n in NAMESPACES {
        assert_ne!(
            seen[n], ours[n],
            "{n}: the host's namespace, not the sandbox's"
        );
    }
    // In the sandbox's cgroup, which is its cgroup namespace's root.
    let cgroups = host.read("cgroup");
    assert_eq!(cgroups, host.read("cgroup-1"));
    assert!(
        cgroups.lines().all(|l| l.ends_with(":/")),
        "outside the sandbox's cgroup: {cgroups}"
    );
    let status = host.read("status");
    let first_status = fs::read_to_string(first.join("status")).expect("status");
    assert_eq!(confinement(&status), confinement(&first_status));
    assert!(status.lines().any(|l| l == "Seccomp:\t2"), "{status}");
    assert_eq!(host.read("pwd"), "/bin\n");
    assert_eq!(host.read("hostname"), format!("{id}\n"));
    assert_eq!(host.read("env"), "hello from exec\n");

    // Another user, as asked.
    let user = Process {
        user: User {
            uid: 1000,
            gid: 1001,
            groups: vec![2000],
        },
        ..shell("test \"$(id -u) $(id -g) $(id -G)\" = '1000 1001 1001 2000'")
    };
    assert_eq!(
        run(&mut sandbox, user).expect("exec"),
        ExitStatus::Exited(0)
    );

    // The shells' codes for a program that is not there; a working
    // directory that is not there is refused, and not made.
    let missing = Process {
        args: vec!["no-such-program".into()],
        ..shell("")
    };
    assert_eq!(
        run(&mut sandbox, missing).expect("exec"),
        ExitStatus::Exited(127)
    );
    let nowhere = Process {
        cwd: "/no/such/dir".into(),
        ..shell("exit 0")
    };
    match run(&mut sandbox, nowhere) {
        Err(e @ BackendError::Step { .. }) => {
            let chain = chain(&e);
            assert!(chain.contains("no such file"), "{chain}");
        }
        other => panic!("a missing working directory gave {other:?}"),
    }
    let instance = host.root.join("instances").join(&id);
    assert!(!instance.join("upper/no").exists());

    // Signals reach it through its handle.
    let ready = host.out.join("ready");
    let trapped = shell(
        "trap 'exit 42' USR1; touch /out/ready
         for i in $(seq 300); do sleep 0.1; done; exit 1",
    );
    let execd = sandbox.exec(&exec_spec(trapped)).expect("exec");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The sandbox's cgroup holds the exec'd processes too.
    let members = cgroup(&id).pids().len();
    execd.signal(Signal::SIGUSR1).expect("signal");
    assert_eq!(execd.wait().expect("wait"), ExitStatus::Exited(42));
    assert!(members >= 2, "the cgroup held {members} processes");

    sandbox.signal(Signal::SIGKILL).expect("signal");
    let outcome = sandbox.wait().expect("wait");
    assert_eq!(outcome.status, ExitStatus::Signaled(libc::SIGKILL));
    assert!(matches!(
        run(&mut sandbox, shell("exit 0")),
        Err(BackendError::State(_))
    ));
    let paths = cgroup(&id).paths();
    sandbox.teardown().expect("teardown");
    for p in &paths {
        assert!(!p.exists(), "{} is left", p.display());
    }
    assert!(!first.exists(), "the first process is left");
}

fn an_exec_dies_with_the_first_process_and_wait_still_works(host: &Host) {
    let (mut sandbox, id) = host.create(&["sleep", "3"]);
    sandbox.start().expect("start");
    let started = Instant::now();
    let status = run(&mut sandbox, shell("sleep 60")).expect("exec");
    assert_eq!(status, ExitStatus::Signaled(libc::SIGKILL));
    assert!(started.elapsed() < Duration::from_secs(30));
    // Exited, perhaps not reaped yet: refused either way, once it is gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match run(&mut sandbox, shell("exit 0")) {
            Err(BackendError::State(_)) => break,
            other if Instant::now() < deadline => {
                eprintln!("while the first process exits: {other:?}");
                std::thread::sleep(Duration::from_millis(50));
            }
            other => panic!("exec after the first process exited gave {other:?}"),
        }
    }
    let outcome = sandbox.wait().expect("wait");
    assert_eq!(outcome.status, ExitStatus::Exited(0));
    let paths = cgroup(&id).paths();
    sandbox.teardown().expect("teardown");
    for p in &paths {
        assert!(!p.exists(), "{} is left", p.display());
    }
}

fn exec_spec(process: Process) -> ExecSpec<'static> {
    ExecSpec {
        process,
        privileged: false,
        stdio: None,
    }
}

/// `process` started in the sandbox, and its end.
fn run(sandbox: &mut Box<dyn Sandbox>, process: Process) -> Result<ExitStatus, BackendError> {
    sandbox.exec(&exec_spec(process))?.wait()
}
