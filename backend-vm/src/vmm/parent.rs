//! isola's side of its monitor process: start it in its jail, pass the
//! `Parked` mark on as it comes, stop it (SIGKILL, then reap) when the
//! sandbox's deadline passes, and turn its report and its end into the
//! run's outcome. The jail directory is removed once it is reaped.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use isola_guest_spec::ports::Mark;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};

use super::spawn::{self, Fds};
use super::wire::{End, JailConfig, Record, VmmConfig, WireInput};
use super::{binary, VmmError, DEFAULT_USER};
use crate::artifact::{Artifact, Input};
use crate::deadline::SIGNAL_GRACE;
use crate::guest_exit::{Failure, GuestExit, GuestFailed};
use crate::jail::ThreadKind;
use crate::monitor::error::MonitorError;
use crate::monitor::running::Running;

/// How often the deadline is looked at while the monitor runs.
const DEADLINE_POLL: Duration = Duration::from_millis(100);

/// Run `artifact` in a monitor process until the guest ends.
pub fn run(
    artifact: &Artifact,
    input: Input,
    control: File,
    running: &Running,
) -> Result<GuestExit, MonitorError> {
    let binary = binary::find_vmm()?;
    // The tap goes to the monitor as a descriptor, its MAC in the config.
    let tap = match &artifact.net {
        Some(net) => Some(net.tap.as_deref().ok_or(VmmError::NoTap)?.as_fd()),
        None => None,
    };
    let jailed = nix::unistd::geteuid().is_root();
    let jail_dir = if jailed {
        Some(JailDir::make(artifact.jail.clone())?)
    } else {
        None
    };
    // A jailed monitor makes the agent's socket inside its jail: the path
    // isola dials leads there.
    if let (Some(dir), Some(agent)) = (&jail_dir, &artifact.agent) {
        let _ = std::fs::remove_file(agent);
        std::os::unix::fs::symlink(dir.path.join(super::wire::AGENT_IN_JAIL), agent).map_err(
            |source| VmmError::Setup {
                what: "the agent's socket",
                source,
            },
        )?;
    }
    let config = VmmConfig {
        artifact: artifact.clone(),
        input: input.into(),
        jail: match &jail_dir {
            Some(dir) => {
                let (uid, gid) = user()?;
                Some(JailConfig {
                    dir: dir.path.clone(),
                    uid,
                    gid,
                })
            }
            None => None,
        },
        test_forbidden: test_forbidden(),
    };
    let json = serde_json::to_string(&config).map_err(|e| VmmError::Setup {
        what: "config",
        source: e.into(),
    })?;
    let setup = |what| {
        move |e: nix::Error| VmmError::Setup {
            what,
            source: e.into(),
        }
    };
    let (report_r, report_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(setup("report pipe"))?;
    let null;
    let com1_in = match config.input {
        WireInput::None => {
            null = File::open("/dev/null").map_err(|source| VmmError::Setup {
                what: "stdin",
                source,
            })?;
            null.as_fd()
        }
        // SAFETY: isola's stdio is open for as long as isola runs.
        _ => unsafe { BorrowedFd::borrow_raw(0) },
    };
    // SAFETY: as above.
    let (stdout, stderr) = unsafe { (BorrowedFd::borrow_raw(1), BorrowedFd::borrow_raw(2)) };
    let fds = Fds {
        com1_in,
        com1_out: stdout,
        com2_out: stderr,
        control: control.as_fd(),
        report: &report_w,
        tap,
    };
    let pid = spawn::spawn(&binary, &json, &fds, spawn::namespaces(jailed))?;
    drop(report_w);
    running.set_process(pid.as_raw() as u32);
    let heard = listen(report_r, pid, running);
    let status = loop {
        match waitpid(pid, None) {
            Err(nix::Error::EINTR) => continue,
            other => break other,
        }
    };
    drop(jail_dir);
    outcome(heard, status)
}

/// What the report pipe said, and whether isola stopped the monitor.
#[derive(Default)]
struct Heard {
    marks: Vec<(u8, Duration)>,
    sigsys: Option<(Option<ThreadKind>, i64)>,
    error: Option<String>,
    end: Option<String>,
    stopped: bool,
}

/// Read records until the monitor closes the pipe (it ended), killing it
/// once the deadline passes.
fn listen(report: OwnedFd, pid: nix::unistd::Pid, running: &Running) -> Heard {
    let mut heard = Heard::default();
    let mut file = File::from(report);
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if !heard.stopped && running.deadline.passed() {
            heard.stopped = true;
            let _ = kill(pid, Signal::SIGKILL);
        }
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
        let wait = PollTimeout::try_from(DEADLINE_POLL).unwrap_or(PollTimeout::NONE);
        match poll(&mut fds, wait) {
            Ok(0) | Err(nix::Error::EINTR) => continue,
            Ok(_) => {}
            Err(_) => return heard,
        }
        let n = match file.read(&mut buf) {
            Ok(0) => return heard,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return heard,
        };
        pending.extend_from_slice(&buf[..n]);
        while let Some(at) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=at).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            match Record::parse(&line) {
                Some(Record::Mark(byte, at)) => {
                    if byte == Mark::Parked.byte() {
                        running.note_parked();
                    }
                    heard.marks.push((byte, at));
                }
                Some(Record::Sigsys(kind, nr)) => heard.sigsys = Some((kind, nr)),
                Some(Record::Error(message)) => heard.error = Some(message),
                Some(Record::End(json)) => heard.end = Some(json),
                None => tracing::debug!("the VM monitor reported {line:?}"),
            }
        }
    }
}

fn outcome(
    heard: Heard,
    status: Result<WaitStatus, nix::Error>,
) -> Result<GuestExit, MonitorError> {
    if let Some((kind, nr)) = heard.sigsys {
        return Err(VmmError::Seccomp { kind, nr }.into());
    }
    if let Some(message) = heard.error {
        return Err(VmmError::Failed(message).into());
    }
    if heard.stopped {
        return Err(GuestFailed::new(Failure::Unresponsive(SIGNAL_GRACE)).into());
    }
    let end = heard
        .end
        .and_then(|json| serde_json::from_str::<End>(&json).ok());
    match (end, status) {
        (
            Some(End::Exited {
                status,
                marks,
                console,
            }),
            _,
        ) => Ok(GuestExit {
            status,
            marks,
            console,
        }),
        (Some(End::Failed { failure, console }), _) => Err(GuestFailed {
            what: failure,
            console,
        }
        .into()),
        (None, Ok(WaitStatus::Signaled(_, Signal::SIGSYS, _))) => {
            Err(VmmError::Seccomp { kind: None, nr: -1 }.into())
        }
        (None, Ok(WaitStatus::Signaled(_, signal, _))) => {
            Err(VmmError::Died(format!("killed by {signal}")).into())
        }
        (None, Ok(WaitStatus::Exited(_, code))) => {
            Err(VmmError::Died(format!("exit status {code}")).into())
        }
        (None, other) => Err(VmmError::Died(format!("{other:?}")).into()),
    }
}

/// `ISOLA_VMM_USER` (UID:GID), else [`DEFAULT_USER`].
fn user() -> Result<(u32, u32), VmmError> {
    let Some(given) = std::env::var_os("ISOLA_VMM_USER").filter(|v| !v.is_empty()) else {
        return Ok(DEFAULT_USER);
    };
    let given = given.to_string_lossy().into_owned();
    let parsed = given
        .split_once(':')
        .and_then(|(u, g)| Some((u.parse::<u32>().ok()?, g.parse::<u32>().ok()?)))
        .filter(|&(u, g)| u != 0 && g != 0);
    parsed.ok_or(VmmError::User(given))
}

/// The test hook (debug builds only): `ISOLA_VMM_TEST_FORBIDDEN=KIND`.
fn test_forbidden() -> Option<ThreadKind> {
    if !cfg!(debug_assertions) {
        return None;
    }
    let kind = std::env::var("ISOLA_VMM_TEST_FORBIDDEN").ok()?;
    ThreadKind::from_name(&kind)
}

/// The monitor's root: `jail` in the instance dir, or a temporary one;
/// removed (with the files the monitor bound its own into) on drop.
struct JailDir {
    path: PathBuf,
}

impl JailDir {
    fn make(given: Option<PathBuf>) -> Result<JailDir, VmmError> {
        let made = |source| VmmError::Setup {
            what: "jail directory",
            source,
        };
        let path = match given {
            Some(path) => {
                std::fs::create_dir_all(&path).map_err(made)?;
                path
            }
            None => tempfile::Builder::new()
                .prefix("isola-vmm-jail-")
                .tempdir()
                .map_err(made)?
                .keep(),
        };
        Ok(JailDir { path })
    }
}

impl Drop for JailDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::debug!(
                "removing the VM monitor's jail {}: {e}",
                self.path.display()
            );
        }
    }
}
