//! Why isola-init could not start the workload, as the one line it prints
//! (`isola-init: <what failed>: <why>`) and the status it reports.

use nix::errno::Errno;

/// isola-init itself failed (Docker's 125).
pub const SETUP: u8 = 125;
/// The command was found but could not be run (Docker's 126).
pub const CANNOT_RUN: u8 = 126;
/// The command was not found (Docker's 127).
pub const NOT_FOUND: u8 = 127;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: u8,
    /// The whole line after `isola-init: `.
    pub message: String,
}

impl Failure {
    /// A setup step failed: reported as 125.
    pub fn setup(what: impl std::fmt::Display, why: impl std::fmt::Display) -> Failure {
        Failure {
            code: SETUP,
            message: format!("{what}: {why}"),
        }
    }

    /// A setup step failed with an errno.
    pub fn errno(what: impl std::fmt::Display, errno: Errno) -> Failure {
        Failure::setup(what, describe(errno))
    }
}

/// `ENOENT` → "no such file or directory": the errno's text as it reads in
/// a sentence, without the symbolic name or "(os error 2)".
pub fn describe(errno: Errno) -> String {
    let text = errno.desc();
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        // "I/O error" keeps its capital; "No such file" loses it.
        (Some(first), Some(second)) if second.is_lowercase() => first
            .to_lowercase()
            .chain(text[first.len_utf8()..].chars())
            .collect(),
        (Some(_), _) => text.to_string(),
        (None, _) => format!("error {}", errno as i32),
    }
}

/// An `std::io::Error` as [`describe`] words it.
pub fn describe_io(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(raw) => describe(Errno::from_raw(raw)),
        None => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_read_as_plain_sentences() {
        assert_eq!(describe(Errno::ENOENT), "no such file or directory");
        assert_eq!(describe(Errno::EIO), "I/O error");
        let f = Failure::errno("cannot mount /proc", Errno::EPERM);
        assert_eq!(f.message, "cannot mount /proc: operation not permitted");
        assert_eq!(f.code, 125);
        let io = std::io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(describe_io(&io), "permission denied");
    }
}
