//! cgroup v2 device rules: v2 has no devices controller, so the rules become
//! an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE) attached to the container's cgroup.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::devices::{self, Effective, Rule};
use super::OciError;
use crate::cgroup::{fs, CgroupError};

// From linux/bpf.h.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;
const BPF_DEVCG_ACC_MKNOD: i32 = 1;
const BPF_DEVCG_ACC_READ: i32 = 2;
const BPF_DEVCG_ACC_WRITE: i32 = 4;
const BPF_DEVCG_DEV_BLOCK: i32 = 1;
const BPF_DEVCG_DEV_CHAR: i32 = 2;

/// One eBPF instruction (struct bpf_insn).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Insn {
    code: u8,
    /// dst in the low nibble, src in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

// The opcodes the program uses (class | operation | source).
const LDX_MEM_W: u8 = 0x61;
const MOV64_X: u8 = 0xbf;
const MOV64_K: u8 = 0xb7;
const AND64_K: u8 = 0x57;
const RSH64_K: u8 = 0x77;
const JNE_K: u8 = 0x55;
const JEQ_K: u8 = 0x15;
const EXIT: u8 = 0x95;

fn access_bits(access: devices::Access) -> i32 {
    (if access.read { BPF_DEVCG_ACC_READ } else { 0 })
        | (if access.write { BPF_DEVCG_ACC_WRITE } else { 0 })
        | (if access.mknod { BPF_DEVCG_ACC_MKNOD } else { 0 })
}

/// The program for `e`: with the device in registers (r3 type, r4 access,
/// r5 major, r6 minor), each exception is a block that jumps to the next
/// when the device is not its; a match returns the opposite of the default.
/// As on v1, a default-deny exception must grant all the access asked for,
/// and a default-allow one refuses if it covers any of it.
pub(super) fn program(e: &Effective) -> Vec<Insn> {
    // struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; },
    // access_type = access << 16 | type.
    let mut out = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(MOV64_X, 3, 2, 0, 0),
        insn(AND64_K, 3, 0, 0, 0xffff),
        insn(MOV64_X, 4, 2, 0, 0),
        insn(RSH64_K, 4, 0, 0, 16),
        insn(LDX_MEM_W, 5, 1, 4, 0),
        insn(LDX_MEM_W, 6, 1, 8, 0),
    ];
    let verdict = |allow: bool| i32::from(allow);
    for ex in &e.exceptions {
        let mut tests = Vec::new();
        match ex.kind {
            'b' => tests.push((JNE_K, 3, BPF_DEVCG_DEV_BLOCK)),
            'c' => tests.push((JNE_K, 3, BPF_DEVCG_DEV_CHAR)),
            _ => {}
        }
        // Device numbers above i32::MAX cannot be compared as an immediate;
        // no kernel hands out such majors (12 bits) or minors (20 bits).
        if let Some(major) = ex.major {
            tests.push((JNE_K, 5, major as i32));
        }
        if let Some(minor) = ex.minor {
            tests.push((JNE_K, 6, minor as i32));
        }
        let bits = access_bits(ex.access);
        // r7 = the access asked for that the exception does not cover
        // (default deny), or that it does (default allow).
        let (mask, skip_when) = if e.default_allow {
            (bits, JEQ_K)
        } else {
            (!bits & 0x7, JNE_K)
        };
        let block_len = tests.len() + 3 + 2;
        for (i, (op, reg, imm)) in tests.iter().enumerate() {
            let rest = block_len - i - 1;
            out.push(insn(*op, *reg, 0, rest as i16, *imm));
        }
        out.push(insn(MOV64_X, 7, 4, 0, 0));
        out.push(insn(AND64_K, 7, 0, 0, mask));
        out.push(insn(skip_when, 7, 0, 2, 0));
        out.push(insn(MOV64_K, 0, 0, 0, verdict(!e.default_allow)));
        out.push(insn(EXIT, 0, 0, 0, 0));
    }
    out.push(insn(MOV64_K, 0, 0, 0, verdict(e.default_allow)));
    out.push(insn(EXIT, 0, 0, 0, 0));
    out
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<i64> {
    // SAFETY: `attr` is a #[repr(C)] prefix of union bpf_attr for `cmd`,
    // valid and writable for its whole size; the kernel reads (and for
    // queries writes) no more than that size.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// The BPF_PROG_LOAD part of union bpf_attr.
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The BPF_PROG_ATTACH/DETACH part.
#[repr(C)]
#[derive(Default)]
struct Attach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// The BPF_PROG_QUERY part.
#[repr(C)]
#[derive(Default)]
struct Query {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

/// The BPF_PROG_GET_FD_BY_ID part.
#[repr(C)]
#[derive(Default)]
struct GetFd {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn fd(rc: i64) -> OwnedFd {
    // SAFETY: the kernel returned a new file descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(rc as i32) }
}

fn failed(dir: &Path, step: &'static str, source: io::Error) -> CgroupError {
    OciError::Bpf {
        path: dir.to_path_buf(),
        step,
        source,
    }
    .into()
}

/// Loads the program for `rules` and attaches it to the cgroup at `dir`,
/// then detaches any device program a leftover cgroup still had, so that
/// only these rules hold.
pub(super) fn install(dir: &Path, rules: &[Rule]) -> Result<(), CgroupError> {
    let insns = program(&devices::effective(rules));
    let mut log = vec![0u8; 64 * 1024];
    let mut name = [0u8; 16];
    name[..10].copy_from_slice(b"isola_devs");
    let mut load = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: c"Apache-2.0".as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        prog_name: name,
        expected_attach_type: BPF_CGROUP_DEVICE,
        ..ProgLoad::default()
    };
    let prog = match bpf(BPF_PROG_LOAD, &mut load) {
        Ok(rc) => fd(rc),
        Err(source) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            tracing::debug!(
                "the verifier said: {}",
                String::from_utf8_lossy(&log[..end])
            );
            return Err(failed(dir, "load the device program", source));
        }
    };
    let cgroup = std::fs::File::open(dir).map_err(|source| CgroupError::Open {
        path: dir.to_path_buf(),
        hint: fs::hint(&source),
        source,
    })?;
    let before = attached(&cgroup).map_err(|e| failed(dir, "list the device programs", e))?;
    let mut attach = Attach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Attach::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attach).map_err(|e| failed(dir, "attach the device program", e))?;
    for id in before {
        let mut get = GetFd {
            prog_id: id,
            ..GetFd::default()
        };
        let old = match bpf(BPF_PROG_GET_FD_BY_ID, &mut get) {
            Ok(rc) => fd(rc),
            // Detached meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(failed(dir, "open an old device program", e)),
        };
        let mut detach = Attach {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_bpf_fd: old.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Attach::default()
        };
        bpf(BPF_PROG_DETACH, &mut detach)
            .map_err(|e| failed(dir, "detach an old device program", e))?;
    }
    Ok(())
}

/// The ids of the device programs attached to `cgroup` itself.
fn attached(cgroup: &std::fs::File) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut query = Query {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Query::default()
    };
    bpf(BPF_PROG_QUERY, &mut query)?;
    ids.truncate(query.prog_cnt as usize);
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `program` as the kernel would on one access, for the cases
    /// the tests need: the instructions `program` emits, nothing else.
    fn run(program: &[Insn], kind: i32, access: i32, major: u32, minor: u32) -> i64 {
        let ctx = [((access << 16) | kind) as u32, major, minor];
        let mut r = [0i64; 11];
        let mut pc = 0usize;
        loop {
            let i = program[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => r[dst] = i64::from(ctx[(r[src] + i64::from(i.off)) as usize / 4]),
                MOV64_X => r[dst] = r[src],
                MOV64_K => r[dst] = i64::from(i.imm),
                AND64_K => r[dst] &= i64::from(i.imm),
                RSH64_K => r[dst] >>= i.imm,
                JNE_K if r[dst] != i64::from(i.imm) => pc += i.off as usize,
                JEQ_K if r[dst] == i64::from(i.imm) => pc += i.off as usize,
                JNE_K | JEQ_K => {}
                EXIT => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    const R: i32 = BPF_DEVCG_ACC_READ;
    const W: i32 = BPF_DEVCG_ACC_WRITE;
    const M: i32 = BPF_DEVCG_ACC_MKNOD;
    const C: i32 = BPF_DEVCG_DEV_CHAR;
    const B: i32 = BPF_DEVCG_DEV_BLOCK;

    fn rule(allow: bool, kind: char, major: Option<u32>, minor: Option<u32>, access: &str) -> Rule {
        Rule {
            allow,
            kind,
            major,
            minor,
            access: devices::Access {
                read: access.contains('r'),
                write: access.contains('w'),
                mknod: access.contains('m'),
            },
        }
    }

    #[test]
    fn deny_all_and_the_defaults() {
        let mut rules = vec![rule(false, 'a', None, None, "rwm")];
        rules.push(rule(true, 'c', Some(4), Some(1), "r"));
        rules.extend(devices::DEFAULTS);
        let p = program(&devices::effective(&rules));
        // /dev/null, any access; /dev/pts/3; mknod of anything.
        assert_eq!(run(&p, C, R | W, 1, 3), 1);
        assert_eq!(run(&p, C, R | W | M, 136, 3), 1);
        assert_eq!(run(&p, B, M, 8, 0), 1);
        // tty1 for reading only.
        assert_eq!(run(&p, C, R, 4, 1), 1);
        assert_eq!(run(&p, C, R | W, 4, 1), 0);
        // A disk, /dev/kmsg, /dev/mem: no.
        assert_eq!(run(&p, B, R, 8, 0), 0);
        assert_eq!(run(&p, C, R, 1, 11), 0);
        assert_eq!(run(&p, C, R, 1, 1), 0);
        // The same number as a block device is another device.
        assert_eq!(run(&p, B, R, 1, 3), 0);
    }

    #[test]
    fn allow_all_but_what_is_denied() {
        let rules = [
            rule(true, 'a', None, None, "rwm"),
            rule(false, 'b', Some(8), None, "w"),
        ];
        let p = program(&devices::effective(&rules));
        assert_eq!(run(&p, B, R, 8, 1), 1);
        assert_eq!(run(&p, B, R | W, 8, 1), 0);
        assert_eq!(run(&p, C, W, 8, 1), 1);
        assert_eq!(run(&p, C, R | W | M, 1, 11), 1);
    }
}
