//! The run spec: a backend-neutral description of one sandbox (what to run,
//! as whom, with which limits, mounts and network), and the checks every
//! backend would make of it. The frontend builds it from the image config
//! and the flags; each backend turns it into a sandbox.

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

#[derive(Debug, Clone, PartialEq, Default)]
pub enum Network {
    /// A network namespace of its own with only `lo`, up.
    #[default]
    None,
    /// The host's network namespace.
    Host,
    /// An address on one of isola's bridge networks, beside `lo`.
    Bridge(crate::network::Join),
}

impl Network {
    /// The sandbox has a network namespace of its own.
    pub fn is_private(&self) -> bool {
        !matches!(self, Network::Host)
    }
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

/// The PATH a spec gets when the image sets none, as Docker's.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The smallest memory limit isola takes: less cannot start a process.
pub const MIN_MEMORY: u64 = 4 << 20;

/// A spec no backend could run, whatever the host.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error(
        "no command to run: the image has no Entrypoint or Cmd; give one after the image name"
    )]
    NoCommand,
    #[error("the working directory {0:?} must be an absolute path")]
    RelativeCwd(String),
    #[error("--memory must be at least 4 MiB")]
    MemoryTooSmall,
    #[error("--cpus must be a positive number, e.g. 0.5")]
    BadCpus,
    #[error("--pids-limit must be at least 1")]
    NoPids,
    #[error("{what} {value:?} contains a NUL byte")]
    Nul { what: &'static str, value: String },
    #[error("the mount target {0:?} must be an absolute path")]
    RelativeMountTarget(String),
}

impl RunSpec {
    /// A spec that runs `args` in an image with every setting at its
    /// default (no limits, no mounts, `--network none`, Docker's security
    /// defaults); the hostname is the ID.
    pub fn new(
        id: &str,
        image: &str,
        image_digest: &str,
        layers: Vec<PathBuf>,
        args: Vec<String>,
    ) -> RunSpec {
        RunSpec {
            id: id.to_string(),
            image: image.to_string(),
            image_digest: image_digest.to_string(),
            layers,
            process: Process {
                args,
                env: vec![format!("PATH={DEFAULT_PATH}")],
                cwd: "/".into(),
                user: User::default(),
                tty: false,
                stdin: false,
            },
            hostname: id.to_string(),
            limits: Limits::default(),
            mounts: Vec::new(),
            network: Network::None,
            read_only: false,
            security: Security {
                seccomp: true,
                ..Security::default()
            },
        }
    }

    /// The checks that hold for every backend, made before any of them
    /// is asked.
    pub fn validate(&self) -> Result<(), SpecError> {
        let p = &self.process;
        if p.args.is_empty() {
            return Err(SpecError::NoCommand);
        }
        if !p.cwd.starts_with('/') {
            return Err(SpecError::RelativeCwd(p.cwd.clone()));
        }
        let nul = |what: &'static str, items: &[String]| {
            items.iter().find(|s| s.contains('\0')).map_or(Ok(()), |s| {
                Err(SpecError::Nul {
                    what,
                    value: s.clone(),
                })
            })
        };
        nul("argument", &p.args)?;
        nul("environment variable", &p.env)?;
        nul("working directory", std::slice::from_ref(&p.cwd))?;
        nul("hostname", std::slice::from_ref(&self.hostname))?;
        if self.limits.memory.is_some_and(|m| m < MIN_MEMORY) {
            return Err(SpecError::MemoryTooSmall);
        }
        if self
            .limits
            .cpus
            .is_some_and(|c| !(c > 0.0 && c.is_finite()))
        {
            return Err(SpecError::BadCpus);
        }
        if self.limits.pids == Some(0) {
            return Err(SpecError::NoPids);
        }
        if let Some(m) = self.mounts.iter().find(|m| !m.target.starts_with('/')) {
            return Err(SpecError::RelativeMountTarget(m.target.clone()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RunSpec {
        RunSpec::new("abc", "img", "sha256:00", Vec::new(), vec!["true".into()])
    }

    #[test]
    fn a_plain_spec_is_valid() {
        assert_eq!(spec().validate(), Ok(()));
    }

    #[test]
    fn each_refusal_names_what_is_wrong() {
        let refused = |edit: &dyn Fn(&mut RunSpec)| {
            let mut s = spec();
            edit(&mut s);
            s.validate().unwrap_err()
        };
        assert_eq!(refused(&|s| s.process.args.clear()), SpecError::NoCommand);
        assert_eq!(
            refused(&|s| s.process.cwd = "rel".into()),
            SpecError::RelativeCwd("rel".into())
        );
        assert_eq!(
            refused(&|s| s.limits.memory = Some(MIN_MEMORY - 1)),
            SpecError::MemoryTooSmall
        );
        for cpus in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(refused(&|s| s.limits.cpus = Some(cpus)), SpecError::BadCpus);
        }
        assert_eq!(refused(&|s| s.limits.pids = Some(0)), SpecError::NoPids);
        let err = refused(&|s| s.process.args.push("a\0b".into()));
        assert_eq!(err.to_string(), "argument \"a\\0b\" contains a NUL byte");
        assert!(matches!(
            refused(&|s| s.process.env.push("A=\0".into())),
            SpecError::Nul {
                what: "environment variable",
                ..
            }
        ));
        assert!(matches!(
            refused(&|s| s.mounts.push(Mount {
                source: MountSource::Bind("/tmp".into()),
                target: "data".into(),
                read_only: false,
            })),
            SpecError::RelativeMountTarget(_)
        ));
    }
}
