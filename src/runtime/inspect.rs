//! ps, events, list, pause, resume and update: looking at and adjusting a
//! container that exists.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use isola_core::oci::Status;

use super::cli::{EventsArgs, Format, ListArgs, PsArgs, UpdateArgs};
use super::containers;

/// `ps --format json` prints the PIDs as a JSON array (`null` for none,
/// as runc does); the table is ps(1)'s, cut to the container's processes.
pub fn ps(root: &Path, args: &PsArgs) -> Result<()> {
    let found = containers::find(root, &args.id)?;
    let runtime = containers::bundle_runtime(&found.record.backend)?;
    let pids = if found.status == Status::Stopped {
        Vec::new()
    } else {
        runtime.pids(&found.record)?
    };
    if args.format == Format::Json {
        if pids.is_empty() {
            println!("null");
        } else {
            println!("{}", serde_json::to_string(&pids)?);
        }
        return Ok(());
    }
    let ps_args = if args.ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        args.ps_args.clone()
    };
    let out = std::process::Command::new("ps")
        .args(&ps_args)
        .output()
        .context("running ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            ps_args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Ok(());
    };
    let Some(column) = header.split_whitespace().position(|h| h == "PID") else {
        bail!("ps {} printed no PID column", ps_args.join(" "));
    };
    println!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(column)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(())
}

/// `events --stats`: one sample as runc prints it; without `--stats`, a
/// sample each interval until the container stops.
pub fn events(root: &Path, args: &EventsArgs) -> Result<()> {
    loop {
        let found = containers::find(root, &args.id)?;
        if found.status == Status::Stopped {
            bail!("container with id {} is not running", args.id);
        }
        let runtime = containers::bundle_runtime(&found.record.backend)?;
        let data = runtime.stats(&found.record)?;
        let event = serde_json::json!({"type": "stats", "id": args.id, "data": data});
        println!("{event}");
        if args.stats {
            return Ok(());
        }
        std::thread::sleep(*args.interval);
    }
}

pub fn list(root: &Path, args: &ListArgs) -> Result<()> {
    let mut states = Vec::new();
    for id in containers::ids(root)? {
        if let Ok(found) = containers::find(root, &id) {
            states.push(found.record.state(found.status));
        }
    }
    if args.quiet {
        for s in &states {
            println!("{}", s.id);
        }
    } else if args.format == Format::Json {
        println!("{}", serde_json::to_string(&states)?);
    } else {
        println!(
            "{:<12} {:<10} {:<10} {:<40} {:<30} OWNER",
            "ID", "PID", "STATUS", "BUNDLE", "CREATED"
        );
        for s in &states {
            println!(
                "{:<12} {:<10} {:<10} {:<40} {:<30} {}",
                s.id,
                s.pid,
                s.status.as_str(),
                s.bundle,
                s.created,
                if s.owner.is_empty() { "root" } else { &s.owner }
            );
        }
    }
    Ok(())
}

pub fn pause(root: &Path, id: &str, pause: bool) -> Result<()> {
    let found = containers::find(root, id)?;
    match (found.status, pause) {
        (Status::Running, true) | (Status::Paused, false) => {}
        (Status::Paused, true) => return Ok(()),
        (status, true) => bail!("container not running: it is {}", status.as_str()),
        (status, false) => bail!("container not paused: it is {}", status.as_str()),
    }
    let runtime = containers::bundle_runtime(&found.record.backend)?;
    if pause {
        runtime.pause(&found.record)?;
    } else {
        runtime.resume(&found.record)?;
    }
    Ok(())
}

pub fn update(root: &Path, args: &UpdateArgs) -> Result<()> {
    let found = containers::find(root, &args.id)?;
    if found.status == Status::Stopped {
        bail!(
            "container {} is stopped: there is nothing to update",
            args.id
        );
    }
    let mut resources: oci_spec::runtime::LinuxResources = match &args.resources {
        Some(p) => {
            let mut text = Vec::new();
            if p.as_os_str() == "-" {
                std::io::stdin().read_to_end(&mut text)?;
            } else {
                text = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            }
            serde_json::from_slice(&text)
                .context("the resources are not linux.resources JSON of the OCI runtime spec")?
        }
        None => Default::default(),
    };
    if args.memory.is_some() {
        let mut mem = resources.memory().unwrap_or_default();
        mem.set_limit(args.memory);
        resources.set_memory(Some(mem));
    }
    if args.cpu_quota.is_some() || args.cpu_period.is_some() || args.cpu_share.is_some() {
        let mut cpu = resources.cpu().clone().unwrap_or_default();
        if args.cpu_quota.is_some() {
            cpu.set_quota(args.cpu_quota);
        }
        if args.cpu_period.is_some() {
            cpu.set_period(args.cpu_period);
        }
        if args.cpu_share.is_some() {
            cpu.set_shares(args.cpu_share);
        }
        resources.set_cpu(Some(cpu));
    }
    if let Some(limit) = args.pids_limit {
        let mut pids = oci_spec::runtime::LinuxPids::default();
        pids.set_limit(limit);
        resources.set_pids(Some(pids));
    }
    let runtime = containers::bundle_runtime(&found.record.backend)?;
    runtime.update(&found.record, &resources)?;
    Ok(())
}
