//! What the monitor process gives up before its guest runs: the host's
//! filesystem (it pivots into its jail directory, where only what it
//! opens is bound), root (an unprivileged uid and gid), every capability,
//! new privileges (no_new_privs) and core dumps.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{Gid, Uid};

#[derive(Debug, thiserror::Error)]
pub enum JailError {
    #[error("the monitor cannot {what}")]
    Sys {
        what: String,
        #[source]
        source: nix::Error,
    },
    #[error("the monitor cannot prepare {} in its jail", path.display())]
    Entry {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the monitor cannot drop its capabilities")]
    Caps(#[source] caps::errors::CapsError),
    #[error("the monitor still has capabilities as uid {uid}: {left}")]
    CapsLeft { uid: u32, left: String },
}

fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> JailError {
    let what = what.into();
    move |source| JailError::Sys { what, source }
}

/// no_new_privs, no core dumps and not dumpable (so that no process of
/// the same uid may ptrace it); for every thread made afterwards too.
pub fn no_new_privileges() -> Result<(), JailError> {
    // SAFETY: prctl and setrlimit with constant arguments.
    let failed = unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0
            || libc::setrlimit(
                libc::RLIMIT_CORE,
                &libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                },
            ) != 0
    };
    if failed {
        return Err(JailError::Sys {
            what: "set no_new_privs".into(),
            source: nix::Error::last(),
        });
    }
    Ok(())
}

/// Empty the bounding, inheritable and ambient sets while one thread
/// runs (they are per thread, and threads inherit them): what `become`
/// leaves of the permitted and effective sets is then nothing.
pub fn drop_inheritable_capabilities() -> Result<(), JailError> {
    use caps::CapSet;
    for set in [CapSet::Ambient, CapSet::Inheritable, CapSet::Bounding] {
        caps::clear(None, set).map_err(JailError::Caps)?;
    }
    Ok(())
}

/// A file of the host that the monitor opens by a path inside its jail.
pub struct Bind {
    pub host: PathBuf,
    /// Relative to the jail's root.
    pub inside: PathBuf,
}

/// Make `dir` the root: the host's files the monitor opens bound in (in
/// its own mount namespace, so the binds go with it), then pivot_root
/// there and detach the old root.
pub fn enter_jail(dir: &Path, binds: &[Bind]) -> Result<(), JailError> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(sys("make its mounts private"))?;
    mount(
        Some(dir),
        dir,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys(format!("bind its jail {}", dir.display())))?;
    for bind in binds {
        let target = dir.join(&bind.inside);
        let entry = |source| JailError::Entry {
            path: target.clone(),
            source,
        };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(entry)?;
        }
        std::fs::File::create(&target).map_err(entry)?;
        mount(
            Some(&bind.host),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys(format!("bind {} into its jail", bind.host.display())))?;
    }
    nix::unistd::chdir(dir).map_err(sys("enter its jail"))?;
    // pivot_root(".", "."): the old root ends up under the new one, and
    // is detached at once: no directory for it is needed.
    nix::unistd::pivot_root(".", ".").map_err(sys("pivot_root into its jail"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(sys("detach the host's root"))?;
    nix::unistd::chdir("/").map_err(sys("enter its jail"))?;
    Ok(())
}

/// Become `uid`/`gid` with no supplementary groups, in every thread
/// (glibc passes set*id on to them all); leaving uid 0 empties the
/// permitted and effective sets, which is checked.
pub fn become_user(uid: u32, gid: u32) -> Result<(), JailError> {
    nix::unistd::setgroups(&[]).map_err(sys("drop its groups"))?;
    let g = Gid::from_raw(gid);
    nix::unistd::setresgid(g, g, g).map_err(sys(format!("become gid {gid}")))?;
    let u = Uid::from_raw(uid);
    nix::unistd::setresuid(u, u, u).map_err(sys(format!("become uid {uid}")))?;
    let mut left = Vec::new();
    for set in [caps::CapSet::Effective, caps::CapSet::Permitted] {
        let held = caps::read(None, set).map_err(JailError::Caps)?;
        left.extend(held.into_iter().map(|c| c.to_string()));
    }
    if !left.is_empty() {
        return Err(JailError::CapsLeft {
            uid,
            left: left.join(", "),
        });
    }
    Ok(())
}
