//! An OCI runtime bundle (config.json + rootfs) for runc and crun, from the
//! same flattened image isola runs, so the peers start the same files.

use std::fs;
use std::io;
use std::path::Path;
use std::process::Command;

use crate::sandbox::Limits;

/// Write `dir/config.json` for running `args` in `rootfs` (absolute), from
/// the runtime's own default spec (`RUNTIME spec`), made non-interactive,
/// with `limits` as its cgroup resources.
pub fn write_config(
    runtime: &str,
    dir: &Path,
    rootfs: &Path,
    args: &[&str],
    limits: Option<Limits>,
) -> io::Result<()> {
    let _ = fs::remove_file(dir.join("config.json"));
    let out = Command::new(runtime)
        .args(["spec", "--bundle"])
        .arg(dir)
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{runtime} spec: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let path = dir.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&fs::read(&path)?).map_err(io::Error::other)?;
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = args.iter().map(|a| serde_json::Value::from(*a)).collect();
    spec["root"] = serde_json::json!({"path": rootfs, "readonly": false});
    if let Some(l) = limits {
        // Swap included, as isola's --memory is.
        let bytes = l.memory_mib << 20;
        spec["linux"]["resources"]["memory"] = serde_json::json!({"limit": bytes, "swap": bytes});
        spec["linux"]["resources"]["pids"] = serde_json::json!({"limit": l.pids});
    }
    fs::write(
        &path,
        serde_json::to_vec_pretty(&spec).map_err(io::Error::other)?,
    )
}
