//! Runtime overhead: the probe's small workloads (CPU, syscalls, spawning,
//! fsync, memory copy, stdout) on the host and in each sandbox, sequential
//! I/O through a named volume (a loop-mounted ext4 image in a container, a
//! virtio-blk disk in a VM), and TCP to the host over a bridge network (a
//! veth, a tap and virtio-net) against the host's own loopback, as rates
//! and ratios to the host's.

use std::io::Read;
use std::path::Path;

use crate::net_peer;
use crate::results::RuntimeFigure;
use crate::sandbox::{self, IsolaCli, Runner, SandboxError};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Run(#[from] SandboxError),
    #[error("removing its kept sandbox")]
    Cleanup(#[source] SandboxError),
    /// The batch of workloads printed something else than a list.
    #[error("work printed {0}")]
    NotAList(serde_json::Value),
    #[error("the stdout workload printed {printed:?}")]
    StdoutRate {
        printed: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The named volume the sequential workloads run on, made for the run.
pub const VOLUME: &str = "isola-bench-io";
/// The network the TCP workloads cross, made for the run.
pub const NETWORK: &str = "isola-bench-net";

/// Every subject's figures, and an error per subject that failed. The
/// subjects in `on_volume` (isola's backends that can attach a volume)
/// also run the sequential workloads on [`VOLUME`], the host in `host_dir`;
/// those in `on_network` the TCP ones across [`NETWORK`], the host on its
/// loopback.
pub fn measure(
    isola: &IsolaCli,
    runners: &[(String, Runner)],
    on_volume: &[String],
    on_network: &[String],
    work_ms: u64,
    host_dir: &Path,
) -> (Vec<RuntimeFigure>, Vec<(String, RuntimeError)>) {
    let ms = work_ms.to_string();
    let mut figures = Vec::new();
    let mut errors = Vec::new();
    for (subject, runner) in runners {
        let on_host = matches!(runner, Runner::Host { .. });
        // fsync on the sandbox's own root: a kept sandbox, whose root is
        // synced as a user's would be (an `--rm` one skips syncing).
        let dir = if on_host {
            host_dir.display().to_string()
        } else {
            "/".to_string()
        };
        let before = sandbox::instance_ids(&isola.root);
        let batch = runner
            .probe(&["work", "--ms", &ms, "--dir", &dir], None, !on_host)
            .and_then(|argv| sandbox::json(&argv))
            .map_err(RuntimeError::from);
        if !on_host {
            if let Err(e) = sandbox::remove_new_instances(isola, &before) {
                errors.push((subject.clone(), RuntimeError::Cleanup(e)));
            }
        }
        let stdout = runner
            .probe(&["work", "stdout", "--ms", &ms], None, false)
            .map_err(RuntimeError::from)
            .and_then(|argv| stdout_rate(&argv));
        match (batch, stdout) {
            (Err(e), _) | (_, Err(e)) => errors.push((subject.clone(), e)),
            (Ok(serde_json::Value::Array(items)), Ok(out)) => {
                for item in items.iter().chain(std::iter::once(&out)) {
                    if let Some(f) = figure(subject, item) {
                        figures.push(f);
                    }
                }
            }
            (Ok(other), Ok(_)) => errors.push((subject.clone(), RuntimeError::NotAList(other))),
        }
    }
    let volume = !on_volume.is_empty()
        && match sandbox::output(&isola.argv(&["volume", "create", VOLUME])).map(drop) {
            Ok(()) => true,
            Err(e) => {
                errors.push(("store".into(), RuntimeError::Run(e)));
                false
            }
        };
    for (subject, runner) in runners {
        let args = ["work", "seq_write", "seq_read", "--ms", &ms, "--dir"];
        let argv = match runner {
            Runner::Host { .. } => {
                let dir = host_dir.display().to_string();
                runner.probe(&[&args[..], &[dir.as_str()]].concat(), None, false)
            }
            Runner::Isola { .. } if volume && on_volume.contains(subject) => {
                let cmd: Vec<&str> = std::iter::once(sandbox::PROBE_IN_IMAGE)
                    .chain(args)
                    .chain(["/data"])
                    .collect();
                runner
                    .isola_run(&["-v".into(), format!("{VOLUME}:/data")], false, &cmd)
                    .ok_or(SandboxError::NotIsola)
            }
            _ => continue,
        };
        run_list(subject, argv, &mut figures, &mut errors);
    }
    if volume {
        if let Err(e) = sandbox::output(&isola.argv(&["volume", "rm", VOLUME])).map(drop) {
            errors.push(("store".into(), RuntimeError::Cleanup(e)));
        }
    }
    if !on_network.is_empty() {
        tcp(isola, runners, on_network, &ms, &mut figures, &mut errors);
    }
    for i in 0..figures.len() {
        let host = figures
            .iter()
            .find(|f| f.subject == "host" && f.workload == figures[i].workload)
            .map(|f| f.rate);
        figures[i].ratio_to_host = host.filter(|&h| h > 0.0).map(|h| figures[i].rate / h);
    }
    (figures, errors)
}

/// Run the probe's `argv`, whose output is a list of workloads' figures,
/// and keep them as `subject`'s (or its error).
fn run_list(
    subject: &str,
    argv: Result<Vec<String>, SandboxError>,
    figures: &mut Vec<RuntimeFigure>,
    errors: &mut Vec<(String, RuntimeError)>,
) {
    match argv
        .and_then(|a| sandbox::json(&a))
        .map_err(RuntimeError::from)
    {
        Ok(serde_json::Value::Array(items)) => {
            figures.extend(items.iter().filter_map(|i| figure(subject, i)))
        }
        Ok(other) => errors.push((subject.to_string(), RuntimeError::NotAList(other))),
        Err(e) => errors.push((subject.to_string(), e)),
    }
}

fn figure(subject: &str, item: &serde_json::Value) -> Option<RuntimeFigure> {
    Some(RuntimeFigure {
        workload: item["workload"].as_str()?.to_string(),
        subject: subject.to_string(),
        rate: item["rate"].as_f64()?,
        unit: item["unit"].as_str().unwrap_or_default().to_string(),
        ratio_to_host: None,
    })
}

/// The stdout workload: the data goes to us through the sandbox's output
/// path, drained as a caller would; the probe reports its rate on stderr.
fn stdout_rate(argv: &[String]) -> Result<serde_json::Value, RuntimeError> {
    let mut child = sandbox::spawn_piped(argv)?;
    let mut out = child.stdout.take().ok_or(SandboxError::NoPipe("stdout"))?;
    let drain = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        total
    });
    let mut err = Vec::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_end(&mut err);
    }
    let status = child.wait().map_err(SandboxError::Wait)?;
    let _ = drain.join();
    if !status.success() {
        return Err(SandboxError::Failed(sandbox::error_line(&err, status)).into());
    }
    // Its result is a one-element array on the last line of stderr.
    let text = String::from_utf8_lossy(&err);
    let last = text
        .lines()
        .rev()
        .find(|l| l.starts_with('['))
        .unwrap_or("");
    let parsed: serde_json::Value =
        serde_json::from_str(last).map_err(|source| RuntimeError::StdoutRate {
            printed: last.to_string(),
            source,
        })?;
    Ok(parsed[0].clone())
}

/// The TCP workloads: the host to a peer on 127.0.0.1, each sandbox in
/// `on_network` to one on [`NETWORK`]'s gateway, through its bridge.
fn tcp(
    isola: &IsolaCli,
    runners: &[(String, Runner)],
    on_network: &[String],
    ms: &str,
    figures: &mut Vec<RuntimeFigure>,
    errors: &mut Vec<(String, RuntimeError)>,
) {
    let made = sandbox::output(&isola.argv(&["network", "create", NETWORK]))
        .and_then(|_| sandbox::json(&isola.argv(&["network", "inspect", NETWORK])));
    let gateway = match made {
        Ok(v) => v[0]["gateway"].as_str().and_then(|g| g.parse().ok()),
        Err(e) => {
            errors.push(("store".into(), RuntimeError::Run(e)));
            return;
        }
    };
    let peers = (
        net_peer::Peer::start(std::net::Ipv4Addr::LOCALHOST),
        gateway.map(net_peer::Peer::start),
    );
    let args = |peer: &net_peer::Peer| {
        vec![
            "work".to_string(),
            "tcp_stream".into(),
            "tcp_rr".into(),
            "--ms".into(),
            ms.to_string(),
            "--peer".into(),
            peer.addr.to_string(),
        ]
    };
    for (subject, runner) in runners {
        let argv = match (runner, &peers) {
            (Runner::Host { .. }, (Ok(lo), _)) => {
                let a = args(lo);
                let a: Vec<&str> = a.iter().map(String::as_str).collect();
                runner.probe(&a, None, false)
            }
            (Runner::Isola { .. }, (_, Some(Ok(gw)))) if on_network.contains(subject) => {
                let a = args(gw);
                let cmd: Vec<&str> = std::iter::once(sandbox::PROBE_IN_IMAGE)
                    .chain(a.iter().map(String::as_str))
                    .collect();
                runner
                    .isola_run(&["--network".into(), NETWORK.into()], false, &cmd)
                    .ok_or(SandboxError::NotIsola)
            }
            _ => continue,
        };
        run_list(subject, argv, figures, errors);
    }
    drop(peers);
    if let Err(e) = sandbox::output(&isola.argv(&["network", "rm", NETWORK])).map(drop) {
        errors.push(("store".into(), RuntimeError::Cleanup(e)));
    }
}
