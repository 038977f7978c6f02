//! `isola top` and `isola stats`: what a running sandbox's processes are,
//! and what it uses, asked of its shim (the backend knows its cgroup or
//! its monitor).

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use isola_core::instance::{self, State, Status};
use isola_core::Root;

use crate::output;
use crate::shim::client;
use crate::shim::wire::{Request, Response, Usage};

pub fn top(root: &Root, given: &str) -> Result<i32> {
    let state = instance::find(root, given)?;
    let conn = client::connect_running(root, &state)?;
    let (Response::Pids { mut pids }, _) = conn.ask(&Request::Top, &[])? else {
        bail!("the shim did not list the processes");
    };
    pids.sort_unstable();
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    let rows: Vec<Vec<String>> = pids.iter().filter_map(|p| process_row(*p, ticks)).collect();
    output::table(
        &["UID", "PID", "PPID", "STIME", "TTY", "TIME", "CMD"],
        &rows,
    );
    Ok(0)
}

/// One line of `ps -ef` for `pid`, from /proc; `None` if it is gone.
fn process_row(pid: i32, ticks: u64) -> Option<Vec<String>> {
    let proc = std::path::PathBuf::from(format!("/proc/{pid}"));
    let stat = std::fs::read_to_string(proc.join("stat")).ok()?;
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(').map(|(_, c)| c).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // After ')': state=0 ppid=1 ... tty_nr=4 ... utime=11 stime=12 ... starttime=19.
    let ppid = field(1);
    let tty = field(4);
    let cpu = (field(11) + field(12)) / ticks;
    let start = field(19) / ticks;
    let uid = std::fs::read_to_string(proc.join("status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_string))
        })
        .unwrap_or_default();
    let cmdline = std::fs::read(proc.join("cmdline")).unwrap_or_default();
    let cmd = if cmdline.is_empty() {
        format!("[{comm}]")
    } else {
        String::from_utf8_lossy(&cmdline)
            .trim_end_matches('\0')
            .replace('\0', " ")
    };
    let tty = if tty == 0 {
        "?".to_string()
    } else {
        format!("pts/{}", (tty & 0xff) | ((tty >> 12) & 0xfff00))
    };
    // ps's STIME: the wall-clock time it started, from the boot's.
    let btime = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    let since_midnight = (btime + start) % 86400;
    Some(vec![
        uid,
        pid.to_string(),
        ppid.to_string(),
        format!(
            "{:02}:{:02}",
            since_midnight / 3600,
            since_midnight / 60 % 60
        ),
        tty,
        format!("{:02}:{:02}:{:02}", cpu / 3600, cpu / 60 % 60, cpu % 60),
        cmd,
    ])
}

pub fn stats(root: &Root, ids: &[String], no_stream: bool, json: bool) -> Result<i32> {
    let states: Vec<State> = if ids.is_empty() {
        instance::list(root)?
            .into_iter()
            .filter(|s| s.status == Status::Running)
            .collect()
    } else {
        ids.iter()
            .map(|g| instance::find(root, g).map_err(anyhow::Error::new))
            .collect::<Result<_>>()?
    };
    let on_terminal = nix::unistd::isatty(std::io::stdout()).unwrap_or(false);
    let mut before = sample(root, &states)?;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let after = sample(root, &states)?;
        let rows: Vec<Row> = states
            .iter()
            .zip(before.1.iter().zip(&after.1))
            .map(|(s, (a, b))| Row::new(s, a, b, after.0 - before.0))
            .collect();
        if json {
            output::json(&rows)?;
            return Ok(0);
        }
        if on_terminal && !no_stream {
            print!("\x1b[2J\x1b[H");
        }
        let table: Vec<Vec<String>> = rows.iter().map(Row::cells).collect();
        output::table(
            &[
                "ID",
                "NAME",
                "CPU %",
                "MEM USAGE / LIMIT",
                "MEM %",
                "BLOCK I/O",
                "PIDS",
            ],
            &table,
        );
        if no_stream {
            return Ok(0);
        }
        before = after;
    }
}

/// Each sandbox's use now (`None` for one that is not running).
fn sample(root: &Root, states: &[State]) -> Result<(Instant, Vec<Option<Usage>>)> {
    let mut out = Vec::new();
    for s in states {
        let usage = match client::connect_to(root, s)? {
            Some(conn) => match conn.ask(&Request::Stats, &[]) {
                Ok((Response::Stats(u), _)) => Some(u),
                _ => None,
            },
            None => None,
        };
        out.push(usage);
    }
    Ok((Instant::now(), out))
}

#[derive(serde::Serialize)]
struct Row {
    id: String,
    name: Option<String>,
    cpu_percent: Option<f64>,
    memory_bytes: Option<u64>,
    memory_limit: Option<u64>,
    pids: Option<u64>,
    block_read: Option<u64>,
    block_written: Option<u64>,
}

impl Row {
    fn new(s: &State, a: &Option<Usage>, b: &Option<Usage>, wall: Duration) -> Row {
        let cpu = match (a.and_then(|u| u.cpu_usec), b.and_then(|u| u.cpu_usec)) {
            (Some(x), Some(y)) if wall > Duration::ZERO => {
                Some(y.saturating_sub(x) as f64 / wall.as_micros() as f64 * 100.0)
            }
            _ => None,
        };
        Row {
            id: s.id.clone(),
            name: s.name.clone(),
            cpu_percent: cpu,
            memory_bytes: b.and_then(|u| u.memory_bytes),
            // As docker: without a limit, the host's memory is the limit.
            memory_limit: b.and_then(|u| u.memory_limit.or_else(host_memory)),
            pids: b.and_then(|u| u.pids),
            block_read: b.and_then(|u| u.block_read),
            block_written: b.and_then(|u| u.block_written),
        }
    }

    fn cells(&self) -> Vec<String> {
        let dash = || "--".to_string();
        let mem = |b: Option<u64>| b.map(output::size).unwrap_or_else(dash);
        let percent = match (self.memory_bytes, self.memory_limit) {
            (Some(u), Some(l)) if l > 0 => format!("{:.2}%", u as f64 / l as f64 * 100.0),
            _ => dash(),
        };
        vec![
            self.id.clone(),
            self.name.clone().unwrap_or_default(),
            self.cpu_percent
                .map(|c| format!("{c:.2}%"))
                .unwrap_or_else(dash),
            format!("{} / {}", mem(self.memory_bytes), mem(self.memory_limit)),
            percent,
            format!("{} / {}", mem(self.block_read), mem(self.block_written)),
            self.pids.map(|p| p.to_string()).unwrap_or_else(dash),
        ]
    }
}

/// The host's memory, bytes (MemTotal).
fn host_memory() -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib << 10)
    })
}
