//! A seccomp policy compiled to classic BPF as a binary search over syscall
//! numbers, so a call is decided in about ten instructions.
//!
//! Why not seccompiler's output: it tests the numbers one after another (the
//! default profile becomes ~1600 instructions), and the kernel, when the
//! filter is installed, runs it once for every syscall number to find those
//! it always allows; on a linear filter that alone took ~2 ms per sandbox,
//! and every call the cache does not cover walked the chain. libseccomp has
//! the same tree layout behind SCMP_FLTATR_CTL_OPTIMIZE.

use std::collections::BTreeMap;

/// `struct sock_filter`: one classic BPF instruction.
pub type Insn = libc::sock_filter;

/// The kernel's limit on a filter's length (BPF_MAXINSNS).
pub const MAX_INSNS: usize = 4096;

// Opcodes (linux/bpf_common.h).
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const JA: u16 = 0x05;
const AND_K: u16 = 0x54;
const RET_K: u16 = 0x06;

// Offsets into `struct seccomp_data { int nr; __u32 arch; __u64 ip; __u64 args[6]; }`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
const DATA_ARGS: u32 = 16;

/// EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
pub const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;

pub const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
pub const RET_KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;

pub fn ret_errno(errno: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA)
}

/// One test on a 32-bit word of `seccomp_data`: `(word & mask) == value`,
/// or `!=` when `equal` is false.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    offset: u32,
    mask: u32,
    value: u32,
    equal: bool,
}

/// Checks that must all hold.
pub type Rule = Vec<Check>;

/// The low 32 bits of argument `index` (an `int` argument) equal `value`.
pub fn arg_eq(index: u8, value: u32) -> Rule {
    vec![word(index, 0, u32::MAX, value, true)]
}

/// The low 32 bits of argument `index` differ from `value`.
pub fn arg_ne(index: u8, value: u32) -> Rule {
    vec![word(index, 0, u32::MAX, value, false)]
}

/// The whole 64-bit argument `index`, masked, equals `value`.
pub fn arg_masked_eq(index: u8, mask: u64, value: u64) -> Rule {
    vec![
        word(index, 0, mask as u32, value as u32, true),
        word(index, 4, (mask >> 32) as u32, (value >> 32) as u32, true),
    ]
}

fn word(index: u8, half: u32, mask: u32, value: u32, equal: bool) -> Check {
    Check {
        // x86_64 is little-endian: the low half comes first.
        offset: DATA_ARGS + 8 * u32::from(index) + half,
        mask,
        value: value & mask,
        equal,
    }
}

/// What happens to one syscall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A seccomp return value (allow, errno, kill...).
    Ret(u32),
    /// Allowed when any rule holds, otherwise the policy's default.
    AllowIf(Vec<Rule>),
}

/// Per-syscall actions for one architecture; every other number, and every
/// call from another architecture, gets `default` and `foreign_arch`.
#[derive(Debug, Clone)]
pub struct Policy {
    pub arch: u32,
    pub foreign_arch: u32,
    pub default: u32,
    pub calls: BTreeMap<u32, Action>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the seccomp filter has {0} instructions; the kernel takes 1 to {MAX_INSNS}")]
pub struct TooLong(pub usize);

impl Policy {
    pub fn compile(&self) -> Result<Vec<Insn>, TooLong> {
        let mut program = vec![
            ld(DATA_ARCH),
            jump(JEQ_K, self.arch, 1, 0),
            ret(self.foreign_arch),
            ld(DATA_NR),
        ];
        program.extend(self.tree(&self.segments()));
        if program.len() > MAX_INSNS {
            return Err(TooLong(program.len()));
        }
        Ok(program)
    }

    /// Runs of consecutive numbers with the same action, from 0 up; the last
    /// run (the default) reaches u32::MAX.
    fn segments(&self) -> Vec<(u32, Action)> {
        let default = Action::Ret(self.default);
        let mut out: Vec<(u32, Action)> = Vec::new();
        let mut push = |start: u32, action: &Action| match out.last() {
            // Rules are never merged: each tests its own call's arguments.
            Some((_, Action::Ret(last))) if *action == Action::Ret(*last) => {}
            _ => out.push((start, action.clone())),
        };
        let mut next = 0u32;
        for (&nr, action) in &self.calls {
            if nr > next {
                push(next, &default);
            }
            push(nr, action);
            next = nr.saturating_add(1);
        }
        push(next, &default);
        out
    }

    /// A balanced tree of `nr >= start` tests over `segments`; the
    /// accumulator holds the syscall number on entry.
    fn tree(&self, segments: &[(u32, Action)]) -> Vec<Insn> {
        match segments {
            [] => vec![ret(self.default)],
            [(_, action)] => self.leaf(action),
            _ => {
                let mid = segments.len() / 2;
                let low = self.tree(&segments[..mid]);
                let high = self.tree(&segments[mid..]);
                let split = segments[mid].0;
                let mut out = Vec::with_capacity(low.len() + high.len() + 2);
                match u8::try_from(low.len()) {
                    Ok(skip) => out.push(jump(JGE_K, split, skip, 0)),
                    // Conditional jumps reach 255 instructions; JA reaches any.
                    Err(_) => {
                        out.push(jump(JGE_K, split, 0, 1));
                        out.push(insn(JA, 0, 0, low.len() as u32));
                    }
                }
                out.extend(low);
                out.extend(high);
                out
            }
        }
    }

    fn leaf(&self, action: &Action) -> Vec<Insn> {
        let rules = match action {
            Action::Ret(value) => return vec![ret(*value)],
            Action::AllowIf(rules) => rules,
        };
        let mut out = Vec::new();
        for rule in rules {
            // Each check is a load, maybe a mask, and a compare whose
            // failing branch skips to the next rule (past this rule's RET).
            let sizes: Vec<usize> = rule.iter().map(check_len).collect();
            let total: usize = sizes.iter().sum::<usize>() + 1;
            let mut at = 0;
            for (check, size) in rule.iter().zip(sizes) {
                out.push(ld(check.offset));
                if check.mask != u32::MAX {
                    out.push(insn(AND_K, 0, 0, check.mask));
                }
                at += size;
                // Rules are a handful of checks: far below 255 instructions.
                let fail = (total - at) as u8;
                out.push(if check.equal {
                    jump(JEQ_K, check.value, 0, fail)
                } else {
                    jump(JEQ_K, check.value, fail, 0)
                });
            }
            out.push(ret(RET_ALLOW));
        }
        out.push(ret(self.default));
        out
    }
}

fn check_len(check: &Check) -> usize {
    if check.mask == u32::MAX {
        2
    } else {
        3
    }
}

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

fn ld(offset: u32) -> Insn {
    insn(LD_W_ABS, 0, 0, offset)
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    insn(code, jt, jf, k)
}

fn ret(value: u32) -> Insn {
    insn(RET_K, 0, 0, value)
}

/// A classic BPF interpreter for the instructions [`Policy::compile`]
/// emits, to check programs without installing them.
#[cfg(test)]
pub fn evaluate(program: &[Insn], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        let at = 16 + 8 * i;
        data[at..at + 8].copy_from_slice(&a.to_le_bytes());
    }
    let mut acc = 0u32;
    let mut pc = 0usize;
    loop {
        let i = program[pc];
        pc += 1;
        let branch = |taken: bool| usize::from(if taken { i.jt } else { i.jf });
        match i.code {
            LD_W_ABS => {
                let at = i.k as usize;
                acc = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
            }
            AND_K => acc &= i.k,
            JA => pc += i.k as usize,
            JEQ_K => pc += branch(acc == i.k),
            JGE_K => pc += branch(acc >= i.k),
            RET_K => return i.k,
            // Classic BPF's conditional jumps test against `k` via these
            // opcodes only; anything else is a compiler bug.
            other => panic!("unexpected opcode {other:#x} at {}", pc - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPERM: u32 = libc::SECCOMP_RET_ERRNO | 1;

    fn policy(calls: impl IntoIterator<Item = (u32, Action)>) -> Policy {
        Policy {
            arch: AUDIT_ARCH_X86_64,
            foreign_arch: RET_KILL_PROCESS,
            default: EPERM,
            calls: calls.into_iter().collect(),
        }
    }

    fn run(p: &[Insn], nr: u32, arg0: u64) -> u32 {
        evaluate(p, nr, AUDIT_ARCH_X86_64, [arg0, 0, 0, 0, 0, 0])
    }

    #[test]
    fn every_number_gets_its_action() {
        // Every third number allowed, some errno, across a wide range.
        let calls = (0..900u32).filter(|n| n % 3 != 1).map(|n| {
            let action = if n % 7 == 0 {
                Action::Ret(ret_errno(libc::ENOSYS))
            } else {
                Action::Ret(RET_ALLOW)
            };
            (n, action)
        });
        let p = policy(calls.clone());
        let program = p.compile().unwrap();
        for nr in 0..1000u32 {
            let want = p
                .calls
                .get(&nr)
                .map(|a| match a {
                    Action::Ret(v) => *v,
                    Action::AllowIf(_) => unreachable!(),
                })
                .unwrap_or(EPERM);
            assert_eq!(run(&program, nr, 0), want, "nr {nr}");
        }
        for nr in [0x4000_0000, 0x4000_0001, u32::MAX] {
            assert_eq!(run(&program, nr, 0), EPERM, "nr {nr:#x}");
        }
        // A tree this large needs long jumps near its root.
        assert!(program.iter().any(|i| i.code == JA));
        // ~log2(segments) compares per call.
        assert!(program.len() < 3000, "{}", program.len());
    }

    #[test]
    fn foreign_architecture_is_killed() {
        let program = policy([(0, Action::Ret(RET_ALLOW))]).compile().unwrap();
        assert_eq!(
            evaluate(&program, 0, 0x4000_0003 /* i386 */, [0; 6]),
            RET_KILL_PROCESS
        );
    }

    #[test]
    fn argument_rules() {
        let p = policy([
            (41, Action::AllowIf(vec![arg_ne(0, 40)])),
            (
                135,
                Action::AllowIf(vec![arg_eq(0, 0), arg_eq(0, 8), arg_eq(0, 0xffff_ffff)]),
            ),
            (56, Action::AllowIf(vec![arg_masked_eq(0, 0x7E02_0000, 0)])),
            (57, Action::Ret(RET_ALLOW)),
        ]);
        let program = p.compile().unwrap();
        assert_eq!(run(&program, 41, 1), RET_ALLOW);
        assert_eq!(run(&program, 41, 40), EPERM);
        // Only the low 32 bits of an int argument count.
        assert_eq!(run(&program, 41, 40 | (1 << 32)), EPERM);
        for ok in [0, 8, 0xffff_ffff] {
            assert_eq!(run(&program, 135, ok), RET_ALLOW, "{ok:#x}");
        }
        assert_eq!(run(&program, 135, 0x40000), EPERM);
        assert_eq!(run(&program, 56, 0x11 /* SIGCHLD */), RET_ALLOW);
        assert_eq!(run(&program, 56, 0x2000_0011 /* CLONE_NEWPID */), EPERM);
        assert_eq!(run(&program, 56, 1 << 40), RET_ALLOW);
        assert_eq!(run(&program, 57, 0), RET_ALLOW);
        assert_eq!(run(&program, 58, 0), EPERM);
    }

    #[test]
    fn high_half_of_a_masked_argument_is_checked() {
        let p = policy([(1, Action::AllowIf(vec![arg_masked_eq(2, 1 << 33, 0)]))]);
        let program = p.compile().unwrap();
        let call = |a2: u64| evaluate(&program, 1, AUDIT_ARCH_X86_64, [0, 0, a2, 0, 0, 0]);
        assert_eq!(call(0), RET_ALLOW);
        assert_eq!(call(1 << 33), EPERM);
        assert_eq!(call(1 << 32), RET_ALLOW);
    }

    #[test]
    fn empty_policy_denies_everything() {
        let program = policy([]).compile().unwrap();
        assert_eq!(run(&program, 0, 0), EPERM);
        assert_eq!(run(&program, 12345, 0), EPERM);
    }
}
