//! `isola pull|push|login|logout`: handed to `isola-registry`, beside this
//! binary, with the same arguments. The registry client (HTTP, TLS) lives
//! only there, so it adds nothing to the binary every `isola run` and
//! every shim is (docs/registry.md says what that saves).

use std::os::unix::process::CommandExt;

use anyhow::{Context, Result};

pub fn exec() -> Result<i32> {
    let me = std::env::current_exe().context("finding isola's own path")?;
    let helper = me.with_file_name("isola-registry");
    let err = std::process::Command::new(&helper)
        .args(std::env::args_os().skip(1))
        .exec();
    Err(err).with_context(|| {
        format!(
            "running {} (pull, push, login and logout live there; it is built and installed beside isola)",
            helper.display()
        )
    })
}
