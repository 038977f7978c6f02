//! The runtimes measured, as containerd's go-runc drives them: each on a
//! `--root` of its own, one container ID each, named for the benchmark's
//! PID; whatever is left under a root is deleted by force on drop.

use std::fs;
use std::path::{Path, PathBuf};

use crate::lifecycle::podman;

/// isola-runtime's subject id; the peers' are their program names.
pub const ISOLA: &str = "isola-runtime";

pub struct Runtime {
    /// Its subject id: `isola-runtime`, `runc`, `crun`.
    pub name: String,
    /// Absolute, as containerd's shim is handed it.
    pub program: PathBuf,
    /// What the tables call it: its name and version.
    pub label: String,
    root: PathBuf,
}

fn text(path: &Path) -> String {
    path.display().to_string()
}

impl Runtime {
    /// `program` (absolute) as subject `name`, its state under `work`.
    pub fn new(name: &str, program: &Path, work: &Path) -> Runtime {
        Runtime {
            name: name.into(),
            label: format!("{name} {}", podman::version(&text(program))),
            program: program.to_path_buf(),
            root: work.join("roots").join(name),
        }
    }

    /// Its container's ID: the benchmark's PID in it, so that a runtime
    /// that names a cgroup after it (runc and crun, given no
    /// cgroupsPath) names it `isola-bench-PID-...`.
    pub fn id(&self) -> String {
        format!("isola-bench-{}-oci-{}", std::process::id(), self.name)
    }

    pub fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut v = vec![text(&self.program), "--root".into(), text(&self.root)];
        v.extend(args.iter().map(|a| a.to_string()));
        v
    }

    /// `create`, the init's PID written to `pid_file`, as the shim asks.
    pub fn create(&self, bundle: &Path, pid_file: &Path) -> Vec<String> {
        self.argv(&[
            "create",
            "--bundle",
            &text(bundle),
            "--pid-file",
            &text(pid_file),
            &self.id(),
        ])
    }

    pub fn start(&self) -> Vec<String> {
        self.argv(&["start", &self.id()])
    }

    /// `delete` of a stopped container (`--force`: of any).
    pub fn delete(&self, force: bool) -> Vec<String> {
        let id = self.id();
        let mut args = vec!["delete"];
        if force {
            args.push("--force");
        }
        args.push(&id);
        self.argv(&args)
    }

    /// `run`: create, start, wait and delete in one call.
    pub fn run(&self, bundle: &Path) -> Vec<String> {
        self.argv(&["run", "--bundle", &text(bundle), &self.id()])
    }
}

impl Drop for Runtime {
    /// Every container under our root deleted, whatever its state.
    fn drop(&mut self) {
        let Ok(dir) = fs::read_dir(&self.root) else {
            return;
        };
        for id in dir
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
        {
            crate::lifecycle::quietly(&self.argv(&["delete", "--force", &id]), &[]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_runtime_has_its_own_root_and_id_and_go_runc_s_flags() {
        let rt = Runtime::new("runc", Path::new("/usr/sbin/runc"), Path::new("/w"));
        let id = format!("isola-bench-{}-oci-runc", std::process::id());
        assert_eq!(
            rt.create(Path::new("/w/bundle"), Path::new("/w/pid")),
            [
                "/usr/sbin/runc",
                "--root",
                "/w/roots/runc",
                "create",
                "--bundle",
                "/w/bundle",
                "--pid-file",
                "/w/pid",
                &id
            ]
        );
        assert_eq!(rt.start()[3..], ["start".to_string(), id.clone()]);
        assert_eq!(rt.delete(false)[3..], ["delete".to_string(), id.clone()]);
        assert_eq!(rt.delete(true)[4], "--force");
        assert_eq!(rt.run(Path::new("/b"))[3..], ["run", "--bundle", "/b", &id]);
    }
}
