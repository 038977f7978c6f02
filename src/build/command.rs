//! `isola build`: the flags turned into build options, the build run with
//! the driver, and how it ended turned into output and an exit code.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use isola_core::build::{self, BuildError, BuildOptions};
use isola_core::image::ImageStore;
use isola_core::spec::{Limits, Network};
use isola_core::volume::parse_size;
use isola_core::Root;

use crate::args::BuildArgs;

pub fn run(root: &Root, args: &BuildArgs) -> Result<i32> {
    if args.backend == "vm" {
        bail!("--backend vm cannot build yet: a guest has no way to hand a RUN step's changes back until isola's VM devices give it a disk; build with --backend container (the default) and run the image in a VM");
    }
    let backend = crate::backends::build(
        &args.backend,
        &crate::backends::Options {
            state_dir: root.dir().to_path_buf(),
            ..Default::default()
        },
    )?;
    backend.check_host()?;
    crate::backends::sweep_dead_builds(root)?;
    let opts = options(args)?;
    // The build's overlays go when the build does, however it ends.
    build::mount::private_namespace()
        .context("giving the build a mount namespace of its own (isola build needs root)")?;
    let store = ImageStore::open(root.clone())
        .with_context(|| format!("opening the store at {}", root.dir().display()))?;
    let mut driver = crate::driver::CliDriver {
        backend: backend.as_ref(),
        root,
        quiet: args.quiet,
    };
    let started = Instant::now();
    let built = match build::build(&store, &opts, &mut driver) {
        Ok(b) => b,
        Err(e) => return failed(e),
    };
    build::collect(&store, &built.orphaned).context("collecting the images the tags moved from")?;
    if let Some(path) = &args.iidfile {
        std::fs::write(path, built.digest.to_string())
            .with_context(|| format!("writing the image ID to {}", path.display()))?;
    }
    if !args.quiet {
        eprintln!(
            "--> {} ({} steps, {} from the cache, {:.2} s)",
            &built.digest.digest()[..12],
            built.steps,
            built.cached,
            started.elapsed().as_secs_f64()
        );
    }
    println!("{}", built.digest);
    Ok(0)
}

/// A failed build: the message, and the RUN's own exit code when a RUN failed.
fn failed(e: BuildError) -> Result<i32> {
    let code = e.exit_code();
    if code == 125 {
        return Err(anyhow::Error::new(e));
    }
    eprintln!("isola: {e}");
    Ok(code)
}

fn options(args: &BuildArgs) -> Result<BuildOptions> {
    let context = args
        .context
        .canonicalize()
        .with_context(|| format!("the build context {}", args.context.display()))?;
    if !context.is_dir() {
        bail!(
            "the build context {} is not a directory; give the directory COPY reads from",
            args.context.display()
        );
    }
    let (dockerfile, dockerfile_name) = read_dockerfile(args.file.as_deref(), &context)?;
    let pairs = |flag: &str, raw: &[String], from_env: bool| -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for r in raw {
            let (k, v) = match r.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None if from_env => match std::env::var(r) {
                    Ok(v) => (r.clone(), v),
                    Err(_) => continue,
                },
                None => bail!("{flag} {r}: give KEY=VALUE"),
            };
            if k.is_empty() {
                bail!("{flag} {r}: the key is empty; give KEY=VALUE");
            }
            out.insert(k, v);
        }
        Ok(out)
    };
    let network = match args.network.as_str() {
        "none" => Network::None,
        "host" => Network::Host,
        other => bail!("--network {other}: a build's RUN steps take none or host"),
    };
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => v.parse::<u64>().with_context(|| {
            format!("SOURCE_DATE_EPOCH={v}: give seconds since 1970 as a whole number")
        })?,
        _ => 0,
    };
    Ok(BuildOptions {
        context,
        dockerfile,
        dockerfile_name,
        tags: args.tags.clone(),
        build_args: pairs("--build-arg", &args.build_args, true)?,
        target: args.target.clone(),
        no_cache: args.no_cache,
        pull: args.pull,
        labels: pairs("--label", &args.labels, false)?,
        network,
        limits: Limits {
            memory: args
                .memory
                .as_deref()
                .map(|m| parse_size(m).with_context(|| format!("--memory {m}")))
                .transpose()?,
            cpus: args.cpus,
            pids: None,
        },
        epoch,
    })
}

/// The Dockerfile's text and how messages name it.
fn read_dockerfile(file: Option<&Path>, context: &Path) -> Result<(String, String)> {
    let path: PathBuf = match file {
        Some(p) if p == Path::new("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the Dockerfile from standard input")?;
            return Ok((text, "-".into()));
        }
        Some(p) => p.to_path_buf(),
        None => {
            let docker = context.join("Dockerfile");
            let containerfile = context.join("Containerfile");
            if !docker.exists() && containerfile.exists() {
                containerfile
            } else {
                docker
            }
        }
    };
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading the Dockerfile {} (give another with -f FILE)",
            path.display()
        )
    })?;
    let name = path
        .strip_prefix(context)
        .unwrap_or(&path)
        .display()
        .to_string();
    Ok((text, name))
}
