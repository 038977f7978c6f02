//! Timing commands that leave a sandbox behind: each run is one or more
//! timed steps (`run -d`; `create` then `start`) and then untimed
//! cleanup (`rm -f`), and the subjects take turns run by run (A B C A B C
//! ...) as startup's do, so drift on a noisy machine hits all alike.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::results::{LifecycleSeries, Summary};
use crate::sandbox::{spawn_error, SandboxError};
use crate::startup;
use isola_core::chain::chain;

/// One subject's run: `steps` timed one after the other, then `cleanup`.
#[derive(Debug, Clone)]
pub struct Cycle {
    pub subject: String,
    /// What is timed, in words for the tables.
    pub command: String,
    pub steps: Vec<Vec<String>>,
    pub cleanup: Vec<Vec<String>>,
    /// Added to every command's environment (podman's own configuration).
    pub env: Vec<(String, String)>,
}

impl Cycle {
    pub fn new(subject: &str, command: &str, steps: Vec<Vec<String>>) -> Cycle {
        Cycle {
            subject: subject.into(),
            command: command.into(),
            steps,
            cleanup: Vec::new(),
            env: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    #[error(transparent)]
    Run(SandboxError),
    #[error("removing what its run left")]
    Cleanup(#[source] SandboxError),
}

/// Runs commands with their stderr in a file, not a pipe: a daemon a
/// command leaves behind (a shim) may hold it open, and we wait for the
/// command's exit, not for the end of its output.
pub struct Runner {
    stderr: PathBuf,
}

impl Runner {
    pub fn new(work: &Path) -> Runner {
        Runner {
            stderr: work.join("stderr"),
        }
    }

    /// Run `argv` to its exit, timed from spawn to exit: milliseconds, or
    /// its own first error line.
    pub fn run(&self, argv: &[String], env: &[(String, String)]) -> Result<f64, SandboxError> {
        let err = File::create(&self.stderr).map_err(spawn_error(argv))?;
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err);
        let t = Instant::now();
        let status = cmd.status().map_err(spawn_error(argv))?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if !status.success() {
            let text = std::fs::read(&self.stderr).unwrap_or_default();
            return Err(SandboxError::Failed(crate::sandbox::error_line(
                &text, status,
            )));
        }
        Ok(ms)
    }

    /// `argv`'s stdout, trimmed.
    pub fn capture(
        &self,
        argv: &[String],
        env: &[(String, String)],
    ) -> Result<String, SandboxError> {
        let err = File::create(&self.stderr).map_err(spawn_error(argv))?;
        let out = Command::new(&argv[0])
            .args(&argv[1..])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stderr(err)
            .output()
            .map_err(spawn_error(argv))?;
        if !out.status.success() {
            let text = std::fs::read(&self.stderr).unwrap_or_default();
            return Err(SandboxError::Failed(crate::sandbox::error_line(
                &text, out.status,
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// One run of `c`: its steps timed, then its cleanup, which runs even
    /// when a step failed (to remove what the step made before failing).
    fn once(&self, c: &Cycle) -> Result<f64, CycleError> {
        let mut total = 0.0;
        let mut failed = None;
        for step in &c.steps {
            match self.run(step, &c.env) {
                Ok(ms) => total += ms,
                Err(e) => {
                    failed = Some(CycleError::Run(e));
                    break;
                }
            }
        }
        for step in &c.cleanup {
            if let Err(e) = self.run(step, &c.env) {
                failed.get_or_insert(CycleError::Cleanup(e));
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }

    /// Each cycle `warmup` times, then `runs` times, interleaved. A cycle
    /// whose run fails keeps its error and runs no more; none runs once
    /// the benchmark was interrupted; `progress` is told after each
    /// measured round.
    pub fn measure(
        &self,
        cycles: &[Cycle],
        runs: usize,
        warmup: usize,
        progress: impl FnMut(usize),
    ) -> Vec<startup::Result> {
        let names: Vec<&str> = cycles.iter().map(|c| c.subject.as_str()).collect();
        interleave(&names, runs, warmup, progress, |i, _| {
            self.once(&cycles[i]).map_err(|e| chain(&e))
        })
    }
}

/// `once(i, measured)` for each subject `i` of `names`, `warmup` times
/// (`measured` false), then `runs` times, interleaved run by run:
/// milliseconds, or the run's error. A
/// subject whose run fails keeps its error and runs no more; none runs
/// once the benchmark was interrupted; `progress` is told after each
/// measured round. For runs that are more than a list of commands (a
/// process to reap between two of them).
pub fn interleave(
    names: &[&str],
    runs: usize,
    warmup: usize,
    mut progress: impl FnMut(usize),
    mut once: impl FnMut(usize, bool) -> Result<f64, String>,
) -> Vec<startup::Result> {
    let mut results: Vec<startup::Result> = names
        .iter()
        .map(|name| startup::Result {
            name: name.to_string(),
            ms: Vec::new(),
            cpu_ms: Vec::new(),
            peak_rss_kib: None,
            error: None,
        })
        .collect();
    for round in 0..warmup + runs {
        if crate::interrupt::interrupted() {
            break;
        }
        for (i, r) in results.iter_mut().enumerate() {
            if r.error.is_some() || crate::interrupt::interrupted() {
                continue;
            }
            match once(i, round >= warmup) {
                Ok(ms) if round >= warmup => r.ms.push(ms),
                Ok(_) => {}
                Err(e) => r.error = Some(e),
            }
        }
        if round >= warmup {
            progress(round - warmup + 1);
        }
    }
    results
}

/// The series that ran, each with what it timed and its paired ratios:
/// `isola`'s against every other, every other against `isola`'s.
pub fn series(cycles: &[Cycle], results: &[startup::Result], isola: &str) -> Vec<LifecycleSeries> {
    let commands: Vec<&str> = cycles.iter().map(|c| c.command.as_str()).collect();
    series_of(&commands, results, isola)
}

/// As [`series`], for runs [`interleave`] made: `commands[i]` says what
/// `results[i]` timed.
pub fn series_of(
    commands: &[&str],
    results: &[startup::Result],
    isola: &str,
) -> Vec<LifecycleSeries> {
    commands
        .iter()
        .zip(results)
        .filter_map(|(command, r)| {
            let s = r.summary()?;
            Some(LifecycleSeries {
                subject: r.name.clone(),
                command: command.to_string(),
                ms: r.ms.clone(),
                summary: Summary {
                    min: s.min,
                    median: s.median,
                    p90: s.p90,
                    max: s.max,
                },
                paired: results
                    .iter()
                    .filter(|o| o.name != r.name && !o.ms.is_empty())
                    .filter(|o| r.name == isola || o.name == isola)
                    .filter_map(|o| Some((o.name.clone(), startup::paired_ratio(r, o)?)))
                    .collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn steps_are_timed_and_cleanup_runs_after_each() {
        let dir = tempfile::tempdir().unwrap();
        let marks = dir.path().join("marks");
        let mut a = Cycle::new(
            "isola",
            "a",
            vec![sh(&format!("echo step >> {}", marks.display())), sh("true")],
        );
        a.cleanup = vec![sh(&format!("echo clean >> {}", marks.display()))];
        let b = Cycle::new("other", "b", vec![sh("true")]);
        let runner = Runner::new(dir.path());
        let mut rounds = Vec::new();
        let r = runner.measure(&[a.clone(), b.clone()], 2, 1, |n| rounds.push(n));
        assert_eq!(rounds, [1, 2]);
        assert_eq!(r[0].ms.len(), 2);
        assert!(r.iter().all(|r| r.error.is_none()));
        let text = std::fs::read_to_string(&marks).unwrap();
        assert_eq!(text, "step\nclean\n".repeat(3));
        let s = series(&[a, b], &r, "isola");
        assert_eq!(s[0].command, "a");
        assert_eq!(s[0].paired[0].0, "other");
        assert_eq!(s[1].paired[0].0, "isola");
    }

    #[test]
    fn interleave_takes_turns_and_says_which_runs_are_measured() {
        let mut calls = Vec::new();
        let r = interleave(
            &["a", "b"],
            2,
            1,
            |_| {},
            |i, measured| {
                calls.push((i, measured));
                if i == 1 && measured {
                    return Err("b broke".into());
                }
                Ok(1.0 + i as f64)
            },
        );
        // b fails at its first measured run and runs no more.
        assert_eq!(
            calls,
            [(0, false), (1, false), (0, true), (1, true), (0, true)]
        );
        assert_eq!(r[0].ms, [1.0, 1.0]);
        assert!(r[1].ms.is_empty());
        assert_eq!(r[1].error.as_deref(), Some("b broke"));
        let s = series_of(&["timed a", "timed b"], &r, "a");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].command, "timed a");
        assert!(s[0].paired.is_empty());
    }

    #[test]
    fn a_failed_step_keeps_its_words_and_still_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let marks = dir.path().join("marks");
        let mut a = Cycle::new(
            "a",
            "a",
            vec![sh("echo; echo nope >&2; exit 3"), sh("true")],
        );
        a.cleanup = vec![sh(&format!("echo clean >> {}", marks.display()))];
        let r = Runner::new(dir.path()).measure(&[a], 3, 0, |_| {});
        assert_eq!(r[0].error.as_deref(), Some("nope"));
        assert!(r[0].ms.is_empty());
        assert_eq!(std::fs::read_to_string(&marks).unwrap(), "clean\n");
    }

    #[test]
    fn a_failed_cleanup_is_an_error_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Cycle::new("a", "a", vec![sh("true")]);
        a.cleanup = vec![sh("echo busy >&2; exit 1")];
        a.env = vec![("X".into(), "1".into())];
        let r = Runner::new(dir.path()).measure(&[a], 2, 0, |_| {});
        assert_eq!(
            r[0].error.as_deref(),
            Some("removing what its run left: busy")
        );
        let out = Runner::new(dir.path())
            .capture(&sh("echo $X"), &[("X".into(), "2".into())])
            .unwrap();
        assert_eq!(out, "2");
    }
}
