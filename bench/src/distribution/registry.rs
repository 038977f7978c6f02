//! A docker-registry (the CNCF distribution registry) of the benchmark's
//! own: plain HTTP on 127.0.0.1 at a port that was free, its configuration
//! and storage in a directory of ours, stopped by its PID when dropped.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The program, as Debian's docker-registry package installs it.
pub const PROGRAM: &str = "docker-registry";

/// How long a registry may take to answer its first request.
const READY: Duration = Duration::from_secs(10);
/// How long it may take to end after SIGTERM, before SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum LocalRegistryError {
    #[error("setting up a registry in {dir}")]
    Setup {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("starting {PROGRAM}")]
    Spawn(#[source] io::Error),
    #[error("{PROGRAM} ended before it answered: {0}")]
    Ended(String),
    #[error("{PROGRAM} did not answer on {host} within {READY:?}")]
    NoAnswer { host: String },
}

pub struct LocalRegistry {
    child: Child,
    /// `127.0.0.1:PORT`, as image references name it.
    pub host: String,
    /// Its configuration, storage and log.
    pub dir: PathBuf,
}

impl LocalRegistry {
    /// A registry serving `dir/storage` (made if need be). A port taken
    /// between our probe and its bind is tried again with another.
    pub fn start(dir: &Path) -> Result<LocalRegistry, LocalRegistryError> {
        let setup = |source| LocalRegistryError::Setup {
            dir: dir.to_path_buf(),
            source,
        };
        fs::create_dir_all(dir.join("storage")).map_err(setup)?;
        let mut last = None;
        for _ in 0..3 {
            let port = free_port().map_err(setup)?;
            match Self::start_on(dir, port) {
                Ok(r) => return Ok(r),
                Err(e @ LocalRegistryError::Ended(_)) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("three tries"))
    }

    fn start_on(dir: &Path, port: u16) -> Result<LocalRegistry, LocalRegistryError> {
        let setup = |source| LocalRegistryError::Setup {
            dir: dir.to_path_buf(),
            source,
        };
        let host = format!("127.0.0.1:{port}");
        let config = dir.join("config.yml");
        fs::write(&config, config_yml(&dir.join("storage"), &host)).map_err(setup)?;
        let log_path = dir.join("registry.log");
        let log = File::create(&log_path).map_err(setup)?;
        let mut cmd = Command::new(PROGRAM);
        cmd.arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(setup)?)
            .stderr(log);
        // REGISTRY_* variables override its configuration (a user's
        // REGISTRY_AUTH_FILE, podman's, would be read as auth.file).
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("REGISTRY_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd.spawn().map_err(LocalRegistryError::Spawn)?;
        let mut r = LocalRegistry {
            child,
            host,
            dir: dir.to_path_buf(),
        };
        let t = Instant::now();
        while t.elapsed() < READY {
            if let Ok(Some(_)) = r.child.try_wait() {
                let text = fs::read_to_string(&log_path).unwrap_or_default();
                let line = text
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("no output");
                return Err(LocalRegistryError::Ended(line.to_string()));
            }
            if answers(&r.host) {
                return Ok(r);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let host = r.host.clone();
        drop(r);
        Err(LocalRegistryError::NoAnswer { host })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for LocalRegistry {
    /// SIGTERM to its PID, SIGKILL after a grace period, and reaped.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: a signal to our own child, which we have not reaped.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            let t = Instant::now();
            while t.elapsed() < GRACE {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A port nothing listens on now (the kernel's pick for port 0).
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Does `GET /v2/` answer 200, as the API's base does without auth?
fn answers(host: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(host) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.ends_with(b" 200")
}

fn config_yml(storage: &Path, host: &str) -> String {
    format!(
        "# isola bench's own registry: plain HTTP on {host}, removed at the end.
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: {host}
",
        storage = storage.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_answers_and_is_gone_when_dropped() {
        if !isola_test_support::tool(PROGRAM) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let r = LocalRegistry::start(dir.path()).unwrap();
        assert!(answers(&r.host));
        let (pid, host) = (r.pid(), r.host.clone());
        drop(r);
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
        assert!(!answers(&host));
    }

    #[test]
    fn its_configuration_names_its_storage_and_address() {
        let text = config_yml(Path::new("/x/storage"), "127.0.0.1:5000");
        assert!(text.contains("rootdirectory: /x/storage\n"));
        assert!(text.contains("addr: 127.0.0.1:5000\n"));
    }
}
