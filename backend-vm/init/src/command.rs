//! The workload's command line and environment as execve wants them: PATH
//! defaulted, args[0] looked up as Docker does, failures as 126/127.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::fail::{describe, Failure, CANNOT_RUN, NOT_FOUND};

/// Docker's PATH when the image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The spec's `KEY=VALUE` list with later entries replacing earlier ones
/// (glibc's getenv would see the first), PATH added when missing, and HOME
/// from the image's /etc/passwd (`passwd`, its text) for `uid`, else "/",
/// as runc does.
pub fn environment(env: &[String], uid: u32, passwd: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(env.len() + 1);
    for entry in env {
        let key = key_of(entry);
        match out.iter_mut().find(|e| key_of(e) == key) {
            Some(existing) => existing.clone_from(entry),
            None => out.push(entry.clone()),
        }
    }
    if !out.iter().any(|e| key_of(e) == "PATH") {
        out.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !out.iter().any(|e| key_of(e) == "HOME") {
        out.push(format!("HOME={}", home_of(uid, passwd).unwrap_or("/")));
    }
    out
}

/// The home directory of the first /etc/passwd entry with this uid.
fn home_of(uid: u32, passwd: &str) -> Option<&str> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.as_slice() {
            [_, _, id, _, _, home, ..] if id.parse() == Ok(uid) && !home.is_empty() => Some(*home),
            _ => None,
        }
    })
}

fn key_of(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}

/// The PATH an environment from [`environment`] holds.
pub fn search_path(env: &[String]) -> &str {
    env.iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
}

/// Strings as C strings, refusing the NUL byte C cannot carry.
pub fn c_strings(list: &[String], what: &str) -> Result<Vec<CString>, Failure> {
    list.iter()
        .map(|s| {
            CString::new(s.as_bytes())
                .map_err(|_| Failure::setup(format!("bad {what} {s:?}"), "it contains a NUL byte"))
        })
        .collect()
}

/// Where `name` is: as given if it has a '/', else the first executable
/// regular file among PATH's directories (an empty entry is the working
/// directory). `None` is Docker's "executable file not found in $PATH".
pub fn lookup(name: &str, path: &str, is_executable: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    // Go's filepath.SplitList, which Docker uses, finds no entry in "".
    if name.is_empty() || path.is_empty() {
        return None;
    }
    path.split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(name))
        .find(|candidate| is_executable(candidate))
}

/// What [`lookup`] checks on the real filesystem (symlinks followed).
pub fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

pub fn not_found(name: &str) -> Failure {
    Failure {
        code: NOT_FOUND,
        message: format!("{name}: command not found"),
    }
}

/// execve failed: a missing file (or interpreter) is 127, anything else
/// (no permission, not an executable format) means found but not runnable.
pub fn exec_failed(program: &Path, errno: Errno) -> Failure {
    let code = if errno == Errno::ENOENT {
        NOT_FOUND
    } else {
        CANNOT_RUN
    };
    Failure {
        code,
        message: format!("{}: {}", program.display(), describe(errno)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\nbroken\nu:x:1000:1000::/home/u:/bin/sh\nv:x:1001:1001:::\n";

    #[test]
    fn path_and_home_are_added_only_when_missing_and_later_entries_win() {
        let env = environment(&strings(&["A=1", "B=2", "A=3"]), 0, PASSWD);
        assert_eq!(
            env,
            strings(&["A=3", "B=2", &format!("PATH={DEFAULT_PATH}"), "HOME=/root"])
        );
        let env = environment(&strings(&["PATH=/opt/bin", "HOME=/h"]), 0, PASSWD);
        assert_eq!(env, strings(&["PATH=/opt/bin", "HOME=/h"]));
        assert_eq!(search_path(&env), "/opt/bin");
        // An empty PATH is the image's choice, kept as is.
        assert_eq!(
            environment(&strings(&["PATH=", "HOME=/"]), 0, ""),
            strings(&["PATH=", "HOME=/"])
        );
    }

    #[test]
    fn home_comes_from_passwd_else_slash() {
        let home = |uid| {
            environment(&strings(&["PATH=/bin"]), uid, PASSWD)
                .pop()
                .unwrap()
        };
        assert_eq!(home(1000), "HOME=/home/u");
        // An empty home field, an unknown uid, or no /etc/passwd at all.
        assert_eq!(home(1001), "HOME=/");
        assert_eq!(home(4242), "HOME=/");
        assert_eq!(environment(&[], 0, "").pop().unwrap(), "HOME=/");
    }

    #[test]
    fn lookup_follows_path_order_and_docker_rules() {
        let exists = |p: &Path| {
            p == Path::new("/usr/bin/env") || p == Path::new("/bin/env") || p == Path::new("./tool")
        };
        assert_eq!(
            lookup("env", "/usr/local/bin:/usr/bin:/bin", exists),
            Some("/usr/bin/env".into())
        );
        assert_eq!(
            lookup("env", "/bin:/usr/bin", exists),
            Some("/bin/env".into())
        );
        assert_eq!(lookup("nope", DEFAULT_PATH, exists), None);
        assert_eq!(lookup("", DEFAULT_PATH, exists), None);
        // A '/' anywhere means a path, looked up by nobody.
        assert_eq!(lookup("./nope", "/bin", exists), Some("./nope".into()));
        assert_eq!(lookup("/x/y", "/bin", exists), Some("/x/y".into()));
        // An empty PATH entry is the working directory.
        assert_eq!(
            lookup("tool", "/bin::/usr/bin", exists),
            Some("./tool".into())
        );
        assert_eq!(lookup("tool", "", exists), None);
    }

    #[test]
    fn lookup_skips_directories_and_files_without_exec_bits() {
        let dir = std::env::temp_dir().join(format!("isola-init-lookup-{}", std::process::id()));
        let (a, b) = (dir.join("a"), dir.join("b"));
        std::fs::create_dir_all(a.join("tool")).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join("tool"), "").unwrap();
        std::fs::write(a.join("plain"), "").unwrap();
        std::fs::set_permissions(b.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(a.join("plain"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = format!("{}:{}", a.display(), b.display());
        assert_eq!(
            lookup("tool", &path, is_executable_file),
            Some(b.join("tool"))
        );
        assert_eq!(lookup("plain", &path, is_executable_file), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn exec_errors_map_to_docker_codes() {
        assert_eq!(
            not_found("nope"),
            Failure {
                code: 127,
                message: "nope: command not found".into()
            }
        );
        assert_eq!(exec_failed(Path::new("/x"), Errno::ENOENT).code, 127);
        let denied = exec_failed(Path::new("/etc/passwd"), Errno::EACCES);
        assert_eq!(
            denied,
            Failure {
                code: 126,
                message: "/etc/passwd: permission denied".into()
            }
        );
        assert_eq!(exec_failed(Path::new("/x"), Errno::ENOEXEC).code, 126);
    }

    #[test]
    fn nul_bytes_are_refused() {
        assert!(c_strings(&strings(&["a\0b"]), "argument").is_err());
        assert_eq!(
            c_strings(&strings(&["a"]), "argument").unwrap()[0].as_bytes(),
            b"a"
        );
    }
}
