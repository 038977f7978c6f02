//! `isola run` flags turned into run-spec pieces, with Docker's rules: env
//! from the image, then --env-file, then -e (later wins); a command replaces
//! Cmd but keeps Entrypoint; `-v SRC:DEST[:ro]` is a bind when SRC is a path,
//! a named volume otherwise.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// Merge `KEY=VALUE` lists, later keys replacing earlier ones in place.
pub fn merge_env(base: &[String], extra: &[String]) -> Vec<String> {
    let mut out: Vec<String> = base.to_vec();
    for kv in extra {
        let key = kv.split('=').next().unwrap_or_default();
        match out.iter_mut().find(|e| e.split('=').next() == Some(key)) {
            Some(slot) => *slot = kv.clone(),
            None => out.push(kv.clone()),
        }
    }
    out
}

/// `-e KEY=VALUE` as is; `-e KEY` takes KEY from isola's own environment
/// (and is left out when unset, as Docker does).
pub fn env_flag(raw: &str) -> Result<Option<String>> {
    if raw.is_empty() || raw.starts_with('=') {
        bail!("invalid environment variable {raw:?}: expected KEY=VALUE or KEY");
    }
    if raw.contains('=') {
        return Ok(Some(raw.to_string()));
    }
    Ok(std::env::var(raw).ok().map(|v| format!("{raw}={v}")))
}

pub fn env_file(path: &std::path::Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the env file {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(kv) =
            env_flag(line).with_context(|| format!("{} line {}", path.display(), n + 1))?
        {
            out.push(kv);
        }
    }
    Ok(out)
}

/// The command the workload runs.
pub fn command(entrypoint: &[String], cmd: &[String], given: &[String]) -> Vec<String> {
    let tail = if given.is_empty() { cmd } else { given };
    entrypoint.iter().chain(tail).cloned().collect()
}

#[derive(Debug, PartialEq)]
pub enum VolumeFlag {
    Bind {
        source: PathBuf,
        target: String,
        read_only: bool,
    },
    Named {
        name: String,
        target: String,
        read_only: bool,
    },
}

pub fn volume_flag(raw: &str) -> Result<VolumeFlag> {
    let parts: Vec<&str> = raw.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [s, t] => (*s, *t, "rw"),
        [s, t, m] => (*s, *t, *m),
        _ => bail!("invalid volume {raw:?}: expected SRC:DEST or SRC:DEST:ro"),
    };
    let read_only = match mode {
        "ro" => true,
        "rw" => false,
        m => bail!("invalid volume {raw:?}: unknown mode {m:?} (use ro or rw)"),
    };
    if !target.starts_with('/') {
        bail!("invalid volume {raw:?}: the destination {target:?} must be an absolute path");
    }
    if source.is_empty() {
        bail!("invalid volume {raw:?}: the source is empty");
    }
    let target = target.to_string();
    if source.starts_with('/') || source.starts_with('.') {
        let source = std::fs::canonicalize(source)
            .with_context(|| format!("volume {raw:?}: the host path {source} does not exist"))?;
        Ok(VolumeFlag::Bind {
            source,
            target,
            read_only,
        })
    } else {
        Ok(VolumeFlag::Named {
            name: source.to_string(),
            target,
            read_only,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_merges_like_docker() {
        let base = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        let out = merge_env(&base, &["A=2".into(), "B=3".into()]);
        assert_eq!(out, vec!["PATH=/bin", "A=2", "B=3"]);
        assert!(env_flag("=x").is_err());
        assert_eq!(env_flag("K=v").unwrap().as_deref(), Some("K=v"));
        assert_eq!(env_flag("ISOLA_SURELY_UNSET_VAR").unwrap(), None);
    }

    #[test]
    fn command_keeps_the_entrypoint() {
        let ep = vec!["/entry".to_string()];
        let cmd = vec!["default".to_string()];
        assert_eq!(command(&ep, &cmd, &[]), vec!["/entry", "default"]);
        assert_eq!(command(&ep, &cmd, &["mine".into()]), vec!["/entry", "mine"]);
        assert_eq!(command(&[], &cmd, &[]), vec!["default"]);
    }

    #[test]
    fn volume_flags() {
        assert_eq!(
            volume_flag("data:/data:ro").unwrap(),
            VolumeFlag::Named {
                name: "data".into(),
                target: "/data".into(),
                read_only: true
            }
        );
        assert!(matches!(
            volume_flag("/tmp:/host").unwrap(),
            VolumeFlag::Bind {
                read_only: false,
                ..
            }
        ));
        assert!(volume_flag("data:rel").is_err());
        assert!(volume_flag("data:/x:rx").is_err());
        assert!(volume_flag("/no/such/dir/here:/x").is_err());
    }
}
