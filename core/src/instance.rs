//! One sandbox's state on disk: `instances/<id>/` holds state.json (written
//! by temp file + rename) and whatever the backend keeps there (the
//! container's upper dir, the log). `--rm` removes the whole directory at
//! exit. Names are symlinks in `instances/.names`, made atomically, so
//! that two sandboxes can never take the same one.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::fsutil::{atomic_write_nosync, remove_any};
use nix::fcntl::{Flock, FlockArg};

use crate::{scratch, Root};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub image: String,
    /// The command it runs, for `isola ps`.
    #[serde(default)]
    pub command: Vec<String>,
    /// The backend that runs it, by [`crate::backend::Backend::name`]: a
    /// name, not an enum, so that a new backend needs no change here.
    pub backend: String,
    pub status: Status,
    /// The isola process that owns it: the foreground `isola run`, or the
    /// shim of a detached sandbox.
    pub pid: Option<i32>,
    pub exit_code: Option<i32>,
    /// The kernel's OOM killer ended it.
    #[serde(default)]
    pub oom_killed: bool,
    /// Seconds since the epoch.
    pub created: u64,
    #[serde(default)]
    pub started: Option<u64>,
    #[serde(default)]
    pub finished: Option<u64>,
    /// How often the restart policy started it again.
    #[serde(default)]
    pub restarts: u32,
    /// The host's boot it ran under: a sandbox of an earlier boot is over,
    /// whatever its state says.
    #[serde(default)]
    pub boot_id: String,
    /// Milliseconds from the start of the run to the end of each phase.
    #[serde(default)]
    pub phases_ms: Vec<(String, f64)>,
    /// The backend's end-of-run counters (see `Outcome::counters`).
    #[serde(default)]
    pub counters: Vec<(String, u64)>,
}

/// Where a sandbox is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Made, parked before the workload's exec, waiting for `isola start`.
    Created,
    Running,
    /// Ended; the restart policy starts it again after a back-off.
    Restarting,
    Exited,
    /// Said "running", but the isola that ran it is gone (killed with
    /// SIGKILL): found so by [`list`], never written.
    Dead,
}

impl Status {
    /// Whether an isola is meant to own it now.
    pub fn is_active(self) -> bool {
        matches!(self, Status::Created | Status::Running | Status::Restarting)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Restarting => "restarting",
            Status::Exited => "exited",
            Status::Dead => "dead",
        })
    }
}

pub struct Instance {
    pub dir: PathBuf,
    pub state: State,
    root: Root,
    persist: bool,
    /// Held for the sandbox's life: a directory nobody holds locked belongs
    /// to an isola that is gone (see [`prune`]).
    _alive: Flock<fs::File>,
}

impl Instance {
    /// Make the directory; state.json is written only if `persist` (a
    /// `--rm` sandbox leaves nothing to look at afterwards, and on some
    /// filesystems each file made and removed costs a millisecond).
    pub fn create(
        root: &Root,
        id: &str,
        image: &str,
        backend: &str,
        persist: bool,
    ) -> io::Result<Instance> {
        let dir = root.dir().join("instances").join(id);
        fs::create_dir_all(dir.parent().unwrap_or(Path::new("/")))?;
        if persist || !scratch::claim(root, &dir) {
            fs::create_dir(&dir)?;
        }
        let alive = Flock::lock(fs::File::open(&dir)?, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| io::Error::from(e))?;
        let inst = Instance {
            dir,
            root: root.clone(),
            persist,
            _alive: alive,
            state: State {
                id: id.to_string(),
                name: None,
                image: image.to_string(),
                command: Vec::new(),
                backend: backend.to_string(),
                status: Status::Running,
                pid: Some(std::process::id() as i32),
                exit_code: None,
                oom_killed: false,
                created: now(),
                started: None,
                finished: None,
                restarts: 0,
                boot_id: boot_id(),
                phases_ms: Vec::new(),
                counters: Vec::new(),
            },
        };
        if persist {
            inst.save()?;
        }
        Ok(inst)
    }

    /// Take over a kept sandbox that no isola owns (`isola start` of one
    /// that exited): its directory locked, its state read.
    pub fn open(root: &Root, id: &str) -> Result<Instance, InstanceError> {
        let dir = root.dir().join("instances").join(id);
        let io = |context: &str| {
            let context = format!("{context} of sandbox {id}");
            move |source| InstanceError::Io { context, source }
        };
        let file = fs::File::open(&dir).map_err(io("opening the directory"))?;
        let alive = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|_| InstanceError::Running(id.to_string()))?;
        let bytes = fs::read(dir.join("state.json")).map_err(io("reading the state"))?;
        let mut state: State = serde_json::from_slice(&bytes)
            .map_err(|e| io("reading the state")(io::Error::other(e)))?;
        state.pid = Some(std::process::id() as i32);
        state.boot_id = boot_id();
        Ok(Instance {
            dir,
            root: root.clone(),
            persist: true,
            _alive: alive,
            state,
        })
    }

    pub fn save(&self) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(&self.state).map_err(io::Error::other)?;
        atomic_write_nosync(&self.dir.join("state.json"), &json)
    }

    pub fn exited(&mut self, code: i32) -> io::Result<()> {
        self.state.status = Status::Exited;
        self.state.exit_code = Some(code);
        self.state.finished = Some(now());
        self.state.pid = None;
        self.save()
    }

    pub fn remove(self) -> io::Result<()> {
        let (root, dir, id, persist) = (
            self.root.clone(),
            self.dir.clone(),
            self.state.id.clone(),
            self.persist,
        );
        // Unlock first: a pooled directory must not look owned.
        drop(self);
        if !persist && scratch::recycle(&root, &dir, &id) {
            return Ok(());
        }
        remove_any(&dir)
    }
}

/// Whether an isola still owns the sandbox directory `dir`.
pub fn is_live(dir: &Path) -> bool {
    match fs::File::open(dir) {
        Ok(f) => Flock::lock(f, FlockArg::LockExclusiveNonblock).is_err(),
        Err(_) => false,
    }
}

/// The sandboxes kept on disk, oldest first. One whose isola is gone while
/// it says "running" (killed with SIGKILL) is shown as "dead".
pub fn list(root: &Root) -> io::Result<Vec<State>> {
    let dir = root.dir().join("instances");
    let mut out = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        let Ok(bytes) = fs::read(entry.path().join("state.json")) else {
            continue;
        };
        let Ok(mut state) = serde_json::from_slice::<State>(&bytes) else {
            continue;
        };
        if state.status.is_active() && !is_live(&entry.path()) {
            state.status = if state.boot_id.is_empty() || state.boot_id == boot_id() {
                Status::Dead
            } else {
                // The host rebooted under it: it ended then.
                Status::Exited
            };
        }
        out.push(state);
    }
    out.sort_by_key(|s| s.created);
    Ok(out)
}

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("no sandbox {0:?} (`isola ps -a` lists them)")]
    NotFound(String),
    #[error("{0:?} matches several sandboxes; give more of the ID")]
    Ambiguous(String),
    #[error("sandbox {0} is running; stop it first, or remove it with -f")]
    Running(String),
    #[error("the name {name:?} is already in use by sandbox {by}; remove that one or choose another name")]
    NameTaken { name: String, by: String },
    #[error("the name {0:?} is not valid: give letters, digits, '_', '.' or '-', starting with a letter or digit")]
    BadName(String),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

/// The kept sandbox `given` names: its name, its ID, or a unique prefix of
/// the ID.
pub fn find(root: &Root, given: &str) -> Result<State, InstanceError> {
    let io = |context: String| move |source| InstanceError::Io { context, source };
    let states = list(root).map_err(io("listing sandboxes".into()))?;
    if let Ok(id) = fs::read_link(names_dir(root).join(given)) {
        let id = id.to_string_lossy();
        if let Some(s) = states.iter().find(|s| s.id == id) {
            return Ok(s.clone());
        }
    }
    if let Some(s) = states.iter().find(|s| s.id == given) {
        return Ok(s.clone());
    }
    let found: Vec<&State> = states
        .iter()
        .filter(|s| !given.is_empty() && s.id.starts_with(given))
        .collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(InstanceError::NotFound(given.to_string())),
        _ => Err(InstanceError::Ambiguous(given.to_string())),
    }
}

/// Remove a kept sandbox that no isola owns, by name, ID or unique ID
/// prefix; a running one is refused. Returns its state.
pub fn remove(root: &Root, given: &str) -> Result<State, InstanceError> {
    let state = find(root, given)?;
    let dir = root.dir().join("instances").join(&state.id);
    if is_live(&dir) {
        return Err(InstanceError::Running(state.id.clone()));
    }
    remove_any(&dir).map_err(|source| InstanceError::Io {
        context: format!("removing sandbox {}", state.id),
        source,
    })?;
    if let Some(name) = &state.name {
        release_name(root, name, &state.id);
    }
    Ok(state)
}

fn names_dir(root: &Root) -> PathBuf {
    root.dir().join("instances").join(".names")
}

/// Give sandbox `id` the name `name`, unless another has it: one symlink,
/// made or refused atomically.
pub fn reserve_name(root: &Root, name: &str, id: &str) -> Result<(), InstanceError> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && name.len() <= 128;
    if !valid {
        return Err(InstanceError::BadName(name.to_string()));
    }
    let dir = names_dir(root);
    let io = |source| InstanceError::Io {
        context: format!("reserving the name {name:?}"),
        source,
    };
    fs::create_dir_all(&dir).map_err(io)?;
    let link = dir.join(name);
    loop {
        match std::os::unix::fs::symlink(id, &link) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let by = fs::read_link(&link)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                // A name whose sandbox is gone (its directory removed by
                // hand, or by an rm killed halfway) is free again.
                if !by.is_empty() && !root.dir().join("instances").join(&by).exists() {
                    let _ = fs::remove_file(&link);
                    continue;
                }
                return Err(InstanceError::NameTaken {
                    name: name.to_string(),
                    by,
                });
            }
            Err(e) => return Err(io(e)),
        }
    }
}

/// Free `name` if sandbox `id` holds it.
pub fn release_name(root: &Root, name: &str, id: &str) {
    let link = names_dir(root).join(name);
    if fs::read_link(&link).is_ok_and(|p| p.as_os_str() == id) {
        let _ = fs::remove_file(&link);
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// This boot of the host, as the kernel names it.
pub fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// What `prune` found: sandboxes no isola owns any more, by ID and the
/// backend that ran them (whose leftovers, such as a cgroup, the caller
/// clears).
pub struct Stale {
    pub id: String,
    pub name: Option<String>,
    pub backend: Option<String>,
    pub dir: PathBuf,
}

/// Sandboxes that are over: kept ones that exited, and those whose isola
/// died without tearing down (killed with SIGKILL), `--rm` ones included.
pub fn stale(root: &Root) -> io::Result<Vec<Stale>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(root.dir().join("instances")) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || is_live(&entry.path()) {
            continue;
        }
        let state: Option<State> = fs::read(entry.path().join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        out.push(Stale {
            id: name,
            name: state.as_ref().and_then(|s| s.name.clone()),
            backend: state.map(|s| s.backend),
            dir: entry.path(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(root: &Root, id: &str) {
        let mut inst = Instance::create(root, id, "img", "container", true).unwrap();
        inst.exited(0).unwrap();
    }

    #[test]
    fn a_sandbox_is_found_by_name_id_or_unique_prefix() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::new(tmp.path());
        kept(&root, "abc123");
        kept(&root, "abd456");
        reserve_name(&root, "web", "abd456").unwrap();
        assert_eq!(find(&root, "web").unwrap().id, "abd456");
        assert_eq!(find(&root, "abc123").unwrap().id, "abc123");
        assert_eq!(find(&root, "abc").unwrap().id, "abc123");
        assert!(matches!(
            find(&root, "ab"),
            Err(InstanceError::Ambiguous(_))
        ));
        assert!(matches!(find(&root, "zz"), Err(InstanceError::NotFound(_))));
        assert!(matches!(find(&root, ""), Err(InstanceError::NotFound(_))));
    }

    #[test]
    fn a_name_is_taken_once_and_freed_with_its_sandbox() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::new(tmp.path());
        kept(&root, "aaa");
        kept(&root, "bbb");
        reserve_name(&root, "web", "aaa").unwrap();
        match reserve_name(&root, "web", "bbb") {
            Err(InstanceError::NameTaken { by, .. }) => assert_eq!(by, "aaa"),
            other => panic!("{other:?}"),
        }
        for bad in ["", "-x", "a/b", "a b", ".hidden"] {
            assert!(
                matches!(
                    reserve_name(&root, bad, "bbb"),
                    Err(InstanceError::BadName(_))
                ),
                "{bad:?}"
            );
        }
        // Freed only by its holder.
        release_name(&root, "web", "bbb");
        assert!(reserve_name(&root, "web", "bbb").is_err());
        remove(&root, "aaa").unwrap();
        reserve_name(&root, "web", "bbb").unwrap();
        assert_eq!(find(&root, "web").unwrap().id, "bbb");
    }

    #[test]
    fn an_active_sandbox_nobody_owns_is_dead_or_of_an_earlier_boot() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::new(tmp.path());
        let inst = Instance::create(&root, "live", "img", "container", true).unwrap();
        let dead = Instance::create(&root, "dead", "img", "container", true).unwrap();
        let mut old = Instance::create(&root, "old", "img", "container", true).unwrap();
        old.state.boot_id = "an-earlier-boot".into();
        old.save().unwrap();
        dead.save().unwrap();
        drop((dead, old));
        let states = list(&root).unwrap();
        let status = |id: &str| states.iter().find(|s| s.id == id).unwrap().status;
        assert_eq!(status("live"), Status::Running);
        assert_eq!(status("dead"), Status::Dead);
        assert_eq!(status("old"), Status::Exited);
        drop(inst);
    }
}
