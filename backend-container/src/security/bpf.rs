//! A seccomp policy compiled to classic BPF as a binary search over syscall
//! numbers, so a call is decided in about ten instructions.
//!
//! Why not seccompiler's output: it tests the numbers one after another (the
//! default profile becomes ~1600 instructions), and the kernel, when the
//! filter is installed, runs it once for every syscall number to find those
//! it always allows; on a linear filter that alone took ~2 ms per sandbox,
//! and every call the cache does not cover walked the chain. libseccomp has
//! the same tree layout behind SCMP_FLTATR_CTL_OPTIMIZE.
//!
//! A [`Filter`] holds one [`Policy`] per architecture (`seccomp_data.arch`);
//! each maps syscall numbers to a return value or to argument [`Rule`]s, whose
//! [`Check`]s compare 64-bit arguments the way libseccomp does (high word,
//! then low word).

use std::collections::BTreeMap;

/// `struct sock_filter`: one classic BPF instruction.
pub type Insn = libc::sock_filter;

/// The kernel's limit on a filter's length (BPF_MAXINSNS).
pub const MAX_INSNS: usize = 4096;

// Opcodes (linux/bpf_common.h).
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JGE_K: u16 = 0x35;
const JA: u16 = 0x05;
const AND_K: u16 = 0x54;
const RET_K: u16 = 0x06;

// Offsets into `struct seccomp_data { int nr; __u32 arch; __u64 ip; __u64 args[6]; }`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
const DATA_ARGS: u32 = 16;

/// A system call has at most six arguments (`seccomp_data.args`).
pub const MAX_ARGS: u8 = 6;

/// EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
pub const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
/// EM_386 | __AUDIT_ARCH_LE: 32-bit x86 calls (`int 0x80`, IA-32 emulation).
pub const AUDIT_ARCH_I386: u32 = 3 | 0x4000_0000;
/// x32 calls come as AUDIT_ARCH_X86_64 with this bit set in their number
/// (`__X32_SYSCALL_BIT`).
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

pub const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
pub const RET_KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;
pub const RET_KILL_THREAD: u32 = libc::SECCOMP_RET_KILL_THREAD;
pub const RET_TRAP: u32 = libc::SECCOMP_RET_TRAP;
pub const RET_LOG: u32 = libc::SECCOMP_RET_LOG;

pub fn ret_errno(errno: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA)
}

/// SECCOMP_RET_TRACE: a ptracer is told, with `data` as the event message.
pub fn ret_trace(data: u16) -> u32 {
    libc::SECCOMP_RET_TRACE | u32::from(data)
}

/// An unsigned comparison of an argument with a value, as libseccomp's
/// SCMP_CMP_* operators make them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `(arg & mask) == (value & mask)`.
    MaskedEq(u64),
}

/// How much of an argument a [`Check`] looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// All 64 bits: a 64-bit ABI's argument.
    Full,
    /// The low 32 bits and the value's low 32 bits: an `int` argument, or
    /// any argument of a 32-bit ABI (libseccomp compares no more on i386
    /// and x32).
    Low,
}

/// One test on argument `index`: `arg <cmp> value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    pub index: u8,
    pub cmp: Cmp,
    pub value: u64,
    pub width: Width,
}

/// Checks that must all hold.
pub type Rule = Vec<Check>;

/// The low 32 bits of argument `index` (an `int` argument) equal `value`.
pub fn arg_eq(index: u8, value: u32) -> Rule {
    vec![Check {
        index,
        cmp: Cmp::Eq,
        value: value.into(),
        width: Width::Low,
    }]
}

/// The low 32 bits of argument `index` differ from `value`.
pub fn arg_ne(index: u8, value: u32) -> Rule {
    vec![Check {
        index,
        cmp: Cmp::Ne,
        value: value.into(),
        width: Width::Low,
    }]
}

/// The whole 64-bit argument `index`, masked, equals `value`.
pub fn arg_masked_eq(index: u8, mask: u64, value: u64) -> Rule {
    vec![Check {
        index,
        cmp: Cmp::MaskedEq(mask),
        value,
        width: Width::Full,
    }]
}

/// What happens to one syscall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A seccomp return value (allow, errno, kill...).
    Ret(u32),
    /// The first rule that holds gives its return value; when none holds,
    /// the policy's `default`.
    Rules(Vec<(Rule, u32)>),
}

/// Per-syscall actions for one architecture.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `seccomp_data.arch` (AUDIT_ARCH_*).
    pub arch: u32,
    /// What a number gets that neither `calls` nor `ranges` name, and what a
    /// call gets when none of its rules holds.
    pub default: u32,
    /// Numbers from a key up to the next key that `calls` does not name get
    /// its value instead of `default`.
    pub ranges: BTreeMap<u32, u32>,
    pub calls: BTreeMap<u32, Action>,
}

/// A policy per architecture; a call from any other gets `foreign_arch`.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Tested in this order: the usual architecture goes first.
    pub policies: Vec<Policy>,
    pub foreign_arch: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("the seccomp filter has {0} instructions; the kernel takes 1 to {MAX_INSNS}")]
    TooLong(usize),

    #[error(
        "an argument rule of system call {nr} compiles to {len} instructions, beyond the \
         255 a BPF jump can skip; split it into rules of fewer checks"
    )]
    RuleTooLong { nr: u32, len: usize },

    #[error("an argument rule of system call {nr} tests argument {index}; system calls have arguments 0 to 5")]
    ArgIndex { nr: u32, index: u8 },
}

impl Filter {
    pub fn compile(&self) -> Result<Vec<Insn>, CompileError> {
        let mut program = vec![ld(DATA_ARCH)];
        let last = self.policies.len().saturating_sub(1);
        for (i, policy) in self.policies.iter().enumerate() {
            let code = policy.code()?;
            if code.len() > MAX_INSNS {
                return Err(CompileError::TooLong(program.len() + code.len()));
            }
            if i == last {
                // The last architecture: a mismatch falls to the foreign return.
                program.push(jump(JEQ_K, policy.arch, 1, 0));
                program.push(ret(self.foreign_arch));
            } else {
                match u8::try_from(code.len()) {
                    // A mismatch skips this policy's code to the next test.
                    Ok(skip) => program.push(jump(JEQ_K, policy.arch, 0, skip)),
                    Err(_) => {
                        program.push(jump(JEQ_K, policy.arch, 1, 0));
                        program.push(insn(JA, 0, 0, code.len() as u32));
                    }
                }
            }
            program.extend(code);
        }
        if self.policies.is_empty() {
            program.push(ret(self.foreign_arch));
        }
        if program.len() > MAX_INSNS {
            return Err(CompileError::TooLong(program.len()));
        }
        Ok(program)
    }
}

impl Policy {
    /// The code that decides this architecture's calls; it loads the
    /// syscall number itself.
    fn code(&self) -> Result<Vec<Insn>, CompileError> {
        let mut out = vec![ld(DATA_NR)];
        out.extend(self.tree(&self.segments())?);
        Ok(out)
    }

    /// Runs of consecutive numbers with the same action, from 0 up; the last
    /// run reaches u32::MAX.
    fn segments(&self) -> Vec<(u32, Action)> {
        let mut out = Vec::new();
        let mut next = 0u64;
        for (&nr, action) in &self.calls {
            self.fill(&mut out, next, u64::from(nr));
            push_segment(&mut out, nr, action.clone());
            next = u64::from(nr) + 1;
        }
        self.fill(&mut out, next, 1 << 32);
        out
    }

    /// Segments for the numbers `from..to`, which `calls` does not name:
    /// each gets the range it falls in, or `default`.
    fn fill(&self, out: &mut Vec<(u32, Action)>, from: u64, to: u64) {
        use std::ops::Bound::{Excluded, Unbounded};
        let mut at = from;
        while at < to {
            // `at < to <= 2^32`, so it is a u32.
            let start = at as u32;
            let value = self
                .ranges
                .range(..=start)
                .next_back()
                .map_or(self.default, |(_, &v)| v);
            push_segment(out, start, Action::Ret(value));
            at = self
                .ranges
                .range((Excluded(start), Unbounded))
                .next()
                .map_or(1 << 32, |(&k, _)| u64::from(k));
        }
    }

    /// A balanced tree of `nr >= start` tests over `segments`; the
    /// accumulator holds the syscall number on entry.
    fn tree(&self, segments: &[(u32, Action)]) -> Result<Vec<Insn>, CompileError> {
        match segments {
            [] => Ok(vec![ret(self.default)]),
            [(nr, action)] => self.leaf(*nr, action),
            _ => {
                let mid = segments.len() / 2;
                let low = self.tree(&segments[..mid])?;
                let high = self.tree(&segments[mid..])?;
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
                Ok(out)
            }
        }
    }

    /// One call's code: a return, or its rules in order (each a run of
    /// checks whose failure skips to the next rule) and then `default`.
    fn leaf(&self, nr: u32, action: &Action) -> Result<Vec<Insn>, CompileError> {
        let rules = match action {
            Action::Ret(value) => return Ok(vec![ret(*value)]),
            Action::Rules(rules) => rules,
        };
        let mut out = Vec::new();
        for (rule, value) in rules {
            // Each op with the end of its check (where `To::Pass` leads).
            let mut ops: Vec<(Op, usize)> = Vec::new();
            for check in rule {
                if check.index >= MAX_ARGS {
                    return Err(CompileError::ArgIndex {
                        nr,
                        index: check.index,
                    });
                }
                let code = check_code(check);
                let end = ops.len() + code.len();
                ops.extend(code.into_iter().map(|op| (op, end)));
            }
            // `To::Fail` leads past the rule's return, to the next rule.
            let len = ops.len() + 1;
            for (at, (op, end)) in ops.iter().enumerate() {
                let offset = |to: To| {
                    let target = match to {
                        To::Next => at + 1,
                        To::Pass => *end,
                        To::Fail => len,
                    };
                    u8::try_from(target - at - 1).map_err(|_| CompileError::RuleTooLong { nr, len })
                };
                out.push(insn(op.code, offset(op.jt)?, offset(op.jf)?, op.k));
            }
            out.push(ret(*value));
        }
        out.push(ret(self.default));
        Ok(out)
    }
}

fn push_segment(out: &mut Vec<(u32, Action)>, start: u32, action: Action) {
    // Equal returns merge; rules never do: each tests its own call's arguments.
    if let (Some((_, Action::Ret(last))), Action::Ret(value)) = (out.last(), &action) {
        if last == value {
            return;
        }
    }
    out.push((start, action));
}

/// Where a jump in a rule's code leads.
#[derive(Debug, Clone, Copy)]
enum To {
    /// The next instruction.
    Next,
    /// Past this check: it holds.
    Pass,
    /// Past the rule's return: the rule does not hold.
    Fail,
}

/// An instruction of a check, its jumps not yet resolved.
#[derive(Debug, Clone, Copy)]
struct Op {
    code: u16,
    k: u32,
    jt: To,
    jf: To,
}

/// A check as loads, masks and compares. A 64-bit comparison is decided on
/// the high words unless they are equal, then on the low words: libseccomp's
/// layout, since classic BPF only compares 32-bit words.
fn check_code(check: &Check) -> Vec<Op> {
    use To::{Fail, Next, Pass};
    // x86 is little-endian: the low half comes first.
    let lo_at = DATA_ARGS + 8 * u32::from(check.index);
    let hi_at = lo_at + 4;
    let (v_hi, v_lo) = ((check.value >> 32) as u32, check.value as u32);
    let load = |at| Op {
        code: LD_W_ABS,
        k: at,
        jt: Next,
        jf: Next,
    };
    let test = |code, k, jt, jf| Op { code, k, jt, jf };
    match (check.width, check.cmp) {
        (width, Cmp::MaskedEq(mask)) => {
            let mut halves = vec![(lo_at, mask as u32, v_lo)];
            if width == Width::Full {
                halves.insert(0, (hi_at, (mask >> 32) as u32, v_hi));
            }
            let mut out = Vec::new();
            for (at, mask, value) in halves {
                // `(arg & 0) == (value & 0)` always holds: nothing to test.
                if mask == 0 {
                    continue;
                }
                out.push(load(at));
                if mask != u32::MAX {
                    out.push(test(AND_K, mask, Next, Next));
                }
                out.push(test(JEQ_K, value & mask, Next, Fail));
            }
            out
        }
        (Width::Low, Cmp::Eq) => vec![load(lo_at), test(JEQ_K, v_lo, Pass, Fail)],
        (Width::Low, Cmp::Ne) => vec![load(lo_at), test(JEQ_K, v_lo, Fail, Pass)],
        (Width::Low, Cmp::Gt) => vec![load(lo_at), test(JGT_K, v_lo, Pass, Fail)],
        (Width::Low, Cmp::Ge) => vec![load(lo_at), test(JGE_K, v_lo, Pass, Fail)],
        (Width::Low, Cmp::Lt) => vec![load(lo_at), test(JGE_K, v_lo, Fail, Pass)],
        (Width::Low, Cmp::Le) => vec![load(lo_at), test(JGT_K, v_lo, Fail, Pass)],
        (Width::Full, Cmp::Eq) => vec![
            load(hi_at),
            test(JEQ_K, v_hi, Next, Fail),
            load(lo_at),
            test(JEQ_K, v_lo, Pass, Fail),
        ],
        (Width::Full, Cmp::Ne) => vec![
            load(hi_at),
            test(JEQ_K, v_hi, Next, Pass),
            load(lo_at),
            test(JEQ_K, v_lo, Fail, Pass),
        ],
        // Greater on the high words decides; equal ones defer to the low.
        (Width::Full, Cmp::Gt | Cmp::Ge) => vec![
            load(hi_at),
            test(JGT_K, v_hi, Pass, Next),
            test(JEQ_K, v_hi, Next, Fail),
            load(lo_at),
            test(
                if check.cmp == Cmp::Gt { JGT_K } else { JGE_K },
                v_lo,
                Pass,
                Fail,
            ),
        ],
        // Less is not greater-or-equal; less-or-equal is not greater.
        (Width::Full, Cmp::Lt | Cmp::Le) => vec![
            load(hi_at),
            test(JGT_K, v_hi, Fail, Next),
            test(JEQ_K, v_hi, Next, Pass),
            load(lo_at),
            test(
                if check.cmp == Cmp::Lt { JGE_K } else { JGT_K },
                v_lo,
                Fail,
                Pass,
            ),
        ],
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

/// A classic BPF interpreter for the instructions [`Filter::compile`]
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
            JGT_K => pc += branch(acc > i.k),
            JGE_K => pc += branch(acc >= i.k),
            RET_K => return i.k,
            // Classic BPF's conditional jumps test against `k` via these
            // opcodes only; anything else is a compiler bug.
            other => panic!("unexpected opcode {other:#x} at {}", pc - 1),
        }
    }
}

/// Whether `check` holds for `arg`, computed directly: the model the
/// compiled checks are tested against.
#[cfg(test)]
pub fn holds(check: &Check, arg: u64) -> bool {
    let narrow = |v: u64| match check.width {
        Width::Full => v,
        Width::Low => v & 0xffff_ffff,
    };
    let (a, v) = (narrow(arg), narrow(check.value));
    match check.cmp {
        Cmp::Eq => a == v,
        Cmp::Ne => a != v,
        Cmp::Lt => a < v,
        Cmp::Le => a <= v,
        Cmp::Gt => a > v,
        Cmp::Ge => a >= v,
        Cmp::MaskedEq(mask) => a & narrow(mask) == v & narrow(mask),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPERM: u32 = libc::SECCOMP_RET_ERRNO | 1;

    fn policy(calls: impl IntoIterator<Item = (u32, Action)>) -> Policy {
        Policy {
            arch: AUDIT_ARCH_X86_64,
            default: EPERM,
            ranges: BTreeMap::new(),
            calls: calls.into_iter().collect(),
        }
    }

    fn compile(policy: Policy) -> Vec<Insn> {
        Filter {
            policies: vec![policy],
            foreign_arch: RET_KILL_PROCESS,
        }
        .compile()
        .unwrap()
    }

    fn allow_if(rules: Vec<Rule>) -> Action {
        Action::Rules(rules.into_iter().map(|r| (r, RET_ALLOW)).collect())
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
        let p = policy(calls);
        let want = p.calls.clone();
        let program = compile(p);
        for nr in 0..1000u32 {
            let want = match want.get(&nr) {
                Some(Action::Ret(v)) => *v,
                _ => EPERM,
            };
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
        let program = compile(policy([(0, Action::Ret(RET_ALLOW))]));
        assert_eq!(
            evaluate(&program, 0, AUDIT_ARCH_I386, [0; 6]),
            RET_KILL_PROCESS
        );
    }

    #[test]
    fn argument_rules() {
        let p = policy([
            (41, allow_if(vec![arg_ne(0, 40)])),
            (
                135,
                allow_if(vec![arg_eq(0, 0), arg_eq(0, 8), arg_eq(0, 0xffff_ffff)]),
            ),
            (56, allow_if(vec![arg_masked_eq(0, 0x7E02_0000, 0)])),
            (57, Action::Ret(RET_ALLOW)),
        ]);
        let program = compile(p);
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
        let p = policy([(1, allow_if(vec![arg_masked_eq(2, 1 << 33, 0)]))]);
        let program = compile(p);
        let call = |a2: u64| evaluate(&program, 1, AUDIT_ARCH_X86_64, [0, 0, a2, 0, 0, 0]);
        assert_eq!(call(0), RET_ALLOW);
        assert_eq!(call(1 << 33), EPERM);
        assert_eq!(call(1 << 32), RET_ALLOW);
    }

    #[test]
    fn empty_policy_denies_everything() {
        let program = compile(policy([]));
        assert_eq!(run(&program, 0, 0), EPERM);
        assert_eq!(run(&program, 12345, 0), EPERM);
    }

    /// Values on both sides of the word boundary and of each other.
    const EDGES: [u64; 14] = [
        0,
        1,
        2,
        0x7fff_ffff,
        0xffff_fffe,
        0xffff_ffff,
        1 << 32,
        (1 << 32) + 1,
        (1 << 32) + 2,
        0x1_ffff_ffff,
        0x2_0000_0001,
        0xffff_ffff_0000_0000,
        u64::MAX - 1,
        u64::MAX,
    ];

    #[test]
    fn every_comparison_decides_as_the_model_on_either_width() {
        let ops = |v: u64| {
            [
                Cmp::Eq,
                Cmp::Ne,
                Cmp::Lt,
                Cmp::Le,
                Cmp::Gt,
                Cmp::Ge,
                Cmp::MaskedEq(v),
                Cmp::MaskedEq(0xffff_0000_ffff_0000),
                Cmp::MaskedEq(0),
            ]
        };
        for width in [Width::Full, Width::Low] {
            for value in EDGES {
                for cmp in ops(value ^ 0x0000_0001_0000_0001) {
                    // Argument 3, so the offsets of a later argument are used.
                    let check = Check {
                        index: 3,
                        cmp,
                        value,
                        width,
                    };
                    let program = compile(policy([(7, allow_if(vec![vec![check]]))]));
                    for arg in EDGES {
                        let want = if holds(&check, arg) { RET_ALLOW } else { EPERM };
                        let got = evaluate(&program, 7, AUDIT_ARCH_X86_64, [0, 0, 0, arg, 0, 0]);
                        assert_eq!(got, want, "{check:?} on {arg:#x}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_first_rule_that_holds_decides_and_checks_are_anded() {
        let ge = |index, value| Check {
            index,
            cmp: Cmp::Ge,
            value,
            width: Width::Full,
        };
        let p = policy([(
            9,
            Action::Rules(vec![
                (vec![ge(0, 10), ge(1, 10)], ret_errno(libc::EACCES)),
                (vec![ge(0, 5)], RET_LOG),
                (vec![], RET_TRAP),
            ]),
        )]);
        let program = compile(p);
        let call = |a0, a1| evaluate(&program, 9, AUDIT_ARCH_X86_64, [a0, a1, 0, 0, 0, 0]);
        assert_eq!(call(10, 10), ret_errno(libc::EACCES));
        // The first rule needs both arguments; the second then holds.
        assert_eq!(call(10, 9), RET_LOG);
        assert_eq!(call(5, 100), RET_LOG);
        // An empty rule always holds.
        assert_eq!(call(4, 100), RET_TRAP);
    }

    #[test]
    fn ranges_decide_the_numbers_calls_do_not_name() {
        let mut p = policy([
            (5, Action::Ret(RET_ALLOW)),
            (0x4000_0002, Action::Ret(RET_LOG)),
        ]);
        p.ranges = [
            (10, ret_errno(libc::ENOSYS)),
            (X32_SYSCALL_BIT, RET_KILL_THREAD),
            (u32::MAX, EPERM),
        ]
        .into();
        let program = compile(p);
        let expect = [
            (0, EPERM),
            (5, RET_ALLOW),
            (9, EPERM),
            (10, ret_errno(libc::ENOSYS)),
            (0x3fff_ffff, ret_errno(libc::ENOSYS)),
            (0x4000_0000, RET_KILL_THREAD),
            (0x4000_0002, RET_LOG),
            (0x4000_0003, RET_KILL_THREAD),
            (u32::MAX - 1, RET_KILL_THREAD),
            (u32::MAX, EPERM),
        ];
        for (nr, want) in expect {
            assert_eq!(run(&program, nr, 0), want, "nr {nr:#x}");
        }
    }

    #[test]
    fn each_architecture_gets_its_own_policy() {
        // The first policy's code is longer than one conditional jump reaches.
        let big = policy((0..400u32).step_by(2).map(|n| (n, Action::Ret(RET_ALLOW))));
        let mut i386 = policy([(20, Action::Ret(RET_LOG))]);
        i386.arch = AUDIT_ARCH_I386;
        i386.default = RET_TRAP;
        let program = Filter {
            policies: vec![big, i386],
            foreign_arch: RET_KILL_THREAD,
        }
        .compile()
        .unwrap();
        assert_eq!(evaluate(&program, 20, AUDIT_ARCH_X86_64, [0; 6]), RET_ALLOW);
        assert_eq!(evaluate(&program, 21, AUDIT_ARCH_X86_64, [0; 6]), EPERM);
        assert_eq!(evaluate(&program, 20, AUDIT_ARCH_I386, [0; 6]), RET_LOG);
        assert_eq!(evaluate(&program, 22, AUDIT_ARCH_I386, [0; 6]), RET_TRAP);
        assert_eq!(evaluate(&program, 20, 0xc000_00b7, [0; 6]), RET_KILL_THREAD);
    }

    #[test]
    fn bad_rules_are_errors_not_bad_code() {
        let check = |index| Check {
            index,
            cmp: Cmp::Eq,
            value: 1,
            width: Width::Full,
        };
        let p = policy([(3, allow_if(vec![vec![check(6)]]))]);
        let filter = |p| Filter {
            policies: vec![p],
            foreign_arch: RET_KILL_THREAD,
        };
        assert_eq!(
            filter(p).compile().unwrap_err(),
            CompileError::ArgIndex { nr: 3, index: 6 }
        );
        let p = policy([(3, allow_if(vec![vec![check(0); 100]]))]);
        assert!(matches!(
            filter(p).compile(),
            Err(CompileError::RuleTooLong { nr: 3, .. })
        ));
        let p = policy((0..3000u32).map(|n| (n, allow_if(vec![arg_eq(0, n)]))));
        assert!(matches!(filter(p).compile(), Err(CompileError::TooLong(_))));
    }
}
