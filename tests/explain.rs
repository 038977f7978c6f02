//! `isola run --explain`: every step is announced and then named again
//! with its duration (isola's steps and the sandbox's interleave, so a
//! bare "done" could not be told apart), and the phases come in order.

mod common;

use common::Isola;

/// The steps `--explain` printed: (announced, finished) titles.
fn steps(stderr: &str) -> (Vec<String>, Vec<String>) {
    let mut announced = Vec::new();
    let mut finished = Vec::new();
    for line in stderr.lines() {
        if let Some(rest) = line.strip_prefix("explain:   done in ") {
            let (_, title) = rest
                .split_once(" ms: ")
                .unwrap_or_else(|| panic!("a step's end without its title: {line:?}"));
            finished.push(title.to_string());
        } else if let Some((title, _why)) = line
            .strip_prefix("explain: ")
            .and_then(|l| l.split_once(" — "))
        {
            announced.push(title.to_string());
        }
    }
    (announced, finished)
}

#[test]
fn every_step_of_a_container_start_is_named_and_timed() {
    if !common::root_user() {
        return;
    }
    let isola = Isola::new();
    isola.ok(["image", "default"]);
    let out = isola.expect(
        [
            "run",
            "--rm",
            "--explain",
            "--memory",
            "64m",
            "isola/busybox",
            "true",
        ],
        true,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (mut announced, mut finished) = steps(&stderr);
    assert!(announced.len() >= 10, "{stderr}");
    // Each announced step ends once, named (in whatever order the two
    // processes' lines came).
    announced.sort();
    finished.sort();
    assert_eq!(announced, finished, "{stderr}");
    for step in [
        "clone3(",
        "create cgroup isola/",
        "mount overlay",
        "pivot_root",
        "join the cgroup",
        "set user, drop capabilities",
        "remove the cgroup",
    ] {
        assert!(
            finished.iter().any(|t| t.starts_with(step)),
            "no step {step:?} in:\n{stderr}"
        );
    }
    let phases: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("explain: phase "))
        .map(|l| l.split("  ").next().unwrap_or(""))
        .collect();
    assert_eq!(
        phases,
        [
            "rootfs ready",
            "sandbox created",
            "workload started",
            "workload exited",
            "torn down"
        ],
        "{stderr}"
    );
    assert!(
        stderr.contains("container runs on the host's kernel"),
        "what describe says: {stderr}"
    );
}
