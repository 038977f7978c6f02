//! Capabilities: Docker's default set tuned by `--cap-add`/`--cap-drop`/
//! `--privileged` ([`resolve`], in the parent), and the switch to the
//! workload's user with exactly that set ([`apply`], in the child).
//!
//! [`apply`] does the user switch itself, because the steps only work in one
//! order:
//!
//! 1. `prctl(PR_SET_KEEPCAPS, 1)`: leaving uid 0 would otherwise empty the
//!    permitted set;
//! 2. drop every capability not in the set from the bounding set (needs
//!    CAP_SETPCAP, so while still root);
//! 3. clear the ambient set;
//! 4. `setgroups`, `setresgid`, `setresuid` (need CAP_SETGID/CAP_SETUID);
//! 5. `prctl(PR_SET_KEEPCAPS, 0)`;
//! 6. one `capset`: permitted = effective = the set, inheritable empty.
//!
//! As in Docker since 20.10.14 (CVE-2022-24769) the inheritable set is empty,
//! and the ambient set too: a non-root workload keeps its capabilities up to
//! `execve`, where the kernel clears them unless a file grants some (and
//! no_new_privs then refuses even that). The set ids are changed with raw
//! system calls, for this thread only, as runc does: the child is
//! single-threaded and must not run glibc's all-threads set*id machinery.

use std::fmt;
use std::str::FromStr;

use ::caps::Capability;
use nix::errno::Errno;

use super::SecurityError;

/// Docker's default capabilities (moby `oci/caps/defaults.go`).
pub const DOCKER_DEFAULT: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// A set of capabilities, one bit per capability number (as in
/// `/proc/<pid>/status`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CapSet(u64);

impl CapSet {
    pub const EMPTY: CapSet = CapSet(0);

    pub const fn from_mask(mask: u64) -> CapSet {
        CapSet(mask)
    }

    pub const fn mask(self) -> u64 {
        self.0
    }

    pub fn docker_default() -> CapSet {
        DOCKER_DEFAULT.into_iter().collect()
    }

    pub fn contains(self, cap: Capability) -> bool {
        self.0 & cap.bitmask() != 0
    }

    pub fn insert(&mut self, cap: Capability) {
        self.0 |= cap.bitmask();
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn union(self, other: CapSet) -> CapSet {
        CapSet(self.0 | other.0)
    }

    pub fn intersection(self, other: CapSet) -> CapSet {
        CapSet(self.0 & other.0)
    }

    pub fn difference(self, other: CapSet) -> CapSet {
        CapSet(self.0 & !other.0)
    }

    /// The capabilities in the set, lowest number first.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        let mut all: Vec<Capability> = ::caps::all().into_iter().collect();
        all.sort_by_key(|c| c.index());
        all.into_iter().filter(move |c| self.contains(*c))
    }

    /// What isola can hand to a workload: the capabilities it holds in both
    /// its permitted set (capset can only shrink that) and its bounding set
    /// (a root workload gets its bounding set at `execve`). As root on a
    /// normal host this is every capability the running kernel knows.
    pub fn available() -> CapSet {
        CapSet::available_within(CapSet::bounding())
    }

    /// [`CapSet::available`] given this process's bounding set.
    pub fn available_within(bounding: CapSet) -> CapSet {
        let known: CapSet = ::caps::all().into_iter().collect();
        let permitted = capget().map(|(_, p)| p).unwrap_or(CapSet::EMPTY);
        known.intersection(permitted).intersection(bounding)
    }

    /// This process's bounding set, from /proc/self/status (one read rather
    /// than a prctl per capability), else capability by capability.
    pub fn bounding() -> CapSet {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let from_status = status
            .lines()
            .find_map(|l| l.strip_prefix("CapBnd:"))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok());
        if let Some(mask) = from_status {
            return CapSet(mask);
        }
        let mut bounding = CapSet::EMPTY;
        for cap in 0..64u8 {
            match bounding_has(cap) {
                Ok(true) => bounding.0 |= 1 << cap,
                Ok(false) => {}
                Err(_) => break,
            }
        }
        bounding
    }
}

impl FromIterator<Capability> for CapSet {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> CapSet {
        let mut set = CapSet::EMPTY;
        iter.into_iter().for_each(|c| set.insert(c));
        set
    }
}

/// `CAP_CHOWN,CAP_KILL` (bits the `caps` crate cannot name as `cap_<n>`).
impl fmt::Display for CapSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("(none)");
        }
        let mut first = true;
        for bit in 0..64u8 {
            if self.0 & (1 << bit) != 0 {
                if !first {
                    f.write_str(",")?;
                }
                first = false;
                f.write_str(&cap_label(bit))?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for CapSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CapSet({:#018x}: {self})", self.0)
    }
}

/// The name of capability number `cap`, or `cap_<n>` if unknown.
pub fn cap_label(cap: u8) -> String {
    ::caps::all()
        .into_iter()
        .find(|c| c.index() == cap)
        .map_or_else(|| format!("cap_{cap}"), |c| c.to_string())
}

/// The capabilities of a sandbox, as Docker computes them (moby
/// `oci/caps.TweakCapabilities`): `privileged` gives every available
/// capability and ignores the lists; `ALL` in `add` gives every available
/// capability but those in `drop`; `ALL` in `drop` gives exactly `add`;
/// otherwise Docker's default set minus `drop`, plus `add` (so a capability
/// named in both is kept). Names are case-insensitive, with or without
/// `CAP_`. An unknown name is an error, and so is a capability isola cannot
/// grant because it does not hold it ([`CapSet::available`]).
pub fn resolve(add: &[String], drop: &[String], privileged: bool) -> Result<CapSet, SecurityError> {
    resolve_with(add, drop, privileged, CapSet::available())
}

/// [`resolve`] against a given set of available capabilities.
pub fn resolve_with(
    add: &[String],
    drop: &[String],
    privileged: bool,
    available: CapSet,
) -> Result<CapSet, SecurityError> {
    if privileged {
        return Ok(available);
    }
    let (drop_all, drops) = parse_list(drop)?;
    let (add_all, adds) = parse_list(add)?;
    let set = if add_all {
        available.difference(drops)
    } else if drop_all {
        adds
    } else {
        CapSet::docker_default().difference(drops).union(adds)
    };
    let missing = set.difference(available);
    if let Some(cap) = missing.iter().next() {
        return Err(SecurityError::UnavailableCapability {
            name: cap.to_string(),
        });
    }
    Ok(set)
}

/// Whether the list says `ALL`, and the capabilities it names.
fn parse_list(names: &[String]) -> Result<(bool, CapSet), SecurityError> {
    let mut all = false;
    let mut set = CapSet::EMPTY;
    for name in names {
        let upper = name.trim().to_ascii_uppercase();
        if upper == "ALL" {
            all = true;
            continue;
        }
        let full = if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        };
        let cap = Capability::from_str(&full)
            .map_err(|_| SecurityError::UnknownCapability { name: name.clone() })?;
        set.insert(cap);
    }
    Ok((all, set))
}

/// Become `uid`/`gid` with supplementary `groups`, holding exactly `set`
/// (bounding, permitted, effective), no inheritable and no ambient
/// capabilities. `bounding` is this process's bounding set
/// ([`CapSet::bounding`], read in the parent: the child has the same).
/// Call it in the child, after the steps that need privilege and before
/// `no_new_privs`, seccomp and `execve`; the steps and their order are in
/// the module documentation. Makes system calls only (no allocation).
pub fn apply(
    set: &CapSet,
    bounding: CapSet,
    uid: u32,
    gid: u32,
    groups: &[u32],
) -> Result<(), SecurityError> {
    let sets = CapSets {
        bounding: *set,
        effective: *set,
        permitted: *set,
        inheritable: CapSet::EMPTY,
        ambient: CapSet::EMPTY,
    };
    apply_sets(&sets, bounding, uid, gid, groups)
}

/// The five sets of a process, as an OCI config.json gives them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSets {
    pub bounding: CapSet,
    pub effective: CapSet,
    pub permitted: CapSet,
    pub inheritable: CapSet,
    pub ambient: CapSet,
}

/// [`apply`] with each set given: the bounding set cut down to
/// `sets.bounding`, then the user switched, then the effective, permitted
/// and inheritable sets set, then each ambient capability raised (the
/// kernel takes only those both permitted and inheritable).
pub fn apply_sets(
    sets: &CapSets,
    bounding: CapSet,
    uid: u32,
    gid: u32,
    groups: &[u32],
) -> Result<(), SecurityError> {
    prctl(libc::PR_SET_KEEPCAPS, 1, "PR_SET_KEEPCAPS")?;
    drop_bounding(bounding.difference(sets.bounding))?;
    clear_ambient()?;

    let switch = |call: &'static str, errno: Errno| SecurityError::SwitchUser {
        call,
        uid,
        gid,
        errno,
    };
    // SAFETY: setgroups reads `groups.len()` gids from a valid slice; the
    // set*id calls take plain integers. Raw syscalls change this thread only.
    let rc = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    check(rc).map_err(|e| switch("setgroups", e))?;
    // SAFETY: plain integer arguments.
    let rc = unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) };
    check(rc).map_err(|e| switch("setresgid", e))?;
    // SAFETY: plain integer arguments.
    let rc = unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) };
    check(rc).map_err(|e| switch("setresuid", e))?;

    prctl(libc::PR_SET_KEEPCAPS, 0, "PR_SET_KEEPCAPS")?;
    capset(sets.effective, sets.permitted, sets.inheritable)?;
    // The kernel raises only what is both permitted and inheritable; runc
    // warns of the rest and goes on, so a config that lists ambient
    // capabilities without inheritable ones (runc's own spec) still runs.
    let ambient = sets
        .ambient
        .intersection(sets.permitted)
        .intersection(sets.inheritable);
    for cap in 0..64u8 {
        if ambient.0 & (1 << cap) == 0 {
            continue;
        }
        let raise = libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong;
        // SAFETY: PR_CAP_AMBIENT takes integer arguments.
        let rc =
            unsafe { libc::prctl(libc::PR_CAP_AMBIENT, raise, libc::c_ulong::from(cap), 0, 0) };
        check(rc.into()).map_err(|errno| SecurityError::Prctl {
            what: "PR_CAP_AMBIENT_RAISE",
            errno,
        })?;
    }
    Ok(())
}

/// Drop `caps` from the bounding set: one prctl each, no reads first.
fn drop_bounding(caps: CapSet) -> Result<(), SecurityError> {
    for cap in 0..64u8 {
        if caps.0 & (1 << cap) == 0 {
            continue;
        }
        // SAFETY: PR_CAPBSET_DROP takes a capability number.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        if rc != 0 {
            return Err(SecurityError::DropBounding {
                cap,
                errno: Errno::last(),
            });
        }
    }
    Ok(())
}

fn bounding_has(cap: u8) -> Result<bool, Errno> {
    // SAFETY: PR_CAPBSET_READ takes a capability number.
    let rc = unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0, 0, 0) };
    if rc < 0 {
        Err(Errno::last())
    } else {
        Ok(rc == 1)
    }
}

fn clear_ambient() -> Result<(), SecurityError> {
    let clear = libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong;
    // SAFETY: PR_CAP_AMBIENT takes integer arguments.
    let rc = unsafe { libc::prctl(libc::PR_CAP_AMBIENT, clear, 0, 0, 0) };
    match rc {
        0 => Ok(()),
        // Before Linux 4.3 there is no ambient set to clear.
        _ if Errno::last() == Errno::EINVAL => Ok(()),
        _ => Err(SecurityError::Prctl {
            what: "PR_CAP_AMBIENT_CLEAR_ALL",
            errno: Errno::last(),
        }),
    }
}

fn prctl(option: libc::c_int, arg: libc::c_ulong, what: &'static str) -> Result<(), SecurityError> {
    // SAFETY: every option used here takes one integer argument.
    let rc = unsafe { libc::prctl(option, arg, 0, 0, 0) };
    check(rc.into()).map_err(|errno| SecurityError::Prctl { what, errno })
}

fn check(rc: libc::c_long) -> Result<(), Errno> {
    if rc < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// `struct __user_cap_header_struct` / `__user_cap_data_struct`
/// (linux/capability.h), version 3: two data structs for 64 bits.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

fn capset(effective: CapSet, permitted: CapSet, inheritable: CapSet) -> Result<(), SecurityError> {
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let half = |set: CapSet, hi: bool| (if hi { set.0 >> 32 } else { set.0 }) as u32;
    let data = [false, true].map(|hi| CapData {
        effective: half(effective, hi),
        permitted: half(permitted, hi),
        inheritable: half(inheritable, hi),
    });
    // SAFETY: header and data are the kernel's v3 layout and live across the call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    check(rc).map_err(|errno| SecurityError::SetCapabilities { errno })
}

/// This thread's (effective, permitted) sets.
fn capget() -> Result<(CapSet, CapSet), Errno> {
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and data are the kernel's v3 layout; data has room for two.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &header, data.as_mut_ptr()) };
    check(rc)?;
    let join = |lo: u32, hi: u32| CapSet(u64::from(lo) | u64::from(hi) << 32);
    Ok((
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    /// Every capability the `caps` crate knows, as on a root host.
    fn everything() -> CapSet {
        ::caps::all().into_iter().collect()
    }

    fn resolve(add: &[&str], drop: &[&str], privileged: bool) -> Result<CapSet, SecurityError> {
        resolve_with(&s(add), &s(drop), privileged, everything())
    }

    #[test]
    fn default_set_is_dockers_fourteen() {
        let set = resolve(&[], &[], false).unwrap();
        assert_eq!(set, CapSet::docker_default());
        assert_eq!(set.mask(), 0x0000_0000_a804_25fb);
        assert_eq!(set.iter().count(), 14);
        assert_eq!(set.mask().count_ones(), 14);
    }

    #[test]
    fn names_take_any_case_with_or_without_prefix() {
        for name in [
            "NET_ADMIN",
            "net_admin",
            "CAP_NET_ADMIN",
            "cap_Net_Admin",
            " NET_ADMIN ",
        ] {
            let set = resolve(&[name], &[], false).unwrap();
            assert!(set.contains(Capability::CAP_NET_ADMIN), "{name}");
            assert_eq!(set.mask().count_ones(), 15, "{name}");
        }
    }

    #[test]
    fn add_and_drop() {
        let set = resolve(&["SYS_ADMIN"], &["chown", "CAP_NET_RAW"], false).unwrap();
        assert!(set.contains(Capability::CAP_SYS_ADMIN));
        assert!(!set.contains(Capability::CAP_CHOWN));
        assert!(!set.contains(Capability::CAP_NET_RAW));
        assert_eq!(set.mask().count_ones(), 13);
    }

    #[test]
    fn a_capability_both_added_and_dropped_is_kept_as_in_docker() {
        let set = resolve(&["NET_ADMIN"], &["NET_ADMIN"], false).unwrap();
        assert!(set.contains(Capability::CAP_NET_ADMIN));
    }

    #[test]
    fn add_all_gives_everything_but_the_drops() {
        let set = resolve(&["ALL"], &["SYS_ADMIN"], false).unwrap();
        assert_eq!(set, everything().difference(CapSet::from_mask(1 << 21)));
        assert_eq!(resolve(&["all"], &[], false).unwrap(), everything());
    }

    #[test]
    fn drop_all_keeps_only_the_adds() {
        assert_eq!(resolve(&[], &["ALL"], false).unwrap(), CapSet::EMPTY);
        let set = resolve(&["NET_BIND_SERVICE"], &["all"], false).unwrap();
        assert_eq!(
            set,
            [Capability::CAP_NET_BIND_SERVICE].into_iter().collect()
        );
    }

    #[test]
    fn privileged_is_everything_available_whatever_the_lists() {
        assert_eq!(resolve(&[], &["ALL"], true).unwrap(), everything());
        let some = CapSet::from_mask(0xff);
        assert_eq!(resolve_with(&[], &[], true, some).unwrap(), some);
    }

    #[test]
    fn unknown_names_are_refused_and_the_error_says_how_to_spell_one() {
        for (add, drop) in [(&["NET_ADMN"][..], &[][..]), (&[][..], &["CAP_FOO"][..])] {
            let err = resolve(add, drop, false).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, SecurityError::UnknownCapability { .. }),
                "{msg}"
            );
            assert!(msg.contains("NET_ADMN") || msg.contains("CAP_FOO"), "{msg}");
            assert!(msg.contains("CAP_ prefix") && msg.contains("ALL"), "{msg}");
        }
    }

    #[test]
    fn unavailable_capabilities_are_refused_by_name() {
        let without_sys_admin = everything().difference(CapSet::from_mask(1 << 21));
        let err = resolve_with(&s(&["SYS_ADMIN"]), &[], false, without_sys_admin).unwrap_err();
        assert!(err.to_string().contains("CAP_SYS_ADMIN"), "{err}");
        // Dropping one that is not available is fine.
        resolve_with(&[], &s(&["SYS_ADMIN"]), false, without_sys_admin).unwrap();
    }

    #[test]
    fn display_names_the_capabilities() {
        let set: CapSet = [Capability::CAP_KILL, Capability::CAP_CHOWN]
            .into_iter()
            .collect();
        assert_eq!(set.to_string(), "CAP_CHOWN,CAP_KILL");
        assert_eq!(CapSet::EMPTY.to_string(), "(none)");
        assert_eq!(CapSet::from_mask(1 << 63).to_string(), "cap_63");
    }

    #[test]
    fn bounding_set_from_status_is_what_prctl_reads() {
        let mut by_prctl = CapSet::EMPTY;
        for cap in 0..64u8 {
            match bounding_has(cap) {
                Ok(true) => by_prctl.0 |= 1 << cap,
                Ok(false) => {}
                Err(_) => break,
            }
        }
        assert_eq!(CapSet::bounding(), by_prctl);
    }

    #[test]
    fn available_is_within_what_this_process_holds() {
        let available = CapSet::available();
        let (_, permitted) = capget().unwrap();
        assert_eq!(available.difference(permitted), CapSet::EMPTY);
        if nix::unistd::geteuid().is_root() {
            assert!(!available.is_empty());
        }
    }
}
