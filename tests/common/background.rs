//! isola run in the background, as the signal tests drive it: started with
//! its output piped, read until its workload is ready, signalled, and its
//! exit status and output collected, within a bound where a hang is a
//! failure.

use std::io::Read;
use std::process::{Child, ChildStderr, ChildStdout, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A running isola whose stdout and stderr come to the test.
pub struct Background {
    pub child: Child,
    stdout: ChildStdout,
    stderr: ChildStderr,
}

impl Background {
    /// `command` started with its stdout and stderr piped.
    pub fn start(mut command: Command) -> Background {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running isola");
        let stdout = child.stdout.take().expect("isola's stdout piped");
        let stderr = child.stderr.take().expect("isola's stderr piped");
        Background {
            child,
            stdout,
            stderr,
        }
    }

    /// [`Background::start`], then wait until the workload prints "ready";
    /// what it prints after that is left to [`Background::collect`].
    pub fn until_ready(command: Command) -> Background {
        let mut started = Background::start(command);
        let mut ready = [0u8; 6];
        started
            .stdout
            .read_exact(&mut ready)
            .expect("the workload's \"ready\"");
        assert_eq!(&ready, b"ready\n");
        started
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `signal` to isola itself (it passes it on to the workload).
    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid() as i32), signal).expect("signalling isola");
    }

    /// Wait for isola to end: its exit status, the rest of its stdout and
    /// all of its stderr.
    pub fn collect(self) -> Output {
        self.wait(None, "")
    }

    /// [`Background::collect`], but an isola still running after `bound` is
    /// killed and the test fails, saying `what` still ran and what isola
    /// had printed on stderr.
    pub fn collect_within(self, bound: Duration, what: &str) -> Output {
        self.wait(Some(bound), what)
    }

    fn wait(self, bound: Option<Duration>, what: &str) -> Output {
        let Background {
            mut child,
            stdout,
            stderr,
        } = self;
        // Read both as they come: a full pipe would stall isola.
        let (stdout, stderr) = (drain(stdout), drain(stderr));
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for isola") {
                break status;
            }
            if let Some(bound) = bound.filter(|b| start.elapsed() > *b) {
                let _ = child.kill();
                let _ = child.wait();
                let err = stderr.join().unwrap_or_default();
                panic!(
                    "{what} still ran after {bound:?}: {}",
                    String::from_utf8_lossy(&err)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Output {
            status,
            stdout: stdout.join().expect("reading isola's stdout"),
            stderr: stderr.join().expect("reading isola's stderr"),
        }
    }
}

fn drain(mut from: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        bytes
    })
}
