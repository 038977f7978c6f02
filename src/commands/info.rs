//! `isola info`: what this host offers isola (cgroups, overlayfs, KVM
//! flavour), so a missing piece is seen before a sandbox fails on it. Each
//! backend reports its own part.

use std::path::Path;

use anyhow::Result;

use crate::{backends, output};

pub fn run(root: &Path, json: bool) -> Result<()> {
    let mut lines: Vec<(&str, String)> = vec![
        ("version", env!("CARGO_PKG_VERSION").to_string()),
        ("root", root.display().to_string()),
        ("kernel", kernel_release()),
    ];
    // The JSON's keys are stable: these three, then each backend's.
    let mut object = serde_json::Map::new();
    for (key, value) in &lines {
        object.insert(key.to_string(), value.clone().into());
    }
    for backend in backends::all(root) {
        for fact in backend.host_report() {
            if let Some(key) = fact.key {
                object.insert(key.to_string(), fact.value);
            }
            lines.extend(fact.line);
        }
    }
    if json {
        return output::json(&object);
    }
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    for (key, value) in lines {
        println!("{:<width$} {value}", format!("{key}:"));
    }
    Ok(())
}

/// The running kernel's release, as `uname -r` prints it.
fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown (cannot read /proc/sys/kernel/osrelease)".to_string())
}
