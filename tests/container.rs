//! The container backend for real, as root: what the workload can see and
//! do from inside the default image, its limits, exit codes, stdio, the pty,
//! signals and volumes.

mod common;

use std::fs;
use std::process::{Command, Stdio};

use common::background::Background;
use common::fixture::{Layer, Layout, Tar};
use common::Isola;

/// A store with the default image, or `None` (skipped) without root.
fn isola() -> Option<Isola> {
    if !common::root_user() {
        return None;
    }
    let isola = Isola::new();
    isola.ok(["image", "default"]);
    Some(isola)
}

/// Start `isola ARGS` in the background and wait until the workload prints
/// "ready".
fn start_until_ready(isola: &Isola, args: &[&str]) -> Background {
    Background::until_ready(isola.command(args))
}

/// Run `sh -c script` in a fresh container; (exit code, stdout, stderr).
fn sh(isola: &Isola, flags: &[&str], script: &str) -> (i32, String, String) {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend(["isola/busybox", "sh", "-c", script]);
    let out = isola.cmd(&args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_workload_sees_only_its_own_world() {
    let Some(isola) = isola() else { return };
    let marker = isola.tmp.path().join("host-marker");
    fs::write(&marker, "host").unwrap();
    let script = format!(
        "echo pid=$$; ls /proc | grep -c '^[0-9]'; ls /sys/class/net; hostname; \
         test -e {} && echo host-file-visible; cat /proc/keys | wc -c; \
         grep CapEff /proc/self/status",
        marker.display()
    );
    let (code, out, err) = sh(&isola, &["--hostname", "inside"], &script);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "pid=1", "the workload is PID 1");
    assert!(
        lines[1].parse::<u32>().unwrap() <= 3,
        "no host process is visible: {out}"
    );
    assert_eq!(lines[2], "lo", "only lo");
    assert_eq!(lines[3], "inside");
    assert!(!out.contains("host-file-visible"));
    assert_eq!(lines[4].trim(), "0", "/proc/keys is masked");
    assert_eq!(
        lines[5], "CapEff:\t00000000a80425fb",
        "Docker's default capabilities"
    );

    // A hostname change inside does not reach the host (privileged, so the
    // change itself is allowed).
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let (code, out, _) = sh(
        &isola,
        &["--privileged"],
        "hostname changed-inside && hostname",
    );
    assert_eq!((code, out.trim()), (0, "changed-inside"));
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host
    );

    let (code, out, _) = sh(&isola, &["--network", "host"], "ls /sys/class/net | wc -l");
    assert_eq!(code, 0);
    assert!(
        out.trim().parse::<u32>().unwrap() > 1,
        "--network host shares the host's interfaces"
    );
}

#[test]
fn dangerous_operations_fail() {
    let Some(isola) = isola() else { return };
    let script = "mount -t tmpfs x /mnt 2>/dev/null; echo mount=$?; reboot -f 2>/dev/null; echo reboot=$?; \
                  unshare -u true 2>&1; echo unshare=$?; echo 1 > /proc/sys/kernel/domainname; echo sysctl=$?";
    let (code, out, err) = sh(&isola, &[], script);
    assert_eq!(code, 0, "{err}");
    for op in ["mount", "reboot", "unshare", "sysctl"] {
        assert!(!out.contains(&format!("{op}=0")), "{op} must fail: {out}");
    }
    // unshare is in the capability set's reach of nothing: it is the
    // seccomp profile that answers, with EPERM.
    assert!(out.contains("Operation not permitted"), "{out}");
    let (_, out, _) = sh(
        &isola,
        &[],
        "grep -E 'Seccomp:|NoNewPrivs' /proc/self/status",
    );
    assert!(
        out.contains("NoNewPrivs:\t1") && out.contains("Seccomp:\t2"),
        "{out}"
    );
    // With the filter off, unshare fails only for want of CAP_SYS_ADMIN;
    // with it added, it works.
    let (_, out, _) = sh(
        &isola,
        &[
            "--security-opt",
            "seccomp=unconfined",
            "--cap-add",
            "SYS_ADMIN",
        ],
        "unshare -u true; echo $?",
    );
    assert_eq!(out.trim(), "0");
    let (_, out, _) = sh(
        &isola,
        &["--cap-drop", "ALL"],
        "grep CapEff /proc/self/status",
    );
    assert_eq!(out.trim(), "CapEff:\t0000000000000000");
}

#[test]
fn exit_codes_follow_the_workload() {
    let Some(isola) = isola() else { return };
    for (script, want) in [
        ("exit 0", 0),
        ("exit 1", 1),
        ("exit 42", 42),
        ("sleep 10 & kill -TERM $!; wait $!", 143),
        ("sleep 10 & kill -KILL $!; wait $!", 137),
    ] {
        assert_eq!(sh(&isola, &[], script).0, want, "{script}");
    }
    let out = isola.cmd(["run", "--rm", "isola/busybox", "no-such-program"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no-such-program: executable file not found")
    );
    let out = isola.cmd(["run", "--rm", "isola/busybox", "/etc/passwd"]);
    assert_eq!(out.status.code(), Some(126));
    assert!(String::from_utf8_lossy(&out.stderr).contains("permission denied"));
    // Not root: one sentence, before anything is touched.
    if common::tool("setpriv") {
        let out = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                env!("CARGO_BIN_EXE_isola"),
                "run",
                "isola/busybox",
                "true",
            ])
            .env("ISOLA_ROOT", isola.root())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(125));
        assert!(String::from_utf8_lossy(&out.stderr).contains("needs root"));
    }
    let out = isola.cmd(["run", "--rm", "no/such-image"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

#[test]
fn limits_are_enforced() {
    let Some(isola) = isola() else { return };
    // Allocates ~100 MB in a shell variable: past the limit.
    let (code, _, err) = sh(
        &isola,
        &["--memory", "32m"],
        "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived",
    );
    assert_eq!(code, 137, "{err}");
    assert!(
        err.contains("out of memory") && err.contains("32 MiB"),
        "{err}"
    );

    // A fork loop stops at the limit (the shell gives up at the first failed
    // fork); PID 1's exit ends whatever it started.
    let (code, out, err) = sh(
        &isola,
        &["--pids-limit", "20"],
        "(for i in $(seq 40); do sleep 30 >/dev/null & echo started; done) 2>/dev/null | wc -l",
    );
    assert_eq!(code, 0, "{err}");
    let started: u32 = out.trim().parse().unwrap();
    assert!(
        (10..20).contains(&started),
        "20 tasks at most, shells and wc included: {started} sleeps started"
    );

    // CPU time past the quota is throttled: read from the cgroup's own
    // accounting, kept in the sandbox's state (no --rm; `isola ps -a --json`).
    let out = isola.cmd([
        "run",
        "--cpus",
        "0.5",
        "isola/busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done",
    ]);
    assert!(out.status.success());
    let ps = isola.json(["ps", "-a", "--json"]);
    assert_eq!(
        ps.as_array().unwrap().len(),
        1,
        "the one kept sandbox: {ps}"
    );
    let state = &ps[0];
    let counter = |name: &str| {
        state["counters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c[0] == name)
            .map(|c| c[1].as_u64().unwrap())
            .unwrap()
    };
    assert!(counter("cpu.nr_throttled") > 0, "throttled: {state}");
    assert!(counter("cpu.throttled_usec") > 0);
    assert_eq!(state["exit_code"], 0);
}

#[test]
fn stdio_is_kept_apart_and_stdin_forwarded() {
    let Some(isola) = isola() else { return };
    let (code, out, err) = sh(&isola, &[], "echo to-out; echo to-err >&2");
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "to-out\n", "to-err\n")
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_isola"))
        .args([
            "run",
            "--rm",
            "-i",
            "isola/busybox",
            "sh",
            "-c",
            "tr a-z A-Z",
        ])
        .env("ISOLA_ROOT", isola.root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped in\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "PIPED IN\n");
    // Without -i the workload reads /dev/null.
    let (_, out, _) = sh(&isola, &[], "cat; echo end");
    assert_eq!(out, "end\n");
}

#[test]
fn a_tty_comes_from_the_sandbox() {
    let Some(isola) = isola() else { return };
    if !common::tool("script") {
        return;
    }
    let cmd = format!(
        "stty cols 91 rows 27; {} run --rm -t isola/busybox sh -c 'tty; stty size'",
        env!("CARGO_BIN_EXE_isola")
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("ISOLA_ROOT", isola.root())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("/dev/pts/0"),
        "a pty of the sandbox's own devpts: {text:?}"
    );
    assert!(text.contains("27 91"), "the caller's window size: {text:?}");
}

#[test]
fn sigterm_to_isola_reaches_the_workload() {
    let Some(isola) = isola() else { return };
    let run = start_until_ready(
        &isola,
        &[
            "run",
            "--rm",
            "isola/busybox",
            "sh",
            "-c",
            "trap 'echo got-term; exit 143' TERM; echo ready; sleep 30 & wait",
        ],
    );
    run.signal(nix::sys::signal::Signal::SIGTERM);
    let out = run.collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got-term\n");
    assert_eq!(out.status.code(), Some(143));
}

#[test]
fn volumes_persist_and_read_only_means_it() {
    let Some(isola) = isola() else { return };
    let (code, _, err) = sh(&isola, &["-v", "data:/data"], "echo kept > /data/f");
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = sh(
        &isola,
        &["-v", "data:/data:ro"],
        "cat /data/f; echo x > /data/g 2>/dev/null; echo write=$?",
    );
    assert_eq!(out, "kept\nwrite=1\n");

    // Killed with SIGKILL mid-run: what it wrote is still there.
    let run = start_until_ready(
        &isola,
        &[
            "run",
            "--rm",
            "-v",
            "data:/data",
            "isola/busybox",
            "sh",
            "-c",
            "echo after-kill > /data/k; echo ready; sleep 30",
        ],
    );
    let isola_pid = run.pid();
    // The second rw user is refused while the first holds the volume.
    let err = isola.fail(["run", "--rm", "-v", "data:/data", "isola/busybox", "true"]);
    assert!(err.contains("in use"), "{err}");
    let children =
        fs::read_to_string(format!("/proc/{isola_pid}/task/{isola_pid}/children")).unwrap();
    let workload: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(workload),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let status =
        nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(isola_pid as i32), None).unwrap();
    assert!(
        matches!(status, nix::sys::wait::WaitStatus::Exited(_, 137)),
        "{status:?}"
    );
    let (_, out, _) = sh(&isola, &["-v", "data:/data"], "cat /data/k");
    assert_eq!(out, "after-kill\n");

    // Bind mounts, read-only and not.
    let host = isola.scratch("bind");
    fs::write(host.join("in"), "from-host").unwrap();
    let flag = format!("{}:/h:ro", host.display());
    let (_, out, _) = sh(
        &isola,
        &["-v", &flag],
        "cat /h/in; touch /h/new 2>/dev/null; echo touch=$?",
    );
    assert_eq!(out, "from-hosttouch=1\n");
    let flag = format!("{}:/h", host.display());
    sh(&isola, &["-v", &flag], "echo from-sandbox > /h/out");
    assert_eq!(
        fs::read_to_string(host.join("out")).unwrap(),
        "from-sandbox\n"
    );
    // Under /dev too: binds go on top of the sandbox's own /dev.
    let flag = format!("{}:/dev/hostdir", host.display());
    let (_, out, err) = sh(&isola, &["-v", &flag], "cat /dev/hostdir/in");
    assert_eq!(out, "from-host", "{err}");
    // Except with --privileged, whose /dev is the host's.
    let (code, _, err) = sh(&isola, &["--privileged", "-v", &flag], "true");
    assert_ne!(code, 0);
    assert!(err.contains("/dev is the host's own"), "{err}");
    assert!(!std::path::Path::new("/dev/hostdir").exists());
    // The root filesystem itself, read-only.
    let (_, out, _) = sh(&isola, &["--read-only"], "touch /x 2>/dev/null; echo $?");
    assert_eq!(out, "1\n");
}

#[test]
fn user_env_and_workdir_come_from_flags_and_image() {
    let Some(isola) = isola() else { return };
    let env_file = isola.scratch("env").join("list");
    fs::write(&env_file, "# comment\nFROM_FILE=1\nBOTH=file\n").unwrap();
    let (code, out, err) = sh(
        &isola,
        &[
            "-e",
            "BOTH=flag",
            "--env-file",
            env_file.to_str().unwrap(),
            "-u",
            "nobody",
            "-w",
            "/tmp/work",
        ],
        "echo $FROM_FILE $BOTH $(id -u):$(id -g) $(pwd) $PATH",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        "1 flag 65534:65534 /tmp/work /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
    let err = isola.fail(["run", "--rm", "-u", "nosuchuser", "isola/busybox", "true"]);
    assert!(
        err.contains("nosuchuser") && err.contains("/etc/passwd"),
        "{err}"
    );
    // The image's Cmd runs when none is given.
    let out = isola.cmd(["run", "--rm", "-i", "isola/busybox"]);
    assert!(out.status.success(), "sh with stdin at EOF exits 0");
}

#[test]
fn an_image_of_many_layers_runs() {
    let Some(isola) = isola() else { return };
    // 45 layers: the overlay's lowerdir option must stay under one page.
    let busybox = fs::read("/bin/busybox").unwrap();
    let mut layers = vec![Layer::tar(
        Tar::new()
            .dir("bin", 0o755)
            .file_with("bin/busybox", &busybox, 0o755, 0, 0, 0)
            .symlink("bin/sh", "busybox")
            .symlink("bin/cat", "busybox")
            .build(),
    )];
    for n in 1..45 {
        layers.push(Layer::gzip(
            Tar::new()
                .file(&format!("l{n}"), format!("layer {n}").as_bytes())
                .build(),
        ));
    }
    let dir = isola.scratch("many");
    Layout::image(&dir.join("layout"), &layers);
    isola.ok([
        "import",
        dir.join("layout").to_str().unwrap(),
        "--name",
        "many:1",
    ]);
    let out = isola.ok(["run", "--rm", "many:1", "sh", "-c", "cat /l1 /l44"]);
    assert_eq!(out, "layer 1layer 44");
}

#[test]
fn nothing_written_reaches_the_next_sandbox() {
    let Some(isola) = isola() else { return };
    // --rm sandboxes reuse pristine scratch dirs: one that wrote, or changed
    // its root's mode, must not hand that on.
    for _ in 0..3 {
        let (_, out, err) = sh(
            &isola,
            &[],
            "ls /leak 2>/dev/null; stat -c %a /; echo secret > /leak; chmod 700 /",
        );
        assert_eq!(out, "755\n", "{err}");
        let (_, out, _) = sh(&isola, &[], "ls /leak 2>/dev/null; stat -c %a /");
        assert_eq!(out, "755\n");
    }
}

#[test]
fn only_rm_sandboxes_skip_syncing_their_root() {
    let Some(isola) = isola() else { return };
    let root_opts = |out: &str| {
        out.lines()
            .find(|l| l.split(' ').nth(1) == Some("/"))
            .unwrap_or_else(|| panic!("no / in {out}"))
            .to_string()
    };
    // Three --rm runs, so that pooled directories (left by a volatile mount
    // with overlayfs' marker in them) are tidied and taken again.
    for _ in 0..3 {
        let (code, out, err) = sh(&isola, &[], "cat /proc/mounts");
        assert_eq!(code, 0, "{err}");
        assert!(root_opts(&out).contains("volatile"), "{out}");
    }
    let pool: Vec<String> = fs::read_dir(isola.root().join("instances/.pool"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        pool.iter().any(|n| !n.starts_with("dirty-")),
        "a tidied directory is ready: {pool:?}"
    );
    let out = isola.cmd(["run", "isola/busybox", "cat", "/proc/mounts"]);
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        !root_opts(&out).contains("volatile"),
        "a kept sandbox's writes are synced: {out}"
    );
}

#[test]
fn a_sandbox_that_fails_early_is_reported_every_time() {
    let Some(isola) = isola() else { return };
    // The child fails in its first milliseconds, while isola may still be
    // making its cgroup and about to give it the go-ahead: isola must
    // report the failure, never die of SIGPIPE writing to a child gone.
    let host = isola.scratch("early");
    let flag = format!("{}:/dev/x", host.display());
    for _ in 0..20 {
        let (code, _, err) = sh(&isola, &["--privileged", "-v", &flag], "true");
        assert_eq!(code, 125, "{err}");
        assert!(err.contains("/dev is the host's own"), "{err}");
    }
}

#[test]
fn kept_sandboxes_are_listed_and_removed() {
    let Some(isola) = isola() else { return };
    let out = isola.cmd(["run", "isola/busybox", "sh", "-c", "echo x > /file; exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    let ps = isola.json(["ps", "-a", "--json"]);
    let id = ps[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        (ps[0]["status"].as_str(), ps[0]["exit_code"].as_i64()),
        (Some("exited"), Some(3))
    );
    assert!(
        isola
            .root()
            .join("instances")
            .join(&id)
            .join("upper/file")
            .exists(),
        "its changes are kept"
    );
    assert!(isola.ok(["ps", "-a"]).contains("Exited (3)"));
    assert_eq!(isola.ok(["rm", &id[..6]]).trim(), id);
    assert!(!isola.root().join("instances").join(&id).exists());
    let err = isola.fail(["rm", &id]);
    assert!(err.contains("no sandbox"), "{err}");
}

#[test]
fn prune_clears_what_a_killed_isola_left() {
    let Some(isola) = isola() else { return };
    isola.expect(["run", "isola/busybox", "true"], true); // kept, exited
    let mut run = start_until_ready(
        &isola,
        &[
            "run",
            "--rm",
            "--memory",
            "64m",
            "isola/busybox",
            "sh",
            "-c",
            "echo ready; sleep 30",
        ],
    );
    let live: Vec<_> = fs::read_dir(isola.root().join("instances"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(live.len(), 2);
    // The exited one goes; the running one stays.
    let first = isola.ok(["prune"]);
    assert_eq!(first.lines().count(), 1, "{first}");
    let running = live
        .iter()
        .find(|id| isola.root().join("instances").join(id).exists())
        .unwrap();
    run.child.kill().unwrap(); // SIGKILL: no teardown; the workload dies with it
    run.child.wait().unwrap();
    let dead = [running];
    let cgroup_dirs = |id: &str| -> usize {
        ["memory", "cpu", "pids", "unified"]
            .iter()
            .filter(|c| std::path::Path::new(&format!("/sys/fs/cgroup/{c}/isola/{id}")).exists())
            .count()
    };
    assert!(cgroup_dirs(dead[0]) > 0, "and its cgroup");
    let pruned = isola.ok(["prune"]);
    assert_eq!(pruned.trim(), dead[0].as_str());
    assert_eq!(cgroup_dirs(dead[0]), 0);
    for id in &live {
        assert!(!isola.root().join("instances").join(id).exists());
    }
}

#[test]
fn symlinks_at_proc_sys_dev_and_mount_targets_stay_inside_the_image() {
    let Some(isola) = isola() else { return };
    // A hostile image: its /proc, /sys and /dev and a volume's target are
    // links that climb out or point at host paths. Each must resolve
    // within the image (as runc's securejoin does), never on the host.
    let busybox = fs::read("/bin/busybox").unwrap();
    let layer = Layer::tar(
        Tar::new()
            .dir("bin", 0o755)
            .file_with("bin/busybox", &busybox, 0o755, 0, 0, 0)
            .symlink("bin/sh", "busybox")
            .symlink("bin/ls", "busybox")
            .symlink("bin/cat", "busybox")
            .dir("inner", 0o755)
            .dir("inner/proc", 0o755)
            .dir("inner/dev", 0o755)
            .dir("tmp", 0o1777)
            .symlink("proc", "/inner/proc")
            .symlink("sys", "../../../../tmp")
            .symlink("dev", "/../inner/dev")
            .symlink("data", "../../../../../etc")
            .build(),
    );
    let dir = isola.scratch("hostile");
    Layout::image(&dir.join("layout"), &[layer]);
    isola.ok([
        "import",
        dir.join("layout").to_str().unwrap(),
        "--name",
        "hostile:1",
    ]);
    let host = isola.scratch("hostile-volume");
    fs::write(host.join("marker"), "from the host").unwrap();
    let volume = format!("{}:/data", host.display());
    let out = isola.ok([
        "run",
        "--rm",
        "-v",
        &volume,
        "hostile:1",
        "sh",
        "-c",
        "for p in /inner/proc/1/comm /tmp/kernel/mm /inner/dev/null; do [ -e $p ] && echo $p; done; \
         cat /etc/marker",
    ]);
    assert_eq!(
        out,
        "/inner/proc/1/comm\n/tmp/kernel/mm\n/inner/dev/null\nfrom the host"
    );
}
