//! config.json turned, in the runtime's process before clone, into what
//! the container's init does between clone and exec: strings made C
//! strings, capability names made masks, mount options made flags, and
//! every field isola cannot honour refused by name (never ignored).

use std::ffi::CString;
use std::path::PathBuf;

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::stat::SFlag;
use oci_spec::runtime::{
    Capabilities, LinuxDeviceType, LinuxNamespaceType, PosixRlimitType, Process, Spec,
};

use super::mount_options::{self, MountOptions};
use crate::security::caps::{CapSet, CapSets};
use crate::security::oci_profile::CompiledProfile;
use isola_core::oci::{Bundle, RuntimeError};

pub struct Plan {
    pub process: ProcessPlan,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    /// Namespaces made anew at clone; the cgroup one is made after the
    /// init joins its cgroup, so that it is the namespace's root.
    pub new_namespaces: CloneFlags,
    pub new_cgroup_namespace: bool,
    /// Namespaces joined by path, by the runtime's process before clone.
    pub joins: Vec<(CloneFlags, PathBuf)>,
    pub mounts: Vec<Mount>,
    /// Whether /dev is left to isola (no bind mount of a /dev): then it
    /// gets the default devices and its symlinks.
    pub setup_dev: bool,
    pub devices: Vec<Device>,
    pub masked: Vec<String>,
    pub readonly: Vec<String>,
    pub sysctl: Vec<(String, String)>,
    pub root_readonly: bool,
    pub rootfs_propagation: MsFlags,
    /// With a user namespace: `/proc/PID/uid_map` and `gid_map` lines,
    /// written by the runtime once the init is cloned.
    pub id_maps: Option<(String, String)>,
}

/// The process the init execs, or one `exec` starts in the container.
pub struct ProcessPlan {
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub umask: Option<u32>,
    pub caps: CapSets,
    pub no_new_privs: bool,
    /// (resource, soft, hard)
    pub rlimits: Vec<(libc::c_int, u64, u64)>,
    pub oom_score_adj: Option<i32>,
    pub terminal: bool,
    /// (rows, columns)
    pub console_size: Option<(u16, u16)>,
    /// The container's seccomp filter (config.json's linux.seccomp).
    pub seccomp: Option<CompiledProfile>,
}

pub struct Mount {
    pub destination: String,
    pub typ: String,
    /// A bind's host path (absolute, against the bundle), or the
    /// filesystem's source name.
    pub source: Option<PathBuf>,
    pub options: MountOptions,
}

pub struct Device {
    pub path: String,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The devices runc gives every container whose /dev it makes: (name,
/// major, minor).
pub const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

fn unsupported(field: &str, why: &str) -> RuntimeError {
    RuntimeError::unsupported(field, why)
}

pub fn plan(bundle: &Bundle) -> Result<Plan, RuntimeError> {
    let spec = &bundle.config;
    refuse_foreign(spec)?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| unsupported("process", "it is missing"))?;
    let linux = spec.linux().clone().unwrap_or_default();
    let mut process = process_plan(process)?;
    process.seccomp = seccomp(spec)?;
    for (set, field) in [(linux.mount_label().is_some(), "linux.mountLabel")] {
        if set {
            return Err(unsupported(
                field,
                "isola applies no LSM labels or profiles; remove it",
            ));
        }
    }
    for (set, field) in [
        (linux.intel_rdt().is_some(), "linux.intelRdt"),
        (linux.personality().is_some(), "linux.personality"),
        (linux.memory_policy().is_some(), "linux.memoryPolicy"),
        (linux.time_offsets().is_some(), "linux.timeOffsets"),
        (linux.net_devices().is_some(), "linux.netDevices"),
    ] {
        if set {
            return Err(unsupported(field, "isola-runtime does not do it yet"));
        }
    }

    let (new_namespaces, new_cgroup_namespace, joins) = namespaces(&linux)?;
    let id_maps = id_maps(&linux, new_namespaces.contains(CloneFlags::CLONE_NEWUSER))?;
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty())
        && !new_namespaces.contains(CloneFlags::CLONE_NEWUTS)
    {
        return Err(unsupported(
            "hostname",
            "setting it needs a UTS namespace of the container's own (linux.namespaces)",
        ));
    }

    let mut mounts = Vec::new();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let field = format!("mounts[{i}]");
        if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
            return Err(unsupported(
                &format!("{field}.uidMappings"),
                "isola makes no idmapped mounts",
            ));
        }
        let options = mount_options::parse(m.options().as_deref().unwrap_or_default())
            .map_err(|e| unsupported(&format!("{field}.options"), &e.to_string()))?;
        let typ = m.typ().clone().unwrap_or_default();
        let bind = options.bind || typ == "bind";
        let source = m.source().as_ref().map(|s| {
            if bind && s.is_relative() {
                bundle.dir.join(s)
            } else {
                s.clone()
            }
        });
        if bind && source.is_none() {
            return Err(unsupported(
                &format!("{field}.source"),
                "a bind mount needs one",
            ));
        }
        let destination = m.destination().to_string_lossy().into_owned();
        if destination.contains('\0') {
            return Err(unsupported(
                &format!("{field}.destination"),
                "it holds a NUL byte",
            ));
        }
        let mut options = options;
        if bind {
            options.bind = true;
            options.flags.insert(MsFlags::MS_BIND);
        }
        mounts.push(Mount {
            destination,
            typ,
            source,
            options,
        });
    }
    let setup_dev = !mounts
        .iter()
        .any(|m| m.options.bind && m.destination.trim_end_matches('/') == "/dev");

    let devices = linux
        .devices()
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, d)| {
            let kind = match d.typ() {
                LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
                LinuxDeviceType::B => SFlag::S_IFBLK,
                LinuxDeviceType::P => SFlag::S_IFIFO,
                LinuxDeviceType::A => {
                    return Err(unsupported(
                        &format!("linux.devices[{i}].type"),
                        "a device node must be c, u, b or p",
                    ))
                }
            };
            let path = d.path().to_string_lossy().into_owned();
            if !path.starts_with("/dev/") {
                return Err(unsupported(
                    &format!("linux.devices[{i}].path"),
                    "device nodes go under /dev",
                ));
            }
            Ok(Device {
                path,
                kind,
                major: d.major().max(0) as u64,
                minor: d.minor().max(0) as u64,
                mode: d.file_mode().unwrap_or(0o666) & 0o7777,
                uid: d.uid().unwrap_or(0),
                gid: d.gid().unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>, RuntimeError>>()?;

    let mut sysctl: Vec<(String, String)> = linux
        .sysctl()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    sysctl.sort();
    for (key, _) in &sysctl {
        check_sysctl(key, new_namespaces)?;
    }
    let rootfs_propagation = match linux.rootfs_propagation().as_deref() {
        // runc's default: the host's later mounts reach the container,
        // none of the container's reach the host.
        None | Some("") => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        Some(p) => {
            let parsed = mount_options::parse(&[p.to_string()]).ok();
            match parsed.and_then(|o| o.propagation.first().copied()) {
                Some(flags) => flags,
                None => {
                    return Err(unsupported(
                        "linux.rootfsPropagation",
                        "it must be one of private, rprivate, slave, rslave, shared, rshared, unbindable, runbindable",
                    ))
                }
            }
        }
    };

    Ok(Plan {
        process,
        hostname: spec.hostname().clone().filter(|h| !h.is_empty()),
        domainname: spec.domainname().clone().filter(|h| !h.is_empty()),
        new_namespaces,
        new_cgroup_namespace,
        joins,
        mounts,
        setup_dev,
        devices,
        masked: linux.masked_paths().clone().unwrap_or_default(),
        readonly: linux.readonly_paths().clone().unwrap_or_default(),
        sysctl,
        root_readonly: spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false),
        rootfs_propagation,
        id_maps,
    })
}

/// linux.uidMappings and gidMappings as the kernel's map files take them;
/// they come with a user namespace of the container's own, and only so.
fn id_maps(
    linux: &oci_spec::runtime::Linux,
    userns: bool,
) -> Result<Option<(String, String)>, RuntimeError> {
    let lines = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.iter()
            .flatten()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect::<String>()
    };
    let (uid, gid) = (lines(linux.uid_mappings()), lines(linux.gid_mappings()));
    match (userns, uid.is_empty() || gid.is_empty()) {
        (true, false) => Ok(Some((uid, gid))),
        (true, true) => Err(unsupported(
            "linux.uidMappings",
            "a user namespace needs both uidMappings and gidMappings",
        )),
        (false, _) if uid.is_empty() && gid.is_empty() => Ok(None),
        (false, _) => Err(unsupported(
            "linux.uidMappings",
            "mappings need a user namespace in linux.namespaces",
        )),
    }
}

/// config.json's `process` (or `exec --process`'s file), checked.
pub fn process_plan(process: &Process) -> Result<ProcessPlan, RuntimeError> {
    let args = process.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(unsupported(
            "process.args",
            "it is empty; give the program to run",
        ));
    }
    if process.command_line().is_some() {
        return Err(unsupported("process.commandLine", "it is Windows'"));
    }
    let args = cstrings(&args, "process.args")?;
    let env = cstrings(&process.env().clone().unwrap_or_default(), "process.env")?;
    let cwd = process.cwd().to_string_lossy().into_owned();
    if !cwd.starts_with('/') {
        return Err(unsupported("process.cwd", "it must be an absolute path"));
    }
    for (set, field) in [
        (
            process.apparmor_profile().is_some(),
            "process.apparmorProfile",
        ),
        (process.selinux_label().is_some(), "process.selinuxLabel"),
    ] {
        if set {
            return Err(unsupported(
                field,
                "isola applies no LSM labels or profiles; remove it",
            ));
        }
    }
    for (set, field) in [
        (process.io_priority().is_some(), "process.ioPriority"),
        (process.scheduler().is_some(), "process.scheduler"),
        (
            process.exec_cpu_affinity().is_some(),
            "process.execCPUAffinity",
        ),
    ] {
        if set {
            return Err(unsupported(field, "isola-runtime does not do it yet"));
        }
    }
    let user = process.user();
    let caps = match process.capabilities() {
        Some(c) => CapSets {
            bounding: capset(c.bounding())?,
            effective: capset(c.effective())?,
            permitted: capset(c.permitted())?,
            inheritable: capset(c.inheritable())?,
            ambient: capset(c.ambient())?,
        },
        None => CapSets::default(),
    };
    let rlimits = process
        .rlimits()
        .iter()
        .flatten()
        .map(|r| Ok((rlimit(r.typ())?, r.soft(), r.hard())))
        .collect::<Result<Vec<_>, RuntimeError>>()?;
    let console_size = process.console_size().map(|b| {
        (
            b.height().min(u16::MAX as u64) as u16,
            b.width().min(u16::MAX as u64) as u16,
        )
    });
    Ok(ProcessPlan {
        args,
        env,
        cwd,
        uid: user.uid(),
        gid: user.gid(),
        groups: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask(),
        caps,
        no_new_privs: process.no_new_privileges().unwrap_or(false),
        rlimits,
        oom_score_adj: process.oom_score_adj(),
        terminal: process.terminal().unwrap_or(false),
        console_size,
        seccomp: None,
    })
}

/// config.json's `linux.seccomp`, compiled here, before clone: the
/// process that installs it must not allocate.
pub fn seccomp(spec: &Spec) -> Result<Option<CompiledProfile>, RuntimeError> {
    let Some(profile) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return Ok(None);
    };
    crate::security::oci_profile::compile(profile)
        .map(Some)
        .map_err(|e| RuntimeError::Unsupported(e.to_string()))
}

/// The parts of the spec for other systems.
fn refuse_foreign(spec: &Spec) -> Result<(), RuntimeError> {
    for (set, field) in [
        (spec.solaris().is_some(), "solaris"),
        (spec.windows().is_some(), "windows"),
        (spec.vm().is_some(), "vm"),
        (spec.zos().is_some(), "zos"),
    ] {
        if set {
            return Err(unsupported(
                field,
                "it is for another kind of runtime than Linux containers",
            ));
        }
    }
    Ok(())
}

fn cstrings(items: &[String], field: &str) -> Result<Vec<CString>, RuntimeError> {
    items
        .iter()
        .map(|s| {
            CString::new(s.as_bytes())
                .map_err(|_| unsupported(field, &format!("{s:?} holds a NUL byte")))
        })
        .collect()
}

/// An OCI capability set as a mask; the names are the kernel's.
fn capset(set: &Option<Capabilities>) -> Result<CapSet, RuntimeError> {
    let mut out = CapSet::EMPTY;
    for cap in set.iter().flatten() {
        let name = serde_json::to_value(cap)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let parsed: ::caps::Capability = name.parse().map_err(|_| {
            unsupported(
                "process.capabilities",
                &format!("this kernel does not know {name}"),
            )
        })?;
        out.insert(parsed);
    }
    Ok(out)
}

fn rlimit(typ: PosixRlimitType) -> Result<libc::c_int, RuntimeError> {
    use PosixRlimitType::*;
    Ok(match typ {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
        #[allow(unreachable_patterns)]
        _ => {
            return Err(unsupported(
                "process.rlimits",
                "a limit this kernel does not have",
            ))
        }
    } as libc::c_int)
}

type Namespaces = (CloneFlags, bool, Vec<(CloneFlags, PathBuf)>);

fn namespaces(linux: &oci_spec::runtime::Linux) -> Result<Namespaces, RuntimeError> {
    let mut new = CloneFlags::empty();
    let mut cgroup = false;
    let mut joins = Vec::new();
    let mut mount = false;
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        let field = format!("linux.namespaces[{i}]");
        let flag = CloneFlags::from_bits_truncate(ns.typ() as i32);
        match (ns.typ(), ns.path()) {
            (LinuxNamespaceType::User, Some(_)) => {
                return Err(unsupported(
                    &format!("{field}.path"),
                    "isola-runtime makes a user namespace of the container's own but joins none",
                ))
            }
            (LinuxNamespaceType::User, None) => new |= flag,
            (LinuxNamespaceType::Time, _) => {
                return Err(unsupported(
                    &field,
                    "isola-runtime makes no time namespaces",
                ))
            }
            (LinuxNamespaceType::Mount, Some(_)) => {
                return Err(unsupported(
                    &format!("{field}.path"),
                    "a container's mount namespace is always its own",
                ))
            }
            (LinuxNamespaceType::Mount, None) => {
                mount = true;
                new |= flag;
            }
            (LinuxNamespaceType::Cgroup, None) => cgroup = true,
            (_, None) => new |= flag,
            (_, Some(path)) => joins.push((flag, path.clone())),
        }
    }
    if !mount {
        return Err(unsupported(
            "linux.namespaces",
            "it must list a mount namespace: a container's root filesystem is set up in its own",
        ));
    }
    Ok((new, cgroup, joins))
}

/// runc's rule: a sysctl is set only where the container has the
/// namespace that scopes it (net.* a network namespace, the IPC ones an
/// IPC namespace), never on the host's kernel.
fn check_sysctl(key: &str, new: CloneFlags) -> Result<(), RuntimeError> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let scoped = if key.starts_with("net.") {
        new.contains(CloneFlags::CLONE_NEWNET)
    } else if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        new.contains(CloneFlags::CLONE_NEWIPC)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        new.contains(CloneFlags::CLONE_NEWUTS)
    } else {
        false
    };
    if !scoped || key.contains('/') || key.split('.').any(|p| p.is_empty() || p == "..") {
        return Err(unsupported(
            &format!("linux.sysctl {key}"),
            "only net.*, the IPC ones and the UTS names can be set, each with its namespace of the container's own",
        ));
    }
    Ok(())
}
