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
        let tag = format!("isola-bench-{}", std::process::id());
        let socket = dir.join("containerd.sock");
        let config = dir.join("config.toml");
        let write = || -> io::Result<()> {
            fs::create_dir_all(dir.join("logs"))?;
            fs::write(&config, config_toml(dir, &socket))
        };
        write().map_err(|e| ContainerdError::Config(dir.to_path_buf(), e))?;
        let log = fs::File::create(dir.join("containerd.log")).map_err(ContainerdError::Spawn)?;
        let mut cmd = Command::new("containerd");
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

    /// `ctr image import` of the OCI archive (a tar of an OCI layout) at
    /// `archive`: the image named by its index's ref.name, unpacked.
    pub fn import(&self, archive: &Path) -> Vec<String> {
        self.ctr(&["image", "import", &archive.display().to_string()])
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

    /// Every container of our namespace removed, whatever its state.
    fn sweep(&self) {
        let ls = self.ctr(&["container", "ls", "-q"]);
        let Ok(out) = Command::new(&ls[0])
            .args(&ls[1..])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
        else {
            return;
        };
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            for argv in self.rm(id) {
                super::quietly(&argv, &[]);
            }
        }
    }
}

impl Drop for Containerd {
    /// Containers removed, the daemon stopped by its PID (SIGTERM, SIGKILL
    /// after a grace), its cgroups removed: nothing of ours is left on the
    /// host (its /run went with its mount namespace).
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
        cgroups::remove(&self.cgroup);
    }
}

/// In the child before it becomes containerd: a session of its own (a
/// Ctrl-C at the terminal is the benchmark's to handle, which stops
/// containerd after its containers), a mount namespace of its own,
/// nothing of it propagating to the host's, and a fresh tmpfs on /run.
/// Any step that fails fails the start: the tmpfs is never mounted where
/// the host would see it.
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
