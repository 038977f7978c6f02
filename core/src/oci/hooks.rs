//! config.json's hooks: programs run at points of a container's life with
//! its state as JSON on their stdin (the OCI runtime spec's lifecycle).
//! The runtime's own namespace runs prestart, createRuntime, poststart and
//! poststop; createContainer and startContainer run in the container's
//! namespaces, entered by the hook's process before it execs.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;
use oci_spec::runtime::{Hook, Spec};

use super::runtime::RuntimeError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Point {
    pub fn name(self) -> &'static str {
        match self {
            Point::Prestart => "prestart",
            Point::CreateRuntime => "createRuntime",
            Point::CreateContainer => "createContainer",
            Point::StartContainer => "startContainer",
            Point::Poststart => "poststart",
            Point::Poststop => "poststop",
        }
    }
}

/// The hooks config.json lists for `point`.
pub fn at(spec: &Spec, point: Point) -> Vec<Hook> {
    let Some(h) = spec.hooks() else {
        return Vec::new();
    };
    #[allow(deprecated)]
    let list = match point {
        Point::Prestart => h.prestart(),
        Point::CreateRuntime => h.create_runtime(),
        Point::CreateContainer => h.create_container(),
        Point::StartContainer => h.start_container(),
        Point::Poststart => h.poststart(),
        Point::Poststop => h.poststop(),
    };
    list.clone().unwrap_or_default()
}

/// `start`'s last step: the poststart hooks of the config.json copy
/// `create` kept in `state_dir`, told the container runs.
pub fn poststart(rec: &super::Record, state_dir: &std::path::Path) -> Result<(), RuntimeError> {
    let path = state_dir.join(super::record::CONFIG);
    let bytes = std::fs::read(&path)
        .map_err(|e| RuntimeError::step(format!("reading {}", path.display()), e))?;
    let config = super::bundle::parse_config(&bytes)?;
    let state = rec.state(super::Status::Running).for_hooks();
    run(
        Point::Poststart,
        &at(&config, Point::Poststart),
        &state,
        None,
    )
}

/// Runs each hook in order, `state` on its stdin; the first that fails
/// (exits non-zero, or outlives its timeout and is killed) is the error,
/// with what it printed. `enter`: the namespaces (of the process behind
/// the pidfd) the hook's process joins before it execs.
pub fn run(
    point: Point,
    hooks: &[Hook],
    state: &str,
    enter: Option<(BorrowedFd, CloneFlags)>,
) -> Result<(), RuntimeError> {
    for (i, hook) in hooks.iter().enumerate() {
        let what = format!(
            "the {} hook {} ({})",
            point.name(),
            i,
            hook.path().display()
        );
        let mut cmd = Command::new(hook.path());
        if let Some(args) = hook.args() {
            if let Some((arg0, rest)) = args.split_first() {
                cmd.arg0(arg0).args(rest);
            }
        }
        cmd.env_clear();
        for kv in hook.env().iter().flatten() {
            if let Some((k, v)) = kv.split_once('=') {
                cmd.env(k, v);
            }
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some((pidfd, flags)) = enter {
            let raw = pidfd.as_raw_fd();
            // SAFETY: between fork and exec only setns, async-signal-safe.
            unsafe {
                cmd.pre_exec(move || {
                    if nix::libc::setns(raw, flags.bits()) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| RuntimeError::step(format!("starting {what}"), e))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A hook that does not read its state is no error.
            let _ = stdin.write_all(state.as_bytes());
        }
        let deadline = hook
            .timeout()
            .filter(|t| *t > 0)
            .map(|t| Instant::now() + Duration::from_secs(t as u64));
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(e) => return Err(RuntimeError::step(format!("waiting for {what}"), e)),
            }
            if deadline.is_some_and(|d| Instant::now() > d) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RuntimeError::State(format!(
                    "{what} did not finish within its timeout of {} s",
                    hook.timeout().unwrap_or_default()
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        if !status.success() {
            let mut said = String::new();
            if let Some(mut out) = child.stdout.take() {
                let _ = out.read_to_string(&mut said);
            }
            if let Some(mut err) = child.stderr.take() {
                let _ = err.read_to_string(&mut said);
            }
            return Err(RuntimeError::State(format!(
                "{what} failed ({status}){}",
                if said.trim().is_empty() {
                    String::new()
                } else {
                    format!(": {}", said.trim())
                }
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(script: &str, timeout: Option<i64>) -> Hook {
        let mut h = Hook::default();
        h.set_path("/bin/sh".into());
        h.set_args(Some(vec!["sh".into(), "-c".into(), script.into()]));
        h.set_env(Some(vec!["WHO=hook".into()]));
        h.set_timeout(timeout);
        h
    }

    #[test]
    fn a_hook_reads_the_state_and_its_env_only() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!(
            "cat > {0}; echo \" $WHO ${{HOME:-nohome}}\" >> {0}",
            out.display()
        );
        run(
            Point::Poststop,
            &[hook(&script, None)],
            "{\"id\":\"c\"}",
            None,
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "{\"id\":\"c\"} hook nohome\n"
        );
    }

    #[test]
    fn a_failing_or_slow_hook_is_named() {
        let err = run(
            Point::CreateRuntime,
            &[hook("echo no; exit 3", None)],
            "{}",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("createRuntime hook 0") && err.contains("no"),
            "{err}"
        );
        let err = run(Point::Prestart, &[hook("sleep 5", Some(1))], "{}", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("timeout of 1 s"), "{err}");
    }
}
