//! Pausing a container: v1's freezer.state, v2's cgroup.freeze, each waited
//! on until the kernel says every process has stopped.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use super::{Group, OciError};
use crate::cgroup::{fs, CgroupError, Version};

/// How long freezing may take: processes in uninterruptible sleep (I/O,
/// page faults) stop only when it ends.
const TIMEOUT: Duration = Duration::from_secs(2);

pub(super) fn freeze(group: &Group) -> Result<(), CgroupError> {
    match group.version {
        Version::V1 => freeze_v1(freezer_dir(group, "pause")?),
        Version::V2 => freeze_v2(group.main()),
    }
}

pub(super) fn thaw(group: &Group) -> Result<(), CgroupError> {
    let (dir, reached) = match group.version {
        Version::V1 => {
            let dir = freezer_dir(group, "resume")?;
            fs::write(&dir.join("freezer.state"), "THAWED")?;
            (dir, wait(dir, "freezer.state", |s| s.trim() == "THAWED")?)
        }
        Version::V2 => {
            let dir = group.main();
            fs::write(&dir.join("cgroup.freeze"), 0)?;
            (
                dir,
                wait(dir, "cgroup.events", |s| fs::keyed(s, "frozen") == Some(0))?,
            )
        }
    };
    reached.map_err(|state| {
        OciError::Thaw {
            path: dir.to_path_buf(),
            state,
            waited: TIMEOUT,
        }
        .into()
    })
}

/// Whether the container is paused: all its processes stopped (by it or by
/// a frozen ancestor).
pub(super) fn frozen(group: &Group) -> bool {
    match group.version {
        Version::V1 => group
            .dir("freezer")
            .and_then(|d| fs::read_to_string(d.join("freezer.state")).ok())
            .is_some_and(|s| s.trim() == "FROZEN"),
        Version::V2 => {
            fs::read_to_string(group.main().join("cgroup.events"))
                .ok()
                .and_then(|s| fs::keyed(&s, "frozen"))
                == Some(1)
        }
    }
}

fn freezer_dir<'a>(group: &'a Group, what: &'static str) -> Result<&'a Path, CgroupError> {
    group.dir("freezer").ok_or_else(|| {
        OciError::NoController {
            what,
            controller: "freezer",
        }
        .into()
    })
}

/// v1 may sit in FREEZING while processes keep forking or joining; writing
/// FROZEN again retries, and a brief thaw now and then lets the stragglers
/// settle. If it never gets there the cgroup is thawed back, not left half frozen.
fn freeze_v1(dir: &Path) -> Result<(), CgroupError> {
    let state = dir.join("freezer.state");
    let deadline = Instant::now() + TIMEOUT;
    let mut last = String::new();
    for attempt in 1u32.. {
        fs::write(&state, "FROZEN")?;
        last = fs::read(&state)?.trim().to_owned();
        if last == "FROZEN" {
            return Ok(());
        }
        if Instant::now() >= deadline {
            break;
        }
        if attempt % 50 == 0 {
            fs::write(&state, "THAWED")?;
            thread::sleep(Duration::from_millis(10));
        } else {
            thread::yield_now();
        }
    }
    let thawed = fs::write(&state, "THAWED");
    tracing::debug!("thawing {} back: {thawed:?}", dir.display());
    Err(OciError::Freeze {
        path: dir.to_path_buf(),
        state: last,
        waited: TIMEOUT,
    }
    .into())
}

fn freeze_v2(dir: &Path) -> Result<(), CgroupError> {
    let file = dir.join("cgroup.freeze");
    if !file.exists() {
        return Err(OciError::NoController {
            what: "pause",
            controller: "freezer (cgroup.freeze, Linux 5.2)",
        }
        .into());
    }
    fs::write(&file, 1)?;
    match wait(dir, "cgroup.events", |s| fs::keyed(s, "frozen") == Some(1))? {
        Ok(()) => Ok(()),
        Err(state) => {
            let thawed = fs::write(&file, 0);
            tracing::debug!("thawing {} back: {thawed:?}", dir.display());
            Err(OciError::Freeze {
                path: dir.to_path_buf(),
                state,
                waited: TIMEOUT,
            }
            .into())
        }
    }
}

/// Polls `file` in `dir` until `done` says so, backing off from 100 µs;
/// in time, or not with what the file said last.
fn wait(
    dir: &Path,
    file: &str,
    done: impl Fn(&str) -> bool,
) -> Result<Result<(), String>, CgroupError> {
    let path = dir.join(file);
    let deadline = Instant::now() + TIMEOUT;
    let mut pause = Duration::from_micros(100);
    loop {
        let text = fs::read(&path)?;
        if done(&text) {
            return Ok(Ok(()));
        }
        if Instant::now() >= deadline {
            return Ok(Err(text.trim().replace('\n', ", ")));
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}
