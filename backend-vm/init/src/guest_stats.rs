//! What the guest sees of itself, for `isola stats` over the agent
//! channel: its processes (kernel threads, which have no command line, not
//! counted) and its memory as /proc/meminfo gives it.

use isola_guest_spec::agent::GuestStats;

pub fn now() -> GuestStats {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    GuestStats {
        processes: processes(),
        mem_total_kib: field(&meminfo, "MemTotal:"),
        mem_available_kib: field(&meminfo, "MemAvailable:"),
    }
}

fn processes() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| !c.is_empty()))
        .count() as u64
}

/// The number after `name` in /proc/meminfo's text (kB), 0 if absent.
fn field(meminfo: &str, name: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_fields_are_read_by_name() {
        let text = "MemTotal:       251220 kB\nMemFree:  1 kB\nMemAvailable:   230000 kB\n";
        assert_eq!(field(text, "MemTotal:"), 251220);
        assert_eq!(field(text, "MemAvailable:"), 230000);
        assert_eq!(field(text, "Nope:"), 0);
    }
}
