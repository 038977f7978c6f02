//! The two builders as the dimension runs them, each on stores of its own:
//! `isola build` on an isola root, `buildah bud --layers` on vfs storage
//! with chroot isolation (its runc path trips over the rlimit this host's
//! root may not raise, as podman's does). A cold run builds on a copy of
//! a store that holds only the base; a cached run builds again on a store
//! that has built the same thing once.

use std::path::{Path, PathBuf};

use crate::lifecycle::cycle::Cycle;

use super::workload::TAG;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Isola,
    Buildah,
}

impl Tool {
    /// Its subject id.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Isola => "isola",
            Tool::Buildah => "buildah",
        }
    }

    /// What is timed, for the tables.
    pub fn command(self) -> &'static str {
        match self {
            Tool::Isola => "isola build",
            Tool::Buildah => "buildah bud --layers (vfs, --isolation chroot)",
        }
    }
}

/// Where one tool keeps an image store: buildah's storage has a run root
/// beside it, kept apart (podman and buildah refuse a long one).
#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
    pub runroot: Option<PathBuf>,
}

/// A tool and what it builds from.
pub struct Builder {
    pub tool: Tool,
    /// isola's own binary, or `buildah`.
    pub program: PathBuf,
    pub context: PathBuf,
}

fn text(path: &Path) -> String {
    path.display().to_string()
}

impl Builder {
    /// The tool on `store`, before its subcommand.
    pub fn on(&self, store: &Store) -> Vec<String> {
        let mut argv = vec![text(&self.program), "--root".into(), text(&store.root)];
        if let Some(runroot) = &store.runroot {
            argv.extend(["--runroot".into(), text(runroot)]);
        }
        if self.tool == Tool::Buildah {
            argv.extend(["--storage-driver".into(), "vfs".into()]);
        }
        argv
    }

    /// The timed command: the workload built and tagged on `store`.
    pub fn build(&self, store: &Store) -> Vec<String> {
        let mut argv = self.on(store);
        match self.tool {
            Tool::Isola => argv.push("build".into()),
            Tool::Buildah => argv.extend(
                ["bud", "--isolation", "chroot", "--layers"]
                    .iter()
                    .map(|s| s.to_string()),
            ),
        }
        argv.extend(["-q".into(), "-t".into(), TAG.into(), text(&self.context)]);
        argv
    }

    /// A cold build on `store`, then `store` made again from `base` (the
    /// base image only), all written back: the next run, of either tool,
    /// starts with no dirty pages of this one.
    pub fn cold(&self, store: &Store, base: &Store) -> Cycle {
        let mut cycle = Cycle::new(
            self.tool.name(),
            self.tool.command(),
            vec![self.build(store)],
        );
        cycle.cleanup = reset(store, base);
        cycle
    }

    /// A build on `store`, which has built the workload already.
    pub fn cached(&self, store: &Store) -> Cycle {
        let mut cycle = Cycle::new(
            self.tool.name(),
            self.tool.command(),
            vec![self.build(store)],
        );
        cycle.cleanup = vec![vec!["sync".into()]];
        cycle
    }
}

/// The commands that make `store` a copy of `base`: its cache, images and
/// state gone, the base's files copied with their owners, modes and links.
pub fn reset(store: &Store, base: &Store) -> Vec<Vec<String>> {
    let mut remove = vec!["rm".into(), "-rf".into(), "--".into(), text(&store.root)];
    remove.extend(store.runroot.iter().map(|r| text(r)));
    vec![
        remove,
        vec![
            "cp".into(),
            "-a".into(),
            "--".into(),
            text(&base.root),
            text(&store.root),
        ],
        vec!["sync".into()],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder(tool: Tool) -> Builder {
        Builder {
            tool,
            program: if tool == Tool::Isola {
                "/bin/isola".into()
            } else {
                "buildah".into()
            },
            context: "/ctx".into(),
        }
    }

    fn store(root: &str, runroot: Option<&str>) -> Store {
        Store {
            root: root.into(),
            runroot: runroot.map(PathBuf::from),
        }
    }

    #[test]
    fn each_tool_builds_the_workload_on_its_own_store() {
        let isola = builder(Tool::Isola).build(&store("/w/cold", None));
        assert_eq!(
            isola,
            [
                "/bin/isola",
                "--root",
                "/w/cold",
                "build",
                "-q",
                "-t",
                TAG,
                "/ctx"
            ]
        );
        let buildah = builder(Tool::Buildah).build(&store("/w/b", Some("/tmp/r")));
        assert_eq!(
            buildah,
            [
                "buildah",
                "--root",
                "/w/b",
                "--runroot",
                "/tmp/r",
                "--storage-driver",
                "vfs",
                "bud",
                "--isolation",
                "chroot",
                "--layers",
                "-q",
                "-t",
                TAG,
                "/ctx"
            ]
        );
    }

    #[test]
    fn a_cold_run_leaves_its_store_a_copy_of_the_base_and_a_cached_one_keeps_it() {
        let b = builder(Tool::Buildah);
        let cold = b.cold(&store("/w/cold", Some("/tmp/r")), &store("/w/base", None));
        assert_eq!(cold.subject, "buildah");
        assert_eq!(cold.cleanup[0], ["rm", "-rf", "--", "/w/cold", "/tmp/r"]);
        assert_eq!(cold.cleanup[1], ["cp", "-a", "--", "/w/base", "/w/cold"]);
        assert_eq!(cold.cleanup[2], ["sync"]);
        let cached = b.cached(&store("/w/cached", None));
        assert_eq!(cached.steps[0][2], "/w/cached");
        assert_eq!(cached.cleanup, [["sync"]]);
    }

    #[test]
    fn reset_copies_the_base_for_real() {
        let dir = tempfile::tempdir().unwrap();
        let (base, cold) = (dir.path().join("base"), dir.path().join("cold"));
        std::fs::create_dir_all(base.join("layers")).unwrap();
        std::fs::write(base.join("layers/a"), "base").unwrap();
        std::fs::create_dir_all(cold.join("cache")).unwrap();
        let runner = crate::lifecycle::cycle::Runner::new(dir.path());
        let stores = (
            Store {
                root: cold.clone(),
                runroot: None,
            },
            Store {
                root: base,
                runroot: None,
            },
        );
        for step in reset(&stores.0, &stores.1) {
            runner.run(&step, &[]).unwrap();
        }
        assert!(!cold.join("cache").exists());
        assert_eq!(
            std::fs::read_to_string(cold.join("layers/a")).unwrap(),
            "base"
        );
    }
}
