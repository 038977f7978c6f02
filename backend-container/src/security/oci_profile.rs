//! config.json's `linux.seccomp` (an OCI seccomp profile) compiled to a
//! seccomp filter and its flags, read the way runc (with libseccomp) reads it.
//!
//! The program comes from isola's own compiler, [`super::bpf`], not from
//! seccompiler or libseccomp: its binary search over syscall numbers is
//! quicker for the kernel to install and to run than their chains of tests
//! (see `bpf`'s doc). seccompiler stays as the independent cross-check: the
//! tests below compile random profiles with both and require every call to
//! be decided alike, as `tests.rs` and `seccomp.rs` do for Docker's filter.
//!
//! # What a profile means
//!
//! - `defaultAction` (with `defaultErrnoRet`) decides every call no entry
//!   decides. Calls numbered above the highest one the profile names on an
//!   ABI get ENOSYS instead, unless the default lets calls run (ALLOW, LOG,
//!   TRACE): runc patches its filters so, so that a libc falls back from a
//!   call the profile predates (clone3, faccessat2...) to an older one.
//! - Each `syscalls[]` entry gives its `names` its `action`; `errnoRet` is
//!   the errno of SCMP_ACT_ERRNO and the data of SCMP_ACT_TRACE (EPERM when
//!   unset). A name no table knows is skipped, as runc skips it: a profile
//!   may name calls newer than the runtime. An entry whose action is the
//!   default action is skipped too, as runc does (libseccomp refuses it).
//! - `args` must all hold. They compare unsigned 64-bit values on x86_64 and
//!   the low 32 bits on i386 and x32, as libseccomp does; SCMP_CMP_MASKED_EQ
//!   takes `value` as the mask and `valueTwo` as the value. When conditions
//!   repeat an argument index, runc makes each a rule of its own, so they
//!   become alternatives; so do we.
//! - Several entries for one call are tried in order; the first whose
//!   conditions hold decides, and none holding leaves the default action. An
//!   entry without conditions decides every call of it wherever it stands
//!   (libseccomp keeps the least specific rule; of two, the first). Where
//!   entries with other actions overlap, libseccomp refuses them or lets its
//!   decision tree decide; here the first in order does.
//! - `architectures`: x86_64 always (SCMP_ARCH_NATIVE is x86_64 here);
//!   SCMP_ARCH_X32 adds x32 (numbers with bit 30 set, under x86_64's
//!   AUDIT_ARCH); SCMP_ARCH_X86 adds i386, with its own numbering (its
//!   table is cheap: the kernel headers have it). Other architectures'
//!   calls never reach an x86_64 kernel and are skipped. A call of an ABI
//!   not listed is killed with SCMP_ACT_KILL_THREAD, libseccomp's default
//!   "bad architecture" action, which runc keeps; number -1 on x86_64 (a
//!   tracer skipping a call) gets the default action, as in libseccomp.
//! - i386 is approximate in one way: libseccomp also applies a rule on a
//!   socket or SysV IPC call (`socket`, `semop`...) to its multiplexed form,
//!   `socketcall(2)`/`ipc(2)` with that call's selector; here rules apply to
//!   the direct calls only, and `socketcall` and `ipc` are calls of their
//!   own. Docker's and containerd's profiles allow both outright, so they
//!   are unaffected.
//! - `flags`: SECCOMP_FILTER_FLAG_TSYNC, _LOG and _SPEC_ALLOW become
//!   seccomp(2) flags (see [`super::seccomp::install_with_flags`]). With no
//!   `flags` at all, SPEC_ALLOW is implied when the kernel knows it, as runc
//!   implies it; an empty list means none.
//!
//! Refused with a sentence naming the field: SCMP_ACT_NOTIFY, `listenerPath`,
//! `listenerMetadata` and SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (all for a
//! seccomp agent, which isola does not have), an `errnoRet` on an action
//! that returns none (the runtime spec says a runtime must fail), an errno
//! above 4095, trace data above 65535, an argument index above 5, an empty
//! system call name, a flag the kernel does not know, and a profile longer
//! than the kernel takes.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_imports))]

use std::collections::BTreeMap;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};

use super::bpf::{self, Action, Check, Cmp, CompileError, Filter, Insn, Policy, Rule, Width};
use super::SecurityError;

/// A profile ready for [`super::seccomp::install_with_flags`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledProfile {
    pub program: Vec<Insn>,
    /// SECCOMP_FILTER_FLAG_* bits for seccomp(SECCOMP_SET_MODE_FILTER).
    pub flags: u32,
}

/// Why config.json's `linux.seccomp` cannot be honoured.
#[derive(Debug, thiserror::Error)]
pub enum OciSeccompError {
    #[error(
        "config.json's {field} is SCMP_ACT_NOTIFY, which hands system calls to a seccomp \
         agent; isola has no seccomp agent, so choose another action"
    )]
    Notify { field: String },

    #[error(
        "config.json's linux.seccomp.{field} is set, but it is for the seccomp agent of \
         SCMP_ACT_NOTIFY, which isola does not have; remove it"
    )]
    Listener { field: &'static str },

    #[error(
        "config.json's {field} is SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, which only applies \
         to SCMP_ACT_NOTIFY's seccomp agent, which isola does not have; remove it"
    )]
    WaitKillableRecv { field: String },

    #[error(
        "config.json's {field} is {flag}, which this kernel does not know (LOG needs \
         Linux 4.14, SPEC_ALLOW 4.17); remove it"
    )]
    UnknownFlag {
        field: String,
        flag: LinuxSeccompFilterFlag,
    },

    #[error(
        "config.json's {field} is {value}, but {action} returns no errno; give errnoRet only \
         with SCMP_ACT_ERRNO or SCMP_ACT_TRACE"
    )]
    ErrnoNotTaken {
        field: String,
        value: u32,
        action: LinuxSeccompAction,
    },

    #[error("config.json's {field} is {value}; an errno runs from 0 to 4095")]
    ErrnoRange { field: String, value: u32 },

    #[error("config.json's {field} is {value}; SCMP_ACT_TRACE hands a tracer 0 to 65535")]
    TraceRange { field: String, value: u32 },

    #[error("config.json's {field} is {index}; system calls have arguments 0 to 5")]
    ArgIndex { field: String, index: usize },

    #[error("config.json's {field} is an empty string; name a system call")]
    EmptyName { field: String },

    #[error(
        "config.json's linux.seccomp compiles to {0} BPF instructions; the kernel takes at \
         most 4096, so give fewer argument conditions"
    )]
    TooLong(usize),

    #[error(transparent)]
    Compile(CompileError),
}

/// The ABIs an x86_64 kernel runs, each with its own numbers; `as usize`
/// indexes the per-ABI arrays below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Abi {
    X86_64 = 0,
    X32 = 1,
    I386 = 2,
}

const ABIS: [Abi; 3] = [Abi::X86_64, Abi::X32, Abi::I386];

#[cfg(target_arch = "x86_64")]
impl Abi {
    /// The number `seccomp_data.nr` carries for `name`.
    fn number(self, name: &str) -> Option<u32> {
        use super::syscall_table::{I386, X32, X86_64};
        let table = match self {
            Abi::X86_64 => X86_64,
            Abi::X32 => X32,
            Abi::I386 => I386,
        };
        let at = table.binary_search_by(|(n, _)| (*n).cmp(name)).ok()?;
        let nr = table[at].1;
        Some(match self {
            Abi::X32 => nr | bpf::X32_SYSCALL_BIT,
            _ => nr,
        })
    }

    fn width(self) -> Width {
        match self {
            Abi::X86_64 => Width::Full,
            Abi::X32 | Abi::I386 => Width::Low,
        }
    }
}

/// The action for a call of an ABI the profile does not list:
/// SCMP_ACT_KILL_THREAD, libseccomp's default SCMP_FLTATR_ACT_BADARCH.
const BAD_ARCH: u32 = bpf::RET_KILL_THREAD;

/// config.json's `linux.seccomp` as a program and its flags. Build it in the
/// parent: the child only installs it.
#[cfg(target_arch = "x86_64")]
pub fn compile(profile: &LinuxSeccomp) -> Result<CompiledProfile, SecurityError> {
    Ok(compile_profile(profile)?)
}

#[cfg(not(target_arch = "x86_64"))]
pub fn compile(_profile: &LinuxSeccomp) -> Result<CompiledProfile, SecurityError> {
    Err(SecurityError::UnsupportedArch(std::env::consts::ARCH))
}

#[cfg(target_arch = "x86_64")]
fn compile_profile(profile: &LinuxSeccomp) -> Result<CompiledProfile, OciSeccompError> {
    if profile.listener_path().is_some() {
        return Err(OciSeccompError::Listener {
            field: "listenerPath",
        });
    }
    if profile.listener_metadata().is_some() {
        return Err(OciSeccompError::Listener {
            field: "listenerMetadata",
        });
    }
    let flags = filter_flags(profile.flags().as_deref())?;
    let default = action(
        profile.default_action(),
        profile.default_errno_ret(),
        "linux.seccomp.defaultAction",
        "linux.seccomp.defaultErrnoRet",
    )?;
    let listed = listed_abis(profile.architectures().as_deref());

    // Per ABI (indexed by `Abi as usize`): what each named call gets, and
    // the highest number named.
    let mut calls: [BTreeMap<u32, Decision>; 3] = Default::default();
    let mut highest: [Option<u32>; 3] = [None; 3];
    for (i, entry) in profile.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let value = action(
            entry.action(),
            entry.errno_ret(),
            &format!("{field}.action"),
            &format!("{field}.errnoRet"),
        )?;
        let rules = conditions(entry.args().as_deref(), &field)?;
        for (j, name) in entry.names().iter().enumerate() {
            if name.is_empty() {
                return Err(OciSeccompError::EmptyName {
                    field: format!("{field}.names[{j}]"),
                });
            }
            let mut known = false;
            for abi in ABIS {
                let k = abi as usize;
                let Some(nr) = abi.number(name) else {
                    continue;
                };
                known = true;
                if !listed[k] {
                    continue;
                }
                // runc counts every name, whatever its action, for ENOSYS.
                highest[k] = highest[k].max(Some(nr));
                if value != default {
                    calls[k]
                        .entry(nr)
                        .or_default()
                        .add(&rules, value, abi.width());
                }
            }
            if !known {
                tracing::debug!(
                    "config.json's {field}.names[{j}] is {name:?}, a system call unknown on \
                     x86_64, x32 and i386: skipped, as runc skips it"
                );
            }
        }
    }

    // runc's ENOSYS for numbers above the profile's, unless calls run by default.
    let enosys = !matches!(
        profile.default_action(),
        LinuxSeccompAction::ScmpActAllow
            | LinuxSeccompAction::ScmpActLog
            | LinuxSeccompAction::ScmpActTrace
    );
    let above = |abi: Abi| {
        highest[abi as usize]
            .filter(|_| enosys)
            .map(|nr| (nr.saturating_add(1), bpf::ret_errno(libc::ENOSYS)))
    };
    let [x86_64_calls, x32_calls, i386_calls] = calls.map(|c| {
        c.into_iter()
            .map(|(nr, d)| (nr, d.into_action()))
            .collect::<BTreeMap<_, _>>()
    });

    // x86_64 and x32 share AUDIT_ARCH_X86_64: one tree, x32 from bit 30 up.
    let mut x86_64 = Policy {
        arch: bpf::AUDIT_ARCH_X86_64,
        default,
        ranges: above(Abi::X86_64).into_iter().collect(),
        calls: x86_64_calls,
    };
    if listed[Abi::X32 as usize] {
        x86_64.ranges.insert(bpf::X32_SYSCALL_BIT, default);
        x86_64.ranges.extend(above(Abi::X32));
        x86_64.calls.extend(x32_calls);
    } else {
        x86_64.ranges.insert(bpf::X32_SYSCALL_BIT, BAD_ARCH);
    }
    x86_64.ranges.insert(u32::MAX, default);
    let mut policies = vec![x86_64];
    if listed[Abi::I386 as usize] {
        policies.push(Policy {
            arch: bpf::AUDIT_ARCH_I386,
            default,
            ranges: above(Abi::I386).into_iter().collect(),
            calls: i386_calls,
        });
    }
    let filter = Filter {
        policies,
        foreign_arch: BAD_ARCH,
    };
    let program = filter.compile().map_err(|e| match e {
        CompileError::TooLong(n) => OciSeccompError::TooLong(n),
        other => OciSeccompError::Compile(other),
    })?;
    Ok(CompiledProfile { program, flags })
}

/// What one call of one ABI gets from the entries naming it.
#[derive(Debug, Default)]
struct Decision {
    /// The first entry without conditions: it decides every call.
    unconditional: Option<u32>,
    /// Entries with conditions, in order.
    rules: Vec<(Rule, u32)>,
}

impl Decision {
    /// Add an entry's rules (alternatives; none means no conditions).
    fn add(&mut self, rules: &[Rule], value: u32, width: Width) {
        if self.unconditional.is_some() {
            return;
        }
        let rules: Vec<Rule> = rules
            .iter()
            .map(|rule| {
                rule.iter()
                    .map(|c| Check { width, ..*c })
                    // A masked test whose mask is 0 here always holds:
                    // libseccomp drops it, and a rule left empty holds always.
                    .filter(|c| !matches!(c.cmp, Cmp::MaskedEq(m) if narrow(m, width) == 0))
                    .collect()
            })
            .collect();
        if rules.is_empty() || rules.iter().any(Vec::is_empty) {
            self.unconditional = Some(value);
            return;
        }
        self.rules.extend(rules.into_iter().map(|r| (r, value)));
    }

    fn into_action(self) -> Action {
        match self.unconditional {
            Some(value) => Action::Ret(value),
            None => Action::Rules(self.rules),
        }
    }
}

fn narrow(value: u64, width: Width) -> u64 {
    match width {
        Width::Full => value,
        Width::Low => value & 0xffff_ffff,
    }
}

/// An entry's `args` as rules that are alternatives: one rule holding them
/// all, or, when an argument index repeats, one rule each, as runc makes
/// them. No `args` gives no rule.
fn conditions(args: Option<&[LinuxSeccompArg]>, field: &str) -> Result<Vec<Rule>, OciSeccompError> {
    let mut checks = Vec::new();
    for (k, arg) in args.unwrap_or_default().iter().enumerate() {
        let index = u8::try_from(arg.index())
            .ok()
            .filter(|&i| i < bpf::MAX_ARGS)
            .ok_or_else(|| OciSeccompError::ArgIndex {
                field: format!("{field}.args[{k}].index"),
                index: arg.index(),
            })?;
        // `valueTwo` only means something to SCMP_CMP_MASKED_EQ: runc passes
        // it on and libseccomp ignores it for the others (Docker's profile
        // writes `"valueTwo": 0` on every condition).
        let (cmp, value) = match arg.op() {
            LinuxSeccompOperator::ScmpCmpNe => (Cmp::Ne, arg.value()),
            LinuxSeccompOperator::ScmpCmpLt => (Cmp::Lt, arg.value()),
            LinuxSeccompOperator::ScmpCmpLe => (Cmp::Le, arg.value()),
            LinuxSeccompOperator::ScmpCmpEq => (Cmp::Eq, arg.value()),
            LinuxSeccompOperator::ScmpCmpGe => (Cmp::Ge, arg.value()),
            LinuxSeccompOperator::ScmpCmpGt => (Cmp::Gt, arg.value()),
            LinuxSeccompOperator::ScmpCmpMaskedEq => {
                (Cmp::MaskedEq(arg.value()), arg.value_two().unwrap_or(0))
            }
        };
        checks.push(Check {
            index,
            cmp,
            value,
            // Set per ABI when the rule is added.
            width: Width::Full,
        });
    }
    let repeats = checks
        .iter()
        .enumerate()
        .any(|(i, c)| checks[..i].iter().any(|d| d.index == c.index));
    Ok(if checks.is_empty() {
        Vec::new()
    } else if repeats {
        checks.into_iter().map(|c| vec![c]).collect()
    } else {
        vec![checks]
    })
}

/// A profile action as a seccomp return value. `errno` is the entry's
/// `errnoRet`, named `errno_field` in errors.
fn action(
    action: LinuxSeccompAction,
    errno: Option<u32>,
    field: &str,
    errno_field: &str,
) -> Result<u32, OciSeccompError> {
    use LinuxSeccompAction as A;
    let eperm = libc::EPERM as u32;
    match (action, errno) {
        (A::ScmpActNotify, _) => Err(OciSeccompError::Notify {
            field: field.to_owned(),
        }),
        (A::ScmpActErrno, errno) => match errno.unwrap_or(eperm) {
            // The kernel caps the errno at MAX_ERRNO; above it, refuse
            // rather than return another errno than the one asked for.
            e @ 0..=4095 => Ok(bpf::ret_errno(e as i32)),
            value => Err(OciSeccompError::ErrnoRange {
                field: errno_field.to_owned(),
                value,
            }),
        },
        (A::ScmpActTrace, errno) => {
            let value = errno.unwrap_or(eperm);
            u16::try_from(value)
                .map(bpf::ret_trace)
                .map_err(|_| OciSeccompError::TraceRange {
                    field: errno_field.to_owned(),
                    value,
                })
        }
        (action, Some(value)) => Err(OciSeccompError::ErrnoNotTaken {
            field: errno_field.to_owned(),
            value,
            action,
        }),
        (A::ScmpActKill | A::ScmpActKillThread, None) => Ok(bpf::RET_KILL_THREAD),
        (A::ScmpActKillProcess, None) => Ok(bpf::RET_KILL_PROCESS),
        (A::ScmpActTrap, None) => Ok(bpf::RET_TRAP),
        (A::ScmpActLog, None) => Ok(bpf::RET_LOG),
        (A::ScmpActAllow, None) => Ok(bpf::RET_ALLOW),
    }
}

/// Which [`Abi`]s the profile's `architectures` list; x86_64 always.
fn listed_abis(arches: Option<&[Arch]>) -> [bool; 3] {
    let mut listed = [false; 3];
    listed[Abi::X86_64 as usize] = true;
    for arch in arches.unwrap_or_default() {
        match arch {
            Arch::ScmpArchNative | Arch::ScmpArchX86_64 => {}
            Arch::ScmpArchX32 => listed[Abi::X32 as usize] = true,
            Arch::ScmpArchX86 => listed[Abi::I386 as usize] = true,
            other => tracing::debug!(
                "config.json's linux.seccomp.architectures has {other}, whose system calls \
                 never reach an x86_64 kernel: nothing to filter"
            ),
        }
    }
    listed
}

/// The seccomp(2) flags for `flags`; with none given, runc's default.
#[cfg(target_arch = "x86_64")]
fn filter_flags(flags: Option<&[LinuxSeccompFilterFlag]>) -> Result<u32, OciSeccompError> {
    use super::seccomp::filter_flag_supported;
    const SPEC_ALLOW: u32 = libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32;
    let Some(flags) = flags else {
        // runc's default: the workload keeps the speculative store bypass
        // behaviour it would have without seccomp.
        return Ok(if filter_flag_supported(SPEC_ALLOW) {
            SPEC_ALLOW
        } else {
            0
        });
    };
    let mut bits = 0;
    for (i, &flag) in flags.iter().enumerate() {
        let field = || format!("linux.seccomp.flags[{i}]");
        let bit = match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                return Err(OciSeccompError::WaitKillableRecv { field: field() })
            }
        } as u32;
        if !filter_flag_supported(bit) {
            return Err(OciSeccompError::UnknownFlag {
                field: field(),
                flag,
            });
        }
        bits |= bit;
    }
    Ok(bits)
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::security::bpf::{evaluate, holds};
    use crate::security::seccomp::filter_flag_supported;
    use crate::security::syscall_table;
    use oci_spec::runtime::{
        LinuxSeccompArgBuilder, LinuxSeccompBuilder, LinuxSyscallBuilder, Spec,
    };

    const X86_64: u32 = bpf::AUDIT_ARCH_X86_64;
    const I386: u32 = bpf::AUDIT_ARCH_I386;
    const AARCH64: u32 = 0xc000_00b7;
    const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
    const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

    /// `linux.seccomp` as config.json gives it, read by oci-spec as
    /// isola-runtime reads a bundle.
    fn parse(seccomp: &str) -> LinuxSeccomp {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let config = format!(r#"{{"ociVersion": "1.0.2", "linux": {{"seccomp": {seccomp}}}}}"#);
        std::fs::write(&path, config).unwrap();
        let spec = Spec::load(&path).unwrap();
        spec.linux().as_ref().unwrap().seccomp().clone().unwrap()
    }

    fn build(seccomp: &str) -> CompiledProfile {
        compile(&parse(seccomp)).unwrap()
    }

    fn refusal(seccomp: &str) -> String {
        let err = compile(&parse(seccomp)).unwrap_err();
        assert!(matches!(err, SecurityError::OciSeccomp(_)), "{err:?}");
        err.to_string()
    }

    fn nr(name: &str) -> u32 {
        Abi::X86_64.number(name).unwrap()
    }

    /// What the program returns for `name` on x86_64 with `args`.
    fn run(p: &CompiledProfile, name: &str, args: [u64; 6]) -> u32 {
        evaluate(&p.program, nr(name), X86_64, args)
    }

    fn run0(p: &CompiledProfile, name: &str) -> u32 {
        run(p, name, [0; 6])
    }

    #[test]
    fn tables_are_sorted_and_agree_with_dockers_list() {
        for table in [
            syscall_table::X86_64,
            syscall_table::X32,
            syscall_table::I386,
        ] {
            for pair in table.windows(2) {
                assert!(pair[0].0 < pair[1].0, "{pair:?}");
            }
        }
        let mut docker: Vec<_> = super::super::syscalls::ALLOWED.to_vec();
        docker.extend(super::super::syscalls::ALLOWED_SINCE_4_8);
        for (_, list) in super::super::syscalls::BY_CAPABILITY {
            docker.extend(*list);
        }
        for call in docker {
            assert_eq!(
                Abi::X86_64.number(call.name),
                Some(call.nr as u32),
                "{}",
                call.name
            );
        }
        assert_eq!(Abi::X86_64.number("getpid"), Some(39));
        assert_eq!(Abi::X32.number("getpid"), Some(0x4000_0000 | 39));
        // x32's own entry points (512 and up) for calls taking pointers to
        // structures that differ from x86_64's.
        assert_eq!(Abi::X32.number("ioctl"), Some(0x4000_0000 | 514));
        assert_eq!(Abi::I386.number("getpid"), Some(20));
        assert_eq!(Abi::I386.number("socketcall"), Some(102));
        assert_eq!(Abi::X86_64.number("socketcall"), None);
        assert_eq!(Abi::I386.number("arch_prctl"), Some(384));
        assert_eq!(Abi::X86_64.number("mseal"), Some(462));
        assert_eq!(Abi::I386.number("uretprobe"), None);
        assert_eq!(Abi::X86_64.number("no_such_call"), None);
    }

    #[test]
    fn every_action_returns_its_value() {
        let p = build(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["getppid"], "action": "SCMP_ACT_KILL"},
                {"names": ["gettid"], "action": "SCMP_ACT_KILL_THREAD"},
                {"names": ["getuid"], "action": "SCMP_ACT_KILL_PROCESS"},
                {"names": ["getgid"], "action": "SCMP_ACT_TRAP"},
                {"names": ["geteuid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["getegid"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["getpgrp"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
                {"names": ["getsid"], "action": "SCMP_ACT_TRACE"},
                {"names": ["getcwd"], "action": "SCMP_ACT_LOG"},
                {"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 0}
            ]}"#,
        );
        let expect = [
            ("getppid", bpf::RET_KILL_THREAD),
            ("gettid", bpf::RET_KILL_THREAD),
            ("getuid", bpf::RET_KILL_PROCESS),
            ("getgid", bpf::RET_TRAP),
            ("geteuid", bpf::ret_errno(libc::EACCES)),
            ("getegid", EPERM),
            ("getpgrp", libc::SECCOMP_RET_TRACE | 7),
            ("getsid", libc::SECCOMP_RET_TRACE | libc::EPERM as u32),
            ("getcwd", bpf::RET_LOG),
            ("uname", libc::SECCOMP_RET_ERRNO),
            ("getpid", bpf::RET_ALLOW),
            // An allowing default: no ENOSYS above the profile's calls.
            ("mseal", bpf::RET_ALLOW),
        ];
        for (name, want) in expect {
            assert_eq!(run0(&p, name), want, "{name}");
        }
        assert_eq!(evaluate(&p.program, 1000, X86_64, [0; 6]), bpf::RET_ALLOW);
    }

    #[test]
    fn the_default_action_and_enosys_beyond_the_profile() {
        let p = build(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "syscalls": [
                {"names": ["getpid", "read"], "action": "SCMP_ACT_ALLOW"}
            ]}"#,
        );
        assert_eq!(run0(&p, "getpid"), bpf::RET_ALLOW);
        assert_eq!(run0(&p, "read"), bpf::RET_ALLOW);
        assert_eq!(run0(&p, "write"), ENOSYS);

        let p = build(
            r#"{"defaultAction": "SCMP_ACT_KILL_PROCESS", "syscalls": [
                {"names": ["clone3"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["getpid"], "action": "SCMP_ACT_KILL_PROCESS"}
            ]}"#,
        );
        assert_eq!(run0(&p, "write"), bpf::RET_KILL_PROCESS);
        assert_eq!(run0(&p, "clone3"), bpf::RET_ALLOW);
        // Beyond clone3 (435), the highest call named: ENOSYS, so that a
        // libc tries an older call.
        assert_eq!(run0(&p, "faccessat2"), ENOSYS);
        assert_eq!(evaluate(&p.program, 0x3fff_ffff, X86_64, [0; 6]), ENOSYS);
        // getpid is named with the default action: skipped, as runc does.
        assert_eq!(run0(&p, "getpid"), bpf::RET_KILL_PROCESS);

        // Defaults that let calls run keep running the newer calls too.
        for default in ["SCMP_ACT_LOG", "SCMP_ACT_TRACE"] {
            let p = build(&format!(
                r#"{{"defaultAction": "{default}", "syscalls": [
                    {{"names": ["getpid"], "action": "SCMP_ACT_KILL"}}
                ]}}"#
            ));
            assert_ne!(run0(&p, "mseal"), ENOSYS, "{default}");
        }
    }

    #[test]
    fn what_isola_cannot_honour_is_refused_by_field() {
        let cases = [
            (
                r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#,
                "config.json's linux.seccomp.defaultAction is SCMP_ACT_NOTIFY",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                    {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["openat"], "action": "SCMP_ACT_NOTIFY"}]}"#,
                "config.json's linux.seccomp.syscalls[1].action is SCMP_ACT_NOTIFY",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"}"#,
                "config.json's linux.seccomp.listenerPath is set",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"}"#,
                "config.json's linux.seccomp.listenerMetadata is set",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG",
                    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}"#,
                "config.json's linux.seccomp.flags[1] is SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                    {"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 5}]}"#,
                "config.json's linux.seccomp.syscalls[0].errnoRet is 5, but SCMP_ACT_ALLOW \
                 returns no errno",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_KILL", "defaultErrnoRet": 1}"#,
                "config.json's linux.seccomp.defaultErrnoRet is 1, but SCMP_ACT_KILL",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 4096}"#,
                "config.json's linux.seccomp.defaultErrnoRet is 4096; an errno runs from 0 to 4095",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["read"], "action": "SCMP_ACT_TRACE", "errnoRet": 65536}]}"#,
                "config.json's linux.seccomp.syscalls[0].errnoRet is 65536",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["read"], "action": "SCMP_ACT_KILL", "args": [
                        {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                        {"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
                "config.json's linux.seccomp.syscalls[0].args[1].index is 6; system calls \
                 have arguments 0 to 5",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["read", ""], "action": "SCMP_ACT_KILL"}]}"#,
                "config.json's linux.seccomp.syscalls[0].names[1] is an empty string",
            ),
        ];
        for (json, want) in cases {
            let message = refusal(json);
            assert!(message.starts_with(want), "{message}\n  wanted: {want}");
        }
    }

    #[test]
    fn unknown_names_are_skipped_as_runc_skips_them() {
        let p = build(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["no_such_call", "getpid", "arm_fadvise64_64"],
                 "action": "SCMP_ACT_ALLOW"}]}"#,
        );
        assert_eq!(run0(&p, "getpid"), bpf::RET_ALLOW);
        assert_eq!(run0(&p, "read"), EPERM);
    }

    /// Values on both sides of the word boundary and of each other.
    const EDGES: [u64; 12] = [
        0,
        1,
        0x7fff_ffff,
        0xffff_fffe,
        0xffff_ffff,
        1 << 32,
        (1 << 32) + 1,
        0x1_ffff_ffff,
        0x2_0000_0001,
        0xffff_ffff_0000_0000,
        u64::MAX - 1,
        u64::MAX,
    ];

    const OPS: [&str; 7] = [
        "SCMP_CMP_NE",
        "SCMP_CMP_LT",
        "SCMP_CMP_LE",
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ",
    ];

    /// The check an OCI condition means, to test the program against.
    fn model(op: &str, value: u64, value_two: u64, width: Width) -> Check {
        let (cmp, value) = match op {
            "SCMP_CMP_NE" => (Cmp::Ne, value),
            "SCMP_CMP_LT" => (Cmp::Lt, value),
            "SCMP_CMP_LE" => (Cmp::Le, value),
            "SCMP_CMP_EQ" => (Cmp::Eq, value),
            "SCMP_CMP_GE" => (Cmp::Ge, value),
            "SCMP_CMP_GT" => (Cmp::Gt, value),
            _ => (Cmp::MaskedEq(value), value_two),
        };
        Check {
            index: 1,
            cmp,
            value,
            width,
        }
    }

    #[test]
    fn arguments_compare_as_64_bit_values_on_x86_64_and_32_bit_on_i386() {
        for op in OPS {
            for value in EDGES {
                let value_two = value.rotate_left(16) & value;
                let p = build(&format!(
                    r#"{{"defaultAction": "SCMP_ACT_ERRNO",
                        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                        "syscalls": [{{"names": ["lseek"], "action": "SCMP_ACT_ALLOW",
                            "args": [{{"index": 1, "value": {value}, "valueTwo": {value_two},
                                      "op": "{op}"}}]}}]}}"#
                ));
                let full = model(op, value, value_two, Width::Full);
                let low = model(op, value, value_two, Width::Low);
                let i386_lseek = Abi::I386.number("lseek").unwrap();
                for arg in EDGES {
                    let args = [3, arg, 0, 0, 0, 0];
                    let want = if holds(&full, arg) {
                        bpf::RET_ALLOW
                    } else {
                        EPERM
                    };
                    assert_eq!(
                        run(&p, "lseek", args),
                        want,
                        "x86_64 {op} {value:#x} on {arg:#x}"
                    );
                    let want = if holds(&low, arg) {
                        bpf::RET_ALLOW
                    } else {
                        EPERM
                    };
                    let got = evaluate(&p.program, i386_lseek, I386, args);
                    assert_eq!(got, want, "i386 {op} {value:#x} on {arg:#x}");
                }
            }
        }
    }

    #[test]
    fn entries_for_one_call_are_alternatives_tried_in_order() {
        // Two rules for one call: either admits (Docker's personality).
        let p = build(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]}"#,
        );
        let personality = |arg| run(&p, "personality", [arg, 0, 0, 0, 0, 0]);
        assert_eq!(personality(0), bpf::RET_ALLOW);
        assert_eq!(personality(8), bpf::RET_ALLOW);
        assert_eq!(personality(1), EPERM);
        assert_eq!(personality(8 | 1 << 32), EPERM);

        // Conditions on different arguments must all hold; the first entry
        // that holds decides.
        let p = build(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "args": [
                    {"index": 0, "value": 40, "op": "SCMP_CMP_EQ"},
                    {"index": 1, "value": 1, "op": "SCMP_CMP_EQ"}]},
                {"names": ["socket"], "action": "SCMP_ACT_LOG", "args": [
                    {"index": 0, "value": 2, "op": "SCMP_CMP_GT"}]}]}"#,
        );
        let socket = |a0, a1| run(&p, "socket", [a0, a1, 0, 0, 0, 0]);
        assert_eq!(socket(40, 1), bpf::ret_errno(libc::EACCES));
        assert_eq!(socket(40, 2), bpf::RET_LOG);
        assert_eq!(socket(10, 1), bpf::RET_LOG);
        assert_eq!(socket(1, 1), bpf::RET_ALLOW);

        // An entry without conditions decides, wherever it stands.
        for (first, second) in [(0, 1), (1, 0)] {
            let entries = [
                r#"{"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}"#,
                r#"{"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}"#,
            ];
            let p = build(&format!(
                r#"{{"defaultAction": "SCMP_ACT_KILL", "syscalls": [{}, {}]}}"#,
                entries[first], entries[second]
            ));
            let got = run(&p, "socket", [1, 0, 0, 0, 0, 0]);
            assert_eq!(got, bpf::ret_errno(libc::EACCES), "order {first}, {second}");
        }

        // runc makes conditions that repeat an index alternatives: this
        // admits every family, 40 and 38 included.
        let p = build(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [
                    {"index": 0, "value": 40, "op": "SCMP_CMP_NE"},
                    {"index": 0, "value": 38, "op": "SCMP_CMP_NE"}]}]}"#,
        );
        for family in [1, 38, 40] {
            assert_eq!(run(&p, "socket", [family, 0, 0, 0, 0, 0]), bpf::RET_ALLOW);
        }

        // An entry with the default action is skipped, as runc skips it: the
        // later entry admits the call.
        let p = build(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["socket"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_EQ"}]},
                {"names": ["socket"], "action": "SCMP_ACT_ALLOW"}]}"#,
        );
        assert_eq!(run(&p, "socket", [40, 0, 0, 0, 0, 0]), bpf::RET_ALLOW);

        // A masked test with a zero mask always holds: no condition at all.
        let p = build(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "valueTwo": 5, "op": "SCMP_CMP_MASKED_EQ"}]}]}"#,
        );
        assert_eq!(run(&p, "clone", [u64::MAX, 0, 0, 0, 0, 0]), bpf::RET_ALLOW);
    }

    #[test]
    fn architectures_not_listed_are_killed_and_listed_ones_numbered_their_way() {
        // x86_64 alone, whatever else is listed that cannot reach this kernel.
        for arches in [
            "[]",
            r#"["SCMP_ARCH_X86_64"]"#,
            r#"["SCMP_ARCH_NATIVE", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]"#,
        ] {
            let p = build(&format!(
                r#"{{"defaultAction": "SCMP_ACT_ERRNO", "architectures": {arches},
                    "syscalls": [{{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}}]}}"#
            ));
            let kill = bpf::RET_KILL_THREAD;
            assert_eq!(run0(&p, "getpid"), bpf::RET_ALLOW, "{arches}");
            assert_eq!(evaluate(&p.program, 39 | 0x4000_0000, X86_64, [0; 6]), kill);
            assert_eq!(evaluate(&p.program, 0x4000_0000, X86_64, [0; 6]), kill);
            assert_eq!(evaluate(&p.program, 20, I386, [0; 6]), kill);
            assert_eq!(evaluate(&p.program, 172, AARCH64, [0; 6]), kill);
            // -1, a tracer's "skip this call", gets the default action.
            assert_eq!(evaluate(&p.program, u32::MAX, X86_64, [0; 6]), EPERM);
        }

        let p = build(
            r#"{"defaultAction": "SCMP_ACT_ERRNO",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [
                    {"names": ["getpid", "ioctl", "socketcall"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                     "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]}]}"#,
        );
        let x32 = |n: u32| n | 0x4000_0000;
        let expect = [
            (39, X86_64, bpf::RET_ALLOW),
            (16, X86_64, bpf::RET_ALLOW),
            (2, X86_64, EPERM),
            // Beyond socket (41), the highest x86_64 call named.
            (83, X86_64, ENOSYS),
            (x32(39), X86_64, bpf::RET_ALLOW),
            // x32's ioctl is its own entry point; x86_64's number is not.
            (x32(514), X86_64, bpf::RET_ALLOW),
            (x32(16), X86_64, EPERM),
            (x32(83), X86_64, EPERM),
            // Beyond the highest x32 call named (ioctl, 514).
            (x32(515), X86_64, ENOSYS),
            (u32::MAX, X86_64, EPERM),
            (20, I386, bpf::RET_ALLOW),
            (54, I386, bpf::RET_ALLOW),
            (102, I386, bpf::RET_ALLOW),
            (39, I386, EPERM),
            // Beyond socket (359), the highest i386 call named.
            (360, I386, ENOSYS),
            (172, AARCH64, bpf::RET_KILL_THREAD),
        ];
        for (n, arch, want) in expect {
            assert_eq!(
                evaluate(&p.program, n, arch, [0; 6]),
                want,
                "{n:#x} on {arch:#x}"
            );
        }
        // i386 and x32 compare the low 32 bits, as libseccomp does.
        let socket = |n, arch, family| evaluate(&p.program, n, arch, [family, 0, 0, 0, 0, 0]);
        assert_eq!(socket(359, I386, 40), EPERM);
        assert_eq!(socket(359, I386, 40 | 1 << 32), EPERM);
        assert_eq!(socket(359, I386, 2), bpf::RET_ALLOW);
        assert_eq!(socket(x32(41), X86_64, 40 | 1 << 32), EPERM);
        assert_eq!(socket(41, X86_64, 40 | 1 << 32), bpf::RET_ALLOW);
        assert_eq!(socket(41, X86_64, 40), EPERM);
    }

    #[test]
    fn flags_become_seccomp_flags() {
        let spec_allow = libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32;
        let implied = build(r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#);
        let want = if filter_flag_supported(spec_allow) {
            spec_allow
        } else {
            0
        };
        assert_eq!(implied.flags, want);
        assert_eq!(
            build(r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": []}"#).flags,
            0
        );
        let all = build(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_TSYNC",
                "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]}"#,
        );
        assert_eq!(all.flags, 0b111);
        assert!(filter_flag_supported(libc::SECCOMP_FILTER_FLAG_LOG as u32));
        assert!(!filter_flag_supported(1 << 31));
    }

    /// containerd's default profile on amd64 for a pod with its default
    /// capabilities, as `contrib/seccomp/seccomp_default.go` emits it.
    const CONTAINERD_DEFAULT: &str = include_str!("testdata/containerd-default.json");

    #[test]
    fn containerds_default_profile_fits_and_decides_as_containerd_means() {
        let profile = parse(CONTAINERD_DEFAULT);
        let p = compile(&profile).unwrap();
        assert!(p.program.len() < bpf::MAX_INSNS, "{}", p.program.len());
        // Three ABIs in one filter, each a binary search.
        assert!(p.program.len() < 1000, "{}", p.program.len());
        let mut x86_64_only = profile.clone();
        x86_64_only.set_architectures(Some(vec![Arch::ScmpArchX86_64]));
        println!(
            "containerd's default seccomp profile: {} instructions for x86_64, x32 and i386; \
             {} for x86_64 alone",
            p.program.len(),
            compile(&x86_64_only).unwrap().program.len()
        );

        let socket = |family| run(&p, "socket", [family, 1, 0, 0, 0, 0]);
        assert_eq!(socket(libc::AF_INET as u64), bpf::RET_ALLOW);
        assert_eq!(socket(39), bpf::RET_ALLOW);
        assert_eq!(socket(41), bpf::RET_ALLOW);
        assert_eq!(socket(libc::AF_ALG as u64), EPERM);
        assert_eq!(socket(libc::AF_VSOCK as u64), EPERM);
        let clone = |flags| run(&p, "clone", [flags, 0, 0, 0, 0, 0]);
        assert_eq!(clone(libc::SIGCHLD as u64), bpf::RET_ALLOW);
        assert_eq!(clone((libc::CLONE_NEWNS | libc::SIGCHLD) as u64), EPERM);
        assert_eq!(run0(&p, "clone3"), ENOSYS);
        assert_eq!(run0(&p, "mount"), EPERM);
        assert_eq!(run0(&p, "chroot"), bpf::RET_ALLOW);
        assert_eq!(run0(&p, "ptrace"), bpf::RET_ALLOW);
        assert_eq!(run0(&p, "arch_prctl"), bpf::RET_ALLOW);
        // i386 and x32 calls are filtered by their own numbers.
        let getpid_i386 = Abi::I386.number("getpid").unwrap();
        assert_eq!(
            evaluate(&p.program, getpid_i386, I386, [0; 6]),
            bpf::RET_ALLOW
        );
        let mount_i386 = Abi::I386.number("mount").unwrap();
        assert_eq!(evaluate(&p.program, mount_i386, I386, [0; 6]), EPERM);
        let getpid_x32 = Abi::X32.number("getpid").unwrap();
        assert_eq!(
            evaluate(&p.program, getpid_x32, X86_64, [0; 6]),
            bpf::RET_ALLOW
        );
        assert_eq!(
            evaluate(&p.program, 172, AARCH64, [0; 6]),
            bpf::RET_KILL_THREAD
        );

        // For x86_64 alone and without clone3's ERRNO entry, every entry
        // allows: seccompiler can express that, and must decide alike.
        let mut allow_only = x86_64_only.clone();
        let entries = profile.syscalls().clone().unwrap_or_default();
        allow_only.set_syscalls(Some(
            entries
                .into_iter()
                .filter(|e| e.action() == LinuxSeccompAction::ScmpActAllow)
                .collect(),
        ));
        let ours = compile(&allow_only).unwrap().program;
        let theirs = reference(&allow_only, SeccompAction::Errno(1), SeccompAction::Allow);
        println!(
            "its allow entries alone for x86_64: {} instructions here, {} from seccompiler",
            ours.len(),
            theirs.len()
        );
        let args = [
            0,
            1,
            38,
            39,
            40,
            41,
            0x11,
            0x2000_0011,
            0xffff_ffff,
            1 << 32,
        ];
        let highest = highest_x86_64(&allow_only);
        for n in 0..600u32 {
            for a in args {
                let args = [a, a, 0, 0, 0, 0];
                let mut want = evaluate(&theirs, n, X86_64, args);
                if highest.is_some_and(|h| n > h) {
                    want = ENOSYS;
                }
                assert_eq!(evaluate(&ours, n, X86_64, args), want, "nr {n}, arg {a:#x}");
            }
        }
    }

    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };

    /// The highest x86_64 number `profile` names.
    fn highest_x86_64(profile: &LinuxSeccomp) -> Option<u32> {
        let entries = profile.syscalls().as_deref().unwrap_or_default();
        entries
            .iter()
            .flat_map(|e| e.names())
            .filter_map(|n| Abi::X86_64.number(n))
            .max()
    }

    /// `profile`'s x86_64 calls compiled by seccompiler, an independent
    /// compiler: every entry must give `matched`, every other call gets
    /// `default`. The profile is read as runc reads it (an entry without
    /// conditions decides the call; conditions repeating an index are
    /// alternatives), but seccompiler makes the program.
    fn reference(
        profile: &LinuxSeccomp,
        default: SeccompAction,
        matched: SeccompAction,
    ) -> Vec<Insn> {
        let mut rules: BTreeMap<i64, Option<Vec<SeccompRule>>> = BTreeMap::new();
        for entry in profile.syscalls().iter().flatten() {
            let conditions: Vec<SeccompCondition> = entry
                .args()
                .iter()
                .flatten()
                .map(|arg| {
                    let (op, value) = match arg.op() {
                        LinuxSeccompOperator::ScmpCmpNe => (SeccompCmpOp::Ne, arg.value()),
                        LinuxSeccompOperator::ScmpCmpLt => (SeccompCmpOp::Lt, arg.value()),
                        LinuxSeccompOperator::ScmpCmpLe => (SeccompCmpOp::Le, arg.value()),
                        LinuxSeccompOperator::ScmpCmpEq => (SeccompCmpOp::Eq, arg.value()),
                        LinuxSeccompOperator::ScmpCmpGe => (SeccompCmpOp::Ge, arg.value()),
                        LinuxSeccompOperator::ScmpCmpGt => (SeccompCmpOp::Gt, arg.value()),
                        LinuxSeccompOperator::ScmpCmpMaskedEq => (
                            SeccompCmpOp::MaskedEq(arg.value()),
                            arg.value_two().unwrap_or(0),
                        ),
                    };
                    let index = arg.index() as u8;
                    SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value).unwrap()
                })
                .collect();
            let indices: Vec<usize> = entry.args().iter().flatten().map(|a| a.index()).collect();
            let repeats = indices
                .iter()
                .enumerate()
                .any(|(i, x)| indices[..i].contains(x));
            let new: Vec<SeccompRule> = if repeats {
                conditions
                    .into_iter()
                    .map(|c| SeccompRule::new(vec![c]).unwrap())
                    .collect()
            } else if conditions.is_empty() {
                Vec::new()
            } else {
                vec![SeccompRule::new(conditions).unwrap()]
            };
            for name in entry.names() {
                let Some(nr) = Abi::X86_64.number(name) else {
                    continue;
                };
                let slot = rules.entry(nr.into()).or_insert_with(|| Some(Vec::new()));
                match slot {
                    // Already unconditional.
                    None => {}
                    Some(_) if new.is_empty() => *slot = None,
                    Some(list) => list.extend(new.iter().cloned()),
                }
            }
        }
        let rules = rules
            .into_iter()
            .map(|(nr, r)| (nr, r.unwrap_or_default()))
            .collect();
        let filter = SeccompFilter::new(rules, default, matched, TargetArch::x86_64).unwrap();
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

    mod cross_check {
        use super::*;
        use proptest::prelude::*;
        use proptest::sample::select;

        /// The calls random profiles name: low and high numbers, a few
        /// neighbours, clone3 and later (so ENOSYS ranges vary).
        const POOL: [&str; 16] = [
            "read",
            "write",
            "lseek",
            "mmap",
            "ioctl",
            "socket",
            "clone",
            "personality",
            "mkdir",
            "getpid",
            "kill",
            "prctl",
            "futex",
            "pidfd_open",
            "clone3",
            "faccessat2",
        ];

        /// An action in both vocabularies: config.json's, and seccompiler's.
        #[derive(Debug, Clone)]
        struct Act(LinuxSeccompAction, Option<u32>, SeccompAction);

        fn acts() -> Vec<Act> {
            use LinuxSeccompAction as A;
            vec![
                Act(A::ScmpActAllow, None, SeccompAction::Allow),
                Act(A::ScmpActErrno, Some(13), SeccompAction::Errno(13)),
                Act(A::ScmpActErrno, None, SeccompAction::Errno(1)),
                Act(A::ScmpActKillProcess, None, SeccompAction::KillProcess),
                Act(A::ScmpActKillThread, None, SeccompAction::KillThread),
                Act(A::ScmpActTrap, None, SeccompAction::Trap),
                Act(A::ScmpActLog, None, SeccompAction::Log),
                Act(A::ScmpActTrace, Some(5), SeccompAction::Trace(5)),
            ]
        }

        fn value() -> impl Strategy<Value = u64> {
            prop_oneof![select(EDGES.to_vec()), 0..64u64, any::<u64>()]
        }

        fn op() -> impl Strategy<Value = LinuxSeccompOperator> {
            use LinuxSeccompOperator as O;
            select(vec![
                O::ScmpCmpNe,
                O::ScmpCmpLt,
                O::ScmpCmpLe,
                O::ScmpCmpEq,
                O::ScmpCmpGe,
                O::ScmpCmpGt,
                O::ScmpCmpMaskedEq,
            ])
        }

        fn arg() -> impl Strategy<Value = LinuxSeccompArg> {
            (0..6usize, op(), value(), value()).prop_map(|(index, op, value, two)| {
                LinuxSeccompArgBuilder::default()
                    .index(index)
                    .op(op)
                    .value(value)
                    .value_two(two)
                    .build()
                    .unwrap()
            })
        }

        fn profile() -> impl Strategy<Value = (LinuxSeccomp, Act, Act)> {
            let entry = (
                proptest::collection::vec(select(POOL.to_vec()), 1..4),
                proptest::collection::vec(arg(), 0..4),
            );
            let n = acts().len();
            ((0..n, 1..n), proptest::collection::vec(entry, 0..12)).prop_map(
                |((d, offset), entries)| {
                    let acts = acts();
                    let (default, matched) =
                        (acts[d].clone(), acts[(d + offset) % acts.len()].clone());
                    let syscalls = entries
                        .into_iter()
                        .map(|(names, args)| {
                            let mut b = LinuxSyscallBuilder::default()
                                .names(names.into_iter().map(String::from).collect::<Vec<_>>())
                                .action(matched.0)
                                .args(args);
                            if let Some(e) = matched.1 {
                                b = b.errno_ret(e);
                            }
                            b.build().unwrap()
                        })
                        .collect::<Vec<_>>();
                    let mut b = LinuxSeccompBuilder::default()
                        .default_action(default.0)
                        .architectures(vec![Arch::ScmpArchX86_64])
                        .flags(Vec::new())
                        .syscalls(syscalls);
                    if let Some(e) = default.1 {
                        b = b.default_errno_ret(e);
                    }
                    (b.build().unwrap(), default, matched)
                },
            )
        }

        proptest! {
            /// A random profile whose entries share one action is decided
            /// alike by our tree and by seccompiler's chain, for every call
            /// named and a few not, on arguments near the profile's values.
            #[test]
            fn decides_as_seccompiler((profile, default, matched) in profile()) {
                let ours = compile(&profile).unwrap().program;
                let theirs = reference(&profile, default.2, matched.2);
                let highest = highest_x86_64(&profile);
                let enosys = !matches!(
                    default.0,
                    LinuxSeccompAction::ScmpActAllow
                        | LinuxSeccompAction::ScmpActLog
                        | LinuxSeccompAction::ScmpActTrace
                );
                let mut values: Vec<u64> = EDGES.to_vec();
                for arg in profile.syscalls().iter().flatten().flat_map(|e| e.args().iter().flatten()) {
                    for v in [arg.value(), arg.value_two().unwrap_or(0)] {
                        values.extend([v, v.wrapping_add(1), v.wrapping_sub(1)]);
                    }
                }
                let mut numbers: Vec<u32> = POOL.iter().map(|n| nr(n)).collect();
                numbers.extend([highest.unwrap_or(0) + 1, 999, 0x3fff_ffff]);
                for &n in &numbers {
                    for k in 0..values.len() {
                        let args: [u64; 6] = std::array::from_fn(|i| values[(k + i * 7) % values.len()]);
                        let mut want = evaluate(&theirs, n, X86_64, args);
                        if enosys && highest.is_some_and(|h| n > h) {
                            want = ENOSYS;
                        }
                        let got = evaluate(&ours, n, X86_64, args);
                        prop_assert_eq!(got, want, "nr {}, args {:x?}", n, args);
                    }
                }
            }
        }
    }
}
