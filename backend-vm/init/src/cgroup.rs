//! `--pids-limit` in the guest: a cgroup v2 "workload" group with pids.max,
//! which the workload joins before exec so every task it makes counts.

use std::fs::{File, OpenOptions};

use nix::mount::{mount, MsFlags};

use crate::fail::{describe_io, Failure};

const ROOT: &str = "/sys/fs/cgroup";
const GROUP: &str = "/sys/fs/cgroup/workload";

/// Sets the group up and returns its `cgroup.procs`, open for the child to
/// write "0" (itself) into.
pub fn limit_pids(limit: u64) -> Result<File, Failure> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("cgroup2"), ROOT, Some("cgroup2"), flags, None::<&str>)
        .map_err(|e| Failure::errno(format!("cannot mount cgroup2 on {ROOT}"), e))?;
    write(&format!("{ROOT}/cgroup.subtree_control"), "+pids")?;
    match std::fs::create_dir(GROUP) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(Failure::setup(
                format!("cannot create the cgroup {GROUP}"),
                describe_io(&e),
            ))
        }
    }
    write(&format!("{GROUP}/pids.max"), &limit.to_string())?;
    let procs = format!("{GROUP}/cgroup.procs");
    OpenOptions::new()
        .write(true)
        .open(&procs)
        .map_err(|e| Failure::setup(format!("cannot open {procs}"), describe_io(&e)))
}

fn write(path: &str, value: &str) -> Result<(), Failure> {
    std::fs::write(path, value)
        .map_err(|e| Failure::setup(format!("cannot write {value:?} to {path}"), describe_io(&e)))
}
