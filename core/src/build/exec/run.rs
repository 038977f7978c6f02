//! A RUN step: its command in a sandbox of the build's backend, on the
//! layers so far, and the sandbox's upper dir made the step's layer.

use std::fs;

use super::{Builder, StageState};
use crate::backend::ExitStatus;
use crate::build::cache;
use crate::build::dockerfile::CommandForm;
use crate::build::error::{io_ctx, BuildError};
use crate::build::settings::command_args;
use crate::spec::{Network, RunSpec, DEFAULT_PATH};

/// Directories a sandbox mounts on; when the image lacks them, a RUN's
/// upper dir gets them empty, and they are not the step's changes.
const MOUNT_POINTS: [&str; 3] = ["proc", "sys", "dev"];

impl Builder<'_> {
    pub(super) fn run(
        &mut self,
        state: &mut StageState,
        at: &str,
        command: &CommandForm,
        network: Option<&str>,
        other_flags: &[String],
    ) -> Result<(), BuildError> {
        if let Some(f) = other_flags.first() {
            return Err(BuildError::Step {
                at: at.to_string(),
                what: format!("RUN {f} is not supported by isola build; only --network is"),
            });
        }
        let network = match network {
            None | Some("default") => self.opts.network.clone(),
            Some("none") => Network::None,
            Some("host") => Network::Host,
            Some(other) => {
                return Err(BuildError::Step {
                    at: at.to_string(),
                    what: format!("RUN --network={other}: give none, host or default"),
                })
            }
        };
        let args = command_args(command, &state.image.config.shell);
        // As docker: the ARGs in scope reach RUN as environment variables,
        // and so are part of what the step is.
        let arg_env: Vec<(String, String)> = state
            .args
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .filter(|(k, _)| state.image.config.get_env(k).is_none())
            .collect();
        let mut created_by = String::from("RUN ");
        if !arg_env.is_empty() {
            created_by.push_str(&format!("|{} ", arg_env.len()));
            for (k, v) in &arg_env {
                created_by.push_str(&format!("{k}={v} "));
            }
        }
        created_by.push_str(&args.join(" "));
        let net_part = if network == Network::Host {
            "network=host"
        } else {
            ""
        };
        let key = cache::chain(&state.key, &[&created_by, net_part]);
        if self.reuse_cached(state, &key, &created_by) {
            return Ok(());
        }

        let layers = self.layer_dirs(&state.layers);
        let lower = if layers.is_empty() {
            let empty = self.next_dir("empty")?;
            vec![empty]
        } else {
            layers.clone()
        };
        let id = crate::id::new_id().map_err(io_ctx("making an ID for the RUN sandbox"))?;
        let mut spec = RunSpec::new(&id, "build step", "", lower, args.clone());
        let mut env = state.image.config.env.clone().unwrap_or_default();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, format!("PATH={DEFAULT_PATH}"));
        }
        env.extend(arg_env.iter().map(|(k, v)| format!("{k}={v}")));
        spec.process.env = env;
        spec.process.cwd = state
            .image
            .config
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into());
        if let Some(u) = state.image.config.user.as_deref().filter(|u| !u.is_empty()) {
            spec.process.user = crate::user::resolve(u, &layers).map_err(|e| BuildError::Step {
                at: at.to_string(),
                what: format!("USER {u}: {e}"),
            })?;
        }
        spec.network = network;
        spec.limits = self.opts.limits;
        spec.validate().map_err(|e| BuildError::Step {
            at: at.to_string(),
            what: e.to_string(),
        })?;
        let dir = self.next_dir("run")?;
        // For the sweep, should this isola die before the sandbox is gone.
        fs::write(dir.join(crate::build::sweep::ID), &id)
            .map_err(io_ctx("recording the RUN sandbox"))?;
        let instance = dir.join("sandbox");
        fs::create_dir_all(&instance).map_err(io_ctx("making the RUN sandbox's directory"))?;
        let status = self.driver.run(&spec, &instance)?;
        if status.code() != 0 {
            let how = match status {
                ExitStatus::Exited(c) => format!("exited with code {c}"),
                ExitStatus::Signaled(s) => format!("was killed by signal {s}"),
                ExitStatus::OutOfMemory => {
                    "was killed by the OOM killer at the build's memory limit (--memory)".into()
                }
            };
            return Err(BuildError::RunFailed {
                at: at.to_string(),
                command: args.join(" "),
                code: status.code(),
                how,
            });
        }
        let had: Vec<bool> = MOUNT_POINTS
            .iter()
            .map(|m| layers.iter().any(|l| l.join(m).exists()))
            .collect();
        let skip = move |rel: &str, is_dir: bool| {
            is_dir
                && MOUNT_POINTS
                    .iter()
                    .zip(&had)
                    .any(|(m, had)| rel == *m && !had)
        };
        self.commit_step(state, at, &key, &created_by, &instance.join("upper"), &skip)?;
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }
}
