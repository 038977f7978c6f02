//! Docker's default seccomp filter for x86_64, built in the parent
//! ([`default_filter`], a tree-shaped program from [`super::bpf`]) and
//! installed in the child ([`set_no_new_privs`], then [`install`]).
//!
//! A system call outside the allow-list fails with EPERM, except `clone3`,
//! which fails with ENOSYS (unless CAP_SYS_ADMIN is held) so that libc falls
//! back to `clone`, whose flags the filter can check. A system call made with
//! another architecture's convention (`int 0x80`, i386) kills the process,
//! and x32 calls (numbers with bit 30 set) are in no list, so fail with
//! EPERM: Docker's profile also admits i386 and x32, ours only x86_64.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_imports))]

use nix::errno::Errno;

use super::bpf::{self, Action, Filter, Insn, Policy};
use super::{CapSet, SecurityError};

/// A compiled filter, ready for [`install`].
pub type Program = Vec<Insn>;

/// Docker's default filter for a sandbox holding `caps`: the calls of
/// [`super::syscalls`], the capability-gated ones only for the capabilities
/// in `caps`. Build it in the parent: the child must not allocate.
#[cfg(target_arch = "x86_64")]
pub fn default_filter(caps: &CapSet) -> Result<Program, SecurityError> {
    let filter = Filter {
        policies: vec![default_policy(caps)],
        // Docker's profile admits i386 and x32 too; ours only x86_64.
        foreign_arch: bpf::RET_KILL_PROCESS,
    };
    Ok(filter.compile()?)
}

#[cfg(target_arch = "x86_64")]
fn default_policy(caps: &CapSet) -> Policy {
    use super::syscalls::*;
    use ::caps::Capability;

    let mut policy = Policy {
        arch: bpf::AUDIT_ARCH_X86_64,
        default: bpf::ret_errno(libc::EPERM),
        ranges: Default::default(),
        calls: Default::default(),
    };
    let mut allow = |list: &[Syscall]| {
        for s in list {
            policy
                .calls
                .insert(s.nr as u32, Action::Ret(bpf::RET_ALLOW));
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

    // `socket` and `personality` take an int: the low 32 bits count, as in the kernel.
    allow_if(
        &mut policy,
        SOCKET,
        bpf::arg_ne(0, SOCKET_DENIED_FAMILY as u32),
    );
    for persona in PERSONALITY_ALLOWED {
        allow_if(&mut policy, PERSONALITY, bpf::arg_eq(0, persona as u32));
    }
    if !caps.contains(Capability::CAP_SYS_ADMIN) {
        let no_namespaces = bpf::arg_masked_eq(0, CLONE_NAMESPACE_FLAGS, 0);
        allow_if(&mut policy, CLONE, no_namespaces);
        policy
            .calls
            .insert(CLONE3.nr as u32, Action::Ret(bpf::ret_errno(libc::ENOSYS)));
    }
    policy
}

#[cfg(not(target_arch = "x86_64"))]
pub fn default_filter(_caps: &CapSet) -> Result<Program, SecurityError> {
    Err(SecurityError::UnsupportedArch(std::env::consts::ARCH))
}

/// Add an argument rule to a syscall, unless it is already allowed outright.
#[cfg(target_arch = "x86_64")]
fn allow_if(policy: &mut Policy, call: super::syscalls::Syscall, rule: bpf::Rule) {
    let entry = policy
        .calls
        .entry(call.nr as u32)
        .or_insert_with(|| Action::Rules(Vec::new()));
    if let Action::Rules(rules) = entry {
        rules.push((rule, bpf::RET_ALLOW));
    }
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
pub fn install(program: &[Insn]) -> Result<(), SecurityError> {
    install_with_flags(program, 0)
}

/// [`install`] with seccomp(2)'s SECCOMP_FILTER_FLAG_* `flags` (TSYNC, LOG,
/// SPEC_ALLOW), as an OCI profile asks for them (`CompiledProfile::flags`
/// of [`super::oci_profile`]). One system call, no allocation.
pub fn install_with_flags(program: &[Insn], flags: u32) -> Result<(), SecurityError> {
    if program.is_empty() || program.len() > bpf::MAX_INSNS {
        return Err(SecurityError::FilterLength(program.len()));
    }
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: the kernel copies `len` instructions from `filter`, which
    // points into `program` for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags as libc::c_uint,
            &fprog as *const libc::sock_fprog,
        )
    };
    match rc {
        0 => Ok(()),
        // With TSYNC, a thread that could not take the filter is named.
        tid if tid > 0 => Err(SecurityError::ThreadSync { tid }),
        _ => Err(SecurityError::InstallFilter {
            errno: Errno::last(),
        }),
    }
}

/// Whether the running kernel takes the seccomp filter flag `flag`. Asked as
/// libseccomp asks: with no program, which the kernel refuses with EFAULT
/// once it has accepted the flags, and with EINVAL for flags it does not know.
pub fn filter_flag_supported(flag: u32) -> bool {
    // SAFETY: a null program: the kernel reads nothing and installs nothing.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flag as libc::c_uint,
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    rc == -1 && Errno::last() == Errno::EFAULT
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::security::bpf::evaluate;
    use crate::security::caps::CapSet;
    use ::caps::Capability;
    use std::time::Instant;

    #[test]
    fn builds_for_the_default_set_and_reports_its_cost() {
        let caps = CapSet::docker_default();
        let program = default_filter(&caps).unwrap();
        // A tree: a few hundred instructions, not the ~1600 of a chain.
        assert!(program.len() < 400, "{}", program.len());

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

    /// The same profile through seccompiler, an independent compiler (the
    /// linear layout isola used before), to check the tree decides alike.
    fn reference(caps: &CapSet) -> Vec<Insn> {
        use crate::security::syscalls::*;
        use seccompiler::{SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op};
        use seccompiler::{SeccompCondition, SeccompFilter, SeccompRule, TargetArch};
        use std::collections::BTreeMap;

        let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
        let mut lists: Vec<&[Syscall]> = vec![ALLOWED, ALLOWED_SINCE_4_8];
        lists.extend(
            BY_CAPABILITY
                .iter()
                .filter(|(cap, _)| caps.contains(*cap))
                .map(|(_, l)| *l),
        );
        for s in lists.into_iter().flatten() {
            rules.insert(s.nr, Vec::new());
        }
        let rule = |len, op, value| {
            SeccompRule::new(vec![SeccompCondition::new(0, len, op, value).unwrap()]).unwrap()
        };
        let mut add = |nr: i64, r: SeccompRule| match rules.get_mut(&nr) {
            Some(chain) if chain.is_empty() => {}
            Some(chain) => chain.push(r),
            None => {
                rules.insert(nr, vec![r]);
            }
        };
        add(SOCKET.nr, rule(Len::Dword, Op::Ne, SOCKET_DENIED_FAMILY));
        for p in PERSONALITY_ALLOWED {
            add(PERSONALITY.nr, rule(Len::Dword, Op::Eq, p));
        }
        let sys_admin = caps.contains(Capability::CAP_SYS_ADMIN);
        if !sys_admin {
            add(
                CLONE.nr,
                rule(Len::Qword, Op::MaskedEq(CLONE_NAMESPACE_FLAGS), 0),
            );
            rules.remove(&CLONE3.nr);
        }
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Errno(libc::EPERM as u32),
            SeccompAction::Allow,
            TargetArch::x86_64,
        )
        .unwrap();
        let program: seccompiler::BpfProgram = filter.try_into().unwrap();
        program
            .into_iter()
            .map(|i| Insn {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k: i.k,
            })
            .collect()
    }

    #[test]
    fn decides_every_call_as_the_reference_compiler_does() {
        let mut admin = CapSet::docker_default();
        admin.insert(Capability::CAP_SYS_ADMIN);
        let all: CapSet = ::caps::all().into_iter().collect();
        let args = [
            0u64,
            1,
            8,
            0x11,
            40,
            40 | 1 << 32,
            0x20008,
            0x40000,
            0x2000_0011,
            0x7E02_0000,
            1 << 40,
            0xffff_ffff,
            u64::MAX,
        ];
        let arch = bpf::AUDIT_ARCH_X86_64;
        for caps in [CapSet::docker_default(), admin, all, CapSet::EMPTY] {
            let ours = default_filter(&caps).unwrap();
            let theirs = reference(&caps);
            let numbers = (0..600u32).chain([0x4000_0000, 0x4000_0001, u32::MAX]);
            for nr in numbers {
                for a in args {
                    let mut want = evaluate(&theirs, nr, arch, [a, 0, 0, 0, 0, 0]);
                    if nr == CLONE3_NR && !caps.contains(Capability::CAP_SYS_ADMIN) {
                        want = bpf::ret_errno(libc::ENOSYS);
                    }
                    let got = evaluate(&ours, nr, arch, [a, 0, 0, 0, 0, 0]);
                    assert_eq!(got, want, "syscall {nr}, arg0 {a:#x}, caps {caps:?}");
                }
            }
            let i386 = 0x4000_0003;
            assert_eq!(evaluate(&ours, 20, i386, [0; 6]), bpf::RET_KILL_PROCESS);
        }
    }

    const CLONE3_NR: u32 = 435;

    #[test]
    fn clone3_gets_enosys_only_without_sys_admin() {
        let arch = bpf::AUDIT_ARCH_X86_64;
        let plain = default_filter(&CapSet::docker_default()).unwrap();
        let enosys = bpf::ret_errno(libc::ENOSYS);
        assert_eq!(evaluate(&plain, CLONE3_NR, arch, [0; 6]), enosys);
        let mut admin = CapSet::docker_default();
        admin.insert(Capability::CAP_SYS_ADMIN);
        let program = default_filter(&admin).unwrap();
        assert_eq!(evaluate(&program, CLONE3_NR, arch, [0; 6]), bpf::RET_ALLOW);
    }

    #[test]
    fn every_capability_builds() {
        let all: CapSet = ::caps::all().into_iter().collect();
        let program = default_filter(&all).unwrap();
        assert!(program.len() < bpf::MAX_INSNS, "{}", program.len());
        default_filter(&CapSet::EMPTY).unwrap();
    }

    #[test]
    fn kernel_version_is_read() {
        assert!(kernel_at_least((3, 0)));
        assert!(!kernel_at_least((999, 0)));
    }
}
