//! containerd end to end: `ctr run --rm --runc-binary RUNTIME` of the
//! imported image on a private containerd, each runtime's first run kept
//! apart from its warm runs.

use std::path::Path;

use crate::lifecycle::containerd::Containerd;
use crate::lifecycle::cycle::{self, Cycle, Runner};
use crate::results::{ColdStart, OciContainerd};
use isola_core::chain::chain;

use super::runtimes::{Runtime, ISOLA};
use super::setup::{ARGS, IMAGE};

/// What the containerd part measured, and what could not run: `(subject,
/// its own error line)`.
pub struct Outcome {
    pub containerd: Option<OciContainerd>,
    pub errors: Vec<(String, String)>,
}

/// containerd started under `dir`, the archive imported, then each of
/// `runtimes` run once, then warm, interleaved. containerd is stopped and
/// everything of it removed before this returns.
pub fn measure(
    dir: &Path,
    archive: &Path,
    runtimes: &[Runtime],
    runner: &Runner,
    runs: usize,
    warmup: usize,
    progress: &mut dyn FnMut(&str),
) -> Outcome {
    let mut errors = Vec::new();
    progress("oci: starting containerd");
    let containerd = match Containerd::start(dir) {
        Ok(c) => c,
        Err(e) => {
            errors.push(("containerd".to_string(), chain(&e)));
            return Outcome {
                containerd: None,
                errors,
            };
        }
    };
    let label = containerd
        .label
        .split(" (")
        .next()
        .unwrap_or("containerd")
        .to_string();
    if let Err(e) = std::fs::create_dir_all(dir.join("fifo")) {
        errors.push((
            "containerd".to_string(),
            format!("making its fifo directory: {e}"),
        ));
        return Outcome {
            containerd: None,
            errors,
        };
    }
    if let Err(e) = runner.run(&containerd.import(archive, None), &[]) {
        errors.push((
            "containerd".to_string(),
            format!("ctr image import: {}", chain(&e)),
        ));
        return Outcome {
            containerd: None,
            errors,
        };
    }
    // isola-runtime first: the first run of all pays the daemon's first
    // task (the shim binary read, the snapshot's first mount).
    let cycles: Vec<Cycle> = runtimes
        .iter()
        .map(|rt| {
            let id = format!("{}-ctr", rt.id());
            Cycle::new(
                &rt.name,
                &format!("ctr run --rm --runc-binary {}", rt.name),
                vec![containerd.run_rm(&id, IMAGE, &rt.program, &ARGS)],
            )
        })
        .collect();
    progress("oci, ctr run --rm: the first run of each runtime");
    let firsts = runner.measure(&cycles, 1, 0, |_| {});
    let mut first = Vec::new();
    let mut warm_cycles = Vec::new();
    for (c, r) in cycles.into_iter().zip(&firsts) {
        match (&r.error, r.ms.first()) {
            (None, Some(&ms)) => {
                first.push(ColdStart {
                    subject: r.name.clone(),
                    ms,
                });
                warm_cycles.push(c);
            }
            (e, _) => errors.push((
                r.name.clone(),
                format!(
                    "not run through containerd: {}",
                    e.as_deref().unwrap_or("no time")
                ),
            )),
        }
    }
    let results = runner.measure(&warm_cycles, runs, warmup, |n| {
        progress(&format!("oci, ctr run --rm: run {n}/{runs}"))
    });
    for r in &results {
        if let Some(e) = &r.error {
            errors.push((r.name.clone(), format!("through containerd: {e}")));
        }
    }
    let warm = cycle::series(&warm_cycles, &results, ISOLA);
    // containerd stopped, its containers and cgroups removed.
    drop(containerd);
    Outcome {
        containerd: Some(OciContainerd { label, first, warm }),
        errors,
    }
}
