//! The run spec: a backend-neutral description of one sandbox (what to run,
//! as whom, with which limits, mounts and network). The frontend builds it
//! from the image config and the flags; each backend turns it into a sandbox.

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Instance ID: names the cgroup, the instance dir, the default hostname.
    pub id: String,
    /// The image by name and digest, and its unpacked layers, bottom first.
    pub image: String,
    pub image_digest: String,
    pub layers: Vec<PathBuf>,
    pub process: Process,
    pub hostname: String,
    pub limits: Limits,
    pub mounts: Vec<Mount>,
    pub network: Network,
    /// Mount the root filesystem read-only.
    pub read_only: bool,
    pub security: Security,
}

#[derive(Debug, Clone)]
pub struct Process {
    pub args: Vec<String>,
    /// `KEY=VALUE`, image config first, then the flags (later wins).
    pub env: Vec<String>,
    pub cwd: String,
    pub user: User,
    /// Give the workload a pseudo-terminal.
    pub tty: bool,
    /// Forward the caller's stdin (otherwise the workload reads /dev/null).
    pub stdin: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (from the image's /etc/group).
    pub groups: Vec<u32>,
}

/// Resource limits. `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Limits {
    /// Bytes of memory (swap included where the host can limit it).
    pub memory: Option<u64>,
    /// CPUs' worth of time per period, e.g. 0.5.
    pub cpus: Option<f64>,
    /// Most tasks (processes and threads) at once.
    pub pids: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    pub source: MountSource,
    /// Absolute path inside the sandbox.
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MountSource {
    /// A host directory or file, bound in (containers only).
    Bind(PathBuf),
    /// A named volume: its ext4 image file, attached as a block device.
    Volume { name: String, image: PathBuf },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// A network namespace of its own with only `lo`, up.
    #[default]
    None,
    /// The host's network namespace.
    Host,
}

#[derive(Debug, Clone, Default)]
pub struct Security {
    /// Capability names as `docker run --cap-add` takes them (`NET_ADMIN`,
    /// `CAP_NET_ADMIN`, or `ALL`).
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// False for `--security-opt seccomp=unconfined`.
    pub seccomp: bool,
    /// All capabilities, no seccomp, all devices.
    pub privileged: bool,
}
