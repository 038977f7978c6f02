//! isola's own monitor from the command line, with the project's test guest
//! (built by `make`): `isola vm boot` and `isola bench monitor`. Both run
//! for real under /dev/kvm, PVM included.

mod common;

use std::path::PathBuf;

use common::Isola;
use serde_json::Value;

fn guest() -> Option<PathBuf> {
    let guest = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("backend-vm/testguest/target/x86_64-unknown-none/release/isola-testguest");
    let kvm = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    (common::host_has("the test guest (make testguest builds it)", guest.is_file())
        && common::host_has("a usable /dev/kvm", kvm))
    .then_some(guest)
}

#[test]
fn vm_boot_shows_the_guest_s_serial_and_exits_with_its_status() {
    let Some(guest) = guest() else { return };
    let isola = Isola::new();
    let out = isola.cmd([
        "vm".as_ref(),
        "boot".as_ref(),
        guest.as_os_str(),
        "--append".as_ref(),
        "exit=7".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("isola-testguest: started"), "{stdout}");
    assert!(stdout.contains("cmdline: exit=7"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("isola-testguest: stderr works"),
        "{out:?}"
    );
}

#[test]
fn bench_monitor_measures_isola_and_qemu_run_by_run() {
    let Some(guest) = guest() else { return };
    if !common::tool("qemu-system-x86_64") {
        return;
    }
    let isola = Isola::new();
    let out = isola.cmd([
        "bench".as_ref(),
        "monitor".as_ref(),
        "--guest".as_ref(),
        guest.as_os_str(),
        "--runs".as_ref(),
        "2".as_ref(),
        "--warmup".as_ref(),
        "0".as_ref(),
        "--json".as_ref(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let results: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let results = results.as_array().expect("an array");
    let names: Vec<&str> = results.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["monitor-isola", "monitor-qemu"]);
    for r in results {
        assert_eq!(r["error"], Value::Null, "{r}");
        for key in ["ms", "cpu_ms"] {
            let runs = r[key].as_array().expect(key);
            assert_eq!(runs.len(), 2, "{r}");
            assert!(
                runs.iter().all(|v| v.as_f64().is_some_and(|x| x > 0.0)),
                "{r}"
            );
        }
    }
    // The table, for people, on stderr.
    assert!(String::from_utf8_lossy(&out.stderr).contains("VS QEMU"));
}

#[test]
fn bench_monitor_without_a_guest_says_how_to_get_one() {
    let isola = Isola::new();
    let out = isola.cmd(["bench", "monitor", "--guest", "/no/such/guest"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("make testguest"), "{err}");
}
