//! `exec`: another process in a running container, from a process.json
//! (containerd's way) or from a command line (people's way), the
//! container's own process settings filling what is not said.

use std::path::Path;

use anyhow::{bail, Context, Result};
use isola_core::oci::bundle::{parse_config, parse_process};
use isola_core::oci::record::CONFIG;
use isola_core::oci::runtime::{ExecOptions, Execd};
use isola_core::oci::Status;

use super::cli::ExecArgs;
use super::containers;

pub fn exec(root: &Path, args: &ExecArgs) -> Result<i32> {
    let found = containers::find(root, &args.id)?;
    match found.status {
        Status::Running => {}
        other => bail!(
            "cannot exec in a container that is {}: it must be running",
            other.as_str()
        ),
    }
    let process = match &args.process {
        Some(p) => {
            let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            parse_process(&bytes).with_context(|| format!("the process file {}", p.display()))?
        }
        None => from_command_line(&found.dir, args)?,
    };
    let runtime = containers::bundle_runtime(&found.record.backend)?;
    let opts = ExecOptions {
        state_dir: &found.dir,
        console_socket: args.console_socket.as_deref(),
        preserve_fds: args.preserve_fds,
        detach: args.detach,
    };
    match runtime.exec(&found.record, &process, &opts)? {
        Execd::Detached { pid } => {
            if let Some(f) = &args.pid_file {
                containers::write_pid_file(f, pid)?;
            }
            Ok(0)
        }
        Execd::Exited { code } => Ok(code),
    }
}

/// The container's process with the command, and the flags, in place.
fn from_command_line(dir: &Path, args: &ExecArgs) -> Result<oci_spec::runtime::Process> {
    if args.command.is_empty() {
        bail!("exec needs a command, or --process with a process.json");
    }
    let config = std::fs::read(dir.join(CONFIG)).context("reading the container's config.json")?;
    let spec = parse_config(&config)?;
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(args.command.clone()));
    process.set_terminal(Some(args.tty));
    if let Some(cwd) = &args.cwd {
        process.set_cwd(cwd.into());
    }
    if !args.env.is_empty() {
        let mut env = process.env().clone().unwrap_or_default();
        for e in &args.env {
            let key = e.split('=').next().unwrap_or_default();
            env.retain(|old| old.split('=').next() != Some(key));
            env.push(e.clone());
        }
        process.set_env(Some(env));
    }
    if let Some(user) = &args.user {
        let (uid, gid) = user.split_once(':').unwrap_or((user, "0"));
        let parse = |s: &str| {
            s.parse::<u32>()
                .with_context(|| format!("--user {user}: give UID[:GID] as numbers"))
        };
        let mut u = process.user().clone();
        u.set_uid(parse(uid)?);
        u.set_gid(parse(gid)?);
        process.set_user(u);
    }
    if args.no_new_privs {
        process.set_no_new_privileges(Some(true));
    }
    Ok(process)
}
