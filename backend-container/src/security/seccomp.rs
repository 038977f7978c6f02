//! Docker's default seccomp filter for x86_64, compiled with seccompiler in
//! the parent ([`default_filter`]) and installed in the child
//! ([`set_no_new_privs`], then [`install`]).
//!
//! A system call outside the allow-list fails with EPERM, except `clone3`,
//! which fails with ENOSYS (unless CAP_SYS_ADMIN is held) so that libc falls
//! back to `clone`, whose flags the filter can check. A system call made with
//! another architecture's convention (`int 0x80`, i386) kills the process,
//! and x32 calls (numbers with bit 30 set) are in no list, so fail with
//! EPERM: Docker's profile also admits i386 and x32, ours only x86_64.
//!
//! seccompiler gives every matching rule the same action (allow), so the
//! `clone3` → ENOSYS rule is a short prelude placed before its program.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_imports))]

use std::collections::BTreeMap;

use nix::errno::Errno;
use seccompiler::{BpfProgram, SeccompRule};

use super::{CapSet, SecurityError};

/// Docker's default filter for a sandbox holding `caps`: the calls of
/// [`super::syscalls`], the capability-gated ones only for the capabilities
/// in `caps`. Compile it in the parent; it is the slow part.
#[cfg(target_arch = "x86_64")]
pub fn default_filter(caps: &CapSet) -> Result<BpfProgram, SecurityError> {
    use super::syscalls::*;
    use ::caps::Capability;
    use seccompiler::{SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op};
    use seccompiler::{SeccompCondition, SeccompFilter, TargetArch};

    // A syscall's rules: an empty list means "allow with any arguments".
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let mut allow = |list: &[Syscall]| {
        for s in list {
            rules.insert(s.nr, Vec::new());
        }
    };
    allow(ALLOWED);
    if kernel_at_least(PTRACE_MIN_KERNEL) {
        allow(ALLOWED_SINCE_4_8);
    }
    for (cap, list) in BY_CAPABILITY {
        if caps.contains(*cap) {
            allow(list);
        }
    }

    let arg = |index: u8, len: Len, op: Op, value: u64| -> Result<SeccompRule, SecurityError> {
        Ok(SeccompRule::new(vec![SeccompCondition::new(
            index, len, op, value,
        )?])?)
    };
    // `socket` takes an int family: compare the low 32 bits, as the kernel does.
    allow_if(
        &mut rules,
        SOCKET,
        arg(0, Len::Dword, Op::Ne, SOCKET_DENIED_FAMILY)?,
    );
    for persona in PERSONALITY_ALLOWED {
        allow_if(
            &mut rules,
            PERSONALITY,
            arg(0, Len::Dword, Op::Eq, persona)?,
        );
    }
    let sys_admin = caps.contains(Capability::CAP_SYS_ADMIN);
    if !sys_admin {
        let no_namespaces = arg(0, Len::Qword, Op::MaskedEq(CLONE_NAMESPACE_FLAGS), 0)?;
        allow_if(&mut rules, CLONE, no_namespaces);
    }

    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        TargetArch::x86_64,
    )?;
    let body: BpfProgram = filter.try_into()?;
    let program = if sys_admin {
        body
    } else {
        let mut program = clone3_enosys_prelude(CLONE3.nr as u32).to_vec();
        program.extend(body);
        program
    };
    if program.len() > BPF_MAXINSNS {
        return Err(SecurityError::FilterLength(program.len()));
    }
    Ok(program)
}

#[cfg(not(target_arch = "x86_64"))]
pub fn default_filter(_caps: &CapSet) -> Result<BpfProgram, SecurityError> {
    Err(SecurityError::UnsupportedArch(std::env::consts::ARCH))
}

/// Add an argument rule to a syscall, unless it is already allowed outright.
#[cfg(target_arch = "x86_64")]
fn allow_if(
    rules: &mut BTreeMap<i64, Vec<SeccompRule>>,
    call: super::syscalls::Syscall,
    rule: SeccompRule,
) {
    match rules.get_mut(&call.nr) {
        Some(chain) if chain.is_empty() => {}
        Some(chain) => chain.push(rule),
        None => {
            rules.insert(call.nr, vec![rule]);
        }
    }
}

/// The kernel's limit on a filter's length (BPF_MAXINSNS).
const BPF_MAXINSNS: usize = 4096;

// Classic BPF opcodes (linux/bpf_common.h) and the offsets of
// `struct seccomp_data { int nr; __u32 arch; ... }`.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_DATA_NR: u32 = 0;
const SECCOMP_DATA_ARCH: u32 = 4;
/// EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;

/// Return ENOSYS for native `clone3`; anything else falls through to the
/// program that follows (whose own arch check kills foreign calls).
fn clone3_enosys_prelude(clone3: u32) -> [seccompiler::sock_filter; 5] {
    let ins = |code, jt, jf, k| seccompiler::sock_filter { code, jt, jf, k };
    [
        ins(BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_ARCH),
        ins(BPF_JEQ_K, 0, 3, AUDIT_ARCH_X86_64),
        ins(BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_NR),
        ins(BPF_JEQ_K, 0, 1, clone3),
        ins(
            BPF_RET_K,
            0,
            0,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        ),
    ]
}

/// Whether the running kernel is at least `major.minor` (false if unknown).
fn kernel_at_least((major, minor): (u32, u32)) -> bool {
    // SAFETY: uname fills a zeroed utsname.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return false;
    }
    let release: String = uts
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8 as char)
        .collect();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}

/// Set no_new_privs: from here on `execve` grants no privilege (setuid bits,
/// file capabilities), and a seccomp filter may be installed without
/// CAP_SYS_ADMIN. Inherited by children; cannot be undone.
pub fn set_no_new_privs() -> Result<(), SecurityError> {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) };
    if rc != 0 {
        return Err(SecurityError::Prctl {
            what: "PR_SET_NO_NEW_PRIVS",
            errno: Errno::last(),
        });
    }
    Ok(())
}

/// Install `program` on the calling thread (inherited across `fork` and
/// `execve`). Call [`set_no_new_privs`] first. One system call, no allocation.
pub fn install(program: &[seccompiler::sock_filter]) -> Result<(), SecurityError> {
    if program.is_empty() || program.len() > BPF_MAXINSNS {
        return Err(SecurityError::FilterLength(program.len()));
    }
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        // seccompiler's sock_filter is #[repr(C)] with libc's layout.
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: the kernel copies `len` instructions from `filter`, which
    // points into `program` for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0 as libc::c_uint,
            &fprog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(SecurityError::InstallFilter {
            errno: Errno::last(),
        });
    }
    Ok(())
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::security::caps::CapSet;
    use ::caps::Capability;
    use std::time::Instant;

    #[test]
    fn builds_for_the_default_set_and_reports_its_cost() {
        let caps = CapSet::docker_default();
        let program = default_filter(&caps).unwrap();
        assert!(program.len() < BPF_MAXINSNS, "{}", program.len());

        let rounds = 200;
        let start = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(default_filter(std::hint::black_box(&caps)).unwrap());
        }
        let each = start.elapsed() / rounds;
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        println!(
            "default seccomp filter: {} instructions, built in {each:?} ({profile} build)",
            program.len()
        );
    }

    #[test]
    fn clone3_prelude_only_without_sys_admin() {
        let plain = default_filter(&CapSet::docker_default()).unwrap();
        assert_eq!(plain[..5], clone3_enosys_prelude(435));
        let mut admin = CapSet::docker_default();
        admin.insert(Capability::CAP_SYS_ADMIN);
        let program = default_filter(&admin).unwrap();
        assert_ne!(program[..5], clone3_enosys_prelude(435));
    }

    #[test]
    fn every_capability_builds() {
        let all: CapSet = ::caps::all().into_iter().collect();
        let program = default_filter(&all).unwrap();
        assert!(program.len() < BPF_MAXINSNS, "{}", program.len());
        default_filter(&CapSet::EMPTY).unwrap();
    }

    #[test]
    fn kernel_version_is_read() {
        assert!(kernel_at_least((3, 0)));
        assert!(!kernel_at_least((999, 0)));
    }
}
