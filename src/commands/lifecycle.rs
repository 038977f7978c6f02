//! The verbs of a detached sandbox's life, as docker has them: `create`
//! and `run -d` (a shim is started for it), `start`, `stop`, `restart`,
//! `kill` and `wait`, each by name, ID or unique ID prefix.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use isola_core::instance::{self, State, Status};
use isola_core::Root;

use crate::shim::client::{self, Conn};
use crate::shim::spawn::{self, Begin};
use crate::shim::wire::{Request, Response};

/// `isola create` (`start` false) and `isola run -d`: a shim makes the
/// sandbox from this command's own `run` arguments (it parses and checks
/// them itself); its ID is printed once it is created (and started).
pub fn create(root: &Root, start: bool, verbose: u8) -> Result<i32> {
    let id = isola_core::id::new_id().context("making a sandbox ID")?;
    let tokens = crate::cli::args_after_subcommand();
    let begin = if start { Begin::Run } else { Begin::Create };
    spawn::shim(root, &id, &tokens, begin, verbose)?;
    println!("{id}");
    Ok(0)
}

/// Run `each` for every sandbox given, printing what it returns; an error
/// is reported and the others still done, and makes the exit code 125.
fn for_each(
    root: &Root,
    ids: &[String],
    mut each: impl FnMut(&State) -> Result<Option<String>>,
) -> Result<i32> {
    let mut failed = false;
    for given in ids {
        let done = instance::find(root, given)
            .map_err(anyhow::Error::new)
            .and_then(|state| each(&state));
        match done {
            Ok(Some(line)) => println!("{line}"),
            Ok(None) => {}
            Err(e) => {
                eprintln!("isola: {e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed { 125 } else { 0 })
}

pub fn start(
    root: &Root,
    ids: &[String],
    attach: bool,
    interactive: bool,
    verbose: u8,
) -> Result<i32> {
    if attach && ids.len() > 1 {
        bail!("start -a takes one sandbox");
    }
    if attach {
        // Attached before it starts, so that none of its output is missed.
        let state = instance::find(root, &ids[0])?;
        let conn = made(root, &state, verbose)?;
        return super::attach::attach(root, &state, interactive, Some(conn));
    }
    for_each(root, ids, |state| {
        start_one(root, state, verbose)?;
        Ok(Some(shown(state)))
    })
}

/// What to print for a sandbox acted on: its name if it has one, else its
/// ID.
fn shown(state: &State) -> String {
    state.name.clone().unwrap_or_else(|| state.id.clone())
}

fn start_one(root: &Root, state: &State, verbose: u8) -> Result<()> {
    made(root, state, verbose)?.ask(&Request::Start, &[])?;
    Ok(())
}

/// A connection to its shim, with the sandbox created: a sandbox that
/// ended gets a new shim that makes it again from its kept config.
fn made(root: &Root, state: &State, verbose: u8) -> Result<Conn> {
    if let Some(conn) = client::connect_to(root, state)? {
        return Ok(conn);
    }
    if state.status.is_active() && state.status != Status::Dead {
        bail!("sandbox {} is already running", state.id)
    }
    let config = read_config(root, &state.id)?;
    spawn::shim(root, &state.id, &config.args, Begin::Again, verbose)?;
    client::connect_running(root, state)
}

fn read_config(root: &Root, id: &str) -> Result<crate::shim::Config> {
    let path = root.dir().join("instances").join(id).join("config.json");
    let bytes = std::fs::read(&path).with_context(|| {
        format!("sandbox {id} was run in the foreground: it has no config to start again (run it with -d or create it)")
    })?;
    serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))
}

pub fn stop(root: &Root, ids: &[String], time: u64) -> Result<i32> {
    for_each(root, ids, |state| {
        stop_one(root, state, time)?;
        Ok(Some(shown(state)))
    })
}

/// Stop it and wait until its shim is gone.
fn stop_one(root: &Root, state: &State, time: u64) -> Result<()> {
    let Some(conn) = client::connect_to(root, state)? else {
        return Ok(());
    };
    conn.ask(&Request::Stop { timeout: time }, &[])?;
    wait_gone(root, state, &conn)
}

/// Until the shim has closed its end and let go of the directory (or
/// restarted it, when the stop came during a back-off).
pub fn wait_gone(root: &Root, state: &State, conn: &Conn) -> Result<()> {
    while let Ok((_, _)) = conn.recv() {}
    wait_released(root, &state.id)
}

/// Until no shim holds the sandbox's directory: one whose workload ended
/// lets go of it moments after telling its end.
pub fn wait_released(root: &Root, id: &str) -> Result<()> {
    let dir = root.dir().join("instances").join(id);
    let deadline = Instant::now() + Duration::from_secs(30);
    while instance::is_live(&dir) {
        if Instant::now() > deadline {
            bail!("the shim of sandbox {id} did not end");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

pub fn restart(root: &Root, ids: &[String], time: u64, verbose: u8) -> Result<i32> {
    for_each(root, ids, |state| {
        stop_one(root, state, time)?;
        let state = instance::find(root, &state.id)?;
        start_one(root, &state, verbose)?;
        Ok(Some(shown(&state)))
    })
}

pub fn kill(root: &Root, ids: &[String], signal: &str) -> Result<i32> {
    let signal = parse_signal(signal)?;
    for_each(root, ids, |state| {
        let conn = client::connect_running(root, state)?;
        conn.ask(&Request::Signal { signal }, &[])?;
        Ok(Some(shown(state)))
    })
}

/// A signal as docker and kill(1) take it: KILL, SIGKILL or 9.
pub fn parse_signal(text: &str) -> Result<i32> {
    if let Ok(n) = text.parse::<i32>() {
        if nix::sys::signal::Signal::try_from(n).is_ok() {
            return Ok(n);
        }
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| {
            anyhow::anyhow!("unknown signal {text:?}: give a name (TERM, SIGKILL) or a number")
        })
}

pub fn wait(root: &Root, ids: &[String]) -> Result<i32> {
    for_each(root, ids, |state| {
        Ok(Some(wait_one(root, state)?.to_string()))
    })
}

/// The exit code of its (next) end.
pub fn wait_one(root: &Root, state: &State) -> Result<i32> {
    if let Some(conn) = client::connect_to(root, state)? {
        if let (Response::Exited { code, .. }, _) = conn.ask(&Request::Wait, &[])? {
            return Ok(code);
        }
    }
    // No shim: it ended already, its state says how.
    let state = instance::find(root, &state.id)?;
    match (state.status, state.exit_code) {
        (Status::Dead, _) => bail!(
            "sandbox {}'s shim is gone: its end is not known (`isola rm -f` cleans it)",
            state.id
        ),
        (_, Some(code)) => Ok(code),
        (Status::Created, None) => bail!("sandbox {} was never started", state.id),
        _ => bail!("sandbox {} has no exit code", state.id),
    }
}
