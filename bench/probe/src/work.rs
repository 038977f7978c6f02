//! `work`: small workloads timed where the probe runs, so that host,
//! container and VM can be compared on CPU, system calls, process creation,
//! disk flushes and throughput, memory bandwidth and console output.

mod compute;
mod net;
mod system;

use std::ffi::CString;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// xorshift steps: the CPU alone.
    Cpu,
    /// getpid(2), raw: the cost of entering the kernel.
    Getpid,
    /// fork, exec of this program's `noop`, wait.
    ForkExec,
    /// 4 KiB written over the start of a file, then fsync.
    WriteFsync,
    /// A 16 MiB buffer copied into another.
    Memcpy,
    /// 64 KiB written to stdout.
    Stdout,
    /// 4 MiB written sequentially into a 64 MiB file, then fdatasync: a
    /// volume's (or a disk's) write throughput.
    SeqWrite,
    /// That file read back 4 MiB at a time, each range first dropped from
    /// the page cache: the device's read throughput.
    SeqRead,
    /// 64 KiB writes over TCP to `--peer`: the network path's throughput.
    TcpStream,
    /// One byte to `--peer` and back: the network path's round trip.
    TcpRr,
}

impl Workload {
    pub const ALL: [Workload; 10] = [
        Workload::Cpu,
        Workload::Getpid,
        Workload::ForkExec,
        Workload::WriteFsync,
        Workload::Memcpy,
        Workload::Stdout,
        Workload::SeqWrite,
        Workload::SeqRead,
        Workload::TcpStream,
        Workload::TcpRr,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Cpu => "cpu",
            Workload::Getpid => "getpid",
            Workload::ForkExec => "fork_exec",
            Workload::WriteFsync => "write_fsync",
            Workload::Memcpy => "memcpy",
            Workload::Stdout => "stdout",
            Workload::SeqWrite => "seq_write",
            Workload::SeqRead => "seq_read",
            Workload::TcpStream => "tcp_stream",
            Workload::TcpRr => "tcp_rr",
        }
    }

    pub fn from_name(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == name)
    }

    /// What runs when none is named: all but `stdout`, whose data would
    /// mix with the results, and the sequential ones, which are for the
    /// volume a sandbox is given (128 MiB of I/O each).
    pub fn defaults() -> Vec<Workload> {
        Workload::ALL
            .into_iter()
            .filter(|w| {
                !matches!(
                    w,
                    Workload::Stdout
                        | Workload::SeqWrite
                        | Workload::SeqRead
                        | Workload::TcpStream
                        | Workload::TcpRr
                )
            })
            .collect()
    }

    fn unit(self) -> &'static str {
        match self {
            Workload::Cpu => "Mops/s",
            Workload::Getpid => "calls/s",
            Workload::ForkExec => "spawns/s",
            Workload::WriteFsync => "fsyncs/s",
            Workload::TcpRr => "round trips/s",
            Workload::Memcpy
            | Workload::Stdout
            | Workload::SeqWrite
            | Workload::SeqRead
            | Workload::TcpStream => "MiB/s",
        }
    }

    /// How many ops make one of the unit's numerator.
    fn ops_per_unit(self) -> f64 {
        match self {
            Workload::Cpu => 1e6,
            Workload::Memcpy => 1.0 / compute::COPY_MIB as f64,
            Workload::Stdout => 1.0 / system::CHUNK_MIB,
            Workload::SeqWrite | Workload::SeqRead => 1.0 / system::SEQ_CHUNK_MIB,
            Workload::TcpStream => 1.0 / net::CHUNK_MIB,
            _ => 1.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub workloads: Vec<Workload>,
    pub ms: u64,
    pub dir: PathBuf,
    /// The TCP workloads' peer.
    pub peer: Option<std::net::SocketAddr>,
}

pub const DEFAULT_MS: u64 = 300;

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub workload: &'static str,
    /// Units of the workload done: steps, calls, spawns, fsyncs, 16 MiB
    /// copies or 64 KiB writes.
    pub ops: u64,
    pub seconds: f64,
    pub rate: f64,
    pub unit: &'static str,
}

/// A workload that failed: its name, and why.
#[derive(Debug, thiserror::Error)]
#[error("{workload}")]
pub struct WorkError {
    pub workload: &'static str,
    #[source]
    pub source: io::Error,
}

/// Run each workload in turn; the first failure ends the run, named.
pub fn run(options: &Options) -> Result<Vec<Outcome>, WorkError> {
    let time = Duration::from_millis(options.ms);
    let mut outcomes = Vec::new();
    for &w in &options.workloads {
        let (ops, seconds) = run_one(w, time, options).map_err(|source| WorkError {
            workload: w.name(),
            source,
        })?;
        outcomes.push(Outcome {
            workload: w.name(),
            ops,
            seconds,
            rate: ops as f64 / seconds / w.ops_per_unit(),
            unit: w.unit(),
        });
    }
    Ok(outcomes)
}

fn run_one(w: Workload, time: Duration, options: &Options) -> io::Result<(u64, f64)> {
    match w {
        Workload::Cpu => compute::cpu(time),
        Workload::Memcpy => compute::memcpy(time),
        Workload::Getpid => system::getpid(time),
        Workload::ForkExec => {
            let exe = CString::new("/proc/self/exe")?;
            system::fork_exec(time, &exe, &[c"isola-probe", c"noop"])
        }
        Workload::WriteFsync => system::write_fsync(time, &options.dir),
        Workload::Stdout => system::stdout(time),
        Workload::SeqWrite => system::seq_write(time, &options.dir),
        Workload::SeqRead => system::seq_read(time, &options.dir),
        Workload::TcpStream | Workload::TcpRr => {
            let peer = options.peer.ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "needs --peer IP:PORT")
            })?;
            if w == Workload::TcpStream {
                net::stream(time, peer)
            } else {
                net::round_trip(time, peer)
            }
        }
    }
}

/// Run `step` (a batch of ops; how many it did) for a tenth of `time` to
/// warm caches and the CPU's clock up, then for `time`: the ops counted and
/// the seconds they took.
fn measure(time: Duration, mut step: impl FnMut() -> io::Result<u64>) -> io::Result<(u64, f64)> {
    let warm = Instant::now();
    while warm.elapsed() < time / 10 {
        step()?;
    }
    let start = Instant::now();
    let mut ops = 0;
    loop {
        ops += step()?;
        let elapsed = start.elapsed();
        if elapsed >= time {
            return Ok((ops, elapsed.as_secs_f64()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_stdout_is_no_default() {
        for w in Workload::ALL {
            assert_eq!(Workload::from_name(w.name()), Some(w));
        }
        assert_eq!(Workload::from_name("gpu"), None);
        assert!(!Workload::defaults().contains(&Workload::Stdout));
        assert_eq!(Workload::defaults().len(), 5);
        assert!(!Workload::defaults().contains(&Workload::SeqRead));
    }

    #[test]
    fn measuring_counts_the_ops_and_the_time() {
        let (ops, seconds) = measure(Duration::from_millis(20), || Ok(3)).unwrap();
        assert!(ops >= 3 && ops % 3 == 0);
        assert!(seconds >= 0.02);
    }

    #[test]
    fn a_run_reports_each_workload_with_its_rate() {
        let options = Options {
            workloads: vec![Workload::Cpu, Workload::Memcpy, Workload::WriteFsync],
            ms: 20,
            dir: std::env::temp_dir(),
            peer: None,
        };
        let out = run(&options).unwrap();
        let names: Vec<_> = out.iter().map(|o| o.workload).collect();
        assert_eq!(names, ["cpu", "memcpy", "write_fsync"]);
        for o in &out {
            assert!(o.ops > 0 && o.seconds >= 0.02 && o.rate > 0.0, "{o:?}");
        }
        assert_eq!(out[1].unit, "MiB/s");
        let want = out[1].ops as f64 * 16.0 / out[1].seconds;
        assert!((out[1].rate - want).abs() < 1e-6 * want);
    }

    #[test]
    fn a_failing_workload_is_named() {
        let options = Options {
            workloads: vec![Workload::WriteFsync],
            ms: 10,
            dir: "/nonexistent/dir".into(),
            peer: None,
        };
        let err = crate::chain::chain(&run(&options).unwrap_err());
        assert!(err.starts_with("write_fsync: "), "{err}");
    }

    #[test]
    fn tcp_workloads_measure_against_their_peer() {
        use std::io::{Read, Write};
        // The benchmark's peer, in small: count a stream, echo bytes.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for c in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut c = c;
                    let mut mode = [0u8];
                    c.read_exact(&mut mode).unwrap();
                    let mut buf = vec![0u8; 1 << 16];
                    let mut total = 0u64;
                    while let Ok(n) = c.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        total += n as u64;
                        if mode[0] == net::ROUND_TRIP {
                            c.write_all(&buf[..n]).unwrap();
                        }
                    }
                    let _ = c.write_all(&total.to_le_bytes());
                });
            }
        });
        let mut options = Options {
            workloads: vec![Workload::TcpStream, Workload::TcpRr],
            ms: 20,
            dir: std::env::temp_dir(),
            peer: Some(peer),
        };
        let out = run(&options).unwrap();
        assert!(out.iter().all(|o| o.rate > 0.0), "{out:?}");
        assert_eq!((out[0].unit, out[1].unit), ("MiB/s", "round trips/s"));
        options.peer = None;
        let err = crate::chain::chain(&run(&options).unwrap_err());
        assert!(err.starts_with("tcp_stream: needs --peer"), "{err}");
    }
}
