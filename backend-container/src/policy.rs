//! One sandbox's security policy: prepared in the parent (capabilities
//! resolved, seccomp filter compiled: the child must not allocate) and applied in the child
//! right before exec, in the order the security module documents.

use isola_core::spec::{Security, User};

use crate::fail::Fail;
use crate::security::{caps, seccomp, CapSet, Program, SecurityError};

pub struct Prepared {
    caps: CapSet,
    /// isola's bounding set, which the child shares.
    bounding: CapSet,
    /// `None` for `--privileged` and `--security-opt seccomp=unconfined`.
    filter: Option<Program>,
    no_new_privs: bool,
}

pub fn prepare(sec: &Security) -> Result<Prepared, SecurityError> {
    let bounding = CapSet::bounding();
    let available = CapSet::available_within(bounding);
    let caps = caps::resolve_with(&sec.cap_add, &sec.cap_drop, sec.privileged, available)?;
    let filter = if sec.seccomp && !sec.privileged {
        Some(seccomp::default_filter(&caps)?)
    } else {
        None
    };
    Ok(Prepared {
        caps,
        bounding,
        filter,
        no_new_privs: !sec.privileged,
    })
}

pub fn apply(p: &Prepared, user: &User) -> Result<(), Fail> {
    let fail = |e: SecurityError| Fail::msg(e.to_string());
    caps::apply(&p.caps, p.bounding, user.uid, user.gid, &user.groups).map_err(fail)?;
    if p.no_new_privs || p.filter.is_some() {
        seccomp::set_no_new_privs().map_err(fail)?;
    }
    if let Some(f) = &p.filter {
        seccomp::install(f).map_err(fail)?;
    }
    Ok(())
}
