//! isola's KVM monitor under the real /dev/kvm, with the project's own test
//! guest (backend-vm/testguest, built by `make`) booted by Linux's 64-bit
//! boot protocol: what it reads from the zero page, what it writes on COM1
//! and COM2, COM1 input, and its exit status.

use std::path::PathBuf;
use std::time::Duration;

use isola_test_support::{host_has, Capture};
use isola_vm::guest_exit::{Failure, GuestExit, GuestFailed};
use isola_vm::kvm::{self, GuestIo, VmConfig};

fn guest() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testguest/target/x86_64-unknown-none/release/isola-testguest");
    let built = path.exists();
    host_has(
        &format!("the test guest `make test` builds ({})", path.display()),
        built,
    )
    .then_some(path)
}

fn kvm_usable() -> bool {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => true,
        Err(e) => host_has(
            &format!("/dev/kvm to open (here: {e}; run as root on a host with KVM)"),
            false,
        ),
    }
}

/// A boot of `kernel` with no initrd, by the default protocol, stopped
/// after 20 s at most.
fn config(kernel: PathBuf, cmdline: &str, mib: u64, vcpus: u8) -> VmConfig {
    VmConfig {
        kernel,
        initrd: None,
        cmdline: cmdline.into(),
        memory_bytes: mib << 20,
        vcpus,
        protocol: kvm::Protocol::Auto,
        input_after_mark: None,
        timeout: Some(Duration::from_secs(20)),
        deadline: Default::default(),
        disks: Vec::new(),
        net: None,
        vsock: None,
        console: false,
    }
}

/// UARTs that lead nowhere.
fn silent() -> GuestIo {
    GuestIo {
        com1_out: Box::new(std::io::sink()),
        com2_out: Box::new(std::io::sink()),
        com1_in: None,
        com2_in: None,
        on_mark: Vec::new(),
    }
}

/// A boot that ended: how, and where the monitor put things.
#[derive(Clone)]
struct Ended {
    exit: GuestExit,
    loaded: kvm::Loaded,
}

struct Booted {
    outcome: Result<Ended, kvm::VmError>,
    com1: String,
    com2: String,
}

impl Booted {
    /// The outcome of a boot that must have worked; COM1 shows why if not.
    fn ok(&self) -> Ended {
        match &self.outcome {
            Ok(o) => o.clone(),
            Err(e) => panic!("{e}\nCOM1:\n{}", self.com1),
        }
    }
}

/// Bytes the host sends the guest, and on which UART.
#[derive(Clone, Copy)]
enum Input {
    Com1(&'static [u8]),
    Com2(&'static [u8]),
}

fn boot(
    cmdline: &str,
    initrd: Option<&[u8]>,
    input: Option<Input>,
    mib: u64,
    vcpus: u8,
) -> Option<Booted> {
    boot_with(kvm::Protocol::Auto, cmdline, initrd, input, mib, vcpus)
}

fn boot_with(
    protocol: kvm::Protocol,
    cmdline: &str,
    initrd: Option<&[u8]>,
    input: Option<Input>,
    mib: u64,
    vcpus: u8,
) -> Option<Booted> {
    let kernel = guest()?;
    if !kvm_usable() {
        return None;
    }
    let (com1, com2) = (Capture::default(), Capture::default());
    let config = VmConfig {
        initrd: initrd.map(<[u8]>::to_vec),
        protocol,
        ..config(kernel, cmdline, mib, vcpus)
    };
    let io = GuestIo {
        com1_out: Box::new(com1.clone()),
        com2_out: Box::new(com2.clone()),
        com1_in: match input {
            Some(Input::Com1(b)) => Some(Box::new(b) as Box<dyn std::io::Read + Send>),
            _ => None,
        },
        com2_in: match input {
            Some(Input::Com2(b)) => Some(Box::new(b) as Box<dyn std::io::Read + Send>),
            _ => None,
        },
        on_mark: Vec::new(),
    };
    let outcome = kvm::Machine::build(&config, io).and_then(|machine| {
        let loaded = machine.loaded;
        Ok(Ended {
            exit: machine.run()?,
            loaded,
        })
    });
    Some(Booted {
        outcome,
        com1: com1.text(),
        com2: com2.text(),
    })
}

#[test]
fn boots_reads_its_boot_info_writes_both_uarts_and_exits_with_its_status() {
    let initrd = b"ISOLA-INITRD\x01\x02 and more bytes after the head";
    let Some(b) = boot("console=ttyS0 exit=42 hello", Some(initrd), None, 128, 1) else {
        return;
    };
    let outcome = b.ok();
    assert_eq!(outcome.exit.status, Some(42), "COM1:\n{}", b.com1);
    let lines: Vec<&str> = b.com1.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"isola-testguest: started"),
        "{}",
        b.com1
    );
    // The e820 map isola wrote: low RAM below the EBDA, then 1 MiB to the end.
    assert!(lines.contains(&"e820: 2"), "{}", b.com1);
    assert!(lines.contains(&"e820 0x0 0x9fc00 1"), "{}", b.com1);
    let high = format!("e820 0x100000 {:#x} 1", (128u64 << 20) - 0x10_0000);
    assert!(lines.contains(&high.as_str()), "{}", b.com1);
    assert!(
        lines.contains(&"cmdline: console=ttyS0 exit=42 hello"),
        "{}",
        b.com1
    );
    let (addr, size) = outcome.loaded.initrd.expect("initrd placed");
    assert_eq!(size, initrd.len() as u64);
    assert_eq!(addr % 4096, 0);
    let initrd_line = format!("initrd: {addr:#x} {size}");
    assert!(lines.contains(&initrd_line.as_str()), "{}", b.com1);
    assert!(
        lines.contains(&"initrd-head: ISOLA-INITRD.. a"),
        "{}",
        b.com1
    );
    assert!(lines.contains(&"isola-testguest: exit 42"), "{}", b.com1);
    assert_eq!(b.com2, "isola-testguest: stderr works\n");
}

#[test]
fn com1_input_reaches_the_guest() {
    let Some(b) = boot(
        "echo",
        None,
        Some(Input::Com1(b"ping from the host\n")),
        64,
        1,
    ) else {
        return;
    };
    let outcome = b.ok();
    assert_eq!(outcome.exit.status, Some(0));
    assert!(b.com1.contains("initrd: 0x0 0\n"), "{}", b.com1);
    assert!(b.com1.contains("echo: ready\n"), "{}", b.com1);
    assert!(b.com1.contains("echo: ping from the host\n"), "{}", b.com1);
}

#[test]
fn com2_input_reaches_the_guest() {
    // COM2's receive side is isola-init's control channel: signal bytes.
    let Some(b) = boot("echo2", None, Some(Input::Com2(b"\x02\x0f\n")), 64, 1) else {
        return;
    };
    assert_eq!(b.ok().exit.status, Some(0));
    assert!(b.com1.contains("echo2: \x02\x0f\n"), "{}", b.com1);
}

#[test]
fn bad_kernels_and_sizes_are_refused_in_one_sentence() {
    if !kvm_usable() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let not_a_kernel = dir.path().join("notes.txt");
    std::fs::write(&not_a_kernel, b"this is not a kernel").unwrap();
    let run = |kernel: PathBuf, mib: u64, initrd: Option<Vec<u8>>| {
        let config = VmConfig {
            initrd,
            ..config(kernel, "", mib, 1)
        };
        kvm::run(&config, silent()).unwrap_err().to_string()
    };
    let e = run(dir.path().join("missing"), 64, None);
    assert!(e.contains("cannot open the kernel"), "{e}");
    let e = run(not_a_kernel, 64, None);
    assert!(e.contains("neither an ELF vmlinux nor a bzImage"), "{e}");
    let e = run(dir.path().join("missing"), 1, None);
    assert!(e.contains("out of range"), "{e}");
    if let Some(kernel) = guest() {
        let e = run(kernel, 16, Some(vec![0; 20 << 20]));
        assert!(e.contains("do not fit"), "{e}");
    }
}

#[test]
fn the_other_vcpus_stop_when_the_boot_cpu_exits() {
    // The APs are never started here: they wait in KVM_RUN for a SIPI, and
    // must be kicked out of it when the boot CPU writes the exit port.
    let Some(b) = boot("exit=3", None, None, 64, 4) else {
        return;
    };
    let outcome = b.ok();
    assert_eq!(outcome.exit.status, Some(3));
}

#[test]
fn a_guest_that_runs_too_long_is_stopped_at_the_deadline() {
    let Some(kernel) = guest() else {
        return;
    };
    if !kvm_usable() {
        return;
    }
    // "echo" with no input: the guest polls COM1 for seconds.
    let config = VmConfig {
        timeout: Some(Duration::from_millis(300)),
        ..config(kernel, "echo", 64, 2)
    };
    let err = kvm::run(&config, silent()).unwrap_err();
    assert!(
        matches!(
            err,
            kvm::VmError::Guest(GuestFailed {
                what: Failure::Timeout(_),
                ..
            })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("did not finish within"), "{err}");
}

#[test]
fn a_deadline_set_while_the_guest_runs_stops_it() {
    let Some(kernel) = guest() else {
        return;
    };
    if !kvm_usable() {
        return;
    }
    // As after a SIGTERM that a guest without isola-init cannot take.
    let config = config(kernel, "echo", 64, 1);
    let deadline = config.deadline.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        deadline.arm(Duration::from_millis(100));
    });
    let err = kvm::run(&config, silent()).unwrap_err();
    assert!(
        matches!(
            err,
            kvm::VmError::Guest(GuestFailed {
                what: Failure::Unresponsive(_),
                ..
            })
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("of the signal isola passed on"),
        "{err}"
    );
}

#[test]
fn a_timer_interrupt_arrives_through_the_in_kernel_irqchip() {
    let Some(b) = boot("timer", None, None, 64, 1) else {
        return;
    };
    let outcome = b.ok();
    assert_eq!(outcome.exit.status, Some(0));
    assert!(b.com1.contains("timer: 3 ticks\n"), "{}", b.com1);
}

#[test]
fn the_boot_cpu_starts_the_others_it_finds_in_the_mp_table() {
    let Some(b) = boot("smp exit=7", None, None, 64, 3) else {
        return;
    };
    let outcome = b.ok();
    assert_eq!(outcome.exit.status, Some(7));
    for line in ["smp: 3 cpus", "smp: cpu 1 started", "smp: cpu 2 started"] {
        assert!(b.com1.lines().any(|l| l == line), "{line}\n{}", b.com1);
    }
    // One vCPU: the table lists only the boot CPU.
    let Some(b) = boot("smp", None, None, 64, 1) else {
        return;
    };
    assert!(b.com1.contains("smp: 1 cpus\n"), "{}", b.com1);
    assert!(!b.com1.contains("smp: cpu"), "{}", b.com1);
}

#[test]
fn pvh_and_the_64_bit_boot_protocol_give_the_guest_the_same_facts() {
    let initrd = b"SAME-FACTS-EITHER-WAY";
    let cmdline = "exit=9 both ways";
    let Some(pvh) = boot_with(kvm::Protocol::Auto, cmdline, Some(initrd), None, 96, 1) else {
        return;
    };
    let Some(zero_page) = boot_with(kvm::Protocol::Linux64, cmdline, Some(initrd), None, 96, 1)
    else {
        return;
    };
    for b in [&pvh, &zero_page] {
        assert_eq!(b.ok().exit.status, Some(9), "{}", b.com1);
    }
    // The ELF has a PVH note: by default isola enters it there, as Linux's vmlinux.
    assert!(pvh.ok().loaded.pvh);
    assert!(pvh.com1.contains("boot: pvh\n"), "{}", pvh.com1);
    assert!(!zero_page.ok().loaded.pvh);
    assert!(
        zero_page.com1.contains("boot: linux64\n"),
        "{}",
        zero_page.com1
    );
    let facts = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.starts_with("boot: "))
            .map(String::from)
            .collect()
    };
    assert_eq!(facts(&pvh.com1), facts(&zero_page.com1));
}

#[test]
fn the_boot_timer_notes_each_mark_with_its_time() {
    let Some(b) = boot("exit=0", None, None, 64, 1) else {
        return;
    };
    let marks = b.ok().exit.marks;
    // The test guest writes 1 first thing and 2 right before it exits.
    let kinds: Vec<u8> = marks.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, [1, 2], "{marks:?}");
    assert!(marks[0].1 < marks[1].1, "{marks:?}");
}

#[test]
fn a_quiet_guest_exits_at_once_through_either_entry() {
    // `quiet` is what the monitor benchmark boots: no serial output, only
    // the status; it must still find its command line through both entries.
    for protocol in [kvm::Protocol::Auto, kvm::Protocol::Linux64] {
        let Some(b) = boot_with(protocol, "quiet exit=5", None, None, 64, 1) else {
            return;
        };
        assert_eq!(b.ok().exit.status, Some(5), "{protocol:?}");
        assert_eq!((b.com1.as_str(), b.com2.as_str()), ("", ""), "{protocol:?}");
    }
}
