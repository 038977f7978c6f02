//! The probe's command line as a harness meets it: what each subcommand
//! prints, where, and how it exits.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const PROBE: &str = env!("CARGO_BIN_EXE_isola-probe");

fn probe(args: &[&str]) -> Output {
    Command::new(PROBE).args(args).output().unwrap()
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn work_prints_one_entry_per_workload_asked_for() {
    let v = json_of(&probe(&["work", "cpu", "fork_exec", "--ms", "30"]));
    let entries = v.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["workload"], "cpu");
    assert_eq!(entries[0]["unit"], "Mops/s");
    // fork_exec runs this very program's `noop`, which must exit 0.
    assert_eq!(entries[1]["workload"], "fork_exec");
    assert_eq!(entries[1]["unit"], "spawns/s");
    for e in entries {
        assert!(e["ops"].as_u64().unwrap() > 0, "{e}");
        assert!(e["seconds"].as_f64().unwrap() >= 0.03, "{e}");
        assert!(e["rate"].as_f64().unwrap() > 0.0, "{e}");
    }
}

#[test]
fn work_stdout_writes_data_to_stdout_and_its_result_to_stderr() {
    let out = probe(&["work", "stdout", "--ms", "30"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap();
    let v: Value = serde_json::from_str(last).unwrap();
    assert_eq!(v[0]["workload"], "stdout");
    assert_eq!(v[0]["unit"], "MiB/s");
    // Warm-up writes come first, so at least the counted chunks arrived.
    let chunks = v[0]["ops"].as_u64().unwrap();
    assert!(out.stdout.len() as u64 >= chunks * 65536);
    assert_eq!(out.stdout.len() % 65536, 0);
}

#[test]
fn an_unknown_workload_is_named_with_the_valid_ones_and_exits_2() {
    let out = probe(&["work", "cpu", "gpu"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`gpu`"), "{stderr}");
    assert!(
        stderr.contains("cpu, getpid, fork_exec, write_fsync, memcpy, stdout"),
        "{stderr}"
    );
    assert_eq!(probe(&["work", "stdout", "cpu"]).status.code(), Some(2));
}

#[test]
fn noop_exits_0_saying_nothing() {
    let out = probe(&["noop"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
}

#[test]
fn syscalls_and_limits_print_their_objects() {
    let s = json_of(&probe(&["syscalls"]));
    assert_eq!(s["tested"], 374);
    assert_eq!(
        s["reached"].as_u64().unwrap() + s["blocked"].as_u64().unwrap(),
        374
    );
    let l = json_of(&probe(&["limits", "--memory-mib", "4", "--pids", "4"]));
    assert_eq!(
        l,
        serde_json::json!({
            "memory": {"tried_mib": 4, "touched_mib": 4, "killed_by": null, "error": null},
            "pids": {"tried": 4, "started": 4, "error": null},
        })
    );
}

#[test]
fn idle_says_hello_and_exits_0_on_each_stop_signal() {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        let mut child = Command::new(PROBE)
            .arg("idle")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let hello: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(hello["pid"], child.id());
        assert!(hello["mem_total_kib"].as_u64().unwrap() > 0);
        assert!(hello["mem_available_kib"].as_u64().is_some());
        // SAFETY: signals our own child, not yet reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "after signal {sig}");
    }
}
