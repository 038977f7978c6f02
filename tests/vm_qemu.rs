//! The VM backend's guest half for real: the default image booted with the
//! Debian kernel and isola-init under QEMU (`--vmm qemu`; a software CPU on
//! this PVM host, KVM on hardware hosts), and the refusals that need no boot.
//! Where the host has hardware KVM some of them run on isola's own monitor
//! too; tests/vm_isola_monitor.rs runs the whole path on isola's monitor
//! with isola's own kernel (the PVM test kernel on a PVM host).

mod common;

use std::process::{Command, Output, Stdio};

use common::background::Background;
use common::Isola;
use nix::sys::signal::Signal;

/// A store with the default image, if the host can boot a guest under QEMU.
fn isola() -> Option<Isola> {
    if !common::tool("qemu-system-x86_64") {
        return None;
    }
    let kernel = std::fs::read_dir("/boot")
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
        })
        .unwrap_or(false);
    if !common::host_has(
        "a guest kernel in /boot (scripts/setup installs linux-image-cloud-amd64)",
        kernel,
    ) || !common::host_has(
        "isola-init built static (make test builds it)",
        common::guest_init().is_file(),
    ) {
        return None;
    }
    let isola = Isola::new();
    isola.ok(["image", "default"]);
    Some(isola)
}

/// The monitors to test here: QEMU always; isola's own where the host has
/// hardware KVM (on PVM an unmodified Linux kernel cannot run on it: the
/// issue names that host as a skip).
fn monitors() -> Vec<&'static str> {
    let hardware = std::path::Path::new("/dev/kvm").exists()
        && !std::path::Path::new("/sys/module/kvm_pvm").exists()
        && ["/sys/module/kvm_intel", "/sys/module/kvm_amd"]
            .iter()
            .any(|m| std::path::Path::new(m).exists());
    if hardware {
        vec!["qemu", "isola"]
    } else {
        eprintln!("SKIPPED on isola's own monitor: no hardware KVM here (PVM or none); QEMU only");
        vec!["qemu"]
    }
}

fn vm(isola: &Isola, args: &[&str]) -> Output {
    vm_on("qemu", isola, args)
}

fn vm_on(vmm: &str, isola: &Isola, args: &[&str]) -> Output {
    vm_command(vmm, isola, args)
        .output()
        .expect("running isola")
}

/// `isola run --rm --backend vm --vmm VMM ARGS...` with this test's store and
/// isola-init, stdin from /dev/null.
fn vm_command(vmm: &str, isola: &Isola, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_isola"));
    c.args(["run", "--rm", "--backend", "vm", "--vmm", vmm])
        .args(args)
        .env("ISOLA_ROOT", isola.root())
        .env("ISOLA_INIT", common::guest_init())
        .env_remove("ISOLA_LOG")
        .stdin(Stdio::null());
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_workload_runs_in_the_guest_with_its_stdio_apart_and_its_exit_status() {
    let Some(isola) = isola() else { return };
    for vmm in monitors() {
        let args = [
            "isola/busybox",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 42",
        ];
        let out = vm_on(vmm, &isola, &args);
        assert_eq!(out.status.code(), Some(42), "{vmm}: {}", text(&out.stderr));
        // Raw serial lines: no \r added.
        assert_eq!(text(&out.stdout), "out\n", "{vmm}");
        // Nothing of the kernel's console either: it is held back until
        // isola-init runs, which then turns it down.
        assert_eq!(text(&out.stderr), "err\n", "{vmm}");
    }
}

#[test]
fn the_guest_gets_env_cwd_user_and_hostname_from_the_spec() {
    let Some(isola) = isola() else { return };
    let out = vm(
        &isola,
        &[
            "-e",
            "GREETING=hello vm",
            "-w",
            "/var/work",
            "-u",
            "1000:1000",
            "--hostname",
            "guestbox",
            "isola/busybox",
            "sh",
            "-c",
            "echo $GREETING; pwd; id -u; id -g; hostname; [ $$ -ne 1 ] && echo notpid1; \
             [ -e /.isola ] || echo spec-and-init-gone",
        ],
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "hello vm\n/var/work\n1000\n1000\nguestbox\nnotpid1\nspec-and-init-gone\n"
    );
}

#[test]
fn exit_codes_for_a_missing_command_and_a_signal() {
    let Some(isola) = isola() else { return };
    for vmm in monitors() {
        let out = vm_on(vmm, &isola, &["isola/busybox", "no-such-command"]);
        assert_eq!(out.status.code(), Some(127), "{vmm}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("no-such-command"),
            "{}",
            text(&out.stderr)
        );
        let out = vm_on(vmm, &isola, &["isola/busybox", "sh", "-c", "kill -9 $$"]);
        assert_eq!(out.status.code(), Some(137), "{vmm}: {}", text(&out.stderr));
    }
}

#[test]
fn read_only_root_and_pids_limit_hold_in_the_guest() {
    let Some(isola) = isola() else { return };
    // The inner shell forks twelve sleeps under a limit of 8 tasks: it stops
    // at the first fork the kernel refuses ("can't fork").
    let out = vm(
        &isola,
        &[
            "--read-only", "--pids-limit", "8", "isola/busybox", "sh", "-c",
            "touch /x 2>/dev/null && echo wrote || echo read-only; \
             cat /sys/fs/cgroup/workload/pids.max; \
             sh -c 'for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 2 & done; wait' 2>&1 | grep -c \"can.t fork\"",
        ],
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "read-only\n8\n1\n");
}

#[test]
fn what_the_vm_backend_cannot_do_yet_is_refused_in_one_sentence() {
    let isola = Isola::new();
    isola.ok(["image", "default"]);
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_isola"))
            .args(["run", "--rm", "--backend", "vm"])
            .args(args)
            .env("ISOLA_ROOT", isola.root())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        text(&out.stderr)
    };
    let e = run(&["--vmm", "qemu", "-v", "/tmp:/mnt", "isola/busybox", "true"]);
    assert!(
        e.contains("cannot bind a host path") && e.contains("named volume"),
        "{e}"
    );
    let e = run(&[
        "--vmm",
        "qemu",
        "--network",
        "host",
        "isola/busybox",
        "true",
    ]);
    assert!(e.contains("--network host"), "{e}");
    let e = run(&["--vmm", "vbox", "isola/busybox", "true"]);
    assert!(e.contains("unknown --vmm"), "{e}");
    let e = run(&[
        "--vmm",
        "qemu",
        "--kernel",
        "/etc/hostname",
        "isola/busybox",
        "true",
    ]);
    assert!(e.contains("not a kernel isola can boot"), "{e}");
    let e = run(&[
        "--vmm",
        "qemu",
        "--kernel",
        "/nonexistent/vmlinuz",
        "isola/busybox",
        "true",
    ]);
    assert!(e.contains("--kernel"), "{e}");
    if std::path::Path::new("/sys/module/kvm_pvm").exists() {
        // On PVM isola's own monitor says at once why it cannot boot Linux.
        let e = run(&["isola/busybox", "true"]);
        assert!(e.contains("PVM") && e.contains("--vmm qemu"), "{e}");
        assert!(e.contains("scripts/build-kernel --pvm"), "{e}");
        assert_eq!(e.trim().lines().count(), 1, "{e}");
    }
}

/// Start `isola run --backend vm --vmm qemu isola/busybox sh -c SCRIPT`,
/// wait for the workload's "ready", send isola SIGTERM, and collect what the
/// workload printed after that, isola's stderr and its exit status.
fn term_after_ready(isola: &Isola, script: &str) -> Output {
    let run = Background::until_ready(vm_command(
        "qemu",
        isola,
        &["isola/busybox", "sh", "-c", script],
    ));
    run.signal(Signal::SIGTERM);
    run.collect()
}

#[test]
fn sigterm_to_isola_reaches_the_workload_in_the_guest() {
    let Some(isola) = isola() else { return };
    let out = term_after_ready(
        &isola,
        "trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 1; done",
    );
    assert_eq!(text(&out.stdout), "got TERM\n");
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn a_workload_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let Some(isola) = isola() else { return };
    let out = term_after_ready(
        &isola,
        "trap '' TERM; echo ready; while :; do sleep 1; done",
    );
    let err = text(&out.stderr);
    assert_eq!(text(&out.stdout), "");
    assert_eq!(out.status.code(), Some(137), "{err}");
    assert!(err.contains("did not stop within 10 s of SIGTERM"), "{err}");
}

#[test]
fn too_little_memory_for_the_kernel_is_said_before_booting() {
    let Some(isola) = isola() else { return };
    let out = vm(&isola, &["--memory", "32m", "isola/busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    let err = text(&out.stderr);
    assert!(
        err.contains("needs at least") && err.contains("--memory"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn the_guest_s_oom_killer_is_reported_as_137_with_a_message() {
    let Some(isola) = isola() else { return };
    // A string doubled until the guest's memory runs out.
    let out = vm(
        &isola,
        &[
            "--memory",
            "96m",
            "isola/busybox",
            "sh",
            "-c",
            "a=xxxxxxxxxxxxxxxx; while :; do a=\"$a$a\"; done",
        ],
    );
    assert_eq!(out.status.code(), Some(137), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("ran out of memory"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn stdin_reaches_the_workload_with_i_and_only_once_it_runs() {
    use std::io::Write;
    let Some(isola) = isola() else { return };
    let mut child = vm_command("qemu", &isola, &["-i", "isola/busybox", "head", "-n", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Written before the guest has booted: held until the workload runs,
    // so none of it is lost or echoed.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"first line\nsecond line\nthird\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "first line\nsecond line\n");
}

#[test]
fn the_end_of_stdin_reaches_the_workload_and_every_byte_passes() {
    use std::io::Write;
    let Some(isola) = isola() else { return };
    // Every byte value, the framing's escape (0xff) and 0x00 included, and
    // more than the UART's FIFO holds. sha256sum ends only at EOF.
    let input: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut child = vm_command("qemu", &isola, &["-i", "isola/busybox", "sha256sum"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "{}  -\n",
            common::fixture::sha256(&input).trim_start_matches("sha256:")
        )
    );
}

/// `sh -c cmd` under `script`, whose pty is the caller's terminal; its
/// stdin and stdout piped to the test.
fn under_script(isola: &Isola, cmd: &str) -> std::process::Child {
    Command::new("script")
        .args(["-qec", cmd, "/dev/null"])
        .env("ISOLA_ROOT", isola.root())
        .env("ISOLA_INIT", common::guest_init())
        .env_remove("ISOLA_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads `child`'s stdout until the workload prints "ready"; the reader
/// and what it read.
fn until_ready(child: &mut std::process::Child) -> (impl std::io::Read, String) {
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("ready") {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() == 0 {
            panic!("ended before the workload ran: {seen:?}");
        }
        seen.push_str(&line);
    }
    (stdout, seen)
}

#[test]
fn with_t_the_workload_gets_a_terminal_the_caller_s_size_and_keys() {
    use std::io::Write;
    let Some(isola) = isola() else { return };
    if !common::tool("script") {
        return;
    }
    // Under a pty of script's (the caller's terminal), sized first.
    let cmd = format!(
        "stty cols 91 rows 27; {} run --rm -t --backend vm --vmm qemu isola/busybox \
         sh -c 'tty; stty size; read line; echo got:$line'",
        env!("CARGO_BIN_EXE_isola")
    );
    let mut child = under_script(&isola, &cmd);
    // Typed before the guest is up: held until the workload runs, then
    // read by the guest's terminal a line at a time (Enter is \r).
    child.stdin.take().unwrap().write_all(b"hello\r").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = text(&out.stdout);
    assert!(
        text.contains("/dev/ttyS0"),
        "the guest's terminal: {text:?}"
    );
    assert!(text.contains("27 91"), "the caller's window size: {text:?}");
    assert!(
        text.contains("got:hello"),
        "keys reach the workload: {text:?}"
    );

    // Once the workload runs (and the caller's terminal is raw), Ctrl-C is
    // a byte like any other, which the guest's terminal turns into SIGINT
    // for the workload: 130 long before `sleep` would end.
    let cmd = format!(
        "{} run --rm -t --backend vm --vmm qemu isola/busybox sh -c 'echo ready; sleep 600'; echo status:$?",
        env!("CARGO_BIN_EXE_isola")
    );
    let mut child = under_script(&isola, &cmd);
    let (mut stdout, mut seen) = until_ready(&mut child);
    child.stdin.take().unwrap().write_all(b"\x03").unwrap();
    std::io::Read::read_to_string(&mut stdout, &mut seen).unwrap();
    child.wait().unwrap();
    assert!(seen.contains("status:130"), "{seen:?}");
}

#[test]
fn with_t_a_new_window_size_reaches_the_workload() {
    let Some(isola) = isola() else { return };
    if !common::tool("script") {
        return;
    }
    // script's pty is the caller's terminal; `tty` names it for the resize.
    let cmd = format!(
        "tty; stty rows 20 cols 70; {} run --rm -t --backend vm --vmm qemu isola/busybox \
         sh -c 'trap \"stty size; exit 0\" WINCH; echo ready; while :; do sleep 1; done'; \
         echo status:$?",
        env!("CARGO_BIN_EXE_isola")
    );
    let mut child = under_script(&isola, &cmd);
    let (mut stdout, mut seen) = until_ready(&mut child);
    let pts = seen
        .lines()
        .find(|l| l.starts_with("/dev/pts/"))
        .unwrap_or_else(|| panic!("no pty named: {seen:?}"))
        .trim()
        .to_string();
    // Resizing the caller's terminal sends isola SIGWINCH.
    let terminal = std::fs::OpenOptions::new().write(true).open(&pts).unwrap();
    let size = isola_core::terminal::Winsize {
        ws_row: 33,
        ws_col: 99,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    isola_core::terminal::set_window_size(std::os::fd::AsFd::as_fd(&terminal), &size);
    std::io::Read::read_to_string(&mut stdout, &mut seen).unwrap();
    drop(child.stdin.take());
    child.wait().unwrap();
    assert!(
        seen.contains("33 99"),
        "the new size in the guest: {seen:?}"
    );
    assert!(seen.contains("status:0"), "{seen:?}");
}

#[test]
fn a_guest_kernel_panic_is_shown_and_reported_not_hung() {
    let Some(isola) = isola() else { return };
    // An "init" the guest kernel cannot run: it panics (init= keeps it from
    // falling back to the image's own /sbin/init or /bin/sh).
    let fake = isola.scratch("fake").join("init");
    std::fs::write(&fake, "#!/no/such/interpreter\n").unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = vm_command("qemu", &isola, &["isola/busybox", "true"])
        .env("ISOLA_INIT", &fake)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = text(&out.stderr);
    assert!(
        err.contains("stopped without reporting an exit status"),
        "{err}"
    );
    // The sentence, then the console's last lines: why the init failed,
    // and the panic.
    let (_, lines) = err
        .split_once("the guest's last console lines:\n")
        .unwrap_or_else(|| panic!("no console lines: {err}"));
    let lines: Vec<&str> = lines.lines().filter(|l| l.starts_with("  ")).collect();
    assert!((2..=20).contains(&lines.len()), "{err}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Failed to execute /.isola/init")),
        "{err}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Kernel panic - not syncing")),
        "{err}"
    );
}

/// `isola ARGS` with this test's store and isola-init (for the shim too,
/// which inherits the environment).
fn isola_cmd(isola: &Isola, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_isola"))
        .args(args)
        .env("ISOLA_ROOT", isola.root())
        .env("ISOLA_INIT", common::guest_init())
        .env_remove("ISOLA_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("running isola")
}

#[test]
fn a_detached_guest_is_owned_by_its_shim_logged_stopped_and_removed() {
    let Some(isola) = isola() else { return };
    let script = "trap 'echo got-term; exit 7' TERM; echo guest-up; echo to-stderr >&2
        while true; do sleep 1; done";
    let out = isola_cmd(
        &isola,
        &[
            "run",
            "-d",
            "--name",
            "g",
            "--backend",
            "vm",
            "--vmm",
            "qemu",
            "isola/busybox",
            "sh",
            "-c",
            script,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let logs = isola_cmd(&isola, &["logs", "g"]);
        if text(&logs.stdout).contains("guest-up") && text(&logs.stderr).contains("to-stderr") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the guest's output never reached its log"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let ps = text(&isola_cmd(&isola, &["ps"]).stdout);
    assert!(ps.contains(" vm ") && ps.contains("Up "), "{ps}");
    // The Debian kernel has virtio only as modules: no agent channel, so
    // exec is refused in one sentence that names isola's kernel.
    let exec = isola_cmd(&isola, &["exec", "g", "true"]);
    assert_eq!(exec.status.code(), Some(125));
    let e = text(&exec.stderr);
    assert!(
        e.contains("lacks built-in virtio") && e.contains("make kernel"),
        "{e}"
    );
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    // stats: the monitor's own use and the guest memory it maps.
    let stats: serde_json::Value =
        serde_json::from_slice(&isola_cmd(&isola, &["stats", "--no-stream", "--json", "g"]).stdout)
            .expect("stats JSON");
    assert!(
        stats[0]["memory_bytes"].as_u64().unwrap_or(0) > 0,
        "{stats}"
    );
    assert!(
        stats[0]["memory_limit"].as_u64().unwrap_or(0) >= 64 << 20,
        "{stats}"
    );
    // stop: SIGTERM through isola-init, which the trap answers.
    let stop = isola_cmd(&isola, &["stop", "g"]);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    assert_eq!(text(&isola_cmd(&isola, &["wait", "g"]).stdout).trim(), "7");
    assert!(text(&isola_cmd(&isola, &["logs", "g"]).stdout).contains("got-term"));
    let rm = isola_cmd(&isola, &["rm", "g"]);
    assert!(rm.status.success(), "{}", text(&rm.stderr));
    assert_eq!(text(&isola_cmd(&isola, &["ps", "-aq"]).stdout), "");

    // create boots the guest up to isola-init's wait for the go-ahead:
    // QEMU runs, the workload not yet; `start -a` lets it run.
    let out = isola_cmd(
        &isola,
        &[
            "create",
            "--name",
            "p",
            "--backend",
            "vm",
            "--vmm",
            "qemu",
            "isola/busybox",
            "sh",
            "-c",
            "echo started-late; exit 3",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stats: serde_json::Value =
        serde_json::from_slice(&isola_cmd(&isola, &["stats", "--no-stream", "--json", "p"]).stdout)
            .expect("stats JSON");
    assert_eq!(
        stats[0]["memory_bytes"],
        serde_json::Value::Null,
        "a created sandbox is not running: {stats}"
    );
    let ps = text(&isola_cmd(&isola, &["ps", "-a"]).stdout);
    assert!(ps.contains("Created"), "{ps}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        text(&isola_cmd(&isola, &["logs", "p"]).stdout),
        "",
        "nothing ran before start"
    );
    let started = isola_cmd(&isola, &["start", "-a", "p"]);
    assert_eq!(started.status.code(), Some(3), "{}", text(&started.stderr));
    assert_eq!(text(&started.stdout), "started-late\n");
    let rm = isola_cmd(&isola, &["rm", "p"]);
    assert!(rm.status.success(), "{}", text(&rm.stderr));
}

/// `isola exec ARGS` with this test's store, stdin from `input`.
fn exec_with_input(isola: &Isola, args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_isola"))
        .arg("exec")
        .args(args)
        .env("ISOLA_ROOT", isola.root())
        .env_remove("ISOLA_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running isola exec");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    // Written beside the reading of its output: neither pipe may fill.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("isola exec");
    writer.join().expect("the stdin writer");
    out
}

/// One guest on isola's kernel, whose virtio carries the agent channel,
/// and everything `isola exec` does into it, as into a container.
#[test]
fn exec_reaches_a_detached_guest_on_isola_s_kernel_over_the_agent_channel() {
    let Some(isola) = isola() else { return };
    let Some(kernel) = common::isola_kernel_for_host() else {
        return;
    };
    let kernel = kernel.to_string_lossy().into_owned();
    // The workload ends when `isola stop` asks it to. -v: the shim's
    // log says which channel the stop took.
    let script =
        "trap 'exit 4' TERM; echo guest-up; while :; do if read -t 1 x; then echo got $x; fi; done";
    let out = isola_cmd(
        &isola,
        &[
            "-v",
            "run",
            "-d",
            "-i",
            "--name",
            "x",
            "--backend",
            "vm",
            "--vmm",
            "qemu",
            "--kernel",
            &kernel,
            "isola/busybox",
            "sh",
            "-c",
            script,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !text(&isola_cmd(&isola, &["logs", "x"]).stdout).contains("guest-up") {
        assert!(
            std::time::Instant::now() < deadline,
            "the guest never came up"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // attach: input to the workload and its output back; Ctrl-p Ctrl-q
    // leaves it running.
    let mut attach = Command::new(env!("CARGO_BIN_EXE_isola"))
        .args(["attach", "x"])
        .env("ISOLA_ROOT", isola.root())
        .env_remove("ISOLA_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_guest = attach.stdin.take().unwrap();
    std::io::Write::write_all(&mut to_guest, b"hello\n").unwrap();
    while !text(&isola_cmd(&isola, &["logs", "x"]).stdout).contains("got hello") {
        assert!(
            std::time::Instant::now() < deadline,
            "attach's input never reached the guest"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    std::io::Write::write_all(&mut to_guest, &[0x10, 0x11]).unwrap();
    let out = attach.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "detached: {}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "got hello\n");

    // stats: the guest's own count of its processes, over the channel
    // (isola-init, the workload's sh and its sleep at least).
    let stats: serde_json::Value =
        serde_json::from_slice(&isola_cmd(&isola, &["stats", "--no-stream", "--json", "x"]).stdout)
            .expect("stats JSON");
    let pids = stats[0]["pids"].as_u64().unwrap_or(0);
    assert!((2..50).contains(&pids), "{stats}");

    // The exit code, and stdout and stderr apart.
    let out = isola_cmd(
        &isola,
        &["exec", "x", "sh", "-c", "echo out; echo err >&2; exit 3"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "out\n");
    assert_eq!(text(&out.stderr), "err\n");

    // -e, -u and -w.
    let out = isola_cmd(
        &isola,
        &[
            "exec",
            "-e",
            "GREETING=hi there",
            "-u",
            "1000:1000",
            "-w",
            "/tmp",
            "x",
            "sh",
            "-c",
            "echo $GREETING; id -u; id -g; pwd",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hi there\n1000\n1000\n/tmp\n");

    // -i: every byte (more than the channel's frames hold, 0xff and NUL
    // included), then the end of the input.
    let input: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let out = exec_with_input(&isola, &["-i", "x", "sha256sum"], &input);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "{}  -\n",
            common::fixture::sha256(&input).trim_start_matches("sha256:")
        )
    );

    // -t: a terminal of the guest's, sized as the caller's.
    let sized = "tty; for i in $(seq 50); do [ \"$(stty size)\" = \"27 91\" ] && break; sleep 0.1; done; stty size";
    if let Some(t) = common::exec_on_a_terminal(&isola.root(), "x", sized) {
        assert!(t.contains("/dev/pts/"), "{t:?}");
        assert!(t.contains("27 91"), "{t:?}");
    }

    // Its output's reader gone, the process gets SIGPIPE, as it would
    // writing into the pipe itself: the pipeline ends.
    let mut c = Command::new("sh");
    c.args([
        "-c",
        &format!("{} exec x yes | head -2", env!("CARGO_BIN_EXE_isola")),
    ])
    .env("ISOLA_ROOT", isola.root())
    .env_remove("ISOLA_LOG")
    .stdin(Stdio::null());
    let out = Background::start(c).collect_within(
        std::time::Duration::from_secs(60),
        "isola exec into a closed pipe",
    );
    assert_eq!(text(&out.stdout), "y\ny\n");

    // A missing command: 127 and a word why; not executable: 126.
    let out = isola_cmd(&isola, &["exec", "x", "nope"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("nope"), "{}", text(&out.stderr));
    let out = isola_cmd(&isola, &["exec", "x", "/etc/passwd"]);
    assert_eq!(out.status.code(), Some(126), "{}", text(&out.stderr));

    // A signal to isola exec reaches the process.
    let mut c = Command::new(env!("CARGO_BIN_EXE_isola"));
    c.args([
        "exec",
        "x",
        "sh",
        "-c",
        "trap 'echo got-term; exit 9' TERM; echo ready; while :; do sleep 0.2; done",
    ])
    .env("ISOLA_ROOT", isola.root())
    .env_remove("ISOLA_LOG")
    .stdin(Stdio::null());
    let run = Background::until_ready(c);
    run.signal(Signal::SIGTERM);
    let out = run.collect_within(
        std::time::Duration::from_secs(60),
        "isola exec after SIGTERM",
    );
    assert_eq!(out.status.code(), Some(9), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "got-term\n");

    // The workload's end ends the guest, and what was exec'd into it is
    // killed, as docker does: 137.
    let mut c = Command::new(env!("CARGO_BIN_EXE_isola"));
    c.args(["exec", "x", "sh", "-c", "echo ready; sleep 600"])
        .env("ISOLA_ROOT", isola.root())
        .env_remove("ISOLA_LOG")
        .stdin(Stdio::null());
    let long = Background::until_ready(c);
    let out = isola_cmd(&isola, &["stop", "x"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shim_log = std::fs::read_dir(isola.root().join("instances"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path().join("shim.log")).unwrap_or_default())
        .collect::<String>();
    assert!(
        shim_log.contains("SIGTERM to the guest's workload over the agent channel"),
        "isola stop took the agent channel: {shim_log}"
    );
    let out = long.collect_within(
        std::time::Duration::from_secs(60),
        "an exec past the workload's end",
    );
    assert_eq!(out.status.code(), Some(137), "{}", text(&out.stderr));
    assert_eq!(text(&isola_cmd(&isola, &["wait", "x"]).stdout).trim(), "4");
    let out = isola_cmd(&isola, &["exec", "x", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("not running"),
        "{}",
        text(&out.stderr)
    );
    let rm = isola_cmd(&isola, &["rm", "x"]);
    assert!(rm.status.success(), "{}", text(&rm.stderr));
}

/// `isola run --rm --backend vm --vmm qemu --kernel KERNEL ARGS`, stdin
/// from /dev/null.
fn vm_with_kernel(isola: &Isola, kernel: &std::path::Path, args: &[&str]) -> Output {
    let mut c = vm_command("qemu", isola, &["--kernel", &kernel.to_string_lossy()]);
    c.args(args).output().expect("running isola")
}

#[test]
fn with_isola_s_kernel_stdout_and_stderr_go_over_virtio_apart_whole_and_to_the_last_byte() {
    use sha2::{Digest, Sha256};
    let Some(isola) = isola() else { return };
    let Some(kernel) = common::isola_kernel_for_host() else {
        return;
    };
    // 20 MB of random bytes on stdout, their digest and numbered lines on
    // stderr between, and a last word on stdout just before the exit.
    let script = "head -c 20000000 /dev/urandom > /tmp/data; \
        readlink /proc/self/fd/2 >&2; \
        for i in 1 2 3; do echo line$i >&2; done; \
        sha256sum /tmp/data >&2; readlink /proc/self/fd/1; cat /tmp/data; echo line4 >&2; printf the-end; exit 7";
    let out = vm_with_kernel(&isola, &kernel, &["isola/busybox", "sh", "-c", script]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("PVM test kernel"))
        .collect();
    assert!(
        lines[0].starts_with("/dev/vport"),
        "the workload's stderr is a virtio-serial port: {stderr}"
    );
    assert_eq!(&lines[1..4], ["line1", "line2", "line3"], "{stderr}");
    assert_eq!(lines[5], "line4", "{stderr}");
    let digest = lines[4].split_whitespace().next().unwrap_or_default();
    let newline = out.stdout.iter().position(|&b| b == b'\n').unwrap_or(0);
    let (port, data) = out.stdout.split_at(newline + 1);
    let port = text(port);
    assert!(
        port.starts_with("/dev/vport") && port.trim_end() != lines[0],
        "stdout is another port: {port:?}"
    );
    let data = data
        .strip_suffix(b"the-end")
        .expect("the last write before the exit is there");
    assert_eq!(data.len(), 20_000_000);
    let ours: String = Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(ours, digest, "every byte of stdout, in order");

    // A reader that falls behind: QEMU holds what its FIFO has no room
    // for, and would drop it when it exits at the exit port; isola-init
    // waits for the relay to have it all.
    let slow = format!(
        "{} run --rm --backend vm --vmm qemu --kernel {} isola/busybox \
         sh -c 'dd if=/dev/zero bs=64k count=320 2>/dev/null; printf END' 2>/dev/null \
         | (sleep 3; wc -c)",
        env!("CARGO_BIN_EXE_isola"),
        kernel.display()
    );
    let out = Command::new("sh")
        .args(["-c", &slow])
        .env("ISOLA_ROOT", isola.root())
        .env("ISOLA_INIT", common::guest_init())
        .env_remove("ISOLA_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        text(&out.stdout).trim(),
        "20971523",
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn with_t_or_debian_s_kernel_the_workload_stays_on_the_uarts() {
    let Some(isola) = isola() else { return };
    // Debian's kernel has virtio-console as a module: the UARTs, as before.
    let out = vm(
        &isola,
        &[
            "isola/busybox",
            "sh",
            "-c",
            "readlink /proc/self/fd/1; readlink /proc/self/fd/2 >&2",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "/dev/ttyS0\n");
    assert_eq!(text(&out.stderr), "/dev/ttyS1\n");
    let Some(kernel) = common::isola_kernel_for_host() else {
        return;
    };
    if !common::tool("script") {
        return;
    }
    // With -t the terminal is COM1, on isola's kernel too.
    let cmd = format!(
        "{} run --rm -t --backend vm --vmm qemu --kernel {} isola/busybox \
         sh -c 'tty; readlink /proc/self/fd/1; readlink /proc/self/fd/2; exit 5'; echo status:$?",
        env!("CARGO_BIN_EXE_isola"),
        kernel.display()
    );
    let out = under_script(&isola, &cmd).wait_with_output().unwrap();
    let seen = text(&out.stdout);
    assert!(
        seen.contains("/dev/ttyS0\r\n/dev/ttyS0\r\n/dev/ttyS0\r\n"),
        "{seen:?}"
    );
    assert!(seen.contains("status:5"), "{seen:?}");
}
