//! A container's life as containerd's shim asks it of a runtime: `create`
//! (the init waiting), `start`, the init's exit, `delete`, each step timed.
//! The benchmark is a child subreaper meanwhile, as the shim is: the init,
//! orphaned when `create` exits, becomes its child and is reaped here.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::lifecycle::cycle::{self, Runner};
use crate::startup;
use isola_core::chain::chain;

use super::runtimes::Runtime;

/// The steps of one run, in order; `exited` is from `start`'s return
/// until the init was reaped.
pub const STEPS: [&str; 4] = ["create", "start", "exited", "delete"];

/// How long a failed run's init may take to die once deleted by force.
const REAP_WAIT: Duration = Duration::from_secs(5);

/// While it lives, this process is a child subreaper; dropped, it is not.
/// Only the inits it is told of are reaped (never "any child": that could
/// take the status of a command another part is waiting for).
pub struct Subreaper(());

impl Subreaper {
    pub fn become_one() -> io::Result<Subreaper> {
        set_subreaper(true)?;
        Ok(Subreaper(()))
    }
}

impl Drop for Subreaper {
    fn drop(&mut self) {
        let _ = set_subreaper(false);
    }
}

fn set_subreaper(on: bool) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_CHILD_SUBREAPER,
            libc::c_ulong::from(on),
            0,
            0,
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The init `pid`, our child, waited for: its exit code, or 128 + the
/// signal that ended it.
fn reap(pid: libc::pid_t) -> io::Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid on one pid with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    })
}

/// After a failed step: the container deleted by force and its init, if
/// it became ours, reaped (a bounded wait: a runtime that failed may have
/// left an init that is not our child, which is then left to init).
fn clean_up(runner: &Runner, rt: &Runtime, pid: Option<libc::pid_t>) {
    let _ = runner.run(&rt.delete(true), &[]);
    let Some(pid) = pid else { return };
    let deadline = Instant::now() + REAP_WAIT;
    // SAFETY: waitpid with WNOHANG on one pid.
    while unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) } == 0
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One run of `rt` on `bundle`: the four steps' milliseconds, or what
/// failed, in words that name the step.
fn once(runner: &Runner, rt: &Runtime, bundle: &Path, work: &Path) -> Result<[f64; 4], String> {
    let name = &rt.name;
    let pid_file = work.join(format!("{name}.pid"));
    let _ = std::fs::remove_file(&pid_file);
    let create = runner
        .run(&rt.create(bundle, &pid_file), &[])
        .map_err(|e| {
            clean_up(runner, rt, None);
            format!("{name} create: {}", chain(&e))
        })?;
    let pid: Option<libc::pid_t> = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|t| t.trim().parse().ok());
    let Some(pid) = pid else {
        clean_up(runner, rt, None);
        return Err(format!("{name} create wrote no PID to its --pid-file"));
    };
    let start = runner.run(&rt.start(), &[]).map_err(|e| {
        clean_up(runner, rt, Some(pid));
        format!("{name} start: {}", chain(&e))
    })?;
    let t = Instant::now();
    let code = reap(pid).map_err(|e| {
        clean_up(runner, rt, None);
        format!(
            "{name}: waiting for the init (PID {pid}), which should be the benchmark's child: {e}"
        )
    })?;
    let exited = t.elapsed().as_secs_f64() * 1e3;
    if code != 0 {
        clean_up(runner, rt, None);
        return Err(format!("{name}: /bin/true exited with {code}"));
    }
    let delete = runner.run(&rt.delete(false), &[]).map_err(|e| {
        clean_up(runner, rt, None);
        format!("{name} delete: {}", chain(&e))
    })?;
    Ok([create, start, exited, delete])
}

/// What the runs gave: one result per runtime (the four steps' sum per
/// run), and per runtime the median of each step over its measured runs.
pub struct Measured {
    pub results: Vec<startup::Result>,
    pub steps: Vec<(String, Vec<(String, f64)>)>,
}

/// Every runtime `warmup` times, then `runs` times, interleaved run by run,
/// on the same bundle. The caller is a subreaper ([`Subreaper`]).
pub fn measure(
    runner: &Runner,
    runtimes: &[Runtime],
    bundle: &Path,
    work: &Path,
    runs: usize,
    warmup: usize,
    progress: impl FnMut(usize),
) -> Measured {
    let names: Vec<&str> = runtimes.iter().map(|r| r.name.as_str()).collect();
    let mut per_step: Vec<[Vec<f64>; 4]> = runtimes.iter().map(|_| Default::default()).collect();
    let results = cycle::interleave(&names, runs, warmup, progress, |i, measured| {
        let ms = once(runner, &runtimes[i], bundle, work)?;
        if measured {
            for (all, one) in per_step[i].iter_mut().zip(ms) {
                all.push(one);
            }
        }
        Ok(ms.iter().sum())
    });
    let steps = runtimes
        .iter()
        .zip(&per_step)
        .filter(|(_, s)| !s[0].is_empty())
        .map(|(rt, s)| {
            let medians = STEPS
                .iter()
                .zip(s)
                .map(|(step, ms)| (step.to_string(), startup::median(ms).unwrap_or(0.0)))
                .collect();
            (rt.name.clone(), medians)
        })
        .collect();
    Measured { results, steps }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_orphan_becomes_our_child_while_we_are_a_subreaper() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let reaper = Subreaper::become_one().unwrap();
        // The shell starts a sleep in the background, writes its PID and
        // exits: the sleep is orphaned, as a runtime's init is.
        let script = format!("sleep 0.2 & echo $! > {}", pid_file.display());
        let runner = Runner::new(dir.path());
        runner
            .run(&["sh".into(), "-c".into(), script], &[])
            .unwrap();
        let pid: libc::pid_t = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(reap(pid).unwrap(), 0);
        drop(reaper);
        assert!(reap(pid).is_err(), "reaped once only");
    }
}
