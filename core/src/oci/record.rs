//! What `create` leaves in the runtime's state directory (`--root`/<id>/)
//! for the later calls (`start`, `state`, `kill`, `delete`...), each a
//! process of its own: the record, a copy of config.json (the bundle may
//! change or go), and, until `start`, the fifo the init waits on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::state::{State, Status};

pub const RECORD: &str = "state.json";
pub const CONFIG: &str = "config.json";
/// Exists from `create` to `start`: the init blocks reading it.
pub const START_FIFO: &str = "exec.fifo";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// `container` or `vm`.
    pub backend: String,
    /// The container's init (a VM's monitor), as the pid file says.
    pub pid: i32,
    /// Its start time in clock ticks after boot (/proc/PID/stat), so that
    /// a recycled PID is never taken for it.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub oci_version: String,
    /// RFC 3339 with nanoseconds, UTC.
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The cgroup it was put in (config.json's `linux.cgroupsPath`, or
    /// isola's default), relative to each hierarchy's root.
    pub cgroup: Option<String>,
    /// How many of that path's parents the runtime made (and removes
    /// with the container once they are empty).
    #[serde(default)]
    pub cgroup_parents_made: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("reading the state of container {id} in {}", .dir.display())]
    Read {
        id: String,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the state of container {id} in {} is damaged: {reason}; `delete --force {id}` removes it", .dir.display())]
    Damaged {
        id: String,
        dir: PathBuf,
        reason: String,
    },
    #[error("writing the state of container {id} in {}", .dir.display())]
    Write {
        id: String,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Record {
    pub fn load(dir: &Path, id: &str) -> Result<Record, RecordError> {
        let text = match std::fs::read(dir.join(RECORD)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RecordError::NotFound(id.to_string()))
            }
            Err(source) => {
                return Err(RecordError::Read {
                    id: id.to_string(),
                    dir: dir.to_path_buf(),
                    source,
                })
            }
        };
        serde_json::from_slice(&text).map_err(|e| RecordError::Damaged {
            id: id.to_string(),
            dir: dir.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Written whole or not at all (a temporary file renamed over it).
    pub fn save(&self, dir: &Path) -> Result<(), RecordError> {
        let write = || -> std::io::Result<()> {
            let tmp = dir.join(format!("{RECORD}.tmp"));
            std::fs::write(&tmp, serde_json::to_vec(self)?)?;
            std::fs::rename(&tmp, dir.join(RECORD))
        };
        write().map_err(|source| RecordError::Write {
            id: self.id.clone(),
            dir: dir.to_path_buf(),
            source,
        })
    }

    /// How many of its cgroup's parents to remove once they are empty: those
    /// the runtime made, and isola's default parent whoever made it (two
    /// containers racing may each have found it made by the other).
    pub fn cgroup_parents(&self) -> usize {
        let ours = self.cgroup.as_deref().is_some_and(|p| {
            p.strip_prefix(super::DEFAULT_CGROUP_PARENT)
                .is_some_and(|rest| rest.starts_with('/') && !rest[1..].contains('/'))
        });
        if ours {
            self.cgroup_parents_made.max(1)
        } else {
            self.cgroup_parents_made
        }
    }

    /// Whether its init (or monitor) is still the process it was: alive,
    /// not a zombie, and started when it did.
    pub fn alive(&self) -> bool {
        matches!(process_start(self.pid), Some((state, start)) if state != 'Z' && state != 'X' && start == self.pid_start)
    }

    /// Its status now; `paused` is the backend's answer (a frozen cgroup).
    pub fn status(&self, dir: &Path, paused: impl FnOnce() -> bool) -> Status {
        if !self.alive() {
            Status::Stopped
        } else if dir.join(START_FIFO).exists() {
            Status::Created
        } else if paused() {
            Status::Paused
        } else {
            Status::Running
        }
    }

    pub fn state(&self, status: Status) -> State {
        State {
            oci_version: self.oci_version.clone(),
            id: self.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status,
            bundle: self.bundle.display().to_string(),
            rootfs: self.rootfs.display().to_string(),
            created: self.created.clone(),
            annotations: self.annotations.clone(),
            owner: self.owner.clone(),
        }
    }
}

/// A process's state letter and start time (field 22 of /proc/PID/stat).
pub fn process_start(pid: i32) -> Option<(char, u64)> {
    if pid <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // state is field 3; starttime is field 22.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_start_time_and_is_alive() {
        let me = std::process::id() as i32;
        let (state, start) = process_start(me).unwrap();
        assert_ne!(state, 'Z');
        let mut rec = Record {
            id: "c".into(),
            backend: "container".into(),
            pid: me,
            pid_start: start,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            oci_version: "1.0.2".into(),
            created: String::new(),
            owner: String::new(),
            annotations: BTreeMap::new(),
            cgroup: None,
            cgroup_parents_made: 0,
        };
        assert!(rec.alive());
        rec.pid_start += 1;
        assert!(!rec.alive(), "a recycled PID is not the container");
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(rec.status(dir.path(), || false), Status::Stopped);
        assert_eq!(rec.state(Status::Stopped).pid, 0);
        rec.pid_start -= 1;
        rec.save(dir.path()).unwrap();
        let back = Record::load(dir.path(), "c").unwrap();
        assert_eq!(back.pid, me);
        assert_eq!(back.status(dir.path(), || true), Status::Paused);
        std::fs::write(dir.path().join(START_FIFO), "").unwrap();
        assert_eq!(back.status(dir.path(), || false), Status::Created);
        assert!(matches!(
            Record::load(&dir.path().join("none"), "x"),
            Err(RecordError::NotFound(_))
        ));
    }
}
