//! How the harness runs a command on each subject: on the host itself, or
//! in an isola sandbox started as a user starts one (`isola run`), and an
//! idle sandbox it can measure while it waits.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use isola_core::spec::Limits;

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
    ) -> Result<Vec<String>, String> {
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
                    .ok_or_else(|| "not an isola sandbox".to_string())
            }
            Runner::Oci {
                runtime,
                rootfs,
                work,
            } => {
                let n = RUN.fetch_add(1, Ordering::Relaxed);
                let dir = work.join(format!("{runtime}-{n}"));
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let mut argv = vec![PROBE_IN_IMAGE];
                argv.extend(args);
                crate::bundle::write_config(runtime, &dir, rootfs, &argv, limits)
                    .map_err(|e| e.to_string())?;
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
pub fn output(argv: &[String]) -> Result<Vec<u8>, String> {
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", argv[0]))?;
    if !out.status.success() {
        return Err(error_line(&out.stderr, out.status));
    }
    Ok(out.stdout)
}

/// Run `argv` and parse its stdout as JSON.
pub fn json(argv: &[String]) -> Result<serde_json::Value, String> {
    let out = output(argv)?;
    serde_json::from_slice(&out).map_err(|e| {
        format!(
            "{} printed no JSON ({e}): {:?}",
            argv.last().map(String::as_str).unwrap_or_default(),
            String::from_utf8_lossy(&out)
                .chars()
                .take(200)
                .collect::<String>()
        )
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

/// A sandbox started with the probe's `idle`: it prints one JSON line when
/// its workload runs, then waits for SIGTERM.
pub struct Idle {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    stderr: mpsc::Receiver<Vec<u8>>,
}

impl Idle {
    pub fn start(argv: &[String]) -> Result<Idle, String> {
        let mut child = spawn_piped(argv)?;
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        let (etx, stderr) = mpsc::channel();
        let mut err = child.stderr.take().ok_or("no stderr pipe")?;
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            let _ = etx.send(buf);
        });
        Ok(Idle {
            child,
            lines,
            stderr,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for the ready line: when it came, and what it said.
    pub fn ready(&mut self, timeout: Duration) -> Result<(Instant, serde_json::Value), String> {
        match self.lines.recv_timeout(timeout) {
            Ok((at, line)) => serde_json::from_str(&line)
                .map(|v| (at, v))
                .map_err(|e| format!("the idle probe printed {line:?}: {e}")),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                Err(format!("not running after {} s", timeout.as_secs()))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().map_err(|e| e.to_string())?;
                let err = self
                    .stderr
                    .recv_timeout(Duration::from_secs(5))
                    .unwrap_or_default();
                Err(error_line(&err, status))
            }
        }
    }

    /// SIGTERM: isola (or the OCI runtime) passes it to the workload,
    /// which exits.
    pub fn terminate(&self) {
        // SAFETY: kill only sends a signal to our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
    }

    /// [`Idle::terminate`], then [`Idle::wait`].
    pub fn stop(self, grace: Duration) {
        self.terminate();
        self.wait(grace);
    }

    /// Wait for the end; SIGKILL after `grace`.
    pub fn wait(mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `argv` started with its stdout and stderr piped to us.
pub fn spawn_piped(argv: &[String]) -> Result<Child, String> {
    Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", argv[0]))
}

/// `isola rm` of the sandboxes created since `before` was listed.
pub fn remove_new_instances(isola: &IsolaCli, before: &[String]) -> Result<(), String> {
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
