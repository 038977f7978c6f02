//! `isola run IMAGE [CMD...]`: resolve the image, build the run spec from its
//! config and the flags, hand it to the chosen backend, and exit as the
//! workload did.

use anyhow::{anyhow, bail, Context, Result};
use isola_core::backend::{Backend, IdleWork, RunContext};
use isola_core::explain::Explain;
use isola_core::image::{default_image, ImageStore};
use isola_core::instance::{self, Instance};
use isola_core::spec::{Limits, Mount, MountSource, Network, Process, RunSpec, Security};
use isola_core::volume::{parse_size, VolumeStore};
use isola_core::{user, Root};

use super::run_flags::{self, VolumeFlag};
use crate::cli::RunArgs;

pub fn run(root: &Root, args: &RunArgs) -> Result<i32> {
    let backend: Box<dyn Backend> = match args.backend.as_str() {
        "container" if !nix::unistd::geteuid().is_root() => {
            bail!("the container backend needs root (rootless containers are not supported yet); run isola as root")
        }
        "container" => Box::new(isola_container::ContainerBackend),
        "vm" => Box::new(isola_vm::backend::VmBackend {
            vmm: match args.vmm.as_str() {
                "isola" => isola_vm::backend::Vmm::Isola,
                "qemu" => isola_vm::backend::Vmm::Qemu,
                other => bail!("unknown --vmm {other:?}: use isola or qemu"),
            },
            kernel: args.kernel.clone(),
            state_dir: root.dir().to_path_buf(),
        }),
        other => bail!("unknown backend {other:?}: use container or vm"),
    };
    let store = ImageStore::open(root.clone())?;
    let image = default_image::get(&store, &args.image)?;
    let layers = store.layer_dirs(&image);
    let config = image.config.config().clone().unwrap_or_default();

    let mut extra_env = Vec::new();
    for f in &args.env_file {
        extra_env.extend(run_flags::env_file(f)?);
    }
    for e in &args.env {
        extra_env.extend(run_flags::env_flag(e)?);
    }
    let env = run_flags::merge_env(&config.env().clone().unwrap_or_default(), &extra_env);
    let command = run_flags::command(
        &config.entrypoint().clone().unwrap_or_default(),
        &config.cmd().clone().unwrap_or_default(),
        &args.command,
    );
    if command.is_empty() {
        bail!(
            "no command to run: the image has no Entrypoint or Cmd; give one after the image name"
        );
    }
    let cwd = args
        .workdir
        .clone()
        .or_else(|| config.working_dir().clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        bail!("the working directory {cwd:?} must be an absolute path");
    }
    let user_spec = args
        .user
        .clone()
        .or_else(|| config.user().clone())
        .unwrap_or_default();
    let user = user::resolve(&user_spec, &layers)?;

    let limits = Limits {
        memory: args
            .memory
            .as_deref()
            .map(|m| parse_size(m).with_context(|| format!("--memory {m}")))
            .transpose()?,
        cpus: args.cpus,
        pids: args.pids_limit,
    };
    if limits.memory.is_some_and(|m| m < 4 << 20) {
        bail!("--memory must be at least 4 MiB");
    }
    if limits.cpus.is_some_and(|c| !(c > 0.0 && c.is_finite())) {
        bail!("--cpus must be a positive number, e.g. 0.5");
    }
    if limits.pids == Some(0) {
        bail!("--pids-limit must be at least 1");
    }
    let mut security = Security {
        cap_add: args.cap_add.clone(),
        cap_drop: args.cap_drop.clone(),
        seccomp: true,
        privileged: args.privileged,
    };
    for opt in &args.security_opt {
        match opt.as_str() {
            "seccomp=unconfined" | "seccomp:unconfined" => security.seccomp = false,
            "no-new-privileges" | "no-new-privileges=true" | "no-new-privileges:true" => {}
            other => bail!("unsupported --security-opt {other:?}: isola takes seccomp=unconfined and no-new-privileges"),
        }
    }
    let network = match args.network.as_str() {
        "none" => Network::None,
        "host" => Network::Host,
        other => bail!("unsupported --network {other:?}: use none (only lo) or host"),
    };

    // Opened on first use: most runs name no volume.
    let mut volumes: Option<VolumeStore> = None;
    let mut mounts = Vec::new();
    let mut leases = Vec::new();
    for raw in &args.volumes {
        match run_flags::volume_flag(raw)? {
            VolumeFlag::Bind {
                source,
                target,
                read_only,
            } => mounts.push(Mount {
                source: MountSource::Bind(source),
                target,
                read_only,
            }),
            VolumeFlag::Named {
                name,
                target,
                read_only,
            } => {
                let volumes = match &mut volumes {
                    Some(v) => v,
                    None => volumes.insert(VolumeStore::open(root.clone())?),
                };
                let vol = volumes.get_or_create(&name)?;
                // Held until the sandbox is gone: no second read-write user.
                leases.push(volumes.acquire(&name, read_only)?);
                mounts.push(Mount {
                    source: MountSource::Volume {
                        name,
                        image: vol.image,
                    },
                    target,
                    read_only,
                });
            }
        }
    }

    let id = instance::new_id().context("making a sandbox ID")?;
    let spec = RunSpec {
        id: id.clone(),
        image: image
            .names
            .first()
            .cloned()
            .unwrap_or_else(|| image.digest.to_string()),
        image_digest: image.digest.to_string(),
        layers,
        process: Process {
            args: command,
            env,
            cwd,
            user,
            tty: args.tty,
            stdin: args.interactive,
        },
        hostname: args.hostname.clone().unwrap_or_else(|| id.clone()),
        limits,
        mounts,
        network,
        read_only: args.read_only,
        security,
    };
    let mut inst = Instance::create(root, &id, &spec.image, backend.name(), !args.rm)
        .with_context(|| {
            format!(
                "creating the sandbox directory under {}",
                root.dir().display()
            )
        })?;
    let ctx = RunContext {
        instance_dir: inst.dir.clone(),
        explain: Explain {
            enabled: args.explain,
        },
        idle: {
            let root = root.clone();
            IdleWork::new(move || isola_core::scratch::tidy(&root))
        },
        ephemeral: args.rm,
    };
    let outcome = match backend.run(&spec, &ctx) {
        Ok(o) => o,
        Err(e) => {
            let _ = inst.remove();
            return Err(anyhow!(e)).context(format!(
                "running {} in a {}",
                spec.image,
                backend.name()
            ));
        }
    };
    drop(leases);
    if let Some(msg) = &outcome.message {
        eprintln!("isola: {msg}");
    }
    if args.explain {
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
    } else {
        inst.exited(code).context("recording the exit status")?;
    }
    if let Some((path, phases)) = phases {
        std::fs::write(path, phases.to_string())
            .with_context(|| format!("writing the phase times to {}", path.display()))?;
    }
    Ok(code)
}
