//! One sandbox's state on disk: `instances/<id>/` holds state.json (written
//! by temp file + rename) and whatever the backend keeps there (the
//! container's upper dir). `--rm` removes the whole directory at exit.

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
    pub image: String,
    /// The backend that runs it, by [`crate::backend::Backend::name`]: a
    /// name, not an enum, so that a new backend needs no change here.
    pub backend: String,
    pub status: Status,
    pub pid: Option<i32>,
    pub exit_code: Option<i32>,
    pub created: u64,
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
    Running,
    Exited,
    /// Said "running", but the isola that ran it is gone (killed with
    /// SIGKILL): found so by [`list`], never written.
    Dead,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Running => "running",
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
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let inst = Instance {
            dir,
            root: root.clone(),
            persist,
            _alive: alive,
            state: State {
                id: id.to_string(),
                image: image.to_string(),
                backend: backend.to_string(),
                status: Status::Running,
                pid: Some(std::process::id() as i32),
                exit_code: None,
                created,
                phases_ms: Vec::new(),
                counters: Vec::new(),
            },
        };
        if persist {
            inst.save()?;
        }
        Ok(inst)
    }

    pub fn save(&self) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(&self.state).map_err(io::Error::other)?;
        atomic_write_nosync(&self.dir.join("state.json"), &json)
    }

    pub fn exited(&mut self, code: i32) -> io::Result<()> {
        self.state.status = Status::Exited;
        self.state.exit_code = Some(code);
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
        if state.status == Status::Running && !is_live(&entry.path()) {
            state.status = Status::Dead;
        }
        out.push(state);
    }
    out.sort_by_key(|s| s.created);
    Ok(out)
}

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("no sandbox {0:?} (`isola ps` lists them)")]
    NotFound(String),
    #[error("{0:?} matches several sandboxes; give more of the ID")]
    Ambiguous(String),
    #[error("sandbox {0} is running; stop it first")]
    Running(String),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

/// Remove a kept sandbox by ID (or a unique prefix of it); a running one is
/// refused. Returns the full ID.
pub fn remove(root: &Root, given: &str) -> Result<String, InstanceError> {
    let io = |context: String| move |source| InstanceError::Io { context, source };
    let states = list(root).map_err(io("listing sandboxes".into()))?;
    let found: Vec<&State> = states
        .iter()
        .filter(|s| !given.is_empty() && s.id.starts_with(given))
        .collect();
    let state = match found.as_slice() {
        [one] => *one,
        [] => return Err(InstanceError::NotFound(given.to_string())),
        _ => return Err(InstanceError::Ambiguous(given.to_string())),
    };
    if is_live(&root.dir().join("instances").join(&state.id)) {
        return Err(InstanceError::Running(state.id.clone()));
    }
    remove_any(&root.dir().join("instances").join(&state.id))
        .map_err(io(format!("removing sandbox {}", state.id)))?;
    Ok(state.id.clone())
}

/// What `prune` found: sandboxes no isola owns any more, by ID and the
/// backend that ran them (whose leftovers, such as a cgroup, the caller
/// clears).
pub struct Stale {
    pub id: String,
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
            backend: state.map(|s| s.backend),
            dir: entry.path(),
        });
    }
    Ok(out)
}
