//! The command line: which subcommand, with which options. Parsing only;
//! main runs what it returns.

use std::num::ParseIntError;
use std::path::PathBuf;

use crate::limits;
use crate::work::{self, Workload};

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Facts,
    Syscalls,
    Limits {
        memory_mib: u64,
        pids: u32,
    },
    Work(work::Options),
    Idle,
    /// Exit 0 at once: what `work fork_exec` runs.
    Noop,
    Help,
}

/// Arguments refused, and why.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    #[error("unknown arguments: {0}")]
    Unknown(String),
    #[error("limits: unknown argument {0}")]
    LimitsArgument(String),
    #[error("work: unknown option {0}")]
    WorkOption(String),
    #[error("work: unknown workload `{name}`; the workloads are {valid}")]
    Workload { name: String, valid: String },
    #[error("work: --peer {0:?} is not IP:PORT")]
    Peer(String),
    #[error("work: --ms must be at least 1")]
    NoTime,
    #[error("work: `stdout` must be asked for alone: its data is the output")]
    StdoutNotAlone,
    #[error("{0} needs a value")]
    NoValue(String),
    #[error("{name} takes a whole number, not `{given}`")]
    NotANumber {
        name: String,
        given: String,
        #[source]
        source: ParseIntError,
    },
}

pub fn parse(args: &[String]) -> Result<Command, CliError> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] | ["facts"] => Ok(Command::Facts),
        ["syscalls"] => Ok(Command::Syscalls),
        ["idle"] => Ok(Command::Idle),
        ["noop", ..] => Ok(Command::Noop),
        ["-h" | "--help"] => Ok(Command::Help),
        ["limits", rest @ ..] => limits(rest),
        ["work", rest @ ..] => work(rest),
        _ => Err(CliError::Unknown(args.join(" "))),
    }
}

fn limits(args: &[&str]) -> Result<Command, CliError> {
    let mut memory_mib = limits::DEFAULT_MEMORY_MIB;
    let mut pids = limits::DEFAULT_PIDS;
    let mut args = Args(args.iter());
    while let Some(arg) = args.next_arg() {
        match arg {
            Arg::Option("--memory-mib", value) => {
                memory_mib = number(&mut args, "--memory-mib", value)?
            }
            Arg::Option("--pids", value) => pids = number(&mut args, "--pids", value)?,
            _ => return Err(CliError::LimitsArgument(arg.text())),
        }
    }
    Ok(Command::Limits { memory_mib, pids })
}

fn work(args: &[&str]) -> Result<Command, CliError> {
    let mut workloads = Vec::new();
    let mut ms = work::DEFAULT_MS;
    let mut dir = std::env::temp_dir();
    let mut peer = None;
    let mut args = Args(args.iter());
    while let Some(arg) = args.next_arg() {
        match arg {
            Arg::Option("--ms", value) => ms = number(&mut args, "--ms", value)?,
            Arg::Option("--dir", value) => {
                dir = PathBuf::from(value_of(&mut args, "--dir", value)?)
            }
            Arg::Option("--peer", value) => {
                let text = value_of(&mut args, "--peer", value)?;
                peer = Some(text.parse().map_err(|_| CliError::Peer(text.to_string()))?);
            }
            Arg::Option(..) => return Err(CliError::WorkOption(arg.text())),
            Arg::Plain(name) => match Workload::from_name(name) {
                Some(w) => workloads.push(w),
                None => {
                    let valid: Vec<_> = Workload::ALL.iter().map(|w| w.name()).collect();
                    return Err(CliError::Workload {
                        name: name.to_string(),
                        valid: valid.join(", "),
                    });
                }
            },
        }
    }
    if ms == 0 {
        return Err(CliError::NoTime);
    }
    if workloads.contains(&Workload::Stdout) && workloads.len() > 1 {
        return Err(CliError::StdoutNotAlone);
    }
    if workloads.is_empty() {
        workloads = Workload::defaults();
    }
    Ok(Command::Work(work::Options {
        workloads,
        ms,
        dir,
        peer,
    }))
}

#[derive(Clone, Copy)]
enum Arg<'a> {
    /// `--name value` or `--name=value` (the value then already here).
    Option(&'a str, Option<&'a str>),
    Plain(&'a str),
}

impl Arg<'_> {
    fn text(&self) -> String {
        match self {
            Arg::Option(name, Some(v)) => format!("{name}={v}"),
            Arg::Option(name, None) => name.to_string(),
            Arg::Plain(s) => s.to_string(),
        }
    }
}

struct Args<'a, 'b>(std::slice::Iter<'b, &'a str>);

impl<'a> Args<'a, '_> {
    fn next_arg(&mut self) -> Option<Arg<'a>> {
        let arg: &'a str = self.0.next()?;
        Some(match arg.strip_prefix("--") {
            Some(_) => match arg.split_once('=') {
                Some((name, value)) => Arg::Option(name, Some(value)),
                None => Arg::Option(arg, None),
            },
            None => Arg::Plain(arg),
        })
    }
}

fn value_of<'a>(
    args: &mut Args<'a, '_>,
    name: &str,
    given: Option<&'a str>,
) -> Result<&'a str, CliError> {
    match given {
        Some(v) => Ok(v),
        None => args
            .0
            .next()
            .copied()
            .ok_or_else(|| CliError::NoValue(name.to_string())),
    }
}

fn number<'a, T: std::str::FromStr<Err = ParseIntError>>(
    args: &mut Args<'a, '_>,
    name: &str,
    given: Option<&'a str>,
) -> Result<T, CliError> {
    let v = value_of(args, name, given)?;
    v.parse().map_err(|source| CliError::NotANumber {
        name: name.to_string(),
        given: v.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(line: &str) -> Result<Command, CliError> {
        let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        parse(&args)
    }

    #[test]
    fn subcommands_and_their_defaults() {
        assert_eq!(parse_str(""), Ok(Command::Facts));
        assert_eq!(parse_str("facts"), Ok(Command::Facts));
        assert_eq!(parse_str("syscalls"), Ok(Command::Syscalls));
        assert_eq!(parse_str("idle"), Ok(Command::Idle));
        assert_eq!(parse_str("noop"), Ok(Command::Noop));
        assert_eq!(
            parse_str("limits"),
            Ok(Command::Limits {
                memory_mib: 256,
                pids: 256
            })
        );
        let Ok(Command::Work(w)) = parse_str("work") else {
            panic!("work did not parse");
        };
        assert_eq!(w.workloads, Workload::defaults());
        assert_eq!(w.ms, 300);
        assert_eq!(w.dir, std::env::temp_dir());
    }

    #[test]
    fn options_take_a_value_after_a_space_or_an_equals_sign() {
        assert_eq!(
            parse_str("limits --memory-mib 96 --pids=64"),
            Ok(Command::Limits {
                memory_mib: 96,
                pids: 64
            })
        );
        assert_eq!(
            parse_str("work getpid --ms 50 cpu --dir=/var/tmp"),
            Ok(Command::Work(work::Options {
                workloads: vec![Workload::Getpid, Workload::Cpu],
                ms: 50,
                dir: "/var/tmp".into(),
                peer: None,
            }))
        );
    }

    #[test]
    fn bad_arguments_are_refused_with_a_reason() {
        let err = parse_str("work cpu gpu").unwrap_err().to_string();
        assert!(
            err.contains("`gpu`") && err.contains("fork_exec, write_fsync"),
            "{err}"
        );
        let err = |line: &str| parse_str(line).unwrap_err().to_string();
        assert!(err("work stdout cpu").contains("alone"));
        assert!(parse_str("work --ms 0").is_err());
        assert!(err("work --ms").contains("needs a value"));
        assert!(err("limits --pids many").contains("`many`"));
        assert!(parse_str("limits --bogus 1").is_err());
        assert!(parse_str("facts extra").is_err());
        assert!(parse_str("nonsense").is_err());
    }
}
