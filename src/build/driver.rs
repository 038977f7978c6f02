//! What the build calls back: people's lines to stderr, RUN steps in a
//! sandbox of the backend (killed at once on Ctrl-C), pulls and URL
//! fetches handed to isola-registry.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use isola_core::backend::{Backend, BackendError, ExitStatus, IdleWork, RunContext};
use isola_core::build::{BuildError, Driver};
use isola_core::explain::Explain;
use isola_core::spec::RunSpec;
use isola_core::Root;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

pub struct CliDriver<'a> {
    pub backend: &'a dyn Backend,
    pub root: &'a Root,
    pub quiet: bool,
}

impl CliDriver<'_> {
    /// Where a child's output goes: stderr (people's output), or nowhere
    /// with -q. A duplicate of fd 2, not a new open of /dev/stderr: that
    /// would write a file from its start, over what is there.
    fn output(&self) -> Result<OwnedFd, BuildError> {
        let io_err = |e: std::io::Error| BuildError::Io {
            context: "opening the output of a build step".into(),
            source: e,
        };
        if self.quiet {
            return std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .map(OwnedFd::from)
                .map_err(io_err);
        }
        std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map_err(io_err)
    }

    /// Run isola-registry; its error, when it fails, becomes the build's
    /// (one message, not two).
    fn registry(&self, args: &[&str], what: &str) -> Result<(), BuildError> {
        let me = std::env::current_exe().map_err(|e| BuildError::Io {
            context: "finding isola's own path".into(),
            source: e,
        })?;
        let helper = me.with_file_name("isola-registry");
        let out = Command::new(&helper)
            .arg("--root")
            .arg(self.root.dir())
            .args(args)
            .stdin(Stdio::null())
            .stdout(self.output()?)
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| BuildError::Io {
                context: format!("running {} to {what}", helper.display()),
                source: e,
            })?;
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr);
            let last = said
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            let why = last.strip_prefix("isola: ").unwrap_or(last);
            return Err(BuildError::Usage(if why.is_empty() {
                format!("{what} failed")
            } else {
                why.to_string()
            }));
        }
        Ok(())
    }
}

impl Driver for CliDriver<'_> {
    fn say(&mut self, line: &str) {
        if !self.quiet {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}");
        }
    }

    fn run(&mut self, spec: &RunSpec, instance_dir: &Path) -> Result<ExitStatus, BuildError> {
        let step = |e: BackendError| BuildError::StepCaused {
            at: "RUN".into(),
            what: format!("the {} sandbox failed", self.backend.name()),
            source: Box::new(e),
        };
        self.backend.check(spec).map_err(step)?;
        let ctx = RunContext {
            instance_dir: instance_dir.to_path_buf(),
            state_dir: self.root.dir().to_path_buf(),
            explain: Explain { enabled: false },
            idle: IdleWork::default(),
            // The upper dir is read back at once, by this same kernel:
            // nothing of it needs to reach the disk first.
            ephemeral: true,
            park: false,
            clock: Instant::now(),
        };
        // The workload writes where isola's stdout is: for a build that
        // is people's output, so stderr (stdout carries the image ID).
        let out = self.output()?;
        let saved = nix::unistd::dup(std::io::stdout()).map_err(|e| BuildError::Io {
            context: "keeping stdout aside during a RUN step".into(),
            source: e.into(),
        })?;
        let _ = std::io::stdout().flush();
        let redirect = nix::unistd::dup2_stdout(&out);
        let outcome = run_until_interrupted(self.backend, spec, &ctx);
        let _ = nix::unistd::dup2_stdout(&saved);
        redirect.map_err(|e| BuildError::Io {
            context: "redirecting a RUN step's output".into(),
            source: e.into(),
        })?;
        match outcome {
            Ok(Some(status)) => Ok(status),
            Ok(None) => Err(BuildError::Interrupted),
            Err(e) => Err(step(e)),
        }
    }

    fn pull(&mut self, image: &str) -> Result<(), BuildError> {
        self.say(&format!("pulling {image}"));
        self.registry(&["pull", "-q", image], &format!("pulling {image}"))
    }

    fn fetch(&mut self, url: &str, dest: &Path) -> Result<(), BuildError> {
        let dest = dest.to_string_lossy().into_owned();
        self.registry(
            &["fetch-url", "--output", &dest, url],
            &format!("fetching {url}"),
        )
    }
}

/// A RUN step's sandbox from start to end. Ctrl-C or a SIGTERM ends the
/// build at once, as docker's does: the step's workload is killed, whatever
/// it does with the signal (a shell as PID 1 ignores it), and `None` says
/// so. isola's own death kills it too (the backend's parent-death signal).
fn run_until_interrupted(
    backend: &dyn Backend,
    spec: &RunSpec,
    ctx: &RunContext,
) -> Result<Option<ExitStatus>, BackendError> {
    let mut stops = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        stops.add(s);
    }
    let mut old = SigSet::empty();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&stops), Some(&mut old))
        .map_err(|e| BackendError::step("blocking signals", e))?;
    let restore = || {
        let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    };
    let result = (|| {
        let sfd = SignalFd::with_flags(&stops, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| BackendError::step("signalfd", e))?;
        let mut sandbox = backend.create(spec, ctx)?;
        sandbox.start()?;
        let mut interrupted = false;
        if let Some(exit) = sandbox.exit_fd().map(|fd| fd.try_clone_to_owned()) {
            let exit = exit.map_err(|e| BackendError::step("watching the RUN step", e))?;
            loop {
                let mut fds = [
                    PollFd::new(exit.as_fd(), PollFlags::POLLIN),
                    PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
                ];
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(BackendError::step("poll", e)),
                }
                let exited = fds[0].revents().is_some_and(|r| !r.is_empty());
                let signalled = fds[1].revents().is_some_and(|r| !r.is_empty());
                if signalled && matches!(sfd.read_signal(), Ok(Some(_))) {
                    interrupted = true;
                    sandbox.signal(Signal::SIGKILL)?;
                }
                if exited {
                    break;
                }
            }
        }
        let outcome = sandbox.wait();
        let torn_down = sandbox.teardown();
        let outcome = outcome?;
        torn_down?;
        Ok((!interrupted).then_some(outcome.status))
    })();
    restore();
    result
}
