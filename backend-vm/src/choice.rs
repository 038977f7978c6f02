//! The VM backend's first stage: which kernel, which monitor, how many
//! vCPUs and whether the guest runs emulated, with every refusal about them
//! (said before anything is made).

use std::path::{Path, PathBuf};

use isola_core::backend::BackendError;
use isola_core::spec::RunSpec;

use crate::host::{self, KvmFlavour};
use crate::kernel::{self, elf_notes, format as kernel_format};
use crate::monitor::{qemu, Monitor};

/// The guest memory when the spec sets no limit.
pub const DEFAULT_MEMORY: u64 = 256 << 20;

/// Which monitor runs the guest (`--vmm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vmm {
    Isola,
    Qemu,
    /// isola's monitor where it can boot the kernel here, else QEMU (on a
    /// software CPU where this host's KVM cannot run Linux).
    Auto,
}

/// How a row booting isola's PVM test kernel on isola's monitor is labelled.
pub const PVM_EMULATED: &str =
    "isola monitor + PVM test kernel: a software hypervisor, not KVM speed";
/// How a VM on QEMU with a software CPU is labelled.
pub const TCG_EMULATED: &str = "qemu-tcg: emulated, not KVM speed";

/// The first stage: which kernel, which monitor, how many vCPUs, and
/// whether it runs emulated; every refusal about them.
pub struct Choice {
    pub kernel: PathBuf,
    pub format: kernel_format::Format,
    pub pvm_kernel: bool,
    pub vmm: Vmm,
    /// Whether QEMU uses KVM.
    pub qemu_kvm: bool,
    pub emulated: Option<&'static str>,
    pub vcpus: u8,
    pub memory: u64,
}

impl Choice {
    /// The monitor chosen, to run the guest.
    pub fn monitor(&self) -> Box<dyn Monitor> {
        if self.pvm_kernel {
            tracing::warn!("{PVM_KERNEL_NOTICE}");
        }
        match self.vmm {
            Vmm::Qemu => Box::new(qemu::Qemu { kvm: self.qemu_kvm }),
            _ => Box::new(crate::monitor::Isola),
        }
    }

    /// Choose for `spec` what the flags (`--vmm`, `--kernel`) and the host
    /// allow; `state_dir` holds the kernel store.
    pub fn of(
        vmm: Vmm,
        kernel: Option<&Path>,
        state_dir: &Path,
        spec: &RunSpec,
    ) -> Result<Choice, BackendError> {
        let flavour = host::detect();
        let kernel = kernel::find(state_dir, kernel)?;
        // Anything else would only make the monitor fail later in its own words.
        let Some(format) = kernel_format::file_format(&kernel) else {
            return Err(BackendError::unavailable(format!(
                "{} is not a kernel isola can boot (neither an ELF vmlinux nor a bzImage): give one with --kernel",
                kernel.display()
            )));
        };
        let pvm_kernel = elf_notes::file_has(&kernel, elf_notes::PVM_TEST_KERNEL);
        let isola_boots = flavour.can_boot_linux() || (flavour == KvmFlavour::Pvm && pvm_kernel);
        let vmm = match vmm {
            Vmm::Auto if isola_boots => Vmm::Isola,
            Vmm::Auto if pvm_kernel => {
                return Err(BackendError::unavailable(format!(
                    "{} is isola's PVM test kernel, which boots only on isola's monitor on a \
                     PVM host or with hardware KVM",
                    kernel.display()
                )))
            }
            Vmm::Auto => Vmm::Qemu,
            Vmm::Isola if !isola_boots => {
                return Err(BackendError::unavailable(format!(
                    "isola's monitor cannot boot a Linux guest on this host: {}; use --vmm qemu \
                     (a software CPU here: slow), --backend container, or a host with hardware KVM{}",
                    flavour.describe(),
                    if flavour == KvmFlavour::Pvm {
                        " (for tests, isola's PVM test kernel boots here: build it with \
                         `scripts/build-kernel --pvm` and give it with --kernel)"
                    } else {
                        ""
                    }
                )))
            }
            other => other,
        };
        let emulated = match vmm {
            Vmm::Qemu if !flavour.can_boot_linux() => Some(TCG_EMULATED),
            Vmm::Isola if !flavour.can_boot_linux() => Some(PVM_EMULATED),
            _ => None,
        };
        let vcpus = spec
            .limits
            .cpus
            .map_or(1, |c| c.ceil().clamp(1.0, 32.0) as u8);
        if pvm_kernel && flavour == KvmFlavour::Pvm && vmm == Vmm::Isola && vcpus > 1 {
            // Its second vCPU never leaves the real-mode trampoline under
            // PVM's emulator (docs/kernel.md): refuse rather than hang.
            return Err(BackendError::unavailable(format!(
                "isola's PVM test kernel runs on one vCPU on a PVM host (a second one never \
                 starts there): give --cpus 1 or less, not {vcpus}"
            )));
        }
        Ok(Choice {
            kernel,
            format,
            pvm_kernel,
            vmm,
            qemu_kvm: flavour.can_boot_linux(),
            emulated,
            vcpus,
            memory: spec.limits.memory.unwrap_or(DEFAULT_MEMORY),
        })
    }
}

/// What a user who boots isola's PVM test kernel is told.
pub const PVM_KERNEL_NOTICE: &str = "this kernel is isola's PVM test kernel: patched to boot on \
     PVM hosts for isola's tests, slow (each guest syscall takes a page fault) and not for real \
     work; on hardware KVM use the kernel `scripts/build-kernel` builds";
