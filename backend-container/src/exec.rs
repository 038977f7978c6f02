//! Starting the workload: find the program on the sandbox's own PATH and
//! execve it, mapping failures to the exit codes shells and Docker use
//! (127 not found, 126 found but not runnable).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use isola_core::spec::SpecError;
use nix::errno::Errno;
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};

use crate::fail::Fail;

/// Exec the workload, or report why not on `channel` (whose end closes
/// at a successful exec, which is how the other side knows); the exit
/// code shells use when it could not.
pub fn exec_or_report(args: &[CString], env: &[CString], channel: &crate::message::Channel) -> i32 {
    let failure = exec(args, env);
    let _ = channel.report(
        &crate::message::Report::ExecFailed {
            code: failure.code,
            message: failure.message,
        },
        &[],
    );
    failure.code
}

/// Why exec failed, as the exit code and message the user gets.
pub struct ExecFailure {
    pub code: i32,
    pub message: String,
}

/// Replace this process with the workload. Returns only on failure.
pub fn exec(args: &[CString], env: &[CString]) -> ExecFailure {
    let (name, candidates) = match candidates(args, env) {
        Ok(c) => c,
        Err(f) => return f,
    };
    let mut worst = Errno::ENOENT;
    for c in &candidates {
        let err = match nix::unistd::execve(c.as_c_str(), args, env) {
            Err(e) => e,
            Ok(never) => match never {},
        };
        // Keep looking on ENOENT (like execvp); remember a permission problem.
        if err != Errno::ENOENT && err != Errno::ENOTDIR {
            worst = err;
            if err != Errno::EACCES {
                break;
            }
        }
    }
    describe(&name, worst)
}

/// The program `exec` would run, found now (runc's LookPath at create):
/// a process whose program is missing fails before it is started, not
/// after. The first candidate that exists and may be executed.
pub fn find(args: &[CString], env: &[CString]) -> Result<CString, ExecFailure> {
    let (name, candidates) = candidates(args, env)?;
    let mut worst = Errno::ENOENT;
    for c in candidates {
        match nix::unistd::access(c.as_c_str(), nix::unistd::AccessFlags::X_OK) {
            Ok(())
                if std::fs::metadata(std::ffi::OsStr::from_bytes(c.to_bytes()))
                    .is_ok_and(|m| m.is_file()) =>
            {
                return Ok(c)
            }
            Ok(()) => worst = Errno::EACCES,
            Err(Errno::ENOENT | Errno::ENOTDIR) => {}
            Err(e) => worst = e,
        }
    }
    Err(describe(&name, worst))
}

/// The program's name and the paths it may be at (each directory of the
/// process's own PATH, or itself when it has a slash).
fn candidates(args: &[CString], env: &[CString]) -> Result<(String, Vec<CString>), ExecFailure> {
    let Some(program) = args.first() else {
        return Err(ExecFailure {
            code: 127,
            message: "no command given, and the image has no Entrypoint or Cmd".into(),
        });
    };
    let name = program.to_string_lossy().into_owned();
    let path_var = env
        .iter()
        .find_map(|e| e.to_bytes().strip_prefix(b"PATH="))
        .map(|p| p.to_vec())
        .unwrap_or_else(|| isola_core::spec::DEFAULT_PATH.as_bytes().to_vec());
    let candidates: Vec<CString> = if name.contains('/') {
        vec![program.clone()]
    } else {
        path_var
            .split(|b| *b == b':')
            .filter(|d| !d.is_empty())
            .filter_map(|d| {
                CString::new(
                    Path::new(std::ffi::OsStr::from_bytes(d))
                        .join(&name)
                        .as_os_str()
                        .as_bytes(),
                )
                .ok()
            })
            .collect()
    };
    Ok((name, candidates))
}

fn describe(name: &str, err: Errno) -> ExecFailure {
    match err {
        Errno::ENOENT | Errno::ENOTDIR => ExecFailure {
            code: 127,
            message: format!("{name}: executable file not found in the image (checked $PATH)"),
        },
        Errno::EACCES | Errno::EPERM => ExecFailure {
            code: 126,
            message: format!("{name}: permission denied (not executable, or on a noexec mount)"),
        },
        Errno::ENOEXEC => ExecFailure {
            code: 126,
            message: format!("{name}: exec format error (not a program for this architecture)"),
        },
        e => ExecFailure {
            code: 126,
            message: format!("{name}: cannot run it: {}", e.desc()),
        },
    }
}

/// The last step before exec, in the sandbox's first process and in one
/// exec'd into it: isola blocked the relayed signals to read them from a
/// signalfd, and the program starts with none blocked; nothing of isola's
/// (or of whoever started it) beyond stdio reaches the program: every
/// other fd closes at exec.
pub fn seal() -> Result<(), Fail> {
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(|e| Fail::sys("sigprocmask", e))?;
    // SAFETY: close_range only changes flags on this process's fds.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    Ok(())
}

/// Strings for execve; an argument or variable with a NUL byte is refused
/// (`RunSpec::validate` refuses it first).
pub fn cstrings(items: &[String], what: &'static str) -> Result<Vec<CString>, SpecError> {
    items
        .iter()
        .map(|s| {
            CString::new(s.as_bytes()).map_err(|_| SpecError::Nul {
                what,
                value: s.clone(),
            })
        })
        .collect()
}
