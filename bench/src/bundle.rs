//! An OCI runtime bundle (config.json + rootfs) for runc and crun, from the
//! same flattened image isola runs, so the peers start the same files.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use isola_core::spec::Limits;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{}", .dir.display())]
    Dir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `RUNTIME spec` failed: its own words.
    #[error("{runtime} spec: {stderr}")]
    Spec { runtime: String, stderr: String },
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// Write `dir/config.json` (`dir` made if need be) for running `args` in
/// `rootfs` (absolute), from the runtime's own default spec (`RUNTIME
/// spec`), made non-interactive, with `limits` as its cgroup resources.
pub fn write_config(
    runtime: &str,
    dir: &Path,
    rootfs: &Path,
    args: &[&str],
    limits: Option<Limits>,
) -> Result<(), BundleError> {
    fs::create_dir_all(dir).map_err(|source| BundleError::Dir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let _ = fs::remove_file(dir.join("config.json"));
    let out = Command::new(runtime)
        .args(["spec", "--bundle"])
        .arg(dir)
        .output()?;
    if !out.status.success() {
        return Err(BundleError::Spec {
            runtime: runtime.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let path = dir.join("config.json");
    let mut spec: serde_json::Value = serde_json::from_slice(&fs::read(&path)?)?;
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = args.iter().map(|a| serde_json::Value::from(*a)).collect();
    spec["root"] = serde_json::json!({"path": rootfs, "readonly": false});
    let limits = limits.unwrap_or_default();
    if let Some(bytes) = limits.memory {
        // Swap included, as isola's --memory is.
        spec["linux"]["resources"]["memory"] = serde_json::json!({"limit": bytes, "swap": bytes});
    }
    if let Some(cpus) = limits.cpus {
        // CPUs' worth of time per 100 ms period, as isola's --cpus is.
        let period = 100_000u64;
        let quota = (cpus * period as f64).round() as i64;
        spec["linux"]["resources"]["cpu"] = serde_json::json!({"quota": quota, "period": period});
    }
    if let Some(pids) = limits.pids {
        spec["linux"]["resources"]["pids"] = serde_json::json!({"limit": pids});
    }
    fs::write(&path, serde_json::to_vec_pretty(&spec)?)?;
    Ok(())
}
