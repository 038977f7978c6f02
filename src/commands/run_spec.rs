//! The run spec of `isola run`, from the image's config and the flags, with
//! Docker's rules (see `run_flags`). Nothing is made here: the backend's
//! `check` (which validates the spec) comes first; named volumes are then
//! created on first use, and leased for the sandbox's life, by [`lease`].

use anyhow::{bail, Context, Result};
use isola_core::image::{default_image, ImageStore};
use isola_core::network::{self, Join, PortRequest};
use isola_core::spec::{Limits, Mount, MountSource, Network, Process, RunSpec, Security};
use isola_core::volume::{self, parse_size, VolumeLease, VolumeStore};
use isola_core::{user, Root};

use super::run_flags::{self, VolumeFlag};
use crate::cli::RunArgs;

/// The spec, not yet checked.
pub fn build(root: &Root, args: &RunArgs, id: &str) -> Result<RunSpec> {
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
    let cwd = args
        .workdir
        .clone()
        .or_else(|| config.working_dir().clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
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
    let spec = RunSpec {
        id: id.to_string(),
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
        hostname: args.hostname.clone().unwrap_or_else(|| id.to_string()),
        limits,
        mounts: mounts(root, &args.volumes)?,
        network: network(
            root,
            args,
            &config.exposed_ports().clone().unwrap_or_default(),
        )?,
        read_only: args.read_only,
        security: security(args)?,
    };
    Ok(spec)
}

/// Named volumes made on first use, and held until the sandbox is gone (no
/// second read-write user meanwhile).
pub fn lease(root: &Root, spec: &RunSpec) -> Result<Vec<VolumeLease>> {
    let mut leases = Vec::new();
    for m in &spec.mounts {
        if let MountSource::Volume { name, .. } = &m.source {
            let volumes = VolumeStore::open(root.clone())?;
            volumes.get_or_create(name)?;
            leases.push(volumes.acquire(name, m.read_only)?);
        }
    }
    Ok(leases)
}

fn security(args: &RunArgs) -> Result<Security> {
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
    Ok(security)
}

/// `--network` and what goes with it. Flags that need a bridge network
/// are refused without one rather than ignored.
fn network(root: &Root, args: &RunArgs, exposed: &[String]) -> Result<Network> {
    let mut ports = Vec::new();
    for p in &args.publish {
        ports.push(PortRequest::parse(p)?);
    }
    if args.publish_all {
        for e in exposed {
            // The image config's "80/tcp" is -p's "80/tcp".
            ports
                .push(PortRequest::parse(e).with_context(|| {
                    format!("the image exposes {e:?}, which -P cannot publish")
                })?);
        }
    }
    let bridged = |what: &str| -> Result<()> {
        bail!("{what} needs a bridge network: add --network bridge (or a network's name)")
    };
    let simple = match args.network.as_str() {
        "none" => Some(Network::None),
        "host" => Some(Network::Host),
        _ => None,
    };
    if let Some(net) = simple {
        if !args.publish.is_empty() || args.publish_all {
            bridged("-p/-P")?;
        }
        if args.ip.is_some() {
            bridged("--ip")?;
        }
        if !args.network_aliases.is_empty() {
            bridged("--network-alias")?;
        }
        return Ok(net);
    }
    if args.ip.is_some() && args.network == network::DEFAULT {
        bail!("--ip needs a network of your own (`isola network create --subnet CIDR NAME`): on the default network addresses are handed out as sandboxes come")
    }
    if args.network != network::DEFAULT {
        // Refused now, before anything of the sandbox is made.
        network::NetworkStore::new(root).get(&args.network)?;
    }
    let mut names: Vec<String> = args.name.iter().cloned().collect();
    names.extend(args.network_aliases.iter().cloned());
    Ok(Network::Bridge(Join {
        network: args.network.clone(),
        ip: args.ip,
        names,
        ports,
    }))
}

/// `-v` flags as mounts.
fn mounts(root: &Root, flags: &[String]) -> Result<Vec<Mount>> {
    let mut mounts = Vec::new();
    for raw in flags {
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
                let image = volume::image_path(root, &name)?;
                mounts.push(Mount {
                    source: MountSource::Volume { name, image },
                    target,
                    read_only,
                });
            }
        }
    }
    Ok(mounts)
}
