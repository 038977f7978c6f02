//! Build: a Dockerfile built by `isola build` and by `buildah bud
//! --layers` from the same busybox base, cold (a store with only the
//! base) and with every step cached, the two tools taking turns run by run.

mod setup;
pub mod tools;
pub mod workload;

use std::path::PathBuf;

use crate::interrupt;
use crate::lifecycle::cycle::{self, Cycle, Runner};
use crate::lifecycle::podman;
use crate::peers::{found, PeersError};
use crate::results::{Build, Goal, LifecycleSeries, RunError, Subject};
use setup::SetUp;
use tools::Tool;

/// The peers this dimension knows, as `--peers` names them.
pub const PEERS: [&str; 1] = ["buildah"];

/// What the dimension runs.
pub struct BuildPlan {
    /// The isola binary whose builds are timed (this one).
    pub isola: PathBuf,
    /// Scratch: the context and every store, removed by the plan's owner.
    pub work: PathBuf,
    /// buildah is installed and asked for.
    pub buildah: bool,
    pub runs: usize,
    pub warmup: usize,
}

/// The figures, the subjects they name, and what could not run.
pub struct Outcome {
    pub build: Option<Build>,
    pub subjects: Vec<Subject>,
    pub errors: Vec<RunError>,
}

fn error(subject: &str, message: String) -> RunError {
    RunError {
        subject: subject.into(),
        dimension: "build".into(),
        message,
    }
}

/// Whether buildah is to run: asked for (by name or `auto`) and
/// installed. One named but missing is an error; with `auto` it is
/// reported as not run, with why.
pub fn peers(wanted: &[&str], auto: bool) -> Result<(bool, Vec<RunError>), PeersError> {
    let name = Tool::Buildah.name();
    if !wanted.contains(&name) {
        return Ok((false, Vec::new()));
    }
    if found(name) {
        return Ok((true, Vec::new()));
    }
    if auto {
        let why = format!("not run: {name} is not installed (scripts/setup --peers installs it)");
        return Ok((false, vec![error(name, why)]));
    }
    Err(PeersError::NotInstalled(name.into()))
}

/// Make the stores, then time the cold builds and the cached ones.
pub fn run(plan: &BuildPlan, progress: &mut dyn FnMut(&str)) -> Outcome {
    // Dropped last: a signal stops the runs, then takes its course.
    let _interrupt = interrupt::Guard::install();
    let mut errors = Vec::new();
    let runner = Runner::new(&plan.work);
    progress("build: making the base stores");
    let set_up = match SetUp::new(plan, &runner) {
        Ok(s) => s,
        Err(e) => {
            errors.push(error("isola", isola_core::chain::chain(&e)));
            return Outcome {
                build: None,
                subjects: Vec::new(),
                errors,
            };
        }
    };
    errors.extend(
        set_up
            .errors
            .iter()
            .map(|(t, e)| error(t.name(), e.clone())),
    );
    let mut timed = |cycles: Vec<Cycle>, what: &str, progress: &mut dyn FnMut(&str)| {
        let results = runner.measure(&cycles, plan.runs, plan.warmup, |n| {
            progress(&format!("build, {what}: run {n}/{}", plan.runs))
        });
        errors.extend(
            results
                .iter()
                .filter_map(|r| Some(error(&r.name, r.error.clone()?))),
        );
        cycle::series(&cycles, &results, Tool::Isola.name())
    };
    let cold = timed(set_up.cold_cycles(), "cold", progress);
    let cached = timed(set_up.cached_cycles(), "cached", progress);
    if interrupt::interrupted() {
        errors.push(error(
            "isola",
            "interrupted by a signal: the runs stopped".into(),
        ));
    }
    let goals = goals(&cold, &cached);
    Outcome {
        build: Some(Build {
            isola: crate::lifecycle::build(&plan.isola),
            workload: workload::LABEL.into(),
            cold,
            cached,
            goals,
        }),
        subjects: subjects(&set_up),
        errors,
    }
}

fn subjects(set_up: &SetUp) -> Vec<Subject> {
    let mut out = vec![crate::peers::subject(
        "isola",
        "isola build (container backend)",
    )];
    out[0].kind = "isola".into();
    if set_up.has(Tool::Buildah) {
        let label = format!("buildah {} (vfs, chroot)", podman::version("buildah"));
        out.push(crate::peers::subject("buildah", &label));
    }
    out
}

/// The build issue's goals against what was measured.
fn goals(cold: &[LifecycleSeries], cached: &[LifecycleSeries]) -> Vec<Goal> {
    let isola = |series: &[LifecycleSeries]| {
        series
            .iter()
            .find(|s| s.subject == Tool::Isola.name())
            .cloned()
    };
    let vs_buildah = |series: &[LifecycleSeries]| {
        isola(series)?
            .paired
            .iter()
            .find(|(o, _)| o == Tool::Buildah.name())
            .map(|(_, r)| *r)
    };
    [
        (
            "cold_vs_buildah",
            "isola build, cold, against buildah bud --layers (paired)",
            0.7,
            "x",
            vs_buildah(cold),
        ),
        (
            "cached_vs_buildah",
            "isola build, every step cached, against buildah (paired)",
            0.1,
            "x",
            vs_buildah(cached),
        ),
        (
            "cached_ms",
            "isola build, every step cached (median)",
            100.0,
            "ms",
            isola(cached).map(|s| s.summary.median),
        ),
    ]
    .into_iter()
    .map(|(key, label, limit, unit, value)| Goal::at_most(key, label, limit, unit, value))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Summary;

    fn series(subject: &str, median: f64, paired: &[(&str, f64)]) -> LifecycleSeries {
        LifecycleSeries {
            subject: subject.into(),
            command: String::new(),
            ms: vec![median],
            summary: Summary {
                min: median,
                median,
                p90: median,
                max: median,
            },
            paired: paired.iter().map(|(o, r)| (o.to_string(), *r)).collect(),
        }
    }

    #[test]
    fn goals_read_isola_s_paired_ratios_and_its_cached_median() {
        let cold = [
            series("isola", 1500.0, &[("buildah", 0.6)]),
            series("buildah", 2500.0, &[("isola", 1.6)]),
        ];
        let cached = [
            series("isola", 120.0, &[("buildah", 0.09)]),
            series("buildah", 1100.0, &[("isola", 11.0)]),
        ];
        let met: Vec<(String, Option<f64>, Option<bool>)> = goals(&cold, &cached)
            .into_iter()
            .map(|g| (g.key, g.value, g.met))
            .collect();
        assert_eq!(
            met,
            [
                ("cold_vs_buildah".into(), Some(0.6), Some(true)),
                ("cached_vs_buildah".into(), Some(0.09), Some(true)),
                ("cached_ms".into(), Some(120.0), Some(false)),
            ]
        );
        // Without buildah the ratios are not measured; the time still is.
        let alone = [series("isola", 80.0, &[])];
        let g = goals(&alone, &alone);
        assert_eq!(g[0].met, None);
        assert_eq!(g[2].met, Some(true));
    }

    #[test]
    fn buildah_asked_for_by_name_must_be_there() {
        let (none, not_run) = peers(&["podman"], false).unwrap();
        assert!(!none && not_run.is_empty());
        let (ran, not_run) = peers(&["buildah"], true).unwrap();
        assert_eq!(ran, found("buildah"));
        assert!(not_run
            .iter()
            .all(|e| e.message.contains("scripts/setup --peers")));
    }
}
