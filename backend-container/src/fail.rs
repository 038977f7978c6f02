//! A step of the container's set-up that failed in its first process,
//! with the errno behind it: what every set-up module (mounts, network,
//! tty, policy) returns, and what the child reports to isola.

use std::fmt;
use std::io;

use nix::errno::Errno;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail {
    /// What was being done, for people: "mounting proc on /proc".
    pub step: String,
    pub cause: Cause,
}

/// Why a step failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// A system call's error number.
    Errno(ErrnoText),
    /// Nothing beneath the step's own sentence (a refusal).
    None,
}

impl Fail {
    pub fn sys(step: impl Into<String>, e: Errno) -> Fail {
        Fail {
            step: step.into(),
            cause: Cause::Errno(ErrnoText(e)),
        }
    }

    /// An I/O error; its errno when it has one.
    pub fn io(step: impl Into<String>, e: io::Error) -> Fail {
        let step = step.into();
        match e.raw_os_error() {
            Some(n) => Fail::sys(step, Errno::from_raw(n)),
            None => Fail::msg(format!("{step}: {e}")),
        }
    }

    pub fn msg(step: impl Into<String>) -> Fail {
        Fail {
            step: step.into(),
            cause: Cause::None,
        }
    }

    pub fn errno(&self) -> Option<Errno> {
        match self.cause {
            Cause::Errno(ErrnoText(e)) => Some(e),
            Cause::None => None,
        }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.step)
    }
}

impl std::error::Error for Fail {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.cause {
            Cause::Errno(e) => Some(e),
            Cause::None => None,
        }
    }
}

/// An errno as people read it: "no such file or directory".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrnoText(pub Errno);

impl fmt::Display for ErrnoText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.desc().to_lowercase())
    }
}

impl std::error::Error for ErrnoText {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_ends_in_the_errno() {
        let f = Fail::sys("mounting proc on /proc", Errno::EPERM);
        assert_eq!(f.to_string(), "mounting proc on /proc");
        let source = std::error::Error::source(&f).unwrap();
        assert_eq!(source.to_string(), "operation not permitted");
        let text = source.downcast_ref::<ErrnoText>().unwrap();
        assert_eq!(text.0, Errno::EPERM);
        assert!(std::error::Error::source(&Fail::msg("refused")).is_none());
        let io = Fail::io("opening x", io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(io.errno(), Some(Errno::ENOENT));
    }
}
