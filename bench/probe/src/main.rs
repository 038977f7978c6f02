//! isola-probe: reports, as JSON on stdout, what a process can see and do
//! from where it runs (host, container, VM), for the benchmark's isolation
//! matrix. Static, so that the same binary runs in any image and guest.

// isola-core's, which the static probe does not link.
#[path = "../../../core/src/chain.rs"]
mod chain;
mod child;
mod cli;
mod errno;
mod facts;
mod idle;
mod limits;
mod reach;
mod status;
mod syscalls;
mod work;

use cli::Command;
use serde::Serialize;

const USAGE: &str = "usage: isola-probe [facts]
       isola-probe syscalls
       isola-probe limits [--memory-mib M] [--pids N]
       isola-probe work [WORKLOAD...] [--ms T] [--dir D]
       isola-probe idle

  facts     what this process can see and do, as one JSON object (the default)
  syscalls  how many x86_64 system call numbers reach the kernel and which a
            seccomp filter blocks, found without running any (also in facts)
  limits    limits as observed: how much memory a child can touch, up to M MiB
            (default 256), and how many processes start, up to N (default 256)
  work      run each workload about T ms (default 300) after a warm-up, and
            print a JSON array of their rates. The workloads: cpu, getpid,
            fork_exec, write_fsync (to a file in D, default the temporary
            directory), memcpy, seq_write and seq_read (4 MiB at a time
            through a 64 MiB file in D, each write synced, each read from
            the device), and stdout, which writes to stdout and so must be
            asked for alone, and prints its result on stderr. None named:
            all but stdout, seq_write and seq_read
  idle      print {mem_total_kib, mem_available_kib, pid} as one JSON line,
            then wait for SIGTERM, SIGINT or SIGHUP and exit 0";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("isola-probe: {msg}\n{USAGE}");
            std::process::exit(2);
        }
    };
    match command {
        Command::Noop => {}
        Command::Help => println!("{USAGE}"),
        Command::Facts => print(&facts::collect()),
        Command::Syscalls => match syscalls::scan() {
            Ok(surface) => print(&surface),
            Err(e) => fail(&format!("syscalls: {}", chain::chain(&e))),
        },
        Command::Limits { memory_mib, pids } => print(&limits::observe(memory_mib, pids)),
        Command::Work(options) => match work::run(&options) {
            // stdout's data is on stdout: its result goes after it, to stderr.
            Ok(outcomes) if options.workloads == [work::Workload::Stdout] => {
                eprintln!("{}", json(&outcomes))
            }
            Ok(outcomes) => print(&outcomes),
            Err(e) => fail(&format!("work: {}", chain::chain(&e))),
        },
        Command::Idle => {
            if let Err(e) = idle::run(&mut std::io::stdout().lock()) {
                fail(&format!("idle: {e}"));
            }
        }
    }
}

fn print(value: &impl Serialize) {
    println!("{}", json(value));
}

fn json(value: &impl Serialize) -> String {
    match serde_json::to_string(value) {
        Ok(json) => json,
        Err(e) => fail(&e.to_string()),
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("isola-probe: {msg}");
    std::process::exit(1);
}
