//! isola-init: the static PID 1 of isola's VM guests. It mounts the basic
//! filesystems, reads the run spec, runs the workload on the UARTs, forwards
//! the host's signals, reaps orphans and reports the exit status on 0xf4.
//!
//! The host-side protocol: COM1 (ttyS0) is the workload's stdout (and stdin
//! when the spec says so); COM2 (ttyS1) is its stderr, and each byte the host
//! sends on COM2 is a signal number (1..=64) for the workload's process group
//! (with `-t`, 0xfe starts a window size; 0xfd is a parked start's go-ahead,
//! see park.rs).
//! With an agent channel (agent.rs), it also starts the host's `isola
//! exec` processes while the workload runs. Where the spec says
//! `stdio_ports`, the workload's stdout and stderr are the virtio-serial
//! ports `isola.stdout` and `isola.stderr` instead (stdio_ports.rs).
//! The status byte written to port 0xf4 is the exit code, 128+N for signal N,
//! 137 for an OOM kill (with `isola-init: the workload ran out of memory` on
//! COM2), 125 when isola-init fails (`isola-init: <what failed>: <why>` on
//! COM2), 126/127 when the command cannot run / is not found.
//!
//! Trying it by hand under QEMU's TCG (tests/vm_qemu.rs does this through
//! `isola run --backend vm --vmm qemu`; docs/vm.md has the whole protocol):
//!
//! ```sh
//! RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" cargo build --release -p isola-init \
//!   --target x86_64-unknown-linux-gnu
//! mkdir -p /tmp/g/bin /tmp/g/.isola && cd /tmp/g && cp /bin/busybox bin/
//! for a in $(bin/busybox --list); do [ -e bin/$a ] || ln -s busybox bin/$a; done
//! cp /work/main/target/x86_64-unknown-linux-gnu/release/isola-init .isola/init
//! echo '{"version":1,"args":["sh","-c","echo hi; id; exit 42"],"env":[],"cwd":"/w",
//!   "uid":1000,"gid":1000,"groups":[],"hostname":"box","read_only":false,
//!   "pids_limit":null,"stdin":false,"tty":false}' > .isola/spec.json
//! find . | cpio -o -H newc > /tmp/g.cpio
//! qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=on,isa-serial=on -accel tcg \
//!   -cpu max -m 256 -nodefaults -no-user-config -display none -serial file:/tmp/com1 \
//!   -chardev file,id=com2,path=/tmp/com2 -device isa-serial,chardev=com2,index=1 \
//!   -device isa-debug-exit,iobase=0xf4,iosize=0x04 -initrd /tmp/g.cpio \
//!   -kernel /boot/vmlinuz-6.1.0-56-cloud-amd64 \
//!   -append "rdinit=/.isola/init init=/.isola/init console=ttyS1 quiet loglevel=1 \
//!     panic=-1 edd=off tsc_early_khz=2500000"
//! echo $?   # (status << 1 | 1) mod 256: 85 for 42
//! ```
//!
//! microvm makes one ISA UART only, hence the explicit COM2 device. Without
//! HPET or PM timer, TCG's TSC calibration against the PIT fails about half
//! the time and the kernel hangs: `tsc_early_khz=` (the host's TSC rate, which
//! TCG passes through) avoids it; `-M q35` needs no such hint. To send signals,
//! make COM2 `-chardev pipe,id=com2,path=/tmp/c2` (fifos /tmp/c2.in, /tmp/c2.out)
//! and write single bytes to /tmp/c2.in, e.g. `printf '\x0f'` for SIGTERM.

#![cfg_attr(not(test), no_main)]
// Unit tests run without the C entry point that uses the rest.
#![cfg_attr(test, allow(dead_code))]

mod agent;
mod agent_channel;
mod agent_session;
mod cgroup;
mod child;
mod command;
mod disks;
mod fail;
mod guest_stats;
mod mounts;
mod net;
mod park;
mod report;
mod rootfs;
mod signals;
mod spec;
mod status;
mod stdin;
mod stdio_ports;
mod stop;
mod supervise;
mod tty;
mod virtio_ports;

use std::fs::File;
use std::os::fd::AsRawFd;

use nix::sys::signal::{sigprocmask, SigmaskHow};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::ForkResult;

use fail::Failure;
use isola_guest_spec::ports::Mark;

/// The C entry point, not Rust's `fn main`: the standard library's start-up
/// aborts when fds 0-2 are closed and /dev/null cannot be opened (an image
/// with no /dev), and sets SIGPIPE to be ignored, which the workload would
/// inherit. PID 1 must neither abort nor leak that.
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    let (status, ending) = match start() {
        Ok(mut running) => {
            let ending = running.ports.take();
            (wait(running), ending)
        }
        Err(failure) => {
            // Empty for a parked guest a signal ended: nothing failed.
            if !failure.message.is_empty() {
                report::say(&failure.message);
            }
            (failure.code, None)
        }
    };
    report::finish(status, || {
        if let Some((ports, marker)) = ending {
            stdio_ports::end(ports, &marker);
        }
    })
}

/// The workload, started.
struct Running {
    pid: libc::pid_t,
    signals_in: SignalFd,
    ttys: tty::Ttys,
    stdin: Option<stdin::Relay>,
    /// COM1 is the workload's terminal (-t): window sizes go to it.
    terminal: bool,
    /// The host's COM2 messages so far (a parked start read some).
    parser: signals::ControlParser,
    oom_kills_before: u64,
    /// The agent channel's server, when the guest has the channel.
    agent: Option<agent::Agent>,
    /// The stdio ports and the marker that ends them, when the host asked
    /// for it (see `stdio_ports::end`).
    ports: Option<(stdio_ports::StdioPorts, String)>,
}

/// Everything up to the workload's exec, in order.
fn start() -> Result<Running, Failure> {
    report::mark(Mark::InitUp);
    mounts::kernel_filesystems()?;
    // Raw as early as possible: until then COM2 echoes what the host sends.
    let ttys = tty::open()?;
    report::init_running();
    let spec = spec::load()?;
    if let Some(serial) = &spec.root_disk {
        rootfs::enter_disk(serial)?;
    }
    mounts::scratch()?;
    disks::mount_volumes(&spec.volumes)?;
    if !spec.hostname.is_empty() {
        nix::unistd::sethostname(&spec.hostname).map_err(|e| {
            Failure::errno(format!("cannot set the hostname {:?}", spec.hostname), e)
        })?;
    }
    net::loopback_up()?;
    if let Some(n) = &spec.net {
        net::configure(n)?;
    }
    if spec.tty {
        tty::make_terminal(&ttys.com1)
            .map_err(|e| Failure::errno(format!("cannot configure {}", tty::COM1), e))?;
        if let Some([rows, cols]) = spec.tty_size {
            tty::set_size(&ttys.com1, rows, cols)
                .map_err(|e| Failure::errno(format!("cannot size {}", tty::COM1), e))?;
        }
    }
    let cgroup_procs = spec.pids_limit.map(cgroup::limit_pids).transpose()?;
    // Exec'd processes join the workload's pids cgroup too.
    let shared = agent_session::Shared {
        cgroup_procs: cgroup_procs.as_ref().and_then(|f| f.try_clone().ok()),
    };
    // Created as root, as Docker creates a missing working directory, and
    // before the root may become read-only.
    mounts::make_dir(&spec.cwd)?;
    if spec.read_only {
        rootfs::make_read_only()?;
    } else if spec.root_disk.is_none() {
        spec::remove_isola_dir()?;
    }

    // No /etc/passwd (a scratch image) is fine: HOME is then "/".
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let env = command::environment(&spec.env, spec.uid, &passwd);
    let dev_null = File::open("/dev/null")
        .map_err(|e| Failure::setup("cannot open /dev/null", fail::describe_io(&e)))?;
    let com1 = ttys.com1.as_raw_fd();
    // -i without -t: a pipe PID 1 feeds from COM1 (see stdin.rs), so that
    // the host can end the input.
    let stdin_pipe = if spec.stdin && !spec.tty {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Failure::errno("cannot create the stdin pipe", e))?;
        nix::fcntl::fcntl(
            &w,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .map_err(|e| Failure::errno("cannot configure the stdin pipe", e))?;
        Some((r, w, tty::open_input()?))
    } else {
        None
    };
    // Kept past the fork only for the end marker (a port takes one opener).
    let ports = (spec.stdio_ports && !spec.tty)
        .then(stdio_ports::open)
        .flatten();
    let (out, err) = match &ports {
        Some(p) => (p.stdout.as_raw_fd(), p.stderr.as_raw_fd()),
        None => (com1, ttys.com2.as_raw_fd()),
    };
    let stdio = match (spec.tty, &stdin_pipe) {
        (true, _) => [com1; 3],
        (false, Some((r, _, _))) => [r.as_raw_fd(), out, err],
        (false, None) => [dev_null.as_raw_fd(), out, err],
    };
    let launch = child::Launch {
        args: command::c_strings(&spec.args, "argument")?,
        env: command::c_strings(&env, "environment variable")?,
        program: spec.args[0].clone(),
        search_path: command::search_path(&env).to_string(),
        cwd: std::ffi::CString::new(spec.cwd.as_bytes()).map_err(|_| {
            Failure::setup(
                format!("bad working directory {:?}", spec.cwd),
                "it contains a NUL byte",
            )
        })?,
        uid: spec.uid,
        gid: spec.gid,
        groups: spec.groups.clone(),
        stdio,
        terminal: spec.tty,
        cgroup_procs,
    };

    // Blocked before the fork, so no SIGCHLD or forwarded signal is missed.
    let handled = signals::handled();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&handled), None)
        .map_err(|e| Failure::errno("cannot block signals", e))?;
    let signals_in = SignalFd::with_flags(&handled, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| Failure::errno("cannot open a signalfd", e))?;
    let (report_r, report_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Failure::errno("cannot create a pipe", e))?;
    let oom_kills_before = status::oom_kills();
    let mut parser = signals::ControlParser::default();
    if spec.park {
        park::until_go_ahead(
            &ttys.control,
            &signals_in,
            spec.tty.then_some(&ttys.com1),
            &mut parser,
        )?;
    }

    // SAFETY: PID 1 is single-threaded, so the child may do anything after
    // fork, allocation included.
    match unsafe { nix::unistd::fork() } {
        Err(e) => Err(Failure::errno("cannot fork the workload", e)),
        Ok(ForkResult::Child) => {
            drop(report_r);
            child::exec(&launch, report_w)
        }
        Ok(ForkResult::Parent { child }) => {
            drop(report_w);
            let ports = ports.zip(spec.stdio_end.clone());
            let stdin = stdin_pipe.map(|(r, w, com1_in)| {
                drop(r);
                stdin::Relay::new(com1_in, w)
            });
            if let Some(failure) = child::wait_for_exec(report_r) {
                // Reaped so it is not left a zombie; its status is the failure's.
                let _ = nix::sys::wait::waitpid(child, None);
                return Err(failure);
            }
            report::mark(Mark::WorkloadStarted);
            report::started();
            let agent = agent::Agent::open(shared);
            Ok(Running {
                pid: child.as_raw(),
                signals_in,
                ttys,
                stdin,
                terminal: launch.terminal,
                parser,
                oom_kills_before,
                agent,
                ports,
            })
        }
    }
}

/// Supervises the running workload; returns the status byte to report.
fn wait(mut running: Running) -> u8 {
    let ended = supervise::until_exit(
        running.pid,
        &running.signals_in,
        Some(&running.ttys.control),
        running.stdin.as_mut(),
        running.terminal.then_some(&running.ttys.com1),
        running.parser,
        running.agent.as_mut(),
    );
    if let Some(agent) = running.agent.as_mut() {
        agent.end();
    }
    if ended.is_oom_kill(running.oom_kills_before, status::oom_kills()) {
        report::say("the workload ran out of memory");
    }
    ended.code()
}
