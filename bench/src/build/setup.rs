//! Before the first timed run: the context written, a store per tool
//! holding only the base (buildah's pulled from isola's as an OCI layout,
//! so both start from the same image), a copy of it for the cold runs and
//! another that has built the workload once, for the cached ones.

use std::io;
use std::path::Path;

use isola_core::image::default_image::{self, DefaultImageError};
use isola_core::image::save::save_layout;
use isola_core::image::{ImageError, ImageStore};
use isola_core::Root;

use super::tools::{reset, Builder, Store, Tool};
use super::workload::{self, BASE};
use super::BuildPlan;
use crate::lifecycle::cycle::{Cycle, Runner};
use crate::sandbox::SandboxError;
use isola_core::chain::chain;

#[derive(Debug, thiserror::Error)]
pub enum SetUpError {
    #[error("writing the build context into {0}")]
    Context(String, #[source] io::Error),
    #[error("making the base store")]
    Base(#[from] DefaultImageError),
    #[error("writing the base as an OCI layout for buildah")]
    Layout(#[source] ImageError),
    #[error("creating a directory for buildah's run roots")]
    RunRoots(#[source] io::Error),
    #[error("{what}")]
    Run {
        what: String,
        #[source]
        source: SandboxError,
    },
}

/// One tool ready to be timed.
struct Ready {
    builder: Builder,
    base: Store,
    cold: Store,
    cached: Store,
}

pub struct SetUp {
    ready: Vec<Ready>,
    /// A tool that could not be made ready, and why.
    pub errors: Vec<(Tool, String)>,
    /// buildah's run roots, removed with the set-up.
    _runroots: tempfile::TempDir,
}

impl SetUp {
    pub fn new(plan: &BuildPlan, runner: &Runner) -> Result<SetUp, SetUpError> {
        let context = plan.work.join("context");
        workload::write(&context)
            .map_err(|e| SetUpError::Context(context.display().to_string(), e))?;
        // A short path (buildah, like podman, refuses a long run root)
        // in lower case: buildah 1.28 names an image pulled from an OCI
        // layout after the layout's path, which must be a valid name.
        let runroots = tempfile::Builder::new()
            .prefix(&format!("isola-bench-build-{}", std::process::id()))
            .rand_bytes(0)
            .tempdir()
            .map_err(SetUpError::RunRoots)?;
        let isola_base = plan.work.join("isola/base");
        let store = ImageStore::open(Root::new(&isola_base)).map_err(DefaultImageError::from)?;
        let image = default_image::ensure(&store)?;
        let mut set_up = SetUp {
            ready: Vec::new(),
            errors: Vec::new(),
            _runroots: runroots,
        };
        let isola = Builder {
            tool: Tool::Isola,
            program: plan.isola.clone(),
            context: context.clone(),
        };
        let isola_base = Store {
            root: isola_base,
            runroot: None,
        };
        set_up.add(runner, isola, isola_base, &plan.work.join("isola"), None)?;
        if plan.buildah {
            let layout = set_up._runroots.path().join("layout");
            save_layout(&store, &image, &layout, BASE).map_err(SetUpError::Layout)?;
            let runroots = set_up._runroots.path().to_path_buf();
            let buildah = Builder {
                tool: Tool::Buildah,
                program: "buildah".into(),
                context,
            };
            let base = Store {
                root: plan.work.join("buildah/base"),
                runroot: Some(runroots.join("base")),
            };
            let pulled = pull(runner, &buildah, &base, &layout).and_then(|()| {
                set_up.add(
                    runner,
                    buildah,
                    base,
                    &plan.work.join("buildah"),
                    Some(&runroots),
                )
            });
            if let Err(e) = pulled {
                set_up.errors.push((Tool::Buildah, chain(&e)));
            }
        }
        Ok(set_up)
    }

    /// `builder` made ready: its cold store a copy of `base`, its cached
    /// store a copy that built the workload once (which also shows that
    /// it can, before anything is timed).
    fn add(
        &mut self,
        runner: &Runner,
        builder: Builder,
        base: Store,
        dir: &Path,
        runroots: Option<&Path>,
    ) -> Result<(), SetUpError> {
        let store = |name: &str| Store {
            root: dir.join(name),
            runroot: runroots.map(|r| r.join(name)),
        };
        let (cold, cached) = (store("cold"), store("cached"));
        let what = format!("{}: building the workload once", builder.tool.name());
        for step in reset(&cold, &base).into_iter().chain(reset(&cached, &base)) {
            runner.run(&step, &[]).map_err(|source| SetUpError::Run {
                what: format!("{}: copying its base store", builder.tool.name()),
                source,
            })?;
        }
        runner
            .run(&builder.build(&cached), &[])
            .map_err(|source| SetUpError::Run { what, source })?;
        self.ready.push(Ready {
            builder,
            base,
            cold,
            cached,
        });
        Ok(())
    }

    pub fn has(&self, tool: Tool) -> bool {
        self.ready.iter().any(|r| r.builder.tool == tool)
    }

    /// isola's and buildah's cold builds, in that order.
    pub fn cold_cycles(&self) -> Vec<Cycle> {
        self.ready
            .iter()
            .map(|r| r.builder.cold(&r.cold, &r.base))
            .collect()
    }

    pub fn cached_cycles(&self) -> Vec<Cycle> {
        self.ready
            .iter()
            .map(|r| r.builder.cached(&r.cached))
            .collect()
    }
}

/// The base pulled into buildah's `base` store from the OCI layout, then
/// named `isola/busybox:latest` (buildah's `localhost/isola/busybox`, which
/// `FROM isola/busybox` finds): buildah 1.28 names it after the layout's
/// path, whatever the layout's tag.
fn pull(runner: &Runner, buildah: &Builder, base: &Store, layout: &Path) -> Result<(), SetUpError> {
    let failed = |source| SetUpError::Run {
        what: "buildah: pulling the base from an OCI layout".into(),
        source,
    };
    let mut argv = buildah.on(base);
    argv.extend([
        "pull".into(),
        "-q".into(),
        format!("oci:{}:{BASE}", layout.display()),
    ]);
    let id = runner.capture(&argv, &[]).map_err(failed)?;
    let mut argv = buildah.on(base);
    argv.extend(["tag".into(), id, BASE.into()]);
    runner.run(&argv, &[]).map_err(failed)?;
    Ok(())
}
