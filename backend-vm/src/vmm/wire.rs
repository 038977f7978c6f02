//! What isola and its monitor process say to each other: the config
//! (JSON, the process's one argument) and the report records the monitor
//! writes on its report pipe, one line each.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::artifact::{Artifact, Input};
use crate::guest_exit::Failure;
use crate::jail::ThreadKind;

/// The descriptors the monitor process finds open: COM1's input on 0, its
/// output on 1, COM2's output on 2, and these.
pub const CONTROL_FD: i32 = 3;
pub const REPORT_FD: i32 = 4;
/// The guest's tap, when its artifact has a network card (the MAC is in
/// the artifact; the descriptor cannot be).
pub const TAP_FD: i32 = 5;
/// The agent's vsock socket in a jailed monitor's root.
pub const AGENT_IN_JAIL: &str = "agent.sock";

/// What the monitor process runs, and how it is confined.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmmConfig {
    /// Its kernel is bound into the jail and opened there, its initrds
    /// read before the jail is entered.
    pub artifact: Artifact,
    pub input: WireInput,
    /// `None`: not confined beyond its seccomp filters and no_new_privs
    /// (isola is not root, and cannot make namespaces or change uid).
    pub jail: Option<JailConfig>,
    /// A test build's hook: a thread of this kind makes a forbidden syscall.
    pub test_forbidden: Option<ThreadKind>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JailConfig {
    /// The monitor's root: empty but for what it binds in.
    pub dir: PathBuf,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireInput {
    None,
    Pipe,
    Terminal,
}

impl From<Input> for WireInput {
    fn from(input: Input) -> WireInput {
        match input {
            Input::None => WireInput::None,
            Input::Pipe => WireInput::Pipe,
            Input::Terminal => WireInput::Terminal,
        }
    }
}

/// How the guest's run ended, as the monitor process saw it.
#[derive(Debug, Serialize, Deserialize)]
pub enum End {
    Exited {
        status: Option<u8>,
        marks: Vec<(u8, Duration)>,
        console: Option<String>,
    },
    Failed {
        failure: Failure,
        console: Option<String>,
    },
}

/// One line of the report pipe.
#[derive(Debug, PartialEq, Eq)]
pub enum Record {
    /// A boot-timer mark, and when it came since the monitor started.
    Mark(u8, Duration),
    /// A thread of this kind (`None`: unknown) made syscall `nr`, outside
    /// its filter; the process is dying of SIGSYS.
    Sigsys(Option<ThreadKind>, i64),
    /// The monitor could not build, confine or run the VM.
    Error(String),
    /// The end, as JSON.
    End(String),
}

impl Record {
    pub fn line(&self) -> String {
        match self {
            Record::Mark(byte, at) => format!("mark {byte} {}\n", at.as_nanos()),
            Record::Sigsys(kind, nr) => {
                format!("sigsys {} {nr}\n", kind.map_or("unknown", |k| k.name()))
            }
            Record::Error(message) => format!("error {}\n", message.replace('\n', " ")),
            Record::End(json) => format!("end {json}\n"),
        }
    }

    /// A line without its newline; `None` for one no monitor writes.
    pub fn parse(line: &str) -> Option<Record> {
        let (tag, rest) = line.split_once(' ')?;
        match tag {
            "mark" => {
                let (byte, nanos) = rest.split_once(' ')?;
                let nanos: u64 = nanos.parse().ok()?;
                Some(Record::Mark(
                    byte.parse().ok()?,
                    Duration::from_nanos(nanos),
                ))
            }
            "sigsys" => {
                let (kind, nr) = rest.split_once(' ')?;
                Some(Record::Sigsys(
                    ThreadKind::from_name(kind),
                    nr.parse().ok()?,
                ))
            }
            "error" => Some(Record::Error(rest.to_string())),
            "end" => Some(Record::End(rest.to_string())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_as_written() {
        for record in [
            Record::Mark(3, Duration::from_micros(1500)),
            Record::Sigsys(Some(ThreadKind::Vcpu), 169),
            Record::Sigsys(None, 2),
            Record::Error("cannot open /dev/kvm".into()),
            Record::End("{\"Exited\":{}}".into()),
        ] {
            let line = record.line();
            assert_eq!(Record::parse(line.trim_end_matches('\n')), Some(record));
        }
        assert_eq!(Record::parse("noise"), None);
        assert_eq!(Record::parse("mark x 1"), None);
    }
}
