//! Commands carried out by a binary of their own, beside this one, with
//! the same arguments: `pull`, `push`, `login` and `logout` by
//! isola-registry (HTTP and TLS), `build` by isola-build (the Dockerfile
//! parser, archives, the layer writer). Their code then adds nothing to
//! the binary every `isola run` and every shim is (docs/registry.md and
//! docs/build.md say what that saves).

use std::os::unix::process::CommandExt;

use anyhow::{Context, Result};

/// Replace this process with `helper`, given isola's own arguments.
pub fn exec(helper: &str, what: &str) -> Result<i32> {
    let me = std::env::current_exe().context("finding isola's own path")?;
    let helper = me.with_file_name(helper);
    let err = std::process::Command::new(&helper)
        .args(std::env::args_os().skip(1))
        .exec();
    Err(err).with_context(|| {
        format!(
            "running {} ({what} live there; it is built and installed beside isola)",
            helper.display()
        )
    })
}
