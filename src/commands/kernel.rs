//! `isola kernel ls|add|default`: the guest kernels `--backend vm` boots,
//! kept in isola's kernel store, and the one /boot offers when none is.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use isola_core::Root;
use serde::Serialize;

use crate::backends::vm::{elf_notes, kernel, kernel_store};
use crate::output;

#[derive(clap::Subcommand, Debug)]
pub enum KernelCommand {
    /// List the stored kernels, then the one found in /boot
    ///
    /// DEFAULT marks the kernel `--backend vm` boots when neither --kernel nor
    /// ISOLA_KERNEL is given: the store's default, else /boot's.
    #[command(visible_alias = "list")]
    Ls {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Copy a kernel (an ELF vmlinux or a bzImage) into the store; the first
    /// one added becomes the default
    Add {
        /// The kernel file, e.g. /boot/vmlinuz-6.1.0-56-cloud-amd64
        path: PathBuf,
        /// Store it under this name (default: its file name): letters, digits,
        /// '.', '_' and '-', not starting with '.'
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
    },
    /// Make a stored kernel the one `--backend vm` boots by default
    Default {
        /// Kernel name, as `isola kernel ls` shows it
        name: String,
    },
}

/// One row of `isola kernel ls`.
#[derive(Serialize)]
struct Row {
    name: String,
    size: u64,
    default: bool,
    /// "store", or "/boot" for the kernel found there.
    source: &'static str,
    path: PathBuf,
    /// isola's PVM test kernel (scripts/build-kernel --pvm): for tests on
    /// PVM hosts, not for real work.
    pvm_test: bool,
}

pub fn run(root: &Root, cmd: &KernelCommand) -> Result<()> {
    let dir = root.dir();
    match cmd {
        KernelCommand::Ls { json } => ls(dir, *json),
        KernelCommand::Add { path, name } => {
            let before = kernel_store::default_name(dir).ok().flatten();
            let name = kernel_store::add(dir, path, name.as_deref())?;
            println!("{name}");
            if before.is_none() && kernel_store::default_name(dir)?.as_ref() == Some(&name) {
                eprintln!("{name} is the default kernel (the first one added)");
            }
            Ok(())
        }
        KernelCommand::Default { name } => {
            let name = kernel_store::set_default(dir, name)?;
            eprintln!("default kernel: {name}");
            Ok(())
        }
    }
}

fn ls(dir: &Path, json: bool) -> Result<()> {
    let stored = kernel_store::list(dir)?;
    // Even a default whose file is gone keeps /boot's kernel from booting.
    let has_default = kernel_store::default_name(dir)?.is_some();
    let mut rows: Vec<Row> = stored
        .into_iter()
        .map(|k| Row {
            name: k.name.to_string(),
            size: k.size,
            default: k.is_default,
            source: "store",
            pvm_test: elf_notes::file_has(&k.path, elf_notes::PVM_TEST_KERNEL),
            path: k.path,
        })
        .collect();
    if let Some(path) = kernel::in_boot() {
        let size = std::fs::metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        rows.push(Row {
            name: path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            size,
            // /boot's kernel is booted only when the store has no default.
            default: !has_default,
            source: "/boot",
            pvm_test: false,
            path,
        });
    }
    if let Some(k) = std::env::var_os("ISOLA_KERNEL").filter(|k| !k.is_empty()) {
        eprintln!(
            "ISOLA_KERNEL is set: --backend vm boots {} instead",
            Path::new(&k).display()
        );
    }
    if json {
        return output::json(&rows);
    }
    if rows.is_empty() {
        eprintln!("no guest kernel: add one with `isola kernel add PATH`");
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                output::size(r.size),
                if r.default { "yes" } else { "no" }.to_string(),
                r.source.to_string(),
                if r.pvm_test {
                    "PVM test kernel (tests only)"
                } else {
                    ""
                }
                .to_string(),
            ]
        })
        .collect();
    output::table(&["NAME", "SIZE", "DEFAULT", "SOURCE", "NOTE"], &table);
    Ok(())
}
