//! Detached sandboxes for real, as root: `run -d`, `create`/`start`, `ps`,
//! `logs`, `attach`, `exec`, `kill`, `stop`, `wait`, `restart`, `rm`,
//! `top`, `stats`, the restart policy, bad input (one sentence, exit 125,
//! nothing changed) and faults (the CLI or the shim killed, fifty at
//! once, a flood of output), each ending with nothing of isola's left.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// Removes every sandbox of the test's root at the end, passed or not, so
/// that no shim outlives the test.
struct Cleanup<'a>(&'a Isola);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let ids = self.0.cmd(["ps", "-aq"]);
        let ids = String::from_utf8_lossy(&ids.stdout).into_owned();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = self.0.cmd(&args);
        }
        let _ = self.0.cmd(["prune"]);
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// `isola ARGS` must fail with docker's 125 and one line naming the problem.
fn refused(isola: &Isola, args: &[&str], says: &str) {
    let out = isola.cmd(args);
    let err = text(&out.stderr);
    assert_eq!(code(&out), 125, "isola {args:?}: {err}");
    assert!(
        err.contains(says),
        "isola {args:?} said {err:?}, not {says:?}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one sentence: {err}");
}

/// Poll `check` until it holds (or fail after 30 s, saying `what`).
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status(isola: &Isola, name: &str) -> String {
    let v = isola.json(["inspect", name]);
    v["status"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_detached_service_runs_apart_from_the_cli_and_every_verb_reaches_it() {
    let Some(isola) = isola() else { return };
    let _cleanup = Cleanup(&isola);
    let script = "trap 'echo got-usr1' USR1; trap 'echo stopping; exit 3' TERM
        echo to-stderr >&2; i=0
        while true; do echo line-$i; i=$((i+1)); sleep 0.2; done";
    let id = isola.ok([
        "run",
        "-d",
        "--name",
        "svc",
        "isola/busybox",
        "sh",
        "-c",
        script,
    ]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 12, "run -d prints the ID: {id:?}");

    // Listed as up; by name, by ID and by a prefix of it.
    let ps = isola.ok(["ps"]);
    assert!(ps.contains("svc") && ps.contains("Up "), "{ps}");
    assert!(ps.lines().next().unwrap().starts_with("ID"), "{ps}");
    assert_eq!(isola.ok(["ps", "-q"]).trim(), id);
    assert_eq!(status(&isola, &id[..5]), "running");

    // Its output, stdout and stderr apart.
    eventually("two lines of output", || {
        isola.ok(["logs", "svc"]).contains("line-1")
    });
    let logs = isola.cmd(["logs", "svc"]);
    assert!(
        text(&logs.stdout).starts_with("line-0\nline-1\n"),
        "{}",
        text(&logs.stdout)
    );
    assert_eq!(text(&logs.stderr), "to-stderr\n");
    let tail = isola.ok(["logs", "--tail", "1", "-t", "svc"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");
    assert!(tail.starts_with("20") && tail.contains("Z line-"), "{tail}");
    let raw =
        std::fs::read_to_string(isola.root().join("instances").join(&id).join("ctr.log")).unwrap();
    let first = raw.lines().find(|l| l.contains(" stdout ")).unwrap();
    assert!(first.ends_with(" stdout F line-0"), "CRI format: {first}");

    // exec: in its namespaces, its exit code isola's, with -e, -u, -w, -i.
    let out = isola.cmd([
        "exec",
        "svc",
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; exit 4",
    ]);
    assert_eq!(code(&out), 4);
    assert!(
        text(&out.stdout).starts_with("sh -c trap"),
        "{}",
        text(&out.stdout)
    );
    let out = isola.ok([
        "exec",
        "-e",
        "GREETING=hi",
        "-u",
        "1000:1000",
        "-w",
        "/tmp",
        "svc",
        "sh",
        "-c",
        "echo $GREETING $(id -u) $(pwd)",
    ]);
    assert_eq!(out, "hi 1000 /tmp\n");
    let mut child = isola
        .command(["exec", "-i", "svc", "sh", "-c", "tr a-z A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped in\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), "PIPED IN\n");
    assert_eq!(code(&isola.cmd(["exec", "svc", "no-such-program"])), 127);
    // exec -d returns at once; the process runs on.
    isola.ok([
        "exec",
        "-d",
        "svc",
        "sh",
        "-c",
        "sleep 0.3; echo later > /tmp/detached",
    ]);
    eventually("the detached exec's file", || {
        isola.cmd(["exec", "svc", "cat", "/tmp/detached"]).stdout == b"later\n"
    });
    // --since: all of it from an hour ago, nothing from the future.
    assert!(isola
        .ok(["logs", "--since", "1h", "svc"])
        .starts_with("line-0\n"));
    assert_eq!(
        isola.ok(["logs", "--since", "2099-01-01T00:00:00Z", "svc"]),
        ""
    );

    // top and stats, from its cgroup.
    let top = isola.ok(["top", "svc"]);
    assert!(
        top.starts_with("UID") && top.contains("sh -c trap"),
        "{top}"
    );
    let stats = isola.json(["stats", "--no-stream", "--json", "svc"]);
    assert!(stats[0]["memory_bytes"].as_u64().unwrap() > 0, "{stats}");
    assert!(stats[0]["pids"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats[0]["cpu_percent"].as_f64().is_some(), "{stats}");
    assert!(stats[0]["block_written"].as_u64().is_some(), "{stats}");
    let table = isola.ok(["stats", "--no-stream", "svc"]);
    assert!(
        table.lines().next().unwrap().contains("BLOCK I/O"),
        "{table}"
    );

    // A signal through the shim, then a stop its trap answers.
    assert_eq!(isola.ok(["kill", "-s", "USR1", "svc"]).trim(), "svc");
    eventually("the USR1 trap", || {
        isola.ok(["logs", "svc"]).contains("got-usr1")
    });
    assert_eq!(isola.ok(["stop", "svc"]).trim(), "svc");
    assert_eq!(isola.ok(["wait", "svc"]).trim(), "3");
    assert!(isola.ok(["logs", "svc"]).contains("stopping"));
    let all = isola.ok(["ps", "-a"]);
    assert!(all.contains("Exited (3)"), "{all}");
    assert!(
        isola.ok(["ps"]).lines().count() == 1,
        "ps without -a shows only running ones"
    );

    // Started again, its log kept; restarted; removed only with -f.
    assert_eq!(isola.ok(["start", "svc"]).trim(), "svc");
    assert_eq!(status(&isola, "svc"), "running");
    assert_eq!(isola.ok(["restart", "-t", "1", "svc"]).trim(), "svc");
    assert_eq!(status(&isola, "svc"), "running");
    refused(&isola, &["rm", "svc"], "is running");
    assert_eq!(isola.ok(["rm", "-f", "svc"]).trim(), id);
    assert!(!isola.root().join("instances").join(&id).exists());
    // The name is free again.
    let again = isola.ok([
        "run",
        "-d",
        "--rm",
        "--name",
        "svc",
        "isola/busybox",
        "true",
    ]);
    let again = again.trim().to_string();
    eventually("a --rm sandbox to remove itself", || {
        !isola.root().join("instances").join(&again).exists()
    });
}

#[test]
fn create_start_attach_and_detach() {
    let Some(isola) = isola() else { return };
    let _cleanup = Cleanup(&isola);
    let id = isola.ok([
        "create",
        "--name",
        "c",
        "isola/busybox",
        "sh",
        "-c",
        "echo hello; exit 5",
    ]);
    assert_eq!(status(&isola, id.trim()), "created");
    assert!(isola.ok(["ps", "-a"]).contains("Created"));
    // Attached before it starts: nothing is missed, and the code is its.
    let out = isola.cmd(["start", "-a", "c"]);
    assert_eq!((code(&out), text(&out.stdout)), (5, "hello\n".to_string()));
    // An ended sandbox starts again from its kept config.
    let out = isola.cmd(["start", "-a", "c"]);
    assert_eq!(code(&out), 5);
    assert_eq!(isola.ok(["logs", "c"]), "hello\nhello\n");

    // attach to a running one, with input; Ctrl-p Ctrl-q leaves it running.
    isola.ok(["run", "-d", "-i", "--name", "cat", "isola/busybox", "cat"]);
    let mut child = isola
        .command(["attach", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"echoed back\n").unwrap();
    eventually("the echo in the log", || {
        isola.ok(["logs", "cat"]).contains("echoed back")
    });
    stdin.write_all(&[0x10, 0x11]).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "detached");
    assert_eq!(text(&out.stdout), "echoed back\n");
    assert_eq!(status(&isola, "cat"), "running");
    // A signal to attach goes to the workload, as docker's --sig-proxy,
    // and attach ends with its code.
    isola.ok([
        "run",
        "-d",
        "--name",
        "trapper",
        "isola/busybox",
        "sh",
        "-c",
        "trap 'echo got-term; exit 3' TERM; while :; do echo tick; sleep 0.1; done",
    ]);
    let mut child = isola
        .command(["attach", "trapper"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A tick through attach: it is connected, its signals relayed.
    let mut tick = [0u8; 5];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut tick).unwrap();
    assert_eq!(&tick, b"tick\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 3, "attach after TERM: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).ends_with("got-term\n"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(text(&out.stderr), "");

    // A terminal of its own, attached through script(1)'s pty: what is
    // typed runs, and Ctrl-p Ctrl-q detaches.
    isola.ok(["run", "-dit", "--name", "tty", "isola/busybox", "sh"]);
    if common::tool("script") {
        let attach = format!("{} attach tty", env!("CARGO_BIN_EXE_isola"));
        let mut child = Command::new("script")
            .args(["-qfec", &attach, "/dev/null"])
            .env("ISOLA_ROOT", isola.root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"echo typed-$((6*7))\r").unwrap();
        eventually("the typed command's output", || {
            isola.ok(["logs", "tty"]).contains("typed-42")
        });
        stdin.write_all(&[0x10, 0x11]).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stdout));
        assert!(
            text(&out.stdout).contains("typed-42"),
            "{}",
            text(&out.stdout)
        );
        assert_eq!(status(&isola, "tty"), "running");
    }
    // exec -t gets a terminal too.
    let out = isola.cmd(["exec", "-t", "tty", "sh", "-c", "tty; test -t 1"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("/dev/pts/"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn the_restart_policy_restarts_with_a_back_off_and_a_stop_ends_it() {
    let Some(isola) = isola() else { return };
    let _cleanup = Cleanup(&isola);
    isola.ok([
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "isola/busybox",
        "sh",
        "-c",
        "echo run; exit 1",
    ]);
    eventually("two restarts and the end", || {
        status(&isola, "flaky") == "exited"
    });
    let v = isola.json(["inspect", "flaky"]);
    assert_eq!(
        (v["restarts"].as_u64(), v["exit_code"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(isola.ok(["logs", "flaky"]), "run\nrun\nrun\n");

    isola.ok([
        "run",
        "-d",
        "--name",
        "always",
        "--restart",
        "always",
        "isola/busybox",
        "sh",
        "-c",
        "sleep 0.2",
    ]);
    eventually("a restart", || {
        isola.json(["inspect", "always"])["restarts"].as_u64() >= Some(1)
    });
    isola.ok(["stop", "always"]);
    assert_eq!(status(&isola, "always"), "exited");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        status(&isola, "always"),
        "exited",
        "a stopped sandbox stays stopped"
    );
}

#[test]
fn bad_input_is_one_sentence_with_code_125_and_changes_nothing() {
    let Some(isola) = isola() else { return };
    let _cleanup = Cleanup(&isola);
    isola.ok(["run", "-d", "--name", "up", "isola/busybox", "sleep", "60"]);
    isola.ok(["create", "--name", "made", "isola/busybox", "true"]);
    isola.ok(["run", "-d", "--name", "ended", "isola/busybox", "true"]);
    eventually("it to end", || status(&isola, "ended") == "exited");
    let before: Vec<_> = ["up", "made", "ended"]
        .iter()
        .map(|n| isola.json(["inspect", n]))
        .collect();
    refused(&isola, &["logs", "nope"], "no sandbox \"nope\"");
    refused(&isola, &["stop", "nope"], "no sandbox \"nope\"");
    refused(
        &isola,
        &["run", "-d", "--name", "up", "isola/busybox", "true"],
        "already in use",
    );
    refused(
        &isola,
        &["create", "--name", "bad/name", "isola/busybox", "true"],
        "is not valid",
    );
    refused(
        &isola,
        &[
            "run",
            "-d",
            "--restart",
            "sometimes",
            "isola/busybox",
            "true",
        ],
        "unknown --restart",
    );
    refused(&isola, &["run", "-d", "no-such-image"], "no-such-image");
    refused(&isola, &["start", "up"], "already running");
    refused(&isola, &["exec", "ended", "true"], "is not running");
    refused(&isola, &["exec", "made", "true"], "is not running");
    refused(&isola, &["kill", "ended"], "is not running");
    refused(&isola, &["rm", "up"], "is running");
    refused(&isola, &["kill", "-s", "NOPE", "up"], "unknown signal");
    // A create that fails in the backend leaves nothing, its name free.
    refused(
        &isola,
        &[
            "run",
            "-d",
            "--name",
            "broken",
            "-w",
            "/etc/passwd",
            "isola/busybox",
            "true",
        ],
        "/etc/passwd",
    );
    let after: Vec<_> = ["up", "made", "ended"]
        .iter()
        .map(|n| isola.json(["inspect", n]))
        .collect();
    assert_eq!(before, after);
    // Nothing was made for the refused ones: only the three are there.
    assert_eq!(isola.ok(["ps", "-aq"]).lines().count(), 3);
    assert!(!isola.root().join("instances/.names/broken").exists());
    // A created one is removed without -f: it never ran.
    isola.ok(["rm", "made"]);
    assert_eq!(isola.ok(["ps", "-aq"]).lines().count(), 2);
}

#[test]
fn faults_leave_a_consistent_state_and_prune_leaves_nothing() {
    let Some(isola) = isola() else { return };
    let _cleanup = Cleanup(&isola);
    // The CLI killed at several points of `run -d`: the shim goes on or
    // never began, and either way ps -a can read every state.
    for delay_ms in [0, 2, 5, 10, 30] {
        let mut child = isola
            .command(["run", "-d", "isola/busybox", "sleep", "30"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
    }
    // The CLI killed during create and during start: the sandbox is
    // created, or running, and never half of either.
    for delay_ms in [0, 3, 10] {
        let mut child = isola
            .command(["create", "isola/busybox", "sleep", "30"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
    }
    let made = isola.ok([
        "create",
        "--name",
        "to-start",
        "isola/busybox",
        "sleep",
        "30",
    ]);
    let mut child = isola.command(["start", made.trim()]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(2));
    let _ = child.kill();
    let _ = child.wait();
    let s = status(&isola, "to-start");
    assert!(s == "created" || s == "running", "{s}");
    for state in isola.json(["ps", "-a", "--json"]).as_array().unwrap() {
        let s = state["status"].as_str().unwrap();
        assert!(["created", "running"].contains(&s), "{state}");
    }

    // The CLI killed during attach and during exec: the sandbox lives on.
    isola.ok([
        "run",
        "-d",
        "--name",
        "target",
        "isola/busybox",
        "sleep",
        "60",
    ]);
    for args in [
        vec!["attach", "target"],
        vec!["exec", "target", "sleep", "30"],
    ] {
        let mut child = isola.command(&args).stdin(Stdio::piped()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            status(&isola, "target"),
            "running",
            "after killing {args:?}"
        );
    }
    // The shim killed: its sandbox is shown dead, its workload gone with it.
    let v = isola.json(["inspect", "target"]);
    let shim = v["pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    eventually("the dead shim to show", || {
        status(&isola, "target") == "dead"
    });
    assert!(isola.ok(["ps", "-a"]).contains("Dead"));
    refused(&isola, &["rm", "target"], "rm -f");

    // Fifty at once, then fifty removals at once.
    let run: Vec<_> = (0..50)
        .map(|_| {
            isola
                .command(["run", "-d", "isola/busybox", "sleep", "60"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ids = Vec::new();
    for c in run {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        ids.push(text(&out.stdout).trim().to_string());
    }
    let listed = isola.json(["ps", "--json"]);
    let running = listed.as_array().unwrap().len();
    assert!(running >= 50, "{running} running");
    let rm: Vec<_> = ids
        .iter()
        .map(|id| {
            isola
                .command(["rm", "-f", id])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in rm {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    // Every state left is whole, and prune (with rm -f of the rest)
    // leaves nothing.
    for entry in std::fs::read_dir(isola.root().join("instances"))
        .unwrap()
        .flatten()
    {
        let state = entry.path().join("state.json");
        if state.exists() {
            let bytes = std::fs::read(&state).unwrap();
            serde_json::from_slice::<serde_json::Value>(&bytes).expect("a whole state.json");
        }
    }
    let rest = isola.ok(["ps", "-aq"]);
    let mut seen: Vec<String> = rest.split_whitespace().map(str::to_string).collect();
    seen.extend(ids);
    for id in rest.split_whitespace() {
        isola.ok(["rm", "-f", id]);
    }
    isola.ok(["prune"]);
    assert_eq!(isola.ok(["ps", "-aq"]), "");
    // Nothing of this root's is left: no process names it, no cgroup is
    // left of its sandboxes. (The other tests run meanwhile, so the
    // host-wide check-leftovers is `make test`'s, after the suite.)
    let root = isola.root().to_string_lossy().into_owned();
    let ps = Command::new("ps").args(["-eo", "args="]).output().unwrap();
    let ours: Vec<String> = text(&ps.stdout)
        .lines()
        .filter(|l| l.contains(&root))
        .map(str::to_string)
        .collect();
    assert!(ours.is_empty(), "left running: {ours:?}");
    for id in &seen {
        for controller in ["pids", "memory", "cpu", "unified"] {
            let dir = std::path::Path::new("/sys/fs/cgroup")
                .join(controller)
                .join("isola")
                .join(id);
            assert!(!dir.exists(), "{} is left", dir.display());
        }
    }
}

#[test]
fn a_flood_of_output_is_rotated_and_followed_without_blocking_the_workload() {
    let Some(isola) = isola() else { return };
    let _cleanup = Cleanup(&isola);
    // 100 MiB in 1 KiB lines, then a last line.
    let script = "line=$(head -c 1023 /dev/zero | tr '\\0' x); \
        yes \"$line\" 2>/dev/null | head -c 104857600; echo the-end";
    let started = Instant::now();
    isola.ok([
        "run",
        "-d",
        "--name",
        "flood",
        "--log-max-size",
        "1m",
        "--log-max-files",
        "3",
        "isola/busybox",
        "sh",
        "-c",
        script,
    ]);
    let follow = isola
        .command(["logs", "-f", "--tail", "0", "flood"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(isola.ok(["wait", "flood"]).trim(), "0");
    eprintln!("100 MiB through the log in {:?}", started.elapsed());
    let out = follow.wait_with_output().unwrap();
    let followed = text(&out.stdout);
    assert!(
        followed.ends_with("the-end\n"),
        "logs -f followed to the end across rotations"
    );
    let dir = isola
        .root()
        .join("instances")
        .join(status_id(&isola, "flood"));
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("ctr.log"))
        .collect();
    let total: u64 = files.iter().map(|e| e.metadata().unwrap().len()).sum();
    assert!(files.len() <= 3, "{} log files", files.len());
    assert!(total <= 3 * (1 << 20) + 64 * 1024, "{total} bytes of log");
    assert!(isola.ok(["logs", "--tail", "1", "flood"]) == "the-end\n");
}

fn status_id(isola: &Isola, name: &str) -> String {
    isola.json(["inspect", name])["id"]
        .as_str()
        .unwrap()
        .to_string()
}
