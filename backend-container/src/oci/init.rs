//! What the container's init does between clone and exec, config.json's
//! way (runc's order): join the cgroup, make the mounts on a bind of the
//! bundle's rootfs, make /dev, pivot_root, sysctls, read-only and masked
//! paths, hostname, limits, terminal, user and capabilities; then report
//! ready and block on the start fifo until `isola-runtime start` writes it.

use std::ffi::CString;
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::{makedev, mknod, Mode};

use super::plan::{Plan, DEFAULT_DEVICES};
use super::process;
use crate::fail::Fail;
use crate::message::{Channel, Report};
use crate::mounts::{self, m, mkdir_p};
use crate::security::caps::CapSet;

/// How the container sees its cgroups at a `cgroup` mount.
pub enum CgroupView {
    /// A cgroup2 mount (its root is the container's cgroup when it has a
    /// cgroup namespace).
    Unified,
    /// cgroup v1: a tmpfs with, for each hierarchy, the container's own
    /// directory bound in: (name such as `cpu,cpuacct`, host directory).
    Hierarchies(Vec<(String, PathBuf)>),
}

pub struct InitConfig<'a> {
    pub plan: &'a Plan,
    pub rootfs: &'a Path,
    pub channel: &'a Channel,
    /// The start fifo, opened read-write (so opening never blocked): the
    /// init blocks reading it.
    pub start: &'a OwnedFd,
    /// v1: the `tasks` files to write 0 to; none on v2 (born in it).
    pub cgroup_tasks: &'a [std::fs::File],
    pub cgroup_view: &'a CgroupView,
    /// The runtime's bounding set, read before clone.
    pub bounding: CapSet,
    pub preserve_fds: u32,
    pub no_pivot: bool,
    /// The session keyring to make and join, unless `--no-new-keyring`.
    pub keyring: Option<CString>,
    /// A user namespace of its own: wait for the runtime to write its id
    /// maps; device nodes are bound from the host's (mknod is not allowed).
    pub userns: bool,
    /// Stop once mounted, before pivot_root, for the runtime to run the
    /// createRuntime and createContainer hooks.
    pub hooks_pause: bool,
}

/// The init's life; the exit code when it does not end in the process.
pub fn main(cfg: &InitConfig) -> i32 {
    if let Err(fail) = setup(cfg) {
        let _ = cfg.channel.report(&Report::SetupFailed(fail), &[]);
        return 1;
    }
    if cfg.channel.report(&Report::Ready, &[]).is_err() {
        return 1;
    }
    // Wait for `start`; the runtime's process is gone by then.
    if !isola_core::oci::gate::wait(cfg.start) {
        return 1;
    }
    process::exec(&cfg.plan.process)
}

fn setup(cfg: &InitConfig) -> Result<(), Fail> {
    let plan = cfg.plan;
    if cfg.userns {
        match cfg.channel.next_order() {
            Ok(Some((crate::message::Order::Start, _))) => {}
            _ => return Err(Fail::msg("isola-runtime did not map the user namespace")),
        }
        // Become the namespace's root: the files setup makes (in its own
        // tmpfs, under the rootfs) must have an owner the namespace maps.
        let root = |call: &str, rc: libc::c_long| {
            if rc == 0 {
                Ok(())
            } else {
                Err(Fail::sys(
                    format!("{call} to the user namespace's root"),
                    Errno::last(),
                ))
            }
        };
        // SAFETY: plain integer arguments; raw syscalls change this thread only.
        root("setresgid", unsafe {
            libc::syscall(libc::SYS_setresgid, 0, 0, 0)
        })?;
        // SAFETY: as above.
        root("setresuid", unsafe {
            libc::syscall(libc::SYS_setresuid, 0, 0, 0)
        })?;
        // SAFETY: an empty list.
        root("setgroups", unsafe {
            libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>())
        })?;
    }
    if !cfg.cgroup_tasks.is_empty() {
        crate::cgroup::move_self(cfg.cgroup_tasks)
            .map_err(|e| Fail::sys("joining the container's cgroup", e))?;
    }
    if plan.new_cgroup_namespace {
        unshare(CloneFlags::CLONE_NEWCGROUP)
            .map_err(|e| Fail::sys("unshare(CLONE_NEWCGROUP)", e))?;
    }
    root_mount(cfg.rootfs, plan.rootfs_propagation)?;
    for m in &plan.mounts {
        mount_one(cfg.rootfs, m, cfg.cgroup_view)?;
    }
    if plan.setup_dev {
        make_dev(cfg.rootfs, plan, cfg.userns)?;
    }
    if cfg.hooks_pause {
        cfg.channel
            .report(&Report::Mounted, &[])
            .map_err(|_| Fail::msg("isola-runtime is gone"))?;
        match cfg.channel.next_order() {
            Ok(Some((crate::message::Order::Start, _))) => {}
            _ => return Err(Fail::msg("isola-runtime is gone, or its hooks failed")),
        }
    }
    if cfg.no_pivot {
        move_root(cfg.rootfs)?;
    } else {
        mounts::pivot(cfg.rootfs, false)?;
    }
    for (key, value) in &plan.sysctl {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        fs::write(&path, value).map_err(|e| Fail::io(format!("setting sysctl {key}"), e))?;
    }
    for path in &plan.readonly {
        read_only(path)?;
    }
    for path in &plan.masked {
        mask(path)?;
    }
    if plan.root_readonly {
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(|e| Fail::sys("making the root filesystem read-only", e))?;
    }
    if let Some(h) = &plan.hostname {
        nix::unistd::sethostname(h).map_err(|e| Fail::sys("setting the hostname", e))?;
    }
    if let Some(d) = &plan.domainname {
        // SAFETY: setdomainname reads `len` bytes of a valid buffer.
        let rc = unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) };
        if rc != 0 {
            return Err(Fail::sys("setting the domain name", Errno::last()));
        }
    }
    if let Some(name) = &cfg.keyring {
        // KEYCTL_JOIN_SESSION_KEYRING: a new session keyring of this name,
        // so the container does not share the caller's keys.
        // SAFETY: keyctl with a valid C string.
        let rc = unsafe { libc::syscall(libc::SYS_keyctl, 1, name.as_ptr()) };
        // ENOSYS/EACCES: no keyrings here (as runc, go on without).
        if rc < 0 && !matches!(Errno::last(), Errno::ENOSYS | Errno::EACCES | Errno::EDQUOT) {
            return Err(Fail::sys("making a session keyring", Errno::last()));
        }
    }
    // A program that is not there fails `create`, as with runc.
    crate::exec::find(&plan.process.args, &plan.process.env)
        .map_err(|f| Fail::msg(format!("exec: {}", f.message)))?;
    process::become_it(
        &plan.process,
        cfg.channel,
        cfg.bounding,
        cfg.preserve_fds,
        true,
    )
}

/// The host's mounts reach the container as the propagation says, and
/// the rootfs becomes a mount of its own (pivot_root needs one).
fn root_mount(rootfs: &Path, propagation: MsFlags) -> Result<(), Fail> {
    m(None, Path::new("/"), None, propagation, None)?;
    m(
        Some(rootfs),
        rootfs,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
}

fn mount_one(rootfs: &Path, mt: &super::plan::Mount, view: &CgroupView) -> Result<(), Fail> {
    let dest = mounts::inside(rootfs, &mt.destination)?;
    let o = &mt.options;
    if o.bind {
        let source = mt.source.as_deref().unwrap_or(Path::new(""));
        mounts::bind_point(source, &dest, "the bind mount source")?;
        let rec = o.flags & MsFlags::MS_REC;
        m(Some(source), &dest, None, MsFlags::MS_BIND | rec, None)?;
        // A bind takes its flags only from a remount.
        let extra = o.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !extra.is_empty() {
            m(
                None,
                &dest,
                None,
                MsFlags::MS_REMOUNT | MsFlags::MS_BIND | extra,
                None,
            )?;
        }
    } else if mt.typ == "cgroup" || mt.typ == "cgroup2" {
        mkdir_p(&dest)?;
        cgroup_mount(&dest, o.flags, view)?;
    } else {
        mkdir_p(&dest)?;
        let source = mt.source.clone().unwrap_or_else(|| PathBuf::from(&mt.typ));
        let data = (!o.data.is_empty()).then_some(o.data.as_str());
        let typ = (!mt.typ.is_empty()).then_some(mt.typ.as_str());
        m(Some(&source), &dest, typ, o.flags, data)?;
    }
    for p in &o.propagation {
        m(None, &dest, None, *p, None)?;
    }
    Ok(())
}

fn cgroup_mount(dest: &Path, flags: MsFlags, view: &CgroupView) -> Result<(), Fail> {
    match view {
        CgroupView::Unified => m(
            Some(Path::new("cgroup2")),
            dest,
            Some("cgroup2"),
            flags,
            None,
        ),
        CgroupView::Hierarchies(dirs) => {
            let base = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            m(
                Some(Path::new("tmpfs")),
                dest,
                Some("tmpfs"),
                base,
                Some("mode=755"),
            )?;
            for (name, dir) in dirs {
                let at = dest.join(name);
                mkdir_p(&at)?;
                m(Some(dir), &at, None, MsFlags::MS_BIND, None)?;
                m(
                    None,
                    &at,
                    None,
                    MsFlags::MS_REMOUNT | MsFlags::MS_BIND | base | (flags & MsFlags::MS_RDONLY),
                    None,
                )?;
                // cpu,cpuacct is also reachable as cpu and as cpuacct.
                if name.contains(',') {
                    for part in name.split(',') {
                        let _ = symlink(name, dest.join(part));
                    }
                }
            }
            if flags.contains(MsFlags::MS_RDONLY) {
                m(
                    None,
                    dest,
                    None,
                    MsFlags::MS_REMOUNT | base | MsFlags::MS_RDONLY,
                    Some("mode=755"),
                )?;
            }
            Ok(())
        }
    }
}

/// The default devices and config.json's, and /dev's usual links.
fn make_dev(rootfs: &Path, plan: &Plan, userns: bool) -> Result<(), Fail> {
    let umask = nix::sys::stat::umask(Mode::empty());
    let made = (|| {
        for (path, major, minor) in DEFAULT_DEVICES {
            if plan.devices.iter().any(|d| d.path == *path) {
                continue;
            }
            if userns {
                bind_node(rootfs, path)?;
            } else {
                node(
                    rootfs,
                    path,
                    nix::sys::stat::SFlag::S_IFCHR,
                    *major,
                    *minor,
                    0o666,
                    0,
                    0,
                )?;
            }
        }
        for d in &plan.devices {
            if userns {
                bind_node(rootfs, &d.path)?;
            } else {
                node(
                    rootfs, &d.path, d.kind, d.major, d.minor, d.mode, d.uid, d.gid,
                )?;
            }
        }
        Ok::<(), Fail>(())
    })();
    nix::sys::stat::umask(umask);
    made?;
    let dev = mounts::inside(rootfs, "/dev")?;
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        match symlink(target, dev.join(link)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Fail::io(format!("creating /dev/{link}"), e)),
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn node(
    rootfs: &Path,
    path: &str,
    kind: nix::sys::stat::SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
) -> Result<(), Fail> {
    let dest = mounts::inside(rootfs, path)?;
    if let Some(parent) = dest.parent() {
        mkdir_p(parent)?;
    }
    match mknod(
        &dest,
        kind,
        Mode::from_bits_truncate(mode),
        makedev(major, minor),
    ) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(Fail::sys(format!("creating the device {path}"), e)),
    }
    nix::unistd::chown(
        &dest,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .map_err(|e| Fail::sys(format!("giving {path} to {uid}:{gid}"), e))
}

/// In a user namespace, where mknod is refused: the host's node of the
/// same path, bound onto an empty file (runc's way).
fn bind_node(rootfs: &Path, path: &str) -> Result<(), Fail> {
    let dest = mounts::inside(rootfs, path)?;
    if let Some(parent) = dest.parent() {
        mkdir_p(parent)?;
    }
    if fs::symlink_metadata(&dest).is_err() {
        fs::write(&dest, b"").map_err(|e| Fail::io(format!("creating {path}"), e))?;
    }
    m(Some(Path::new(path)), &dest, None, MsFlags::MS_BIND, None)
}

/// `--no-pivot`: the rootfs moved over / and chrooted into (for roots on
/// a ramfs, where pivot_root fails).
fn move_root(rootfs: &Path) -> Result<(), Fail> {
    nix::unistd::chdir(rootfs).map_err(|e| Fail::sys("entering the root filesystem", e))?;
    m(Some(rootfs), Path::new("/"), None, MsFlags::MS_MOVE, None)?;
    nix::unistd::chroot(".").map_err(|e| Fail::sys("chroot", e))?;
    nix::unistd::chdir("/").map_err(|e| Fail::sys("chdir /", e))
}

/// runc's readonlyPath: a recursive bind of the path over itself, made
/// read-only; a path the kernel lacks is skipped.
fn read_only(path: &str) -> Result<(), Fail> {
    let p = Path::new(path);
    match mount(
        Some(p),
        p,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    ) {
        Ok(()) => m(
            None,
            p,
            None,
            MsFlags::MS_REMOUNT
                | MsFlags::MS_BIND
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC,
            None,
        ),
        Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(Fail::sys(format!("making {path} read-only"), e)),
    }
}

/// runc's maskPath: /dev/null over a file, an empty read-only tmpfs over
/// a directory; a path the kernel lacks is skipped.
fn mask(path: &str) -> Result<(), Fail> {
    let p = Path::new(path);
    let null = mount(
        Some("/dev/null"),
        p,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    );
    match null {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::ENOTDIR) => m(
            Some(Path::new("tmpfs")),
            p,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None,
        ),
        Err(e) => Err(Fail::sys(format!("masking {path}"), e)),
    }
}
