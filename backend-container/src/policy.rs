//! One sandbox's security policy: prepared in the parent (capabilities
//! resolved, seccomp filter compiled: the child must not allocate) and applied in the child
//! right before exec, in the order the security module documents.

use isola_core::spec::{Security, User};

use crate::child::Fail;
use crate::security::{caps, seccomp, CapSet, Program, SecurityError};

pub struct Prepared {
    caps: CapSet,
    /// `None` for `--privileged` and `--security-opt seccomp=unconfined`.
    filter: Option<Program>,
    no_new_privs: bool,
}

pub fn prepare(sec: &Security) -> Result<Prepared, SecurityError> {
    let caps = caps::resolve(&sec.cap_add, &sec.cap_drop, sec.privileged)?;
    let filter = if sec.seccomp && !sec.privileged {
        Some(seccomp::default_filter(&caps)?)
    } else {
        None
    };
    Ok(Prepared {
        caps,
        filter,
        no_new_privs: !sec.privileged,
    })
}

pub fn apply(p: &Prepared, user: &User) -> Result<(), Fail> {
    let fail = |e: SecurityError| Fail::msg(e.to_string());
    caps::apply(&p.caps, user.uid, user.gid, &user.groups).map_err(fail)?;
    if p.no_new_privs || p.filter.is_some() {
        seccomp::set_no_new_privs().map_err(fail)?;
    }
    if let Some(f) = &p.filter {
        seccomp::install(f).map_err(fail)?;
    }
    Ok(())
}
