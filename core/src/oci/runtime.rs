//! The door through which isola-runtime drives a backend: a bundle in,
//! a container (or microVM) made and parked before its process's exec;
//! then each later call on the record `create` left. Every call is a
//! process of its own, so a backend keeps nothing in memory between them.

use std::os::fd::OwnedFd;
use std::path::Path;

use oci_spec::runtime::{LinuxResources, Process};

use super::bundle::{Bundle, BundleError};
use super::record::{Record, RecordError};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A config.json field (or option) the backend cannot honour: the
    /// sentence names it.
    #[error("{0}")]
    Unsupported(String),
    /// The container is not in a state the call needs.
    #[error("{0}")]
    State(String),
    #[error("{step}")]
    Step {
        step: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl RuntimeError {
    pub fn step(
        step: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> RuntimeError {
        RuntimeError::Step {
            step: step.into(),
            source: source.into(),
        }
    }

    pub fn unsupported(field: &str, why: &str) -> RuntimeError {
        RuntimeError::Unsupported(format!("config.json's {field} is not supported: {why}"))
    }
}

/// What `create` is told besides the bundle.
pub struct CreateOptions<'a> {
    pub id: &'a str,
    /// `--root`/<id>, made by the caller: the record, the fifo, anything
    /// else of the container's goes here.
    pub state_dir: &'a Path,
    /// `--console-socket`: where the terminal's master end is sent.
    pub console_socket: Option<&'a Path>,
    /// `--preserve-fds N`: fds 3..3+N go to the process.
    pub preserve_fds: u32,
    /// `--no-pivot`: move the root with MS_MOVE and chroot instead.
    pub no_pivot: bool,
    /// `--no-new-keyring`: keep the caller's session keyring.
    pub no_new_keyring: bool,
}

/// What `create` made, for the record.
pub struct Created {
    pub pid: i32,
    pub cgroup: Option<String>,
    pub cgroup_parents_made: usize,
}

/// What `exec` is told besides the process.
pub struct ExecOptions<'a> {
    /// The container's state directory (its config.json copy).
    pub state_dir: &'a Path,
    pub console_socket: Option<&'a Path>,
    pub preserve_fds: u32,
    /// `--detach`: return once it runs (it stays the caller's child, for a
    /// subreaper above to inherit); otherwise wait and return its code.
    pub detach: bool,
}

/// How an exec ended or where it runs.
pub enum Execd {
    Detached { pid: i32 },
    Exited { code: i32 },
}

/// One resource sample of `events --stats`, in runc's JSON shape.
pub type StatsJson = serde_json::Value;

pub trait BundleRuntime {
    fn name(&self) -> &'static str;

    /// Refusals known before anything is made: each names the field.
    fn check(&self, bundle: &Bundle) -> Result<(), RuntimeError>;

    /// Make the container, its init parked before exec; it outlives this
    /// call (and its caller's process, whose subreaper inherits it).
    fn create(&self, bundle: &Bundle, opts: &CreateOptions) -> Result<Created, RuntimeError>;

    /// Let the init exec the process.
    fn start(&self, rec: &Record, state_dir: &Path) -> Result<(), RuntimeError>;

    /// Send `signal` to the init, or with `all` to every process in it.
    fn kill(&self, rec: &Record, signal: i32, all: bool) -> Result<(), RuntimeError>;

    /// Whether it is paused now.
    fn paused(&self, _rec: &Record) -> bool {
        false
    }

    fn pause(&self, _rec: &Record) -> Result<(), RuntimeError> {
        Err(RuntimeError::State(format!(
            "the {} backend cannot pause a container",
            self.name()
        )))
    }

    fn resume(&self, _rec: &Record) -> Result<(), RuntimeError> {
        Err(RuntimeError::State(format!(
            "the {} backend cannot resume a container",
            self.name()
        )))
    }

    /// The host PIDs of its processes.
    fn pids(&self, rec: &Record) -> Result<Vec<i32>, RuntimeError>;

    /// Another process in the running container.
    fn exec(
        &self,
        _rec: &Record,
        _process: &Process,
        _opts: &ExecOptions,
    ) -> Result<Execd, RuntimeError> {
        Err(RuntimeError::State(format!(
            "the {} backend cannot exec into a container yet",
            self.name()
        )))
    }

    fn update(&self, _rec: &Record, _resources: &LinuxResources) -> Result<(), RuntimeError> {
        Err(RuntimeError::State(format!(
            "the {} backend cannot update a container's resources",
            self.name()
        )))
    }

    fn stats(&self, rec: &Record) -> Result<StatsJson, RuntimeError>;

    /// Remove what the stopped container left outside its state
    /// directory (its cgroup); its processes are gone or are killed.
    fn delete(&self, rec: &Record) -> Result<(), RuntimeError>;
}

/// Send a terminal's master end to `--console-socket`: exactly one fd in
/// one SCM_RIGHTS message, as containerd's shim reads it.
pub fn send_console(path: &Path, master: &OwnedFd) -> Result<(), RuntimeError> {
    use nix::sys::socket::{
        connect, sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
        UnixAddr,
    };
    use std::os::fd::AsRawFd;
    let fail = |e: nix::errno::Errno| {
        RuntimeError::step(
            format!(
                "sending the terminal to the console socket {}",
                path.display()
            ),
            e,
        )
    };
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(fail)?;
    let addr = UnixAddr::new(path).map_err(fail)?;
    connect(sock.as_raw_fd(), &addr).map_err(fail)?;
    let fds = [master.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    // runc sends the pty's name as the data; the shim reads only the fd.
    let name = b"/dev/ptmx";
    let iov = [std::io::IoSlice::new(name)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None).map_err(fail)?;
    Ok(())
}
