//! A process's CPU time and resident memory from /proc, for a VM sandbox's
//! stats: the monitor's own (isola's process, or QEMU's).

use std::io;

/// CPU time used (user and system), microseconds, and the resident set,
/// bytes, of process `pid`.
pub fn cpu_and_memory(pid: u32) -> io::Result<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm"))?;
    let ticks = cpu_ticks(&stat).ok_or_else(|| malformed("stat"))?;
    let pages = statm
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| malformed("statm"))?;
    let hz = sysconf(nix::unistd::SysconfVar::CLK_TCK)?;
    let page = sysconf(nix::unistd::SysconfVar::PAGE_SIZE)?;
    Ok((ticks * 1_000_000 / hz.max(1), pages * page))
}

/// utime + stime, fields 14 and 15 of /proc/PID/stat. The command name
/// (field 2) may hold spaces and parentheses: fields are counted after the
/// last ')'.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn sysconf(var: nix::unistd::SysconfVar) -> io::Result<u64> {
    match nix::unistd::sysconf(var)? {
        Some(n) if n > 0 => Ok(n as u64),
        _ => Err(malformed("sysconf")),
    }
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("unreadable {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_counted_after_the_command_name() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0";
        assert_eq!(cpu_ticks(stat), Some(10));
        assert_eq!(cpu_ticks("42 (x) S 1"), None);
        let (_, rss) = cpu_and_memory(std::process::id()).unwrap();
        assert!(rss > 0);
    }
}
