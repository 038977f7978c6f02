//! `linux.resources` written into a container's v1 directories, each setting
//! in the hierarchy whose controller owns it.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use super::devices::{self, Rule};
use super::{set, Group};
use crate::cgroup::{fs, CgroupError};

/// Writes `r`; `rules` are the device rules to install (none on update,
/// where the rules made at create stay, as runc keeps them).
pub(super) fn apply(
    group: &Group,
    r: &LinuxResources,
    rules: Option<&[Rule]>,
) -> Result<(), CgroupError> {
    if let (Some(dir), Some(m)) = (group.dir("memory"), r.memory()) {
        memory(dir, m)?;
    }
    if let Some(cpu) = r.cpu() {
        if let Some(dir) = group.dir("cpu") {
            self::cpu(dir, cpu)?;
        }
        if let Some(dir) = group.dir("cpuset") {
            cpuset(dir, cpu)?;
        }
    }
    if let (Some(dir), Some(pids)) = (group.dir("pids"), r.pids()) {
        fs::write(&dir.join("pids.max"), super::pids_max(pids.limit()))?;
    }
    if let (Some(dir), Some(io)) = (group.dir("blkio"), r.block_io()) {
        blkio(dir, io)?;
    }
    if let Some(dir) = group.dir("hugetlb") {
        for h in r.hugepage_limits().iter().flatten() {
            let name = super::hugepage_name(h.page_size())?;
            let limit = h.limit();
            fs::write(&dir.join(format!("hugetlb.{name}.limit_in_bytes")), limit)?;
            // Linux 5.7 also limits reservations: the same bound there, or a
            // process could reserve past the limit and fault later.
            let rsvd = dir.join(format!("hugetlb.{name}.rsvd.limit_in_bytes"));
            if rsvd.exists() {
                fs::write(&rsvd, limit)?;
            }
        }
    }
    if let Some(net) = r.network() {
        if let (Some(dir), Some(id)) = (group.dir("net_cls"), net.class_id()) {
            fs::write(&dir.join("net_cls.classid"), id)?;
        }
        if let Some(dir) = group.dir("net_prio") {
            for p in net.priorities().iter().flatten() {
                fs::write(
                    &dir.join("net_prio.ifpriomap"),
                    format!("{} {}", p.name(), p.priority()),
                )?;
            }
        }
    }
    if let Some(dir) = group.dir("rdma") {
        for line in super::rdma_lines(r) {
            fs::write(&dir.join("rdma.max"), line)?;
        }
    }
    if let (Some(dir), Some(rules)) = (group.dir("devices"), rules) {
        for (file, rule) in devices::v1_writes(rules) {
            fs::write(&dir.join(file), rule)?;
        }
    }
    Ok(())
}

fn memory(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    let limit = set(m.limit());
    let limit_file = dir.join("memory.limit_in_bytes");
    let memsw = dir.join("memory.memsw.limit_in_bytes");
    let swap = if memsw.exists() {
        // No memory limit with no word on swap means no memory+swap limit
        // either: a lower one left from before would refuse the new limit.
        set(m.swap()).or((limit == Some(-1)).then_some(-1))
    } else {
        // Without swap accounting (swapaccount=0) the kernel has no
        // memory+swap limit to set; the memory limit still holds.
        if set(m.swap()).is_some() {
            tracing::debug!("{}: no swap accounting, swap not limited", dir.display());
        }
        None
    };
    match (limit, swap) {
        (Some(limit), Some(swap)) => {
            // The kernel keeps memory <= memory+swap after each write, so
            // memory+swap goes first when it grows past the current limit.
            let current = fs::read_u64(&limit_file);
            let swap_first = swap == -1 || current.is_none_or(|c| (swap as u64) > c);
            if swap_first {
                fs::write(&memsw, swap)?;
                fs::write(&limit_file, limit)?;
            } else {
                fs::write(&limit_file, limit)?;
                fs::write(&memsw, swap)?;
            }
        }
        (Some(limit), None) => fs::write(&limit_file, limit)?,
        (None, Some(swap)) => fs::write(&memsw, swap)?,
        (None, None) => {}
    }
    if let Some(r) = set(m.reservation()) {
        fs::write(&dir.join("memory.soft_limit_in_bytes"), r)?;
    }
    if let Some(s) = m.swappiness() {
        fs::write(&dir.join("memory.swappiness"), s)?;
    }
    if let Some(disable) = m.disable_oom_killer() {
        fs::write(&dir.join("memory.oom_control"), u8::from(disable))?;
    }
    if let Some(h) = m.use_hierarchy() {
        fs::write(&dir.join("memory.use_hierarchy"), u8::from(h))?;
    }
    Ok(())
}

fn cpu(dir: &Path, cpu: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(shares) = set(cpu.shares()) {
        fs::write(&dir.join("cpu.shares"), shares)?;
    }
    let period_file = dir.join("cpu.cfs_period_us");
    let quota = set(cpu.quota());
    let mut period_again = None;
    if let Some(period) = set(cpu.period()) {
        match fs::write(&period_file, period) {
            // A shorter period can make the current quota's share exceed
            // the parent's: set the new quota first, then the period again.
            Err(CgroupError::Write { ref source, .. })
                if source.raw_os_error() == Some(libc::EINVAL) && quota.is_some() =>
            {
                period_again = Some(period);
            }
            other => other?,
        }
    }
    if let Some(quota) = quota {
        fs::write(&dir.join("cpu.cfs_quota_us"), quota)?;
        if let Some(period) = period_again {
            fs::write(&period_file, period)?;
        }
    }
    if let Some(burst) = cpu.burst() {
        fs::write(&dir.join("cpu.cfs_burst_us"), burst)?;
    }
    if let Some(idle) = cpu.idle() {
        fs::write(&dir.join("cpu.idle"), idle)?;
    }
    // The period first: the runtime is checked against it.
    if let Some(period) = set(cpu.realtime_period()) {
        fs::write(&dir.join("cpu.rt_period_us"), period)?;
    }
    if let Some(runtime) = set(cpu.realtime_runtime()) {
        fs::write(&dir.join("cpu.rt_runtime_us"), runtime)?;
    }
    Ok(())
}

fn cpuset(dir: &Path, cpu: &LinuxCpu) -> Result<(), CgroupError> {
    for (file, list) in [("cpuset.cpus", cpu.cpus()), ("cpuset.mems", cpu.mems())] {
        if let Some(list) = list.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
            fs::write(&dir.join(file), list)?;
        }
    }
    Ok(())
}

fn blkio(dir: &Path, io: &LinuxBlockIo) -> Result<(), CgroupError> {
    // CFQ's files where it is the scheduler, else BFQ's (same range).
    let weight_file = |cfq: &str, bfq: &str| {
        let cfq = dir.join(cfq);
        if cfq.exists() {
            cfq
        } else {
            dir.join(bfq)
        }
    };
    if let Some(w) = set(io.weight()) {
        fs::write(&weight_file("blkio.weight", "blkio.bfq.weight"), w)?;
    }
    if let Some(w) = set(io.leaf_weight()) {
        fs::write(&dir.join("blkio.leaf_weight"), w)?;
    }
    for d in io.weight_device().iter().flatten() {
        let device = format!("{}:{}", d.major(), d.minor());
        if let Some(w) = set(d.weight()) {
            let file = weight_file("blkio.weight_device", "blkio.bfq.weight_device");
            fs::write(&file, format!("{device} {w}"))?;
        }
        if let Some(w) = set(d.leaf_weight()) {
            fs::write(
                &dir.join("blkio.leaf_weight_device"),
                format!("{device} {w}"),
            )?;
        }
    }
    let throttles = [
        (
            "blkio.throttle.read_bps_device",
            io.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            io.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            io.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            io.throttle_write_iops_device(),
        ),
    ];
    for (file, devices) in throttles {
        for d in devices.iter().flatten() {
            // 0 removes the device's limit.
            fs::write(
                &dir.join(file),
                format!("{}:{} {}", d.major(), d.minor(), d.rate()),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::{LinuxCpuBuilder, LinuxMemoryBuilder};

    use super::*;
    use crate::cgroup::fs::{fixture, read_file as read};

    const UNLIMITED: &str = "9223372036854771712";

    #[test]
    fn memory_and_swap_are_written_in_an_order_the_kernel_takes() {
        // Growing: memory+swap must go first.
        let dir = fixture(&[
            ("memory.limit_in_bytes", "1048576"),
            ("memory.memsw.limit_in_bytes", "1048576"),
            ("memory.soft_limit_in_bytes", UNLIMITED),
            ("memory.swappiness", "60"),
            ("memory.oom_control", "0"),
        ]);
        let m = LinuxMemoryBuilder::default()
            .limit(64i64 << 20)
            .swap(128i64 << 20)
            .reservation(32i64 << 20)
            .swappiness(10u64)
            .disable_oom_killer(true)
            .build()
            .unwrap();
        memory(dir.path(), &m).unwrap();
        assert_eq!(read(dir.path(), "memory.limit_in_bytes"), "67108864");
        assert_eq!(read(dir.path(), "memory.memsw.limit_in_bytes"), "134217728");
        assert_eq!(read(dir.path(), "memory.soft_limit_in_bytes"), "33554432");
        assert_eq!(read(dir.path(), "memory.swappiness"), "10");
        assert_eq!(read(dir.path(), "memory.oom_control"), "1");
    }

    #[test]
    fn no_memory_limit_lifts_memory_and_swap() {
        let dir = fixture(&[
            ("memory.limit_in_bytes", "1048576"),
            ("memory.memsw.limit_in_bytes", "1048576"),
        ]);
        let m = LinuxMemoryBuilder::default().limit(-1i64).build().unwrap();
        memory(dir.path(), &m).unwrap();
        assert_eq!(read(dir.path(), "memory.limit_in_bytes"), "-1");
        assert_eq!(read(dir.path(), "memory.memsw.limit_in_bytes"), "-1");
    }

    #[test]
    fn swap_is_skipped_without_swap_accounting() {
        let dir = fixture(&[("memory.limit_in_bytes", UNLIMITED)]);
        let m = LinuxMemoryBuilder::default()
            .limit(1i64 << 20)
            .swap(2i64 << 20)
            .build()
            .unwrap();
        memory(dir.path(), &m).unwrap();
        assert_eq!(read(dir.path(), "memory.limit_in_bytes"), "1048576");
        assert!(!dir.path().join("memory.memsw.limit_in_bytes").exists());
    }

    #[test]
    fn cpu_knobs_are_written() {
        let dir = fixture(&[
            ("cpu.shares", "1024"),
            ("cpu.cfs_period_us", "100000"),
            ("cpu.cfs_quota_us", "-1"),
            ("cpu.rt_period_us", "1000000"),
            ("cpu.rt_runtime_us", "0"),
        ]);
        let c = LinuxCpuBuilder::default()
            .shares(512u64)
            .quota(25_000i64)
            .period(50_000u64)
            .realtime_period(500_000u64)
            .realtime_runtime(10_000i64)
            .build()
            .unwrap();
        cpu(dir.path(), &c).unwrap();
        for (file, value) in [
            ("cpu.shares", "512"),
            ("cpu.cfs_period_us", "50000"),
            ("cpu.cfs_quota_us", "25000"),
            ("cpu.rt_period_us", "500000"),
            ("cpu.rt_runtime_us", "10000"),
        ] {
            assert_eq!(read(dir.path(), file), value, "{file}");
        }
    }
}
