//! create, start, run, state, kill and delete: a container's life as runc
//! has it, each call a process of its own working on the record.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use isola_core::oci::hooks::{self, Point};
use isola_core::oci::record::{process_start, CONFIG};
use isola_core::oci::{Bundle, CreateOptions, Record, Status, BACKEND_ANNOTATION};

use super::cli::{CreateArgs, DeleteArgs, KillArgs, RunArgs};
use super::containers::{self, Found};
use super::log::Log;

/// How long `delete --force` waits for a killed container to go.
const KILL_WAIT: Duration = Duration::from_secs(10);

pub fn create(root: &Path, args: &CreateArgs) -> Result<i32> {
    let dir = containers::dir(root, &args.id)?;
    std::fs::create_dir_all(root).with_context(|| format!("making {}", root.display()))?;
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!("container with id exists: {}", args.id)
        }
        Err(e) => return Err(e).with_context(|| format!("making {}", dir.display())),
    }
    let made = create_in(&dir, args);
    if made.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    made
}

fn create_in(dir: &Path, args: &CreateArgs) -> Result<i32> {
    let bundle = Bundle::load(&args.bundle)?;
    let backend = bundle
        .annotation(BACKEND_ANNOTATION)
        .unwrap_or("container")
        .to_string();
    let runtime = containers::bundle_runtime(&backend)?;
    runtime.check(&bundle)?;
    std::fs::copy(bundle.dir.join("config.json"), dir.join(CONFIG))
        .context("keeping a copy of config.json")?;
    let opts = CreateOptions {
        id: &args.id,
        state_dir: dir,
        console_socket: args.console_socket.as_deref(),
        preserve_fds: args.preserve_fds,
        no_pivot: args.no_pivot,
        no_new_keyring: args.no_new_keyring,
    };
    let created = runtime.create(&bundle, &opts)?;
    let record = Record {
        id: args.id.clone(),
        backend,
        pid: created.pid,
        pid_start: process_start(created.pid).map_or(0, |(_, start)| start),
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        oci_version: bundle.config.version().clone(),
        created: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
        owner: String::new(),
        annotations: bundle.annotations(),
        cgroup: created.cgroup,
        cgroup_parents_made: created.cgroup_parents_made,
    };
    let saved = record
        .save(dir)
        .map_err(anyhow::Error::from)
        .and_then(|()| match &args.pid_file {
            Some(p) => containers::write_pid_file(p, created.pid),
            None => Ok(()),
        });
    if let Err(e) = saved {
        let _ = runtime.kill(&record, nix::libc::SIGKILL, true);
        let _ = runtime.delete(&record);
        return Err(e);
    }
    Ok(created.pid)
}

pub fn start(root: &Path, id: &str) -> Result<()> {
    let found = containers::find(root, id)?;
    match found.status {
        Status::Created => {}
        Status::Stopped | Status::Creating => bail!("cannot start a container that has stopped"),
        Status::Running | Status::Paused => bail!("cannot start an already running container"),
    }
    let runtime = containers::bundle_runtime(&found.record.backend)?;
    runtime.start(&found.record, &found.dir)?;
    Ok(())
}

/// `run`: create and start; then, unless detached, wait for the init (a
/// child of this process), delete the container and exit with its code.
pub fn run(root: &Path, args: &RunArgs, log: &Log) -> Result<i32> {
    let pid = create(root, &args.create)?;
    let id = &args.create.id;
    if let Err(e) = start(root, id) {
        let _ = delete(
            root,
            &DeleteArgs {
                force: true,
                id: id.clone(),
            },
            log,
        );
        return Err(e);
    }
    if args.detach {
        return Ok(0);
    }
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None)
        .context("waiting for the container")?;
    let code = match status {
        nix::sys::wait::WaitStatus::Exited(_, c) => c,
        nix::sys::wait::WaitStatus::Signaled(_, s, _) => 128 + s as i32,
        _ => 1,
    };
    if !args.keep {
        delete(
            root,
            &DeleteArgs {
                force: true,
                id: id.clone(),
            },
            log,
        )?;
    }
    Ok(code)
}

pub fn state(root: &Path, id: &str) -> Result<()> {
    let found = containers::find(root, id)?;
    println!("{}", found.record.state(found.status).to_json());
    Ok(())
}

pub fn kill(root: &Path, args: &KillArgs) -> Result<()> {
    let found = containers::find(root, &args.id)?;
    let signal = parse_signal(&args.signal)?;
    if found.status == Status::Stopped {
        // runc's rule, on which containerd's `task rm -f` relies: nothing
        // left to signal is no error for --all.
        if args.all {
            return Ok(());
        }
        bail!("container not running");
    }
    let runtime = containers::bundle_runtime(&found.record.backend)?;
    runtime.kill(&found.record, signal, args.all)?;
    Ok(())
}

pub fn delete(root: &Path, args: &DeleteArgs, log: &Log) -> Result<()> {
    let found = match containers::find(root, &args.id) {
        Ok(f) => f,
        // runc: deleting what is not there with --force is no error.
        Err(e) if args.force && not_found(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    let Found {
        dir,
        record,
        status,
    } = found;
    let runtime = containers::bundle_runtime(&record.backend)?;
    match status {
        Status::Stopped | Status::Creating => {}
        // A created container's init has run nothing of the workload's.
        Status::Created => stop(runtime.as_ref(), &record)?,
        Status::Running | Status::Paused if args.force => stop(runtime.as_ref(), &record)?,
        other => bail!(
            "cannot delete container {} that is not stopped: {}",
            record.id,
            other.as_str()
        ),
    }
    runtime.delete(&record)?;
    poststop(&dir, &record, log);
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))
}

/// config.json's poststop hooks; one that fails is a warning (the OCI
/// spec's rule), the container is deleted all the same.
fn poststop(dir: &Path, record: &Record, log: &Log) {
    let Ok(bytes) = std::fs::read(dir.join(CONFIG)) else {
        return;
    };
    let Ok(config) = isola_core::oci::bundle::parse_config(&bytes) else {
        return;
    };
    let list = hooks::at(&config, Point::Poststop);
    let state = record.state(Status::Stopped).for_hooks();
    if let Err(e) = hooks::run(Point::Poststop, &list, &state, None) {
        log.warn(&e.to_string());
    }
}

/// SIGKILL to every process of it (thawed, so that they die), then wait
/// until the init is gone (or a zombie for its parent to reap).
fn stop(runtime: &dyn isola_core::oci::BundleRuntime, record: &Record) -> Result<()> {
    if runtime.paused(record) {
        let _ = runtime.resume(record);
    }
    runtime.kill(record, nix::libc::SIGKILL, true)?;
    let deadline = Instant::now() + KILL_WAIT;
    while record.alive() {
        if Instant::now() > deadline {
            bail!(
                "container {} did not die within {} s of SIGKILL",
                record.id,
                KILL_WAIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn not_found(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<isola_core::oci::record::RecordError>(),
        Some(isola_core::oci::record::RecordError::NotFound(_))
    )
}

/// A signal as go-runc sends it (a number) or as people type it.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n)
            .map(|sig| sig as i32)
            .map_err(|_| anyhow!("invalid signal {s:?}"));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| anyhow!("invalid signal {s:?}: give a number or a name such as TERM"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_number_and_name() {
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("term").unwrap(), 15);
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert!(parse_signal("0x").is_err());
        assert!(parse_signal("999").is_err());
    }
}
