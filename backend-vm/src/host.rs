//! Which flavour of KVM this host offers (hardware, PVM or none), found from
//! /dev/kvm, /sys/module and /proc/cpuinfo without creating a VM, so it never hangs.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::Path;

use nix::errno::Errno;

/// The maker of the CPU's virtualization extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    Intel,
    Amd,
}

/// What /dev/kvm is backed by on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvmFlavour {
    /// VT-x or AMD-V through kvm_intel / kvm_amd.
    Hardware { vendor: Vendor },
    /// kvm_pvm: guest kernel code is emulated in software, so small guests
    /// run but an unmodified Linux kernel is far too slow (or dies on
    /// instructions such as xsave or cmpxchg16b).
    Pvm,
    /// No usable /dev/kvm; the reason says what to do.
    Unavailable { reason: String },
}

/// Detects the flavour of the running host.
pub fn detect() -> KvmFlavour {
    detect_in(Path::new("/"))
}

/// Detects the flavour of a host whose root is `root` (a fake tree in tests:
/// there a regular `dev/kvm` file that opens read-write stands for the device).
pub fn detect_in(root: &Path) -> KvmFlavour {
    // Read-write, as a monitor opens it: a readable-only node is no use to us.
    // std opens with O_CLOEXEC, so the fd never leaks into a workload.
    if let Err(e) = OpenOptions::new()
        .read(true)
        .write(true)
        .open(root.join("dev/kvm"))
    {
        return KvmFlavour::Unavailable {
            reason: open_failure(&e),
        };
    }
    let module = |name: &str| root.join("sys/module").join(name).exists();
    // PVM first: with both a vendor module and kvm_pvm loaded we cannot tell
    // which one serves /dev/kvm, and calling PVM "hardware" would send Linux
    // guests into a software hypervisor that crawls or crashes under them.
    if module("kvm_pvm") {
        return KvmFlavour::Pvm;
    }
    let flags = cpu_flags(root);
    let has = |flag: &str| flags.iter().any(|f| f == flag);
    // A vendor module built into the kernel may lack a /sys/module entry,
    // so the CPU flag alone (with /dev/kvm open) counts too.
    if module("kvm_intel") || has("vmx") {
        return KvmFlavour::Hardware {
            vendor: Vendor::Intel,
        };
    }
    if module("kvm_amd") || has("svm") {
        return KvmFlavour::Hardware {
            vendor: Vendor::Amd,
        };
    }
    KvmFlavour::Unavailable {
        reason: "/dev/kvm opens, but neither kvm_intel, kvm_amd nor kvm_pvm is loaded and \
                 the CPU shows no vmx or svm flag: load the module for this CPU"
            .to_string(),
    }
}

impl KvmFlavour {
    /// Short name for JSON and tables: "hardware", "pvm" or "none".
    pub fn as_str(&self) -> &'static str {
        match self {
            KvmFlavour::Hardware { .. } => "hardware",
            KvmFlavour::Pvm => "pvm",
            KvmFlavour::Unavailable { .. } => "none",
        }
    }

    /// One sentence for people.
    pub fn describe(&self) -> String {
        match self {
            KvmFlavour::Hardware { vendor } => format!("hardware KVM ({vendor})"),
            KvmFlavour::Pvm => "PVM (kvm_pvm): a software hypervisor; small guests run, \
                                an unmodified Linux kernel does not"
                .to_string(),
            KvmFlavour::Unavailable { reason } => reason.clone(),
        }
    }

    /// Whether isola's own monitor can boot a Linux guest here at a useful speed.
    pub fn can_boot_linux(&self) -> bool {
        matches!(self, KvmFlavour::Hardware { .. })
    }
}

impl std::fmt::Display for Vendor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Vendor::Intel => "Intel VT-x",
            Vendor::Amd => "AMD-V",
        })
    }
}

impl std::fmt::Display for KvmFlavour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Why /dev/kvm did not open, as a sentence that says what to do.
fn open_failure(e: &io::Error) -> String {
    match e.raw_os_error().map(Errno::from_raw) {
        Some(Errno::ENOENT) => "no /dev/kvm: load kvm_intel or kvm_amd \
                               (or enable virtualization in the firmware)"
            .to_string(),
        Some(Errno::EACCES | Errno::EPERM) => {
            "no permission to open /dev/kvm: add the user to the kvm group or run as root"
                .to_string()
        }
        // The node exists but no module serves it.
        Some(Errno::ENXIO | Errno::ENODEV) => {
            "/dev/kvm exists but no KVM module serves it: load kvm_intel or kvm_amd".to_string()
        }
        _ => format!("cannot open /dev/kvm ({e}): check that a KVM module is loaded"),
    }
}

/// The CPU flags of the first processor in /proc/cpuinfo (none if unreadable).
fn cpu_flags(root: &Path) -> Vec<String> {
    let text = fs::read_to_string(root.join("proc/cpuinfo")).unwrap_or_default();
    text.lines()
        .filter_map(|line| line.split_once(':'))
        // Exactly "flags": newer kernels add a "vmx flags" line of VMX features.
        .find(|(key, _)| key.trim() == "flags")
        .map(|(_, v)| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fake host root with /dev/kvm (if `kvm`), the given modules and flags.
    fn host(kvm: bool, modules: &[&str], flags: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = |rel: &str| -> PathBuf { dir.path().join(rel) };
        fs::create_dir_all(p("dev")).unwrap();
        fs::create_dir_all(p("proc")).unwrap();
        if kvm {
            fs::write(p("dev/kvm"), "").unwrap();
        }
        for m in modules {
            fs::create_dir_all(p("sys/module").join(m)).unwrap();
        }
        let cpuinfo = format!(
            "processor\t: 0\nvendor_id\t: x\nflags\t\t: fpu sse2 {flags}\n\
             vmx flags\t: vnmi ept\n\nprocessor\t: 1\nflags\t\t: fpu\n"
        );
        fs::write(p("proc/cpuinfo"), cpuinfo).unwrap();
        dir
    }

    #[test]
    fn intel() {
        let h = host(true, &["kvm", "kvm_intel"], "vmx hypervisor");
        let f = detect_in(h.path());
        assert_eq!(
            f,
            KvmFlavour::Hardware {
                vendor: Vendor::Intel
            }
        );
        assert_eq!(f.as_str(), "hardware");
        assert!(f.can_boot_linux());
        assert_eq!(f.describe(), "hardware KVM (Intel VT-x)");
    }

    #[test]
    fn amd() {
        let h = host(true, &["kvm", "kvm_amd"], "svm");
        let f = detect_in(h.path());
        assert_eq!(
            f,
            KvmFlavour::Hardware {
                vendor: Vendor::Amd
            }
        );
        assert!(f.can_boot_linux());
    }

    #[test]
    fn builtin_vendor_module_is_found_by_its_flag() {
        let h = host(true, &["kvm"], "svm");
        assert_eq!(
            detect_in(h.path()),
            KvmFlavour::Hardware {
                vendor: Vendor::Amd
            }
        );
    }

    #[test]
    fn pvm() {
        let h = host(true, &["kvm", "kvm_pvm"], "hypervisor");
        let f = detect_in(h.path());
        assert_eq!(f, KvmFlavour::Pvm);
        assert_eq!(f.as_str(), "pvm");
        assert!(!f.can_boot_linux());
        assert!(f.describe().contains("kvm_pvm"), "{}", f.describe());
    }

    #[test]
    fn pvm_wins_when_both_are_loaded() {
        let h = host(true, &["kvm", "kvm_intel", "kvm_pvm"], "vmx");
        assert_eq!(detect_in(h.path()), KvmFlavour::Pvm);
    }

    #[test]
    fn no_dev_kvm() {
        let h = host(false, &["kvm", "kvm_intel"], "vmx");
        let f = detect_in(h.path());
        assert_eq!(f.as_str(), "none");
        assert!(!f.can_boot_linux());
        assert!(f.describe().starts_with("no /dev/kvm: load"), "{f}");
    }

    #[test]
    fn dev_kvm_without_any_flavour() {
        let h = host(true, &[], "");
        let f = detect_in(h.path());
        assert_eq!(f.as_str(), "none");
        assert!(f.describe().contains("neither"), "{f}");
    }

    #[test]
    fn open_failures_say_what_to_do() {
        let denied = open_failure(&io::Error::from_raw_os_error(Errno::EACCES as i32));
        assert!(denied.contains("kvm group"), "{denied}");
        let missing = open_failure(&io::Error::from_raw_os_error(Errno::ENOENT as i32));
        assert!(missing.contains("kvm_intel or kvm_amd"), "{missing}");
    }

    #[test]
    fn the_real_host_is_detected_consistently() {
        let f = detect();
        eprintln!("this host: {} ({})", f.as_str(), f.describe());
        let opens = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        if !opens {
            assert_eq!(f.as_str(), "none");
        } else if Path::new("/sys/module/kvm_pvm").exists() {
            assert_eq!(f, KvmFlavour::Pvm);
        } else {
            assert_ne!(f.as_str(), "pvm");
        }
        assert_eq!(f.can_boot_linux(), f.as_str() == "hardware");
    }
}
