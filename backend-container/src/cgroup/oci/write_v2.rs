//! `linux.resources` written into a container's v2 directory, converted
//! the way runc converts them where v2 counts differently.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use super::set;
use crate::cgroup::{fs, CgroupError};

pub(super) fn apply(dir: &Path, r: &LinuxResources) -> Result<(), CgroupError> {
    if let Some(m) = r.memory() {
        memory(dir, m)?;
    }
    if let Some(c) = r.cpu() {
        cpu(dir, c)?;
    }
    if let Some(pids) = r.pids() {
        // No limit needs no pids controller (check lets it pass without).
        let file = dir.join("pids.max");
        if pids.limit() > 0 || file.exists() {
            fs::write(&file, super::pids_max(pids.limit()))?;
        }
    }
    if let Some(b) = r.block_io() {
        io(dir, b)?;
    }
    for h in r.hugepage_limits().iter().flatten() {
        let name = super::hugepage_name(h.page_size())?;
        let limit = max_or(h.limit());
        fs::write(&dir.join(format!("hugetlb.{name}.max")), &limit)?;
        let rsvd = dir.join(format!("hugetlb.{name}.rsvd.max"));
        if rsvd.exists() {
            fs::write(&rsvd, &limit)?;
        }
    }
    for line in super::rdma_lines(r) {
        fs::write(&dir.join("rdma.max"), line)?;
    }
    // Last, so that a file set here too wins, as in runc.
    if let Some(unified) = r.unified() {
        let mut keys: Vec<&String> = unified.keys().collect();
        keys.sort();
        for key in keys {
            fs::write(&dir.join(key), &unified[key])?;
        }
    }
    Ok(())
}

/// -1 is "max" in v2's files.
fn max_or(value: i64) -> String {
    if value == -1 {
        "max".to_owned()
    } else {
        value.to_string()
    }
}

fn memory(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    let limit = set(m.limit());
    if let Some(swap) = swap_max(limit, set(m.swap())) {
        match fs::write(&dir.join("memory.swap.max"), &swap) {
            // Without swap accounting, "no swap limit" and "no swap" need
            // no file; any other bound does, and is an error.
            Err(CgroupError::Write { ref source, .. })
                if source.kind() == std::io::ErrorKind::NotFound
                    && (swap == "max" || swap == "0") => {}
            other => other?,
        }
    }
    if let Some(limit) = limit {
        fs::write(&dir.join("memory.max"), max_or(limit))?;
    }
    if let Some(reservation) = set(m.reservation()) {
        fs::write(&dir.join("memory.low"), max_or(reservation))?;
    }
    Ok(())
}

/// config.json's swap counts memory and swap together (v1's memsw); v2's
/// memory.swap.max counts swap alone. (check refuses swap without a limit.)
fn swap_max(limit: Option<i64>, swap: Option<i64>) -> Option<String> {
    match (limit, swap?) {
        (_, -1) => Some("max".to_owned()),
        (Some(limit), swap) if limit > 0 => Some(swap.saturating_sub(limit).max(0).to_string()),
        _ => None,
    }
}

fn cpu(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(shares) = set(c.shares()) {
        fs::write(&dir.join("cpu.weight"), shares_to_weight(shares))?;
    }
    if let Some(idle) = c.idle() {
        fs::write(&dir.join("cpu.idle"), idle)?;
    }
    if let Some(max) = cpu_max(set(c.quota()), set(c.period())) {
        fs::write(&dir.join("cpu.max"), max)?;
    }
    if let Some(burst) = c.burst() {
        fs::write(&dir.join("cpu.max.burst"), burst)?;
    }
    for (file, list) in [("cpuset.cpus", c.cpus()), ("cpuset.mems", c.mems())] {
        if let Some(list) = list.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
            fs::write(&dir.join(file), list)?;
        }
    }
    Ok(())
}

/// v1's cpu.shares (2..262144, default 1024) as v2's cpu.weight (1..10000,
/// default 100), with runc's formula so both runtimes give the same weight.
pub(super) fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// cpu.max: "QUOTA PERIOD", "max" for no quota; a period alone keeps the
/// quota the kernel has, and either alone is written as runc writes it.
pub(super) fn cpu_max(quota: Option<i64>, period: Option<u64>) -> Option<String> {
    if quota.is_none() && period.is_none() {
        return None;
    }
    let mut out = match quota {
        Some(q) if q > 0 => q.to_string(),
        _ => "max".to_owned(),
    };
    if let Some(p) = period {
        out += &format!(" {p}");
    }
    Some(out)
}

/// blkio's weight (10..1000) as io.weight (1..10000), runc's formula.
pub(super) fn blkio_to_io_weight(weight: u16) -> u64 {
    1 + (u64::from(weight.clamp(10, 1000)) - 10) * 9999 / 990
}

/// One device's line for io.max; a rate of 0 lifts the limit, as writing
/// 0 does on v1.
pub(super) fn io_max_line(major: i64, minor: i64, key: &str, rate: u64) -> String {
    if rate == 0 {
        format!("{major}:{minor} {key}=max")
    } else {
        format!("{major}:{minor} {key}={rate}")
    }
}

fn io(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    // BFQ takes blkio's range as it is; io.weight needs converting.
    let bfq = dir.join("io.bfq.weight");
    let bfq = bfq.exists().then_some(bfq);
    let weight = |w: u16| match &bfq {
        Some(file) => (file.clone(), u64::from(w)),
        None => (dir.join("io.weight"), blkio_to_io_weight(w)),
    };
    if let Some(w) = set(b.weight()) {
        let (file, value) = weight(w);
        fs::write(&file, value)?;
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = set(d.weight()) {
            let (file, value) = weight(w);
            fs::write(&file, format!("{}:{} {value}", d.major(), d.minor()))?;
        }
    }
    let throttles = [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ];
    for (key, devices) in throttles {
        for d in devices.iter().flatten() {
            fs::write(
                &dir.join("io.max"),
                io_max_line(d.major(), d.minor(), key, d.rate()),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::{LinuxMemoryBuilder, LinuxResourcesBuilder};

    use super::*;
    use crate::cgroup::fs::{fixture, read_file as read};

    #[test]
    fn shares_convert_to_weights_as_runc_converts_them() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        // Out of v1's range: clamped as the v1 kernel clamps.
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(shares_to_weight(1 << 30), 10_000);
    }

    #[test]
    fn blkio_weights_convert_to_io_weights() {
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(500), 4950);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
    }

    #[test]
    fn cpu_max_lines() {
        assert_eq!(cpu_max(None, None), None);
        assert_eq!(
            cpu_max(Some(50_000), Some(100_000)).unwrap(),
            "50000 100000"
        );
        assert_eq!(cpu_max(Some(-1), Some(100_000)).unwrap(), "max 100000");
        assert_eq!(cpu_max(Some(20_000), None).unwrap(), "20000");
        assert_eq!(cpu_max(None, Some(10_000)).unwrap(), "max 10000");
    }

    #[test]
    fn io_max_lines() {
        assert_eq!(io_max_line(8, 0, "rbps", 1_048_576), "8:0 rbps=1048576");
        assert_eq!(io_max_line(253, 1, "wiops", 0), "253:1 wiops=max");
    }

    #[test]
    fn swap_counts_apart_from_memory() {
        assert_eq!(swap_max(Some(100), Some(300)).as_deref(), Some("200"));
        assert_eq!(swap_max(Some(100), Some(100)).as_deref(), Some("0"));
        assert_eq!(swap_max(Some(100), Some(-1)).as_deref(), Some("max"));
        assert_eq!(swap_max(Some(100), None), None);
    }

    #[test]
    fn memory_without_swap_accounting_may_say_no_swap() {
        let dir = fixture(&[("memory.max", "max"), ("memory.low", "0")]);
        let m = LinuxMemoryBuilder::default()
            .limit(4096i64)
            .swap(4096i64)
            .reservation(1024i64)
            .build()
            .unwrap();
        memory(dir.path(), &m).unwrap();
        assert_eq!(read(dir.path(), "memory.max"), "4096");
        assert_eq!(read(dir.path(), "memory.low"), "1024");
        // Asking for real swap there is an error naming the file.
        let m = LinuxMemoryBuilder::default()
            .limit(4096i64)
            .swap(8192i64)
            .build()
            .unwrap();
        let err = memory(dir.path(), &m).unwrap_err().to_string();
        assert!(err.contains("memory.swap.max"), "{err}");
    }

    #[test]
    fn unified_is_written_last() {
        let dir = fixture(&[("pids.max", "max"), ("memory.high", "max")]);
        let r = LinuxResourcesBuilder::default()
            .pids(
                oci_spec::runtime::LinuxPidsBuilder::default()
                    .limit(10i64)
                    .build()
                    .unwrap(),
            )
            .unified(std::collections::HashMap::from([
                ("pids.max".to_owned(), "7".to_owned()),
                ("memory.high".to_owned(), "65536".to_owned()),
            ]))
            .build()
            .unwrap();
        apply(dir.path(), &r).unwrap();
        assert_eq!(read(dir.path(), "pids.max"), "7");
        assert_eq!(read(dir.path(), "memory.high"), "65536");
    }
}
