//! `isola build`: the flags turned into build options, and the driver the
//! build calls back: step lines to stderr, RUN steps in a container,
//! pulls and URL fetches handed to isola-registry.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use isola_core::backend::{Backend, BackendError, ExitStatus, IdleWork, RunContext};
use isola_core::build::{self, BuildError, BuildOptions, Driver};
use isola_core::explain::Explain;
use isola_core::image::ImageStore;
use isola_core::spec::{Limits, Network, RunSpec};
use isola_core::volume::parse_size;
use isola_core::Root;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::cli::BuildArgs;

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
    sweep(root)?;
    let opts = options(args)?;
    // The build's overlays go when the build does, however it ends.
    build::mount::private_namespace()
        .context("giving the build a mount namespace of its own (isola build needs root)")?;
    let store = ImageStore::open(root.clone())
        .with_context(|| format!("opening the store at {}", root.dir().display()))?;
    let mut driver = CliDriver {
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

/// Clear what builds whose isola died left: their RUN sandboxes' cgroups
/// (the processes died with isola) and their scratch directories.
pub fn sweep(root: &Root) -> Result<()> {
    for stale in build::sweep::stale(root) {
        for id in &stale.sandboxes {
            crate::backends::cleanup(root.dir(), id, None)?;
        }
        isola_core::fsutil::remove_any(&stale.dir)
            .with_context(|| format!("removing {}", stale.dir.display()))?;
    }
    Ok(())
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

struct CliDriver<'a> {
    backend: &'a dyn Backend,
    root: &'a Root,
    quiet: bool,
}

impl CliDriver<'_> {
    /// Where a child's output goes: stderr (people's output), or nowhere
    /// with -q. A duplicate of fd 2, not a new open of /dev/stderr: that
    /// would write a file from its start, over what is there.
    fn output(&self) -> Result<OwnedFd, BuildError> {
        let io_err = |e: std::io::Error| BuildError::Io {
            context: "opening the output of a build step".into(),
            source: e,
        };
        if self.quiet {
            return std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .map(OwnedFd::from)
                .map_err(io_err);
        }
        std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map_err(io_err)
    }

    /// Run isola-registry; its error, when it fails, becomes the build's
    /// (one message, not two).
    fn registry(&self, args: &[&str], what: &str) -> Result<(), BuildError> {
        let me = std::env::current_exe().map_err(|e| BuildError::Io {
            context: "finding isola's own path".into(),
            source: e,
        })?;
        let helper = me.with_file_name("isola-registry");
        let out = Command::new(&helper)
            .arg("--root")
            .arg(self.root.dir())
            .args(args)
            .stdin(Stdio::null())
            .stdout(self.output()?)
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| BuildError::Io {
                context: format!("running {} to {what}", helper.display()),
                source: e,
            })?;
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr);
            let last = said
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            let why = last.strip_prefix("isola: ").unwrap_or(last);
            return Err(BuildError::Usage(if why.is_empty() {
                format!("{what} failed")
            } else {
                why.to_string()
            }));
        }
        Ok(())
    }
}

impl Driver for CliDriver<'_> {
    fn say(&mut self, line: &str) {
        if !self.quiet {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}");
        }
    }

    fn run(&mut self, spec: &RunSpec, instance_dir: &Path) -> Result<ExitStatus, BuildError> {
        let step = |e: BackendError| BuildError::StepCaused {
            at: "RUN".into(),
            what: format!("the {} sandbox failed", self.backend.name()),
            source: Box::new(e),
        };
        self.backend.check(spec).map_err(step)?;
        let ctx = RunContext {
            instance_dir: instance_dir.to_path_buf(),
            state_dir: self.root.dir().to_path_buf(),
            explain: Explain { enabled: false },
            idle: IdleWork::default(),
            // The upper dir is read back at once, by this same kernel:
            // nothing of it needs to reach the disk first.
            ephemeral: true,
            park: false,
            clock: Instant::now(),
        };
        // The workload writes where isola's stdout is: for a build that
        // is people's output, so stderr (stdout carries the image ID).
        let out = self.output()?;
        let saved = nix::unistd::dup(std::io::stdout()).map_err(|e| BuildError::Io {
            context: "keeping stdout aside during a RUN step".into(),
            source: e.into(),
        })?;
        let _ = std::io::stdout().flush();
        let redirect = nix::unistd::dup2_stdout(&out);
        let outcome = run_until_interrupted(self.backend, spec, &ctx);
        let _ = nix::unistd::dup2_stdout(&saved);
        redirect.map_err(|e| BuildError::Io {
            context: "redirecting a RUN step's output".into(),
            source: e.into(),
        })?;
        match outcome {
            Ok(Some(status)) => Ok(status),
            Ok(None) => Err(BuildError::Interrupted),
            Err(e) => Err(step(e)),
        }
    }

    fn pull(&mut self, image: &str) -> Result<(), BuildError> {
        self.say(&format!("pulling {image}"));
        self.registry(&["pull", "-q", image], &format!("pulling {image}"))
    }

    fn fetch(&mut self, url: &str, dest: &Path) -> Result<(), BuildError> {
        let dest = dest.to_string_lossy().into_owned();
        self.registry(
            &["fetch-url", "--output", &dest, url],
            &format!("fetching {url}"),
        )
    }
}

/// A RUN step's sandbox from start to end. Ctrl-C or a SIGTERM ends the
/// build at once, as docker's does: the step's workload is killed, whatever
/// it does with the signal (a shell as PID 1 ignores it), and `None` says
/// so. isola's own death kills it too (the backend's parent-death signal).
fn run_until_interrupted(
    backend: &dyn Backend,
    spec: &RunSpec,
    ctx: &RunContext,
) -> Result<Option<ExitStatus>, BackendError> {
    let mut stops = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        stops.add(s);
    }
    let mut old = SigSet::empty();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&stops), Some(&mut old))
        .map_err(|e| BackendError::step("blocking signals", e))?;
    let restore = || {
        let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    };
    let result = (|| {
        let sfd = SignalFd::with_flags(&stops, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| BackendError::step("signalfd", e))?;
        let mut sandbox = backend.create(spec, ctx)?;
        sandbox.start()?;
        let mut interrupted = false;
        if let Some(exit) = sandbox.exit_fd().map(|fd| fd.try_clone_to_owned()) {
            let exit = exit.map_err(|e| BackendError::step("watching the RUN step", e))?;
            loop {
                let mut fds = [
                    PollFd::new(exit.as_fd(), PollFlags::POLLIN),
                    PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
                ];
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(BackendError::step("poll", e)),
                }
                let exited = fds[0].revents().is_some_and(|r| !r.is_empty());
                let signalled = fds[1].revents().is_some_and(|r| !r.is_empty());
                if signalled && matches!(sfd.read_signal(), Ok(Some(_))) {
                    interrupted = true;
                    sandbox.signal(Signal::SIGKILL)?;
                }
                if exited {
                    break;
                }
            }
        }
        let outcome = sandbox.wait();
        let torn_down = sandbox.teardown();
        let outcome = outcome?;
        torn_down?;
        Ok((!interrupted).then_some(outcome.status))
    })();
    restore();
    result
}
