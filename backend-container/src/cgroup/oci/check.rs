//! Refusals before anything is made: each resource config.json asks for
//! that this host cannot honour, or that no kernel takes, named by its field.

use std::fmt::Display;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use super::fields::Fields;
use super::host::Host;
use super::{devices, hugetlb, set, OciError};
use crate::cgroup::Version;

struct Checker<'a> {
    host: &'a Host,
    fields: Fields,
}

pub(super) fn check(host: &Host, r: &LinuxResources, fields: Fields) -> Result<(), OciError> {
    let c = Checker { host, fields };
    if let Some(m) = r.memory() {
        c.memory(m)?;
    }
    if let Some(cpu) = r.cpu() {
        c.cpu(cpu)?;
    }
    if let Some(pids) = r.pids() {
        if pids.limit() > 0 {
            c.need("pids.limit", "pids")?;
        }
    }
    if let Some(io) = r.block_io() {
        c.block_io(io)?;
    }
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        let field = format!("hugepageLimits[{i}]");
        c.need(&field, "hugetlb")?;
        hugetlb::kernel_name(h.page_size()).ok_or_else(|| {
            c.refuse(
                format!("{field}.pageSize"),
                format!(
                    "is {:?}, a page size this host does not have (it has {})",
                    h.page_size(),
                    hugetlb::sizes().join(", ")
                ),
            )
        })?;
        if h.limit() < -1 {
            return Err(c.refuse(
                format!("{field}.limit"),
                "must be a number of bytes, or -1 for no limit",
            ));
        }
    }
    if let Some(net) = r.network() {
        c.network(net.class_id(), net.priorities().as_deref())?;
    }
    for (device, limits) in r.rdma().iter().flatten() {
        let field = format!("rdma[{device:?}]");
        c.need(&field, "rdma")?;
        if device.is_empty() || device.contains(char::is_whitespace) {
            return Err(c.refuse(field, "names no RDMA device"));
        }
        if limits.hca_handles().is_none() && limits.hca_objects().is_none() {
            return Err(c.refuse(field, "sets neither hcaHandles nor hcaObjects"));
        }
    }
    c.unified(r)?;
    c.devices(r)
}

impl Checker<'_> {
    fn refuse(&self, field: impl Display, why: impl Into<String>) -> OciError {
        OciError::Refused {
            field: self.fields.at(field),
            why: why.into(),
        }
    }

    /// Refuses `field` unless the host has `controller`.
    fn need(&self, field: &str, controller: &str) -> Result<(), OciError> {
        if self.host.has(controller) {
            return Ok(());
        }
        Err(self.refuse(
            field,
            match self.host.version() {
                Version::V1 => {
                    format!("needs the {controller} controller, which this host has not mounted")
                }
                Version::V2 => format!(
                    "needs the {controller} controller, which this host's cgroup v2 root does not offer"
                ),
            },
        ))
    }

    /// Refuses `field` on v2, where the kernel has no such knob.
    fn v1_only(&self, field: &str) -> Result<(), OciError> {
        match self.host.version() {
            Version::V1 => Ok(()),
            Version::V2 => Err(self.refuse(
                field,
                "is a cgroup v1 setting with no cgroup v2 equivalent, and this host uses cgroup v2",
            )),
        }
    }

    /// Refuses `field` on v1 unless the kernel offers `file` (any of them).
    fn v1_file(
        &self,
        field: &str,
        controller: &str,
        files: &[&str],
        why: &str,
    ) -> Result<(), OciError> {
        if self.host.version() == Version::V2
            || files.iter().any(|f| self.host.v1_offers(controller, f))
        {
            return Ok(());
        }
        Err(self.refuse(
            field,
            format!(
                "needs {}, which this host's kernel does not offer ({why})",
                files[0]
            ),
        ))
    }

    fn bytes(&self, field: &str, value: Option<i64>) -> Result<(), OciError> {
        match value {
            Some(v) if v < -1 => Err(self.refuse(
                field,
                format!("is {v}; give a number of bytes, or -1 for no limit"),
            )),
            _ => Ok(()),
        }
    }

    fn memory(&self, m: &LinuxMemory) -> Result<(), OciError> {
        #[allow(deprecated)] // kernel memory: read only to refuse it
        let kernel = m.kernel();
        for (field, value) in [
            ("memory.kernel", kernel),
            ("memory.kernelTCP", m.kernel_tcp()),
        ] {
            if set(value).is_some_and(|v| v != -1) {
                return Err(self.refuse(
                    field,
                    "is a kernel memory limit, which Linux no longer enforces apart \
                     (5.4 obsoleted it; cgroup v2 counts kernel memory in memory.limit); remove it",
                ));
            }
        }
        let limit = set(m.limit());
        let swap = set(m.swap());
        let reservation = set(m.reservation());
        let wanted = limit.is_some()
            || swap.is_some()
            || reservation.is_some()
            || m.swappiness().is_some()
            || m.disable_oom_killer() == Some(true)
            || m.use_hierarchy().is_some();
        if wanted {
            self.need("memory", "memory")?;
        }
        self.bytes("memory.limit", limit)?;
        self.bytes("memory.reservation", reservation)?;
        self.bytes("memory.swap", swap)?;
        if let (Some(l), Some(s)) = (limit, swap) {
            if l > 0 && s >= 0 && s < l {
                return Err(self.refuse(
                    "memory.swap",
                    format!(
                        "is {s}, below memory.limit ({l}): it counts memory and swap together, \
                         so it must be at least the limit"
                    ),
                ));
            }
        }
        if let Some(s) = swap.filter(|&s| s > 0) {
            if self.host.version() == Version::V2 && limit.is_none_or(|l| l <= 0) {
                return Err(self.refuse(
                    "memory.swap",
                    format!("is {s} with no memory.limit; cgroup v2 limits swap apart from memory, so give the limit too"),
                ));
            }
        }
        if let Some(s) = m.swappiness() {
            self.v1_only("memory.swappiness")?;
            if s > 100 {
                return Err(self.refuse("memory.swappiness", format!("is {s}; give 0 to 100")));
            }
        }
        if m.disable_oom_killer() == Some(true) {
            self.v1_only("memory.disableOOMKiller")?;
        }
        if m.use_hierarchy() == Some(false) && self.host.version() == Version::V2 {
            return Err(self.refuse(
                "memory.useHierarchy",
                "is false, but cgroup v2 always accounts memory hierarchically",
            ));
        }
        Ok(())
    }

    fn cpu(&self, cpu: &LinuxCpu) -> Result<(), OciError> {
        let wanted = [
            set(cpu.shares()).is_some(),
            set(cpu.quota()).is_some(),
            set(cpu.period()).is_some(),
            cpu.burst().is_some(),
            cpu.idle().is_some(),
        ];
        if wanted.contains(&true) {
            self.need("cpu", "cpu")?;
        }
        if let Some(q) = set(cpu.quota()).filter(|&q| q < -1) {
            return Err(self.refuse(
                "cpu.quota",
                format!("is {q}; give microseconds per period, or -1 for no limit"),
            ));
        }
        if cpu.burst().is_some() {
            self.v1_file(
                "cpu.burst",
                "cpu",
                &["cpu.cfs_burst_us"],
                "CFS bandwidth bursts arrived in Linux 5.14",
            )?;
        }
        if let Some(idle) = cpu.idle() {
            self.v1_file(
                "cpu.idle",
                "cpu",
                &["cpu.idle"],
                "SCHED_IDLE groups arrived in Linux 5.15",
            )?;
            if !matches!(idle, 0 | 1) {
                return Err(self.refuse("cpu.idle", format!("is {idle}; give 0 or 1")));
            }
        }
        let realtime = [
            ("cpu.realtimeRuntime", set(cpu.realtime_runtime()).is_some()),
            ("cpu.realtimePeriod", set(cpu.realtime_period()).is_some()),
        ];
        for (field, wanted) in realtime {
            if !wanted {
                continue;
            }
            if self.host.version() == Version::V2 {
                return Err(self.refuse(
                    field,
                    "is a realtime scheduling budget, which cgroup v2 does not offer; remove it",
                ));
            }
            self.need(field, "cpu")?;
            self.v1_file(
                field,
                "cpu",
                &["cpu.rt_runtime_us"],
                "the kernel is built without CONFIG_RT_GROUP_SCHED",
            )?;
        }
        for (field, list) in [("cpu.cpus", cpu.cpus()), ("cpu.mems", cpu.mems())] {
            let Some(list) = list.as_deref().filter(|l| !l.trim().is_empty()) else {
                continue;
            };
            self.need(field, "cpuset")?;
            if !list
                .trim()
                .chars()
                .all(|c| c.is_ascii_digit() || c == ',' || c == '-')
            {
                return Err(self.refuse(field, format!("is {list:?}; give a list such as 0-3,6")));
            }
        }
        Ok(())
    }

    fn block_io(&self, io: &LinuxBlockIo) -> Result<(), OciError> {
        let controller = match self.host.version() {
            Version::V1 => "blkio",
            Version::V2 => "io",
        };
        const WEIGHT_WHY: &str = "proportional I/O weights need the BFQ or CFQ I/O scheduler";
        if let Some(w) = set(io.weight()) {
            self.need("blockIO.weight", controller)?;
            self.v1_file(
                "blockIO.weight",
                "blkio",
                &["blkio.weight", "blkio.bfq.weight"],
                WEIGHT_WHY,
            )?;
            self.weight("blockIO.weight", w)?;
        }
        if let Some(w) = set(io.leaf_weight()) {
            self.v1_only("blockIO.leafWeight")?;
            self.need("blockIO.leafWeight", controller)?;
            self.v1_file(
                "blockIO.leafWeight",
                "blkio",
                &["blkio.leaf_weight"],
                "leaf weights went with the CFQ scheduler in Linux 5.0",
            )?;
            self.weight("blockIO.leafWeight", w)?;
        }
        for (i, d) in io.weight_device().iter().flatten().enumerate() {
            let field = format!("blockIO.weightDevice[{i}]");
            self.device(&field, d.major(), d.minor())?;
            if let Some(w) = set(d.weight()) {
                self.need(&field, controller)?;
                self.v1_file(
                    &field,
                    "blkio",
                    &["blkio.weight_device", "blkio.bfq.weight_device"],
                    WEIGHT_WHY,
                )?;
                self.weight(&format!("{field}.weight"), w)?;
            }
            if let Some(w) = set(d.leaf_weight()) {
                let field = format!("{field}.leafWeight");
                self.v1_only(&field)?;
                self.need(&field, controller)?;
                self.v1_file(
                    &field,
                    "blkio",
                    &["blkio.leaf_weight_device"],
                    "leaf weights went with the CFQ scheduler in Linux 5.0",
                )?;
                self.weight(&field, w)?;
            }
        }
        let throttles = [
            (
                "throttleReadBpsDevice",
                io.throttle_read_bps_device(),
                "blkio.throttle.read_bps_device",
            ),
            (
                "throttleWriteBpsDevice",
                io.throttle_write_bps_device(),
                "blkio.throttle.write_bps_device",
            ),
            (
                "throttleReadIOPSDevice",
                io.throttle_read_iops_device(),
                "blkio.throttle.read_iops_device",
            ),
            (
                "throttleWriteIOPSDevice",
                io.throttle_write_iops_device(),
                "blkio.throttle.write_iops_device",
            ),
        ];
        for (name, devices, file) in throttles {
            for (i, d) in devices.iter().flatten().enumerate() {
                let field = format!("blockIO.{name}[{i}]");
                self.need(&field, controller)?;
                self.v1_file(
                    &field,
                    "blkio",
                    &[file],
                    "the kernel is built without CONFIG_BLK_DEV_THROTTLING",
                )?;
                self.device(&field, d.major(), d.minor())?;
            }
        }
        Ok(())
    }

    fn weight(&self, field: &str, w: u16) -> Result<(), OciError> {
        if (10..=1000).contains(&w) {
            Ok(())
        } else {
            Err(self.refuse(field, format!("is {w}; give 10 to 1000")))
        }
    }

    fn device(&self, field: &str, major: i64, minor: i64) -> Result<(), OciError> {
        if major < 0 || minor < 0 || major > u32::MAX.into() || minor > u32::MAX.into() {
            return Err(self.refuse(
                field,
                format!("names device {major}:{minor}; give its major and minor numbers"),
            ));
        }
        Ok(())
    }

    fn network(
        &self,
        class_id: Option<u32>,
        priorities: Option<&[oci_spec::runtime::LinuxInterfacePriority]>,
    ) -> Result<(), OciError> {
        if class_id.is_some() {
            self.v1_only("network.classID")?;
            self.need("network.classID", "net_cls")?;
        }
        for (i, p) in priorities.into_iter().flatten().enumerate() {
            let field = format!("network.priorities[{i}]");
            self.v1_only(&field)?;
            self.need(&field, "net_prio")?;
            if p.name().is_empty() || p.name().contains(char::is_whitespace) {
                return Err(self.refuse(field, format!("names interface {:?}", p.name())));
            }
        }
        Ok(())
    }

    fn unified(&self, r: &LinuxResources) -> Result<(), OciError> {
        let Some(map) = r.unified().as_ref().filter(|m| !m.is_empty()) else {
            return Ok(());
        };
        if self.host.version() == Version::V1 {
            return Err(self.refuse(
                "unified",
                "sets cgroup v2 files, and this host uses cgroup v1; use the other resources fields",
            ));
        }
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        for key in keys {
            let field = format!("unified[{key:?}]");
            if key.contains('/') || key.contains("..") || key.chars().any(char::is_control) {
                return Err(self.refuse(field, "is not a file name in the container's cgroup"));
            }
            // These would move processes or change the tree isola manages,
            // not set a resource.
            if matches!(
                key.as_str(),
                "cgroup.procs"
                    | "cgroup.threads"
                    | "cgroup.subtree_control"
                    | "cgroup.kill"
                    | "cgroup.type"
            ) {
                return Err(self.refuse(field, "is not a resource: isola manages that file itself"));
            }
            let controller = key.split('.').next().unwrap_or_default();
            if controller != "cgroup" {
                self.need(&field, controller)?;
            }
        }
        Ok(())
    }

    /// v1 needs the devices controller for rules; v2 enforces them with an
    /// eBPF program, which can express any list.
    fn devices(&self, r: &LinuxResources) -> Result<(), OciError> {
        devices::rules(r.devices().as_ref(), self.fields)?;
        let any = r.devices().as_ref().is_some_and(|d| !d.is_empty());
        if any && self.host.version() == Version::V1 {
            self.need("devices", "devices")?;
        }
        Ok(())
    }
}
