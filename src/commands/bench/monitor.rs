//! `isola bench monitor`: isola's KVM monitor alone, booting the test guest
//! to its exit, against QEMU microvm on the same guest.

use anyhow::{bail, Context, Result};
use isola_bench::peers;
use isola_bench::startup::Contender;
use isola_core::Root;

use super::timing::{measure, print_results};
use super::{isola_cli, MonitorArgs};
use crate::backends::vm::QEMU;

pub fn run(root: &Root, args: &MonitorArgs) -> Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if !args.guest.is_file() {
        bail!(
            "no test guest at {}: build it with `make testguest`, or give --guest",
            args.guest.display()
        );
    }
    let memory = isola_core::volume::parse_size(&args.memory)
        .with_context(|| format!("--memory {:?}", args.memory))?;
    let qemu = if args.no_qemu {
        None
    } else if peers::found(QEMU) {
        Some(QEMU)
    } else {
        bail!(
            "{} is not installed: install qemu-system-x86 or pass --no-qemu",
            QEMU
        );
    };
    let contenders: Vec<Contender> =
        peers::monitor_contenders(&isola_cli(root)?, &args.guest, memory >> 20, qemu)
            .into_iter()
            .map(|(_, c)| c)
            .collect();
    let results = measure(&contenders, args.runs, args.warmup);
    print_results(&results, "monitor-qemu", "VS QEMU", args.json)
}
