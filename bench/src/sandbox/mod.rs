//! How the harness runs a command on each subject: on the host itself, or
//! in an isola sandbox started as a user starts one (`isola run`), and an
//! idle sandbox it can measure while it waits.

mod error;
mod idle;

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use isola_core::spec::Limits;

pub use self::error::SandboxError;
pub use self::idle::Idle;
use crate::bundle;

/// Where the probe lives in the benchmark image.
pub const PROBE_IN_IMAGE: &str = "/usr/bin/isola-probe";

/// isola's command line: the binary and the state directory (`--root`)
/// every command it runs is given.
#[derive(Debug, Clone)]
pub struct IsolaCli {
    pub exe: PathBuf,
    pub root: PathBuf,
}

impl IsolaCli {
    pub fn argv<S: AsRef<str>>(&self, args: &[S]) -> Vec<String> {
        let mut v = vec![
            self.exe.display().to_string(),
            "--root".into(),
            self.root.display().to_string(),
        ];
        v.extend(args.iter().map(|a| a.as_ref().to_string()));
        v
    }
}

/// How one subject runs a program.
#[derive(Debug, Clone)]
pub enum Runner {
    /// Directly on the host; the probe is this binary.
    Host { probe: PathBuf },
    /// `isola run` with these flags (`--backend vm ...`) on `image`.
    Isola {
        isola: IsolaCli,
        flags: Vec<String>,
        image: String,
    },
    /// An OCI runtime (runc, crun) on a bundle of the same rootfs, its
    /// config.json from the runtime's own default spec; a bundle per run
    /// under `work`.
    Oci {
        runtime: String,
        rootfs: PathBuf,
        work: PathBuf,
    },
}

/// Numbers the OCI runtimes' bundles and container IDs, unique per run.
static RUN: AtomicUsize = AtomicUsize::new(0);

impl Runner {
    /// The command line running the probe with `args` under `limits`;
    /// `keep` leaves an isola sandbox's directory (no `--rm`).
    pub fn probe(
        &self,
        args: &[&str],
        limits: Option<Limits>,
        keep: bool,
    ) -> Result<Vec<String>, SandboxError> {
        match self {
            Runner::Host { probe } => Ok(std::iter::once(probe.display().to_string())
                .chain(args.iter().map(|a| a.to_string()))
                .collect()),
            Runner::Isola { .. } => {
                let flags = limits.map(limit_flags).unwrap_or_default();
                let cmd: Vec<&str> = std::iter::once(PROBE_IN_IMAGE)
                    .chain(args.iter().copied())
                    .collect();
                self.isola_run(&flags, keep, &cmd)
                    .ok_or(SandboxError::NotIsola)
            }
            Runner::Oci {
                runtime,
                rootfs,
                work,
            } => {
                let n = RUN.fetch_add(1, Ordering::Relaxed);
                let dir = work.join(format!("{runtime}-{n}"));
                let mut argv = vec![PROBE_IN_IMAGE];
                argv.extend(args);
                bundle::write_config(runtime, &dir, rootfs, &argv, limits)?;
                Ok(vec![
                    runtime.clone(),
                    "run".into(),
                    "--bundle".into(),
                    dir.display().to_string(),
                    format!("isola-bench-{runtime}-{}-{n}", std::process::id()),
                ])
            }
        }
    }

    /// `isola run --rm` of `cmd` (for startup), or `None` for the others.
    pub fn command(&self, cmd: &[&str]) -> Option<Vec<String>> {
        self.isola_run(&[], false, cmd)
    }

    /// `isola run` of `cmd` with the backend's flags and `extra` ones;
    /// `keep` leaves the sandbox's directory (no `--rm`). `None` for the
    /// host and the OCI runtimes.
    pub fn isola_run(&self, extra: &[String], keep: bool, cmd: &[&str]) -> Option<Vec<String>> {
        let Runner::Isola {
            isola,
            flags,
            image,
        } = self
        else {
            return None;
        };
        let mut a: Vec<String> = vec!["run".into()];
        if !keep {
            a.push("--rm".into());
        }
        a.extend(flags.iter().cloned());
        a.extend(extra.iter().cloned());
        a.push(image.clone());
        a.extend(cmd.iter().map(|s| s.to_string()));
        Some(isola.argv(&a))
    }
}

/// `limits` as `isola run`'s flags.
fn limit_flags(limits: Limits) -> Vec<String> {
    let mut flags = Vec::new();
    if let Some(bytes) = limits.memory {
        // Whole MiB as people write them; isola takes plain bytes too.
        let size = if bytes % (1 << 20) == 0 {
            format!("{}m", bytes >> 20)
        } else {
            bytes.to_string()
        };
        flags.extend(["--memory".into(), size]);
    }
    if let Some(cpus) = limits.cpus {
        flags.extend(["--cpus".into(), cpus.to_string()]);
    }
    if let Some(pids) = limits.pids {
        flags.extend(["--pids-limit".into(), pids.to_string()]);
    }
    flags
}

/// Run `argv` to completion; its stdout, or its own error line.
pub fn output(argv: &[String]) -> Result<Vec<u8>, SandboxError> {
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(spawn_error(argv))?;
    if !out.status.success() {
        return Err(SandboxError::Failed(error_line(&out.stderr, out.status)));
    }
    Ok(out.stdout)
}

/// Run `argv` and parse its stdout as JSON.
pub fn json(argv: &[String]) -> Result<serde_json::Value, SandboxError> {
    let out = output(argv)?;
    serde_json::from_slice(&out).map_err(|parse| SandboxError::NoJson {
        command: argv.last().cloned().unwrap_or_default(),
        printed: String::from_utf8_lossy(&out).chars().take(200).collect(),
        parse,
    })
}

/// The first non-empty line of a program's stderr, else its status.
pub fn error_line(stderr: &[u8], status: std::process::ExitStatus) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .find(|l| !l.trim().is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("exited with {status}"))
}

/// `argv` started with its stdout and stderr piped to us.
pub fn spawn_piped(argv: &[String]) -> Result<Child, SandboxError> {
    Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error(argv))
}

/// `argv`'s program could not be started.
pub fn spawn_error(argv: &[String]) -> impl FnOnce(io::Error) -> SandboxError + '_ {
    |source| SandboxError::Spawn {
        program: argv[0].clone(),
        source,
    }
}

/// `isola rm` of the sandboxes created since `before` was listed.
pub fn remove_new_instances(isola: &IsolaCli, before: &[String]) -> Result<(), SandboxError> {
    let new: Vec<String> = instance_ids(&isola.root)
        .into_iter()
        .filter(|id| !before.contains(id))
        .collect();
    if new.is_empty() {
        return Ok(());
    }
    let mut args = vec!["rm".to_string()];
    args.extend(new);
    output(&isola.argv(&args)).map(drop)
}

/// The IDs under `instances/` now: kept sandboxes are found by the
/// difference before and after their run.
pub fn instance_ids(root: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(root.join("instances"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use isola_core::chain::chain;

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    /// What results.json records for a subject that failed.
    #[test]
    fn a_failure_reads_as_the_program_s_own_words() {
        let e = output(&argv(&["/nonexistent/isola"])).unwrap_err();
        assert_eq!(
            chain(&e),
            "/nonexistent/isola: No such file or directory (os error 2)"
        );
        let e = output(&argv(&["sh", "-c", "echo; echo oops >&2; exit 3"])).unwrap_err();
        assert_eq!(chain(&e), "oops");
        let e = json(&argv(&["echo", "hi"])).unwrap_err();
        assert_eq!(
            chain(&e),
            "hi printed no JSON (expected value at line 1 column 1): \"hi\\n\""
        );
    }
}
