//! `isola vm boot`: boot a kernel directly on isola's own KVM monitor, with
//! no image and no isola-init: COM1 on stdout (stdin with -i), COM2 on
//! stderr, and isola exits with what the guest writes to the exit port. For
//! seeing and measuring the monitor alone (the test guest, a custom kernel).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use isola_core::volume::parse_size;

use crate::backends::vm::kvm::{self, GuestIo, Protocol, VmConfig};

#[derive(clap::Subcommand, Debug)]
pub enum VmCommand {
    /// Boot a kernel on isola's monitor and exit with its exit-port status
    Boot(BootArgs),
}

#[derive(clap::Args, Debug)]
pub struct BootArgs {
    /// An ELF vmlinux (entered through its PVH note if it has one) or a bzImage
    pub kernel: PathBuf,
    /// newc initramfs archives, unpacked in the order given
    #[arg(long, value_name = "FILE")]
    pub initrd: Vec<PathBuf>,
    /// The kernel command line
    #[arg(long, default_value = "", value_name = "CMDLINE")]
    pub append: String,
    /// Guest memory, e.g. 128m or 1g
    #[arg(long, default_value = "128m", value_name = "SIZE")]
    pub memory: String,
    /// vCPUs
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub cpus: u8,
    /// Use Linux's 64-bit boot protocol even if the kernel has a PVH note
    #[arg(long)]
    pub linux64: bool,
    /// Forward stdin to COM1
    #[arg(short, long)]
    pub interactive: bool,
    /// Stop the guest after this many seconds
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
}

pub fn run(cmd: &VmCommand) -> Result<i32> {
    let VmCommand::Boot(args) = cmd;
    let mut initrd = Vec::new();
    for path in &args.initrd {
        initrd.extend(
            std::fs::read(path)
                .with_context(|| format!("reading the initrd {}", path.display()))?,
        );
    }
    let memory = parse_size(&args.memory).with_context(|| format!("--memory {}", args.memory))?;
    let timeout = match args.timeout {
        Some(s) if !(s > 0.0 && s.is_finite()) => {
            bail!("--timeout must be a positive number of seconds")
        }
        Some(s) => Some(Duration::from_secs_f64(s)),
        None => None,
    };
    let config = VmConfig {
        kernel: args.kernel.clone(),
        initrd: (!args.initrd.is_empty()).then_some(initrd),
        cmdline: args.append.clone(),
        memory_bytes: memory,
        vcpus: args.cpus,
        protocol: if args.linux64 {
            Protocol::Linux64
        } else {
            Protocol::Auto
        },
        input_after_mark: None,
        timeout,
        deadline: Default::default(),
        disks: Vec::new(),
        net: None,
        vsock: None,
        console: false,
    };
    let io = GuestIo {
        com1_out: Box::new(std::io::stdout()),
        com2_out: Box::new(std::io::stderr()),
        com1_in: args
            .interactive
            .then(|| Box::new(std::io::stdin()) as Box<dyn std::io::Read + Send>),
        com2_in: None,
        on_mark: Vec::new(),
    };
    let exit = kvm::run(&config, io).context("running the guest on isola's monitor")?;
    match exit.status {
        Some(code) => Ok(i32::from(code)),
        None => bail!("the guest reset the machine (i8042) without writing an exit status"),
    }
}
