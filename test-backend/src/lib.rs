//! A third backend, for tests only: the workload runs as a plain child
//! process of isola on the host, with no isolation at all. It exists to
//! show (and test) that the `Backend` and `Sandbox` traits are all the
//! frontend needs: `isola run --backend process` works through them with
//! no other change than a line in the frontend's `backends.rs` (built with
//! the `test-backend` feature).

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::process::{Child, Command};
use std::time::Duration;

use isola_core::backend::{
    Backend, BackendError, Description, ExitStatus, HostFact, Outcome, Phase, RunContext, Sandbox,
    Stats,
};
use isola_core::spec::RunSpec;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

pub struct ProcessBackend;

impl Backend for ProcessBackend {
    fn name(&self) -> &'static str {
        "process"
    }

    fn check(&self, spec: &RunSpec) -> Result<(), BackendError> {
        spec.validate()?;
        if !spec.mounts.is_empty() {
            return Err(BackendError::Unsupported(
                "the process backend takes no -v volumes or binds".into(),
            ));
        }
        Ok(())
    }

    fn describe(&self, _spec: &RunSpec) -> Result<Description, BackendError> {
        Ok(Description {
            runs_on: "the host, as a plain process (no isolation: a test backend)".into(),
            ..Description::default()
        })
    }

    fn host_report(&self) -> Vec<HostFact> {
        vec![HostFact::line(
            "process backend",
            "a test backend: runs workloads as plain host processes".into(),
        )]
    }

    fn create(&self, spec: &RunSpec, ctx: &RunContext) -> Result<Box<dyn Sandbox>, BackendError> {
        let Some((program, args)) = spec.process.args.split_first() else {
            return Err(isola_core::spec::SpecError::NoCommand.into());
        };
        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .envs(spec.process.env.iter().filter_map(|kv| kv.split_once('=')))
            .current_dir(&ctx.instance_dir);
        Ok(Box::new(ProcessSandbox {
            command,
            child: None,
            pidfd: None,
            clock: ctx.clock,
            phases: vec![(Phase::RootfsReady, ctx.clock.elapsed())],
        }))
    }
}

struct ProcessSandbox {
    command: Command,
    child: Option<Child>,
    /// Readable once the child exits, for a supervisor's poll.
    pidfd: Option<OwnedFd>,
    clock: std::time::Instant,
    phases: Vec<(Phase, Duration)>,
}

impl Sandbox for ProcessSandbox {
    fn start(&mut self) -> Result<(), BackendError> {
        if self.child.is_some() {
            return Err(BackendError::State("was started already"));
        }
        let child = self
            .command
            .spawn()
            .map_err(|e| BackendError::step("starting the workload", e))?;
        self.phases
            .push((Phase::SandboxCreated, self.clock.elapsed()));
        self.phases
            .push((Phase::WorkloadStarted, self.clock.elapsed()));
        // SAFETY: pidfd_open(2) on our own child, which is not reaped yet.
        let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, child.id(), 0) };
        if fd >= 0 {
            // SAFETY: the kernel just returned this new descriptor to us.
            self.pidfd = Some(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        self.child = Some(child);
        Ok(())
    }

    fn exit_fd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(|fd| fd.as_fd())
    }

    fn signal(&mut self, signal: Signal) -> Result<(), BackendError> {
        let child = self
            .child
            .as_ref()
            .ok_or(BackendError::State("was not started"))?;
        nix::sys::signal::kill(Pid::from_raw(child.id() as i32), signal)
            .map_err(|e| BackendError::step("signalling the workload", e))
    }

    fn wait(&mut self) -> Result<Outcome, BackendError> {
        let child = self
            .child
            .as_mut()
            .ok_or(BackendError::State("was not started"))?;
        let status = child
            .wait()
            .map_err(|e| BackendError::step("waiting for the workload", e))?;
        self.phases
            .push((Phase::WorkloadExited, self.clock.elapsed()));
        let status = match (
            status.code(),
            std::os::unix::process::ExitStatusExt::signal(&status),
        ) {
            (Some(code), _) => ExitStatus::Exited(code),
            (None, Some(sig)) => ExitStatus::Signaled(sig),
            (None, None) => ExitStatus::Exited(1),
        };
        Ok(Outcome {
            status,
            message: None,
            phases: self.phases.clone(),
            counters: Vec::new(),
        })
    }

    fn stats(&self) -> Result<Stats, BackendError> {
        Ok(Stats::default())
    }

    fn teardown(&mut self) -> Result<(), BackendError> {
        if let Some(child) = &mut self.child {
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        Ok(())
    }
}

impl Drop for ProcessSandbox {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}
