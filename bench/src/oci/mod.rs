//! OCI runtime: isola-runtime against runc and crun on one `/bin/true`
//! bundle, through runc's command line (`create` + `start` + the init
//! reaped + `delete`, and `run`) and through containerd (`ctr run --rm
//! --runc-binary`), the runtimes taking turns run by run.

mod ctr;
pub mod direct;
pub mod runtimes;
pub mod setup;
pub mod view;

use std::path::PathBuf;

use crate::interrupt;
use crate::lifecycle::cycle::{self, Cycle, Runner};
use crate::peers::{found, PeersError};
use crate::results::{Goal, LifecycleSeries, Oci, OciSteps, RunError, Subject};
use crate::startup;
use isola_core::chain::chain;
use runtimes::{Runtime, ISOLA};

/// The peers this dimension knows, as `--peers` names them.
pub const PEERS: [&str; 3] = ["runc", "crun", "containerd"];

/// What the tables say of the bundle.
pub const WORKLOAD: &str =
    "/bin/true in a busybox (static) bundle, config.json from isola-runtime spec";

/// youki's published time for the same life, as a multiple of crun's: the
/// other runtime written in Rust, for scale.
pub const YOUKI_VS_CRUN: f64 = 2.4;

/// The peers to run: runtimes by program name, and containerd.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Peers {
    /// `runc`, `crun`, in that order, as asked and found.
    pub runtimes: Vec<String>,
    pub containerd: bool,
}

/// What the dimension runs.
pub struct OciPlan {
    /// The isola-runtime binary measured.
    pub runtime: PathBuf,
    /// Scratch: the store, the bundle, the runtimes' roots, containerd's.
    pub work: PathBuf,
    pub peers: Peers,
    pub runs: usize,
    pub warmup: usize,
    /// How the runtimes see the cgroups, when not as the host has them
    /// ([`view::HIDDEN`]).
    pub cgroup_view: Option<String>,
}

/// The figures, the subjects they name, and what could not run.
pub struct Outcome {
    pub oci: Option<Oci>,
    pub subjects: Vec<Subject>,
    pub errors: Vec<RunError>,
}

fn error(subject: &str, message: String) -> RunError {
    RunError {
        subject: subject.into(),
        dimension: "oci".into(),
        message,
    }
}

/// The programs a peer needs on PATH.
fn programs(peer: &str) -> &'static [&'static str] {
    match peer {
        "runc" => &["runc"],
        "crun" => &["crun"],
        _ => &["containerd", "ctr", "containerd-shim-runc-v2"],
    }
}

/// The peers of `wanted` this dimension knows whose programs are
/// installed. One named but missing is an error; with `auto` it is
/// reported as not run, with why.
pub fn peers(wanted: &[&str], auto: bool) -> Result<(Peers, Vec<RunError>), PeersError> {
    let mut out = Peers::default();
    let mut not_run = Vec::new();
    for peer in PEERS.into_iter().filter(|p| wanted.contains(p)) {
        match programs(peer).iter().find(|p| !found(p)) {
            None if peer == "containerd" => out.containerd = true,
            None => out.runtimes.push(peer.to_string()),
            Some(missing) if auto => not_run.push(error(
                peer,
                format!("not run: {missing} is not installed (scripts/setup --peers installs it)"),
            )),
            Some(_) => return Err(PeersError::NotInstalled(peer.to_string())),
        }
    }
    Ok((out, not_run))
}

/// `program`'s absolute path on PATH.
fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Make the bundle, then time the runtimes directly, then through
/// containerd.
pub fn run(plan: &OciPlan, progress: &mut dyn FnMut(&str)) -> Outcome {
    // Dropped last: a signal stops the runs, then takes its course.
    let _interrupt = interrupt::Guard::install();
    let mut errors = Vec::new();
    let runner = Runner::new(&plan.work);
    progress("oci: making the bundle");
    let set_up = match setup::SetUp::new(&plan.work, &plan.runtime, plan.peers.containerd, &runner)
    {
        Ok(s) => s,
        Err(e) => {
            errors.push(error(ISOLA, chain(&e)));
            return Outcome {
                oci: None,
                subjects: Vec::new(),
                errors,
            };
        }
    };
    // Dropped before the bundle goes: any container left is deleted.
    let mut runtimes = vec![Runtime::new(ISOLA, &plan.runtime, &plan.work)];
    for name in &plan.peers.runtimes {
        match which(name) {
            Some(p) => runtimes.push(Runtime::new(name, &p, &plan.work)),
            None => errors.push(error(name, format!("not run: {name} is not on PATH"))),
        }
    }
    let subjects = subjects(&runtimes);

    // 1. create + start + reaped + delete, as a subreaper.
    let reaper = match direct::Subreaper::become_one() {
        Ok(r) => r,
        Err(e) => {
            errors.push(error(ISOLA, format!("becoming a child subreaper: {e}")));
            return Outcome {
                oci: None,
                subjects,
                errors,
            };
        }
    };
    let measured = direct::measure(
        &runner,
        &runtimes,
        &set_up.bundle,
        &plan.work,
        plan.runs,
        plan.warmup,
        |n| progress(&format!("oci, create+start+delete: run {n}/{}", plan.runs)),
    );
    errors.extend(not_run(&measured.results));
    let commands: Vec<String> = runtimes
        .iter()
        .map(|r| format!("{} create, start, (reaped), delete", r.name))
        .collect();
    let commands: Vec<&str> = commands.iter().map(String::as_str).collect();
    let create_start_delete = cycle::series_of(&commands, &measured.results, ISOLA);
    let steps = measured
        .steps
        .into_iter()
        .map(|(subject, median_ms)| OciSteps { subject, median_ms })
        .collect();

    // 2. `run`: the same, the runtime waiting for its own init.
    let cycles: Vec<Cycle> = runtimes
        .iter()
        .map(|r| {
            Cycle::new(
                &r.name,
                &format!("{} run", r.name),
                vec![r.run(&set_up.bundle)],
            )
        })
        .collect();
    let mut results = runner.measure(&cycles, plan.runs, plan.warmup, |n| {
        progress(&format!("oci, run: run {n}/{}", plan.runs))
    });
    for r in &mut results {
        if let Some(e) = &mut r.error {
            *e = format!("{} run: {e}", r.name);
        }
    }
    errors.extend(not_run(&results));
    let run = cycle::series(&cycles, &results, ISOLA);
    drop(reaper);

    // 3. Through containerd.
    let containerd = match (&set_up.archive, interrupt::interrupted()) {
        (Some(archive), false) => {
            let out = ctr::measure(
                &plan.work.join("containerd"),
                archive,
                &runtimes,
                &runner,
                plan.runs,
                plan.warmup,
                progress,
            );
            errors.extend(out.errors.into_iter().map(|(s, e)| error(&s, e)));
            out.containerd
        }
        _ => None,
    };
    if interrupt::interrupted() {
        errors.push(error(
            ISOLA,
            "interrupted by a signal: the runs stopped".into(),
        ));
    }
    let goals = goals(&create_start_delete);
    Outcome {
        oci: Some(Oci {
            runtime: crate::lifecycle::build(&plan.runtime),
            workload: WORKLOAD.into(),
            create_start_delete,
            steps,
            run,
            containerd,
            goals,
            cgroup_view: plan.cgroup_view.clone(),
        }),
        subjects,
        errors,
    }
}

/// A runtime whose runs failed: "not run" when none had succeeded (crun
/// on a cgroup v1 hybrid host), else after how many it stopped.
fn not_run(results: &[startup::Result]) -> Vec<RunError> {
    results
        .iter()
        .filter_map(|r| {
            let e = r.error.as_ref()?;
            Some(if r.ms.is_empty() {
                error(&r.name, format!("not run: {e}"))
            } else {
                error(&r.name, format!("stopped after {} runs: {e}", r.ms.len()))
            })
        })
        .collect()
}

fn subjects(runtimes: &[Runtime]) -> Vec<Subject> {
    runtimes
        .iter()
        .map(|r| {
            let mut s = crate::peers::subject(&r.name, &r.label);
            if r.name == ISOLA {
                s.kind = "isola".into();
            }
            s
        })
        .collect()
}

/// The OCI runtime issue's goal against what was measured: create, start
/// and delete in at most crun's time (paired).
fn goals(series: &[LifecycleSeries]) -> Vec<Goal> {
    let vs_crun = series
        .iter()
        .find(|s| s.subject == ISOLA)
        .and_then(|s| s.paired.iter().find(|(o, _)| o == "crun"))
        .map(|(_, r)| *r);
    vec![Goal::at_most(
        "vs_crun",
        &format!(
            "isola-runtime create+start+delete against crun (paired; youki's published figure: {YOUKI_VS_CRUN}x)"
        ),
        1.0,
        "x",
        vs_crun,
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(subject: &str, paired: &[(&str, f64)]) -> LifecycleSeries {
        LifecycleSeries::with_ratios(subject, paired)
    }

    #[test]
    fn the_goal_reads_the_paired_ratio_to_crun_and_is_unmeasured_without_it() {
        let g = goals(&[series(ISOLA, &[("runc", 0.4), ("crun", 0.9)])]);
        assert_eq!(
            (g[0].key.as_str(), g[0].value, g[0].met),
            ("vs_crun", Some(0.9), Some(true))
        );
        let g = goals(&[series(ISOLA, &[("runc", 0.4)])]);
        assert_eq!((g[0].value, g[0].met), (None, None));
    }

    #[test]
    fn a_runtime_that_never_ran_is_not_run_and_one_that_stopped_says_when() {
        let r = |name: &str, ms: Vec<f64>, e: Option<&str>| startup::Result {
            name: name.into(),
            ms,
            cpu_ms: Vec::new(),
            peak_rss_kib: None,
            error: e.map(String::from),
        };
        let errors = not_run(&[
            r(ISOLA, vec![1.0], None),
            r(
                "crun",
                vec![],
                Some("crun create: cgroups in hybrid mode not supported"),
            ),
            r("runc", vec![1.0, 2.0], Some("runc delete: busy")),
        ]);
        let said: Vec<(&str, &str)> = errors
            .iter()
            .map(|e| (e.subject.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(
            said,
            [
                (
                    "crun",
                    "not run: crun create: cgroups in hybrid mode not supported"
                ),
                ("runc", "stopped after 2 runs: runc delete: busy"),
            ]
        );
    }

    #[test]
    fn peers_are_this_dimension_s_only() {
        let (p, not_run) = peers(&["floor", "podman"], true).unwrap();
        assert_eq!(p, Peers::default());
        assert!(not_run.is_empty());
        let (p, not_run) = peers(&["runc", "crun", "containerd"], true).unwrap();
        assert_eq!(
            p.runtimes.len() + not_run.iter().filter(|e| e.subject != "containerd").count(),
            2
        );
        assert!(not_run
            .iter()
            .all(|e| e.message.contains("scripts/setup --peers")));
    }
}
