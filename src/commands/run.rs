//! `isola run IMAGE [CMD...]`: the spec from the image and the flags, the
//! chosen backend's checks, then the sandbox's whole life in the
//! foreground; isola exits as the workload did.

use anyhow::{bail, Context, Result};
use isola_core::backend::{self, IdleWork, Outcome, RunContext};
use isola_core::explain::Explain;
use isola_core::instance::{self, Instance};
use isola_core::Root;

use super::run_spec;
use crate::backends;
use crate::cli::RunArgs;

pub fn run(root: &Root, args: &RunArgs) -> Result<i32> {
    if args.restart != "no" {
        bail!("--restart needs -d: a detached sandbox's shim restarts it, and a foreground run ends with its workload");
    }
    let backend = backends::build(
        &args.backend,
        &backends::Options {
            state_dir: root.dir().to_path_buf(),
            vmm: Some(args.vmm.clone()),
            kernel: args.kernel.clone(),
        },
    )?;
    backend.check_host()?;
    let id = isola_core::id::new_id().context("making a sandbox ID")?;
    let spec = run_spec::build(root, args, &id)?;
    // Every refusal that can be known now, before anything is made.
    backend.check(&spec)?;
    let leases = run_spec::lease(root, &spec)?;
    if let Some(name) = &args.name {
        instance::reserve_name(root, name, &id)?;
    }
    let made = Instance::create(root, &id, &spec.image, backend.name(), !args.rm);
    let release = || {
        if let Some(name) = &args.name {
            instance::release_name(root, name, &id);
        }
    };
    let mut inst = match made {
        Ok(inst) => inst,
        Err(e) => {
            release();
            return Err(e).with_context(|| {
                format!(
                    "creating the sandbox directory under {}",
                    root.dir().display()
                )
            });
        }
    };
    if args.name.is_some() || !args.rm {
        inst.state.name = args.name.clone();
        inst.state.command = spec.process.args.clone();
        inst.state.started = Some(instance::now());
        if !args.rm {
            inst.save().context("recording the sandbox's state")?;
        }
    }
    let ctx = RunContext {
        instance_dir: inst.dir.clone(),
        state_dir: root.dir().to_path_buf(),
        explain: Explain {
            enabled: args.explain,
        },
        idle: {
            let root = root.clone();
            IdleWork::new(move |idle| isola_core::scratch::tidy(&root, idle))
        },
        ephemeral: args.rm,
        park: false,
        // Phases are timed from here, as the backend's own work starts.
        clock: std::time::Instant::now(),
    };
    if args.explain {
        if let Ok(how) = backend.describe(&spec) {
            ctx.explain.say(&format!(
                "{} runs on {}{}",
                backend.name(),
                how.runs_on,
                how.emulated.map(|e| format!(" ({e})")).unwrap_or_default()
            ));
        }
    }
    let outcome = match backend::run_to_end(backend.as_ref(), &spec, &ctx) {
        Ok(o) => o,
        Err(e) => {
            let _ = inst.remove();
            release();
            return Err(anyhow::Error::new(e)).context(format!(
                "running {} in a {}",
                spec.image,
                backend.name()
            ));
        }
    };
    drop(leases);
    report(&outcome, args.explain);
    let code = outcome.status.code();
    inst.state.counters = outcome.counters.clone();
    inst.state.phases_ms = outcome
        .phases
        .iter()
        .map(|(p, d)| (p.label().to_string(), d.as_secs_f64() * 1e3))
        .collect();
    // Taken before the directory goes; written after, so a bad path can
    // not leave the sandbox's directory behind.
    let phases = args.phases_to.as_ref().map(|path| {
        (
            path,
            serde_json::json!({ "phases_ms": inst.state.phases_ms }),
        )
    });
    if args.rm {
        inst.remove().context("removing the sandbox directory")?;
        release();
    } else {
        inst.exited(code).context("recording the exit status")?;
    }
    if let Some((path, phases)) = phases {
        std::fs::write(path, phases.to_string())
            .with_context(|| format!("writing the phase times to {}", path.display()))?;
    }
    Ok(code)
}

/// What the user is told besides the workload's own output.
fn report(outcome: &Outcome, explain: bool) {
    if let Some(msg) = &outcome.message {
        eprintln!("isola: {msg}");
    }
    if explain {
        let mut last = 0.0;
        for (phase, at) in &outcome.phases {
            let ms = at.as_secs_f64() * 1e3;
            eprintln!(
                "explain: phase {:<17} at {ms:8.3} ms (+{:.3})",
                phase.label(),
                ms - last
            );
            last = ms;
        }
    }
}
