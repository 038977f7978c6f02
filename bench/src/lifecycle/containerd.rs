//! containerd as the benchmark runs it: a daemon of our own on a scratch
//! root, state and unix socket (no TCP, no CRI plugin), driven with `ctr`
//! in a namespace of its own, and stopped, by its PID, at the end. Each
//! container runs on the flattened image (`ctr run --rootfs`) through
//! containerd-shim-runc-v2 and runc.
//!
//! The daemon runs in a mount namespace of its own with a tmpfs on /run:
//! containerd-shim-runc-v2 puts its socket in /run/containerd/s whatever
//! the daemon's configuration says, and that way nothing of it reaches
//! the host's /run, even when two benchmarks run at once.
//!
//! tests/runtime_peers.rs runs it too, with images of its own and
//! isola-runtime as ctr's `--runc-binary`.

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::cgroups;

/// How long containerd may take to listen, and to stop once told.
const START_TIMEOUT: Duration = Duration::from_secs(15);
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long a shim may take to exit once its task is deleted.
const SHIM_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    #[error("writing containerd's configuration in {}", .0.display())]
    Config(PathBuf, #[source] io::Error),
    #[error("starting containerd")]
    Spawn(#[source] io::Error),
    #[error("containerd ended before it listened: {0}")]
    Ended(String),
    #[error("containerd did not listen on {} within {} s", .0.display(), START_TIMEOUT.as_secs())]
    NotListening(PathBuf),
}

pub struct Containerd {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
    namespace: String,
    /// The cgroup every container goes under, in every hierarchy.
    cgroup: String,
    pub label: String,
}

impl Containerd {
    /// containerd on `dir` (made if need be), listening once this returns.
    pub fn start(dir: &Path) -> Result<Containerd, ContainerdError> {
        Containerd::start_with_env(dir, &[])
    }

    /// [`Containerd::start`] with variables for the daemon, which its
    /// shims and their runtimes inherit (isola-runtime's ISOLA_INIT).
    pub fn start_with_env(
        dir: &Path,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Result<Containerd, ContainerdError> {
        let tag = format!("isola-bench-{}", std::process::id());
        let socket = dir.join("containerd.sock");
        let config = dir.join("config.toml");
        let write = || -> io::Result<()> {
            fs::create_dir_all(dir.join("logs"))?;
            fs::create_dir_all(dir.join("fifo"))?;
            fs::write(&config, config_toml(dir, &socket))
        };
        write().map_err(|e| ContainerdError::Config(dir.to_path_buf(), e))?;
        let log = fs::File::create(dir.join("containerd.log")).map_err(ContainerdError::Spawn)?;
        let mut cmd = Command::new("containerd");
        cmd.envs(env.iter().copied());
        cmd.arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: between fork and exec only setsid, unshare and mount,
        // async-signal-safe system calls on static strings.
        unsafe { cmd.pre_exec(private_run) };
        let child = cmd.spawn().map_err(ContainerdError::Spawn)?;
        let mut me = Containerd {
            child,
            dir: dir.to_path_buf(),
            socket,
            namespace: tag.clone(),
            cgroup: format!("{tag}-ctr"),
            label: format!("containerd {} (ctr run -d)", version()),
        };
        me.wait_listening()?;
        Ok(me)
    }

    fn wait_listening(&mut self) -> Result<(), ContainerdError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                let log = fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default();
                let last = log.lines().rev().find(|l| l.contains("level=error"));
                return Err(ContainerdError::Ended(
                    last.or(log.lines().last()).unwrap_or("no word").to_string(),
                ));
            }
            if self.socket.exists() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ContainerdError::NotListening(self.socket.clone()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `ctr` on our daemon and namespace, with `args`.
    pub fn ctr(&self, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "ctr".into(),
            "--address".into(),
            self.socket.display().to_string(),
            "--namespace".into(),
            self.namespace.clone(),
        ];
        v.extend(args.iter().map(|a| a.to_string()));
        v
    }

    /// Our namespace: containers that `ctr run` puts in no cgroup of the
    /// caller's go under `/<namespace>/<id>`, in every hierarchy.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Where ctr must make the fifos of a task's stdio (its `--fifo-dir`):
    /// ctr's default, /run/containerd/fifo, is the host's /run for ctr
    /// but our private tmpfs for the shim, which would not find them.
    pub fn fifo_dir(&self) -> PathBuf {
        self.dir.join("fifo")
    }

    /// `ctr image import` of the OCI archive `archive` (a tar of an OCI
    /// layout). Without `base`, the image is named by its index's
    /// ref.name; with it, `base:TAG`, TAG being that ref name (an index
    /// that names only a tag, as umoci's does, needs the name given).
    pub fn import(&self, archive: &Path, base: Option<&str>) -> Vec<String> {
        let archive = archive.display().to_string();
        match base {
            Some(name) => self.ctr(&["image", "import", "--base-name", name, &archive]),
            None => self.ctr(&["image", "import", &archive]),
        }
    }

    /// `ctr run -d` of `cmd` on `rootfs` as container `id`: its output
    /// logged to a file by the shim, as isola's and podman's are.
    pub fn run_d(&self, id: &str, rootfs: &Path, cmd: &[&str]) -> Vec<String> {
        let log = format!("file://{}", self.dir.join("logs").join(id).display());
        let runc_root = self.dir.join("runc").display().to_string();
        let cgroup = format!("/{}/{id}", self.cgroup);
        let rootfs = rootfs.display().to_string();
        let mut args = vec![
            "run",
            "-d",
            "--log-uri",
            &log,
            "--runc-root",
            &runc_root,
            "--cgroup",
            &cgroup,
            "--rootfs",
            &rootfs,
            id,
        ];
        args.extend(cmd);
        self.ctr(&args)
    }

    /// `ctr run --rm` of `cmd` in `image` as container `id`, with
    /// `runtime` as the shim's runc binary, attached until it exits. Its
    /// stdio fifos are made in our directory: ctr makes them, the shim
    /// opens them, and the shim's /run is not ctr's.
    pub fn run_rm(&self, id: &str, image: &str, runtime: &Path, cmd: &[&str]) -> Vec<String> {
        let fifos = self.dir.join("fifo").display().to_string();
        let runc_root = self.dir.join("runc").display().to_string();
        let cgroup = format!("/{}/{id}", self.cgroup);
        let runtime = runtime.display().to_string();
        let mut args = vec![
            "run",
            "--rm",
            "--fifo-dir",
            &fifos,
            "--runc-binary",
            &runtime,
            "--runc-root",
            &runc_root,
            "--cgroup",
            &cgroup,
            image,
            id,
        ];
        args.extend(cmd);
        self.ctr(&args)
    }

    /// Killing the task and removing it, then the container.
    pub fn rm(&self, id: &str) -> Vec<Vec<String>> {
        vec![
            self.ctr(&["task", "rm", "-f", id]),
            self.ctr(&["container", "rm", id]),
        ]
    }

    /// The PID of container `id`'s containerd-shim-runc-v2: the parent of
    /// the task's first process, whose PID the shim records in its bundle.
    pub fn shim_pid(&self, id: &str) -> Option<u32> {
        let file = self
            .dir
            .join("state/io.containerd.runtime.v2.task")
            .join(&self.namespace)
            .join(id)
            .join("init.pid");
        let task: u32 = fs::read_to_string(file).ok()?.trim().parse().ok()?;
        crate::procfs::ppid(task)
    }

    /// What `ctr ARGS -q` lists in our namespace.
    fn list(&self, args: &[&str]) -> Vec<String> {
        let ls = self.ctr(args);
        let Ok(out) = Command::new(&ls[0])
            .args(&ls[1..])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
        else {
            return Vec::new();
        };
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    /// Every container of our namespace removed, whatever its state (a
    /// paused task is resumed first: a frozen process cannot die), then
    /// every image, then the namespace itself.
    fn sweep(&self) {
        for id in self.list(&["container", "ls", "-q"]) {
            super::quietly(&self.ctr(&["task", "resume", &id]), &[]);
            for argv in self.rm(&id) {
                super::quietly(&argv, &[]);
            }
        }
        let images = self.list(&["image", "ls", "-q"]);
        if !images.is_empty() {
            // --sync: their content is collected before the namespace
            // goes, which it refuses to while any is left.
            let mut rm = vec!["image", "rm", "--sync"];
            rm.extend(images.iter().map(String::as_str));
            super::quietly(&self.ctr(&rm), &[]);
        }
        let mut rm = self.ctr(&["namespace", "rm"]);
        // The namespace is the argument here, not ctr's --namespace.
        rm.push(self.namespace.clone());
        super::quietly(&rm, &[]);
    }

    /// The processes whose arguments name our socket: shims (`-address
    /// SOCK`) and any ctr of ours still running.
    fn naming_our_socket(&self) -> Vec<u32> {
        let sock = self.socket.as_os_str().as_encoded_bytes();
        let Ok(dir) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == sock))
            })
            .collect()
    }

    /// What a failed sweep may have left once the daemon is gone: the
    /// containers' processes (killed through their cgroups), then the
    /// shims, given a moment to exit on their own first.
    fn kill_strays(&self) {
        cgroups::kill(&self.namespace);
        cgroups::kill(&self.cgroup);
        let deadline = Instant::now() + SHIM_GRACE;
        while !self.naming_our_socket().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        for pid in self.naming_our_socket() {
            // SAFETY: kill only sends a signal; the process names our
            // socket, so it is one of ours.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

impl Drop for Containerd {
    /// Containers and images removed, the daemon stopped by its PID
    /// (SIGTERM, SIGKILL after a grace), whatever its containers left
    /// killed, its cgroups removed: nothing of ours is left on the host
    /// (its /run went with its mount namespace).
    fn drop(&mut self) {
        self.sweep();
        // SAFETY: kill only sends a signal to our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.kill_strays();
        // runc (and isola-runtime) remove a container's own cgroup, not
        // the parent ctr named (--cgroup) or made (/<namespace>).
        cgroups::remove(&self.cgroup);
        cgroups::remove(&self.namespace);
    }
}

/// In the child before it becomes containerd: a session of its own (a
/// Ctrl-C at the terminal is the benchmark's to handle, which stops
/// containerd after its containers), a mount namespace of its own,
/// nothing of it propagating to the host's, and a fresh tmpfs on /run.
/// Any step that fails fails the start: the tmpfs is never mounted where
/// the host would see it. Every fd above 2 is marked close-on-exec:
/// containerd passes whatever it inherits on to each shim and runtime
/// (and a test harness's pipe held by a shim would keep the harness
/// waiting); close-on-exec rather than closed, so that Command still
/// hears of a failed exec through its own pipe.
fn private_run() -> io::Result<()> {
    let check = |rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    // SAFETY: plain system calls with static NUL-terminated strings.
    unsafe {
        // A kernel older than 5.11 refuses the flag: then the fds leak,
        // as they did before, which is no reason to fail the start.
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        if libc::setsid() < 0 {
            return Err(io::Error::last_os_error());
        }
        check(libc::unshare(libc::CLONE_NEWNS))?;
        check(libc::mount(
            c"none".as_ptr(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))?;
        check(libc::mount(
            c"tmpfs".as_ptr(),
            c"/run".as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            c"mode=755".as_ptr().cast(),
        ))
    }
}

/// `version` of `containerd --version` ("containerd URL 1.6.20~ds1 ...").
fn version() -> String {
    Command::new("containerd")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .nth(2)
                .map(str::to_string)
        })
        .unwrap_or_else(|| "?".into())
}

/// The daemon's configuration: everything under `dir`, unix sockets only,
/// and none of the plugins a benchmark does not use (CRI, the /opt
/// installer, snapshotters for other filesystems, tracing).
fn config_toml(dir: &Path, socket: &Path) -> String {
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.internal.v1.opt",
  "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""
"#,
        root = dir.join("root").display(),
        state = dir.join("state").display(),
        socket = socket.display(),
    )
}
