//! The instructions that change only the image config (ENV, LABEL, USER,
//! EXPOSE, VOLUME, STOPSIGNAL, CMD, ENTRYPOINT, HEALTHCHECK, SHELL,
//! ONBUILD, MAINTAINER), applied as docker applies them.

use std::time::Duration;

use super::config::{Empty, HealthConfig, RunConfig};
use super::dockerfile::{expand_word, expand_words, CommandForm, Healthcheck, Kind};

/// The default shell of RUN, CMD and ENTRYPOINT in shell form.
pub const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// Expands a raw word with the variables in scope.
pub type Expand<'a> = dyn Fn(&str) -> Result<String, String> + 'a;

/// A command in the form the config records: the exec form as written,
/// the shell form run by the stage's shell.
pub fn command_args(form: &CommandForm, shell: &Option<Vec<String>>) -> Vec<String> {
    match form {
        CommandForm::Exec(v) => v.clone(),
        CommandForm::Shell(s) => {
            let mut v: Vec<String> = match shell {
                Some(sh) if !sh.is_empty() => sh.clone(),
                _ => DEFAULT_SHELL.iter().map(|s| s.to_string()).collect(),
            };
            v.push(s.clone());
            v
        }
    }
}

/// Apply a config-only instruction. Returns its `created_by` text, or
/// `None` when `kind` is not one of them. `author` receives MAINTAINER.
pub fn apply(
    kind: &Kind,
    config: &mut RunConfig,
    author: &mut Option<String>,
    expand: &Expand,
    expand_list: &dyn Fn(&str) -> Result<Vec<String>, String>,
) -> Option<Result<String, String>> {
    let done = |s: String| Some(Ok(s));
    match kind {
        Kind::Env(pairs) => {
            let mut shown = Vec::new();
            for (k, v) in pairs {
                // Each pair sees the ones before it on the same line.
                let value = match expand(v) {
                    Ok(v) => v,
                    Err(e) => return Some(Err(e)),
                };
                config.set_env(k, &value);
                shown.push(format!("{k}={value}"));
            }
            done(format!("ENV {}", shown.join(" ")))
        }
        Kind::Label(pairs) => {
            let labels = config.labels.get_or_insert_with(Default::default);
            let mut shown = Vec::new();
            for (k, v) in pairs {
                let (k, v) = match (expand(k), expand(v)) {
                    (Ok(k), Ok(v)) => (k, v),
                    (Err(e), _) | (_, Err(e)) => return Some(Err(e)),
                };
                shown.push(format!("{k}={v}"));
                labels.insert(k, v);
            }
            done(format!("LABEL {}", shown.join(" ")))
        }
        Kind::User(u) => {
            let u = match expand(u) {
                Ok(u) => u,
                Err(e) => return Some(Err(e)),
            };
            config.user = Some(u.clone());
            done(format!("USER {u}"))
        }
        Kind::Expose(words) => {
            let mut ports = Vec::new();
            for w in words {
                match expand_list(w) {
                    Ok(list) => ports.extend(list),
                    Err(e) => return Some(Err(e)),
                }
            }
            let set = config.exposed_ports.get_or_insert_with(Default::default);
            for p in &ports {
                let key = if p.contains('/') {
                    p.to_ascii_lowercase()
                } else {
                    format!("{p}/tcp")
                };
                let number = key.split('/').next().unwrap_or_default();
                let valid = number
                    .split('-')
                    .all(|n| n.parse::<u16>().is_ok_and(|n| n > 0));
                if !valid {
                    return Some(Err(format!(
                        "EXPOSE {p}: not a port; give a number from 1 to 65535, with /tcp or /udp if you like"
                    )));
                }
                set.insert(key, Empty {});
            }
            done(format!("EXPOSE {}", ports.join(" ")))
        }
        Kind::Volume(words) => {
            let mut paths = Vec::new();
            for w in words {
                match expand(w) {
                    Ok(p) if p.is_empty() => {}
                    Ok(p) => paths.push(p),
                    Err(e) => return Some(Err(e)),
                }
            }
            let set = config.volumes.get_or_insert_with(Default::default);
            for p in &paths {
                set.insert(p.clone(), Empty {});
            }
            done(format!("VOLUME [{}]", paths.join(" ")))
        }
        Kind::Stopsignal(s) => {
            let s = match expand(s) {
                Ok(s) => s,
                Err(e) => return Some(Err(e)),
            };
            if !valid_signal(&s) {
                return Some(Err(format!(
                    "STOPSIGNAL {s}: not a signal; give a name such as SIGTERM or a number"
                )));
            }
            config.stop_signal = Some(s.clone());
            done(format!("STOPSIGNAL {s}"))
        }
        Kind::Cmd(form) => {
            let args = command_args(form, &config.shell);
            config.cmd = Some(args.clone());
            done(format!("CMD {}", json(&args)))
        }
        Kind::Entrypoint(form) => {
            let args = command_args(form, &config.shell);
            config.entrypoint = Some(args.clone());
            // docker: a new ENTRYPOINT drops the CMD the base image set.
            config.cmd = None;
            done(format!("ENTRYPOINT {}", json(&args)))
        }
        Kind::Healthcheck(h) => Some(health(h, config)),
        Kind::Shell(v) => {
            if v.is_empty() {
                return Some(Err(
                    "SHELL needs a program, as a JSON array: SHELL [\"/bin/bash\", \"-c\"]".into(),
                ));
            }
            config.shell = Some(v.clone());
            done(format!("SHELL {}", json(v)))
        }
        Kind::Onbuild(trigger) => {
            config
                .on_build
                .get_or_insert_with(Vec::new)
                .push(trigger.clone());
            done(format!("ONBUILD {trigger}"))
        }
        Kind::Maintainer(m) => {
            *author = Some(m.clone());
            done(format!("MAINTAINER {m}"))
        }
        _ => None,
    }
}

fn health(h: &Healthcheck, config: &mut RunConfig) -> Result<String, String> {
    let Some(test) = &h.test else {
        config.healthcheck = Some(HealthConfig {
            test: vec!["NONE".into()],
            ..HealthConfig::default()
        });
        return Ok("HEALTHCHECK NONE".into());
    };
    let test = match test {
        CommandForm::Exec(v) => {
            let mut t = vec!["CMD".to_string()];
            t.extend(v.iter().cloned());
            t
        }
        CommandForm::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
    };
    let nanos = |flag: &str, v: &Option<String>| -> Result<Option<u64>, String> {
        v.as_deref()
            .map(|s| {
                humantime::parse_duration(s)
                    .map(|d: Duration| d.as_nanos() as u64)
                    .map_err(|e| {
                        format!("HEALTHCHECK --{flag}={s}: {e}; give a duration such as 30s")
                    })
            })
            .transpose()
    };
    let retries = h
        .retries
        .as_deref()
        .map(|r| {
            r.parse::<u64>()
                .map_err(|_| format!("HEALTHCHECK --retries={r}: give a whole number"))
        })
        .transpose()?;
    config.healthcheck = Some(HealthConfig {
        interval: nanos("interval", &h.interval)?,
        timeout: nanos("timeout", &h.timeout)?,
        start_period: nanos("start-period", &h.start_period)?,
        retries,
        test: test.clone(),
    });
    Ok(format!("HEALTHCHECK {}", json(&test)))
}

fn valid_signal(s: &str) -> bool {
    if s.parse::<u8>().is_ok_and(|n| (1..=64).contains(&n)) {
        return true;
    }
    let name = s.to_ascii_uppercase();
    let name = if name.starts_with("SIG") {
        name
    } else {
        format!("SIG{name}")
    };
    name.parse::<nix::sys::signal::Signal>().is_ok()
        || name.starts_with("SIGRTMIN")
        || name.starts_with("SIGRTMAX")
}

pub fn json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Expand one word with docker's rules, the error as text.
pub fn expander<'a>(
    escape: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
) -> impl Fn(&str) -> Result<String, String> + 'a {
    move |raw: &str| expand_word(raw, escape, lookup).map_err(|e| e.to_string())
}

/// Expand and split into words with docker's rules, the error as text.
pub fn list_expander<'a>(
    escape: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
) -> impl Fn(&str) -> Result<Vec<String>, String> + 'a {
    move |raw: &str| expand_words(raw, escape, lookup).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kind: Kind, config: &mut RunConfig) -> Result<String, String> {
        let lookup = |n: &str| (n == "P").then(|| "8080".to_string());
        let (e, l) = (expander('\\', &lookup), list_expander('\\', &lookup));
        let mut author = None;
        apply(&kind, config, &mut author, &e, &l).unwrap()
    }

    #[test]
    fn config_instructions_as_docker_records_them() {
        let mut c = RunConfig::default();
        run(Kind::Env(vec![("A".into(), "\"x y\"".into())]), &mut c).unwrap();
        assert_eq!(c.get_env("A").as_deref(), Some("x y"));
        run(Kind::Expose(vec!["$P".into(), "53/UDP".into()]), &mut c).unwrap();
        let ports: Vec<&String> = c.exposed_ports.as_ref().unwrap().keys().collect();
        assert_eq!(ports, ["53/udp", "8080/tcp"]);
        assert!(run(Kind::Expose(vec!["http".into()]), &mut c).is_err());
        c.cmd = Some(vec!["old".into()]);
        let by = run(Kind::Entrypoint(CommandForm::Shell("serve".into())), &mut c).unwrap();
        assert_eq!(by, r#"ENTRYPOINT ["/bin/sh","-c","serve"]"#);
        assert_eq!(c.cmd, None);
        run(Kind::Shell(vec!["/bin/bash".into(), "-c".into()]), &mut c).unwrap();
        run(Kind::Cmd(CommandForm::Shell("echo hi".into())), &mut c).unwrap();
        assert_eq!(c.cmd.as_deref().unwrap(), ["/bin/bash", "-c", "echo hi"]);
        assert!(run(Kind::Stopsignal("SIGUSR1".into()), &mut c).is_ok());
        assert!(run(Kind::Stopsignal("9".into()), &mut c).is_ok());
        assert!(run(Kind::Stopsignal("SIGNOPE".into()), &mut c).is_err());
    }

    #[test]
    fn healthcheck_durations_in_nanoseconds() {
        let mut c = RunConfig::default();
        let h = Healthcheck {
            test: Some(CommandForm::Shell("curl -f localhost".into())),
            interval: Some("30s".into()),
            timeout: None,
            start_period: Some("1m".into()),
            retries: Some("3".into()),
        };
        run(Kind::Healthcheck(h), &mut c).unwrap();
        let hc = c.healthcheck.unwrap();
        assert_eq!(hc.test, ["CMD-SHELL", "curl -f localhost"]);
        assert_eq!(hc.interval, Some(30_000_000_000));
        assert_eq!(hc.start_period, Some(60_000_000_000));
        assert_eq!(hc.retries, Some(3));
    }
}
