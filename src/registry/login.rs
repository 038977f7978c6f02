//! `isola login` / `isola logout`: registry credentials, checked against the
//! registry before they are stored, in docker's file format.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context, Result};
use isola_core::registry::reference::{normalise_registry, DOCKER_HUB};
use isola_core::registry::{AuthFiles, Credentials, Registry, RemoteRef};

use crate::args::{LoginArgs, LogoutArgs};
use crate::flags::options;

pub fn login(args: &LoginArgs) -> Result<()> {
    let name = normalise_registry(args.registry.as_deref().unwrap_or(DOCKER_HUB));
    let username = match &args.username {
        Some(u) => u.clone(),
        None => prompt("Username: ", true)?,
    };
    let password = match (&args.password, args.password_stdin) {
        (Some(p), _) => p.clone(),
        (None, true) => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from stdin")?;
            line.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => prompt("Password: ", false)?,
    };
    if username.is_empty() || password.is_empty() {
        bail!("a user name and a password are needed to log in to {name}");
    }
    let creds = Credentials { username, password };
    let opts = options(&args.registry_flags);
    // The API host of `name`, found as a pull would (Docker Hub's aliases).
    let host = RemoteRef::parse(&format!("{name}/x"))
        .map(|r| r.api_host().to_string())
        .unwrap_or_else(|_| name.clone());
    let reg = Registry::new(&name, &host, &opts)?.with_credentials(creds.clone());
    reg.check_login()
        .with_context(|| format!("logging in to {name}"))?;
    let path = opts.auth.store(&name, &creds)?;
    eprintln!("Login Succeeded (credentials kept in {})", path.display());
    Ok(())
}

pub fn logout(args: &LogoutArgs) -> Result<()> {
    let files = AuthFiles::locate(args.authfile.as_deref());
    if args.all {
        files.remove(None)?;
        eprintln!(
            "removed every registry's credentials from {}",
            files.write_to.display()
        );
        return Ok(());
    }
    let name = normalise_registry(args.registry.as_deref().unwrap_or(DOCKER_HUB));
    if !files.remove(Some(&name))? {
        bail!(
            "not logged in to {name} (no credentials for it in {})",
            files.write_to.display()
        );
    }
    eprintln!("Removed login credentials for {name}");
    Ok(())
}

/// Ask on the terminal; the password without echo.
fn prompt(label: &str, echo: bool) -> Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("no terminal to ask on: give --username, and the password with --password-stdin");
    }
    eprint!("{label}");
    let _ = std::io::stderr().flush();
    let saved = if echo {
        None
    } else {
        use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
        let saved = tcgetattr(&stdin).context("reading the terminal's settings")?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("turning echo off")?;
        Some(saved)
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(saved) = saved {
        let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &saved);
        eprintln!();
    }
    read.context("reading from the terminal")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
