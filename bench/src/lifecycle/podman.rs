//! podman as the benchmark runs it: with a containers.conf and a
//! storage.conf of its own (through CONTAINERS_CONF and
//! CONTAINERS_STORAGE_CONF), so that its database, storage, locks, events
//! and cgroups are ours and go at the end, and with runc as its runtime,
//! under conmon. Each container runs on the flattened image (`--rootfs`).
//!
//! Why a configuration of our own and not the host's: podman asks runc to
//! raise RLIMIT_NOFILE for the container, which root without
//! CAP_SYS_RESOURCE may not do ("error setting rlimit type 7: operation
//! not permitted"); `default_ulimits = []` keeps the host's limits, as
//! isola and the other peers do.

use std::fs;
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};

use super::cgroups;

pub struct Podman {
    env: Vec<(String, String)>,
    /// The cgroup parent of every container (and of conmon), in every
    /// hierarchy.
    cgroup: String,
    pub label: String,
}

impl Podman {
    /// podman configured to keep everything under `dir` (made if need be).
    pub fn new(dir: &Path) -> io::Result<Podman> {
        fs::create_dir_all(dir)?;
        let conf = dir.join("containers.conf");
        let storage = dir.join("storage.conf");
        fs::write(&conf, containers_conf(dir))?;
        fs::write(&storage, storage_conf(dir))?;
        Ok(Podman {
            env: vec![
                ("CONTAINERS_CONF".into(), conf.display().to_string()),
                (
                    "CONTAINERS_STORAGE_CONF".into(),
                    storage.display().to_string(),
                ),
            ],
            cgroup: format!("isola-bench-{}-podman", std::process::id()),
            label: format!(
                "podman {} (conmon {}, runc)",
                version("podman"),
                version("conmon")
            ),
        })
    }

    /// What every podman command needs in its environment.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// `podman run -d` of `cmd` on `rootfs` as `name`, without a network
    /// (a namespace with only lo, as isola's default).
    pub fn run_d(&self, name: &str, rootfs: &Path, cmd: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = [
            "podman",
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "none",
            "--cgroup-parent",
            &format!("/{}", self.cgroup),
            "--rootfs",
            &rootfs.display().to_string(),
        ]
        .map(String::from)
        .to_vec();
        v.extend(cmd.iter().map(|c| c.to_string()));
        v
    }

    /// `podman run -d` of `cmd` on `rootfs` as `name` with `--network
    /// network` (none, or bridge: podman's default network), then `podman
    /// rm -f` of it: a start and an end, as one command line that carries
    /// podman's environment. Not `podman run --rm`: on this kind of host
    /// it waits out conmon's 20 s timeout for the exit file.
    pub fn run_and_remove(
        &self,
        name: &str,
        network: &str,
        rootfs: &Path,
        cmd: &[&str],
    ) -> Vec<String> {
        let mut run = self.run_d(name, rootfs, cmd);
        if let Some(i) = run.iter().position(|a| a == "--network") {
            run[i + 1] = network.to_string();
        }
        let script = format!(
            "{} >/dev/null && {} >/dev/null",
            run.join(" "),
            self.rm(name).join(" ")
        );
        std::iter::once("env".to_string())
            .chain(self.env.iter().map(|(k, v)| format!("{k}={v}")))
            .chain(["sh".into(), "-c".into(), script])
            .collect()
    }

    /// `podman rm -f` without the stop timeout: it kills at once, as
    /// `isola rm -f` does.
    pub fn rm(&self, name: &str) -> Vec<String> {
        ["podman", "rm", "-f", "-t", "0", name]
            .map(String::from)
            .to_vec()
    }

    /// `podman inspect`'s idea of container `name`'s conmon PID.
    pub fn conmon_pid_argv(&self, name: &str) -> Vec<String> {
        [
            "podman",
            "inspect",
            "--format",
            "{{.State.ConmonPid}}",
            name,
        ]
        .map(String::from)
        .to_vec()
    }
}

impl Drop for Podman {
    /// Every container of our storage removed, then the cgroups under our
    /// parent.
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-a", "-t", "0"])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        cgroups::remove(&self.cgroup);
    }
}

/// The first version-looking word of `PROGRAM --version`.
pub(crate) fn version(program: &str) -> String {
    Command::new(program)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "?".into())
}

pub(crate) fn containers_conf(dir: &Path) -> String {
    let p = |name: &str| dir.join(name).display().to_string();
    format!(
        r#"# isola bench's own: everything under {dir}, removed at the end.
[containers]
# The host's limits: raising RLIMIT_NOFILE needs CAP_SYS_RESOURCE.
default_ulimits = []
log_driver = "k8s-file"

[engine]
runtime = "runc"
# No systemd here, and nothing in the journal.
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{events}"
# File locks in tmp_dir, not a shared-memory segment in /dev/shm.
lock_type = "file"
tmp_dir = "{tmp}"
static_dir = "{statics}"
volume_path = "{volumes}"

[network]
network_config_dir = "{net}"
"#,
        dir = dir.display(),
        events = p("events.log"),
        tmp = p("tmp"),
        statics = p("static"),
        volumes = p("volumes"),
        net = p("net"),
    )
}

/// vfs: the containers run on a directory (`--rootfs`), so no layer is
/// ever mounted.
fn storage_conf(dir: &Path) -> String {
    format!(
        "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
        dir.join("storage").display(),
        dir.join("run").display()
    )
}
