//! The block I/O of host processes, from /proc/PID/io (`read_bytes`,
//! `write_bytes`: what reached the storage layer, the children they reaped
//! included), for `isola stats` of a sandbox whose cgroup does not account
//! it (a cgroup v1 host where isola does not join blkio) or of a VM's
//! monitor.

/// Bytes read and written by `pids` together; `None` if none could be read.
pub fn block_io(pids: &[i32]) -> Option<(u64, u64)> {
    let mut total = None;
    for pid in pids {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/io")) else {
            continue;
        };
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let (r, w) = total.unwrap_or((0, 0));
        total = Some((r + field("read_bytes:"), w + field("write_bytes:")));
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_io_is_read_and_a_missing_process_is_skipped() {
        let me = std::process::id() as i32;
        assert!(block_io(&[me]).is_some());
        assert_eq!(block_io(&[i32::MAX]), None);
    }
}
