//! One sample of a container's accounting in runc's `events --stats` shape
//! (runc 1.1's types/events.go): the `data` object containerd's shim decodes.
//! Go's `omitempty` is kept: a zero figure is left out where runc leaves it out.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};

use super::{hugetlb, Group};
use crate::cgroup::{fs, Version};

pub(super) fn json(group: &Group) -> Value {
    json!({
        "cpu": cpu(group),
        "cpuset": cpuset(group),
        "memory": memory(group),
        "pids": pids(group),
        "blkio": blkio(group),
        "hugetlb": hugetlb(group),
        "intel_rdt": {},
        "network_interfaces": null,
    })
}

/// An object being filled, with Go's `omitempty` for numbers.
#[derive(Default)]
struct Object(Map<String, Value>);

impl Object {
    /// A field runc always writes.
    fn always(mut self, key: &str, value: impl Into<Value>) -> Object {
        self.0.insert(key.to_owned(), value.into());
        self
    }

    /// A field runc leaves out when it is zero (or empty).
    fn nonzero(mut self, key: &str, value: u64) -> Object {
        if value != 0 {
            self.0.insert(key.to_owned(), value.into());
        }
        self
    }

    fn list(mut self, key: &str, values: Vec<u64>) -> Object {
        if !values.is_empty() {
            self.0.insert(key.to_owned(), values.into());
        }
        self
    }

    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

fn read_u64(dir: &Path, file: &str) -> u64 {
    fs::read_u64(&dir.join(file)).unwrap_or(0)
}

fn read(dir: &Path, file: &str) -> Option<String> {
    fs::read_to_string(dir.join(file)).ok()
}

/// A flat keyed file ("key value" lines) as a map.
fn keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (k, v) = line.split_once(' ')?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

/// A limit file: "max" (v2) is u64::MAX, as runc reports it.
fn limit(dir: &Path, file: &str) -> u64 {
    match read(dir, file).as_deref().map(str::trim) {
        Some("max") => u64::MAX,
        Some(n) => n.parse().unwrap_or(0),
        None => 0,
    }
}

/// User-mode clock ticks (USER_HZ), the unit of cpuacct.stat.
fn clock_ticks() -> u64 {
    // SAFETY: sysconf reads a constant; it has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

fn cpu(group: &Group) -> Value {
    let mut usage = Object::default();
    let mut throttling = Object::default();
    let (throttle_dir, throttled_time_scale) = match group.version {
        Version::V1 => {
            if let Some(dir) = group.dir("cpuacct") {
                let percpu = |file: &str| -> Vec<u64> {
                    read(dir, file)
                        .map(|t| {
                            t.split_whitespace()
                                .filter_map(|n| n.parse().ok())
                                .collect()
                        })
                        .unwrap_or_default()
                };
                let ns_per_tick = 1_000_000_000 / clock_ticks();
                let stat = read(dir, "cpuacct.stat")
                    .map(|t| keyed(&t))
                    .unwrap_or_default();
                let (mut kernel, mut user) = (Vec::new(), Vec::new());
                // "cpu user system" then a line per CPU, in nanoseconds.
                for line in read(dir, "cpuacct.usage_all")
                    .unwrap_or_default()
                    .lines()
                    .skip(1)
                {
                    let n: Vec<u64> = line
                        .split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect();
                    if let [_, u, s] = n[..] {
                        user.push(u);
                        kernel.push(s);
                    }
                }
                usage = usage
                    .nonzero("total", read_u64(dir, "cpuacct.usage"))
                    .list("percpu", percpu("cpuacct.usage_percpu"))
                    .list("percpu_kernel", kernel)
                    .list("percpu_user", user)
                    .always(
                        "kernel",
                        stat.get("system").copied().unwrap_or(0) * ns_per_tick,
                    )
                    .always("user", stat.get("user").copied().unwrap_or(0) * ns_per_tick);
            } else {
                usage = usage.always("kernel", 0).always("user", 0);
            }
            // cpu.stat's throttled_time is in nanoseconds already.
            (group.dir("cpu"), 1)
        }
        Version::V2 => {
            let dir = group.main();
            let stat = read(dir, "cpu.stat").map(|t| keyed(&t)).unwrap_or_default();
            let us = |k: &str| stat.get(k).copied().unwrap_or(0) * 1000;
            usage = usage
                .nonzero("total", us("usage_usec"))
                .always("kernel", us("system_usec"))
                .always("user", us("user_usec"));
            (Some(dir), 1000)
        }
    };
    if let Some(stat) = throttle_dir.and_then(|d| read(d, "cpu.stat")) {
        let stat = keyed(&stat);
        let get = |k: &str| stat.get(k).copied().unwrap_or(0);
        let throttled = match group.version {
            Version::V1 => get("throttled_time"),
            Version::V2 => get("throttled_usec"),
        };
        throttling = throttling
            .nonzero("periods", get("nr_periods"))
            .nonzero("throttledPeriods", get("nr_throttled"))
            .nonzero("throttledTime", throttled * throttled_time_scale);
    }
    json!({ "usage": usage.done(), "throttling": throttling.done() })
}

/// "0-2,5" as [0, 1, 2, 5].
fn cpu_list(text: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(lo), Ok(hi)) = (lo.parse::<u64>(), hi.parse::<u64>()) {
            // A corrupt range must not allocate without bound.
            out.extend(lo..=hi.min(lo + 65_536));
        }
    }
    out
}

fn cpuset(group: &Group) -> Value {
    let (dir, cpus, mems) = match group.version {
        Version::V1 => match group.dir("cpuset") {
            Some(dir) => (Some(dir), "cpuset.cpus", "cpuset.mems"),
            None => (None, "", ""),
        },
        Version::V2 => (
            Some(group.main()),
            "cpuset.cpus.effective",
            "cpuset.mems.effective",
        ),
    };
    let list = |file: &str| {
        dir.and_then(|d| read(d, file))
            .map(|t| cpu_list(&t))
            .unwrap_or_default()
    };
    let flag = |file: &str| match (group.version, dir) {
        (Version::V1, Some(d)) => read_u64(d, &format!("cpuset.{file}")),
        _ => 0,
    };
    let relax = match (group.version, dir) {
        (Version::V1, Some(d)) => read(d, "cpuset.sched_relax_domain_level")
            .and_then(|t| t.trim().parse::<i64>().ok())
            .unwrap_or(0),
        _ => 0,
    };
    Object::default()
        .list("cpus", list(cpus))
        .always("cpu_exclusive", flag("cpu_exclusive"))
        .list("mems", list(mems))
        .always("mem_hardwall", flag("mem_hardwall"))
        .always("mem_exclusive", flag("mem_exclusive"))
        .always("memory_migrate", flag("memory_migrate"))
        .always("memory_spread_page", flag("memory_spread_page"))
        .always("memory_spread_slab", flag("memory_spread_slab"))
        .always("memory_pressure", flag("memory_pressure"))
        .always("sched_load_balance", flag("sched_load_balance"))
        .always("sched_relax_domain_level", relax)
        .done()
}

/// runc's MemoryEntry: limit and failcnt always, usage and max when nonzero.
fn entry(limit: u64, usage: u64, max: u64, failcnt: u64) -> Value {
    Object::default()
        .always("limit", limit)
        .nonzero("usage", usage)
        .nonzero("max", max)
        .always("failcnt", failcnt)
        .done()
}

fn memory(group: &Group) -> Value {
    let empty = || entry(0, 0, 0, 0);
    let (dir, cache_key) = match group.version {
        Version::V1 => (group.dir("memory"), "cache"),
        Version::V2 => (Some(group.main()), "file"),
    };
    let Some(dir) = dir else {
        return json!({ "usage": empty(), "swap": empty(), "kernel": empty(), "kernelTCP": empty() });
    };
    let raw = read(dir, "memory.stat")
        .map(|t| keyed(&t))
        .unwrap_or_default();
    let (usage, swap, kernel, kernel_tcp) = match group.version {
        Version::V1 => {
            let v1 = |prefix: &str| {
                if !dir.join(format!("{prefix}.usage_in_bytes")).exists() {
                    return empty();
                }
                entry(
                    limit(dir, &format!("{prefix}.limit_in_bytes")),
                    read_u64(dir, &format!("{prefix}.usage_in_bytes")),
                    read_u64(dir, &format!("{prefix}.max_usage_in_bytes")),
                    read_u64(dir, &format!("{prefix}.failcnt")),
                )
            };
            (
                v1("memory"),
                v1("memory.memsw"),
                v1("memory.kmem"),
                v1("memory.kmem.tcp"),
            )
        }
        Version::V2 => {
            let events = read(dir, "memory.events")
                .map(|t| keyed(&t))
                .unwrap_or_default();
            let current = read_u64(dir, "memory.current");
            let max = limit(dir, "memory.max");
            let usage = entry(
                max,
                current,
                read_u64(dir, "memory.peak"),
                events.get("max").copied().unwrap_or(0),
            );
            // v1 reported memory+swap; runc adds memory in for the same meaning.
            let swap = if dir.join("memory.swap.current").exists() {
                let swap_max = limit(dir, "memory.swap.max");
                let swap_limit = if swap_max == u64::MAX || max == u64::MAX {
                    u64::MAX
                } else {
                    swap_max.saturating_add(max)
                };
                entry(
                    swap_limit,
                    read_u64(dir, "memory.swap.current") + current,
                    0,
                    0,
                )
            } else {
                empty()
            };
            (usage, swap, empty(), empty())
        }
    };
    let mut out = Object::default()
        .nonzero("cache", raw.get(cache_key).copied().unwrap_or(0))
        .always("usage", usage)
        .always("swap", swap)
        .always("kernel", kernel)
        .always("kernelTCP", kernel_tcp);
    if !raw.is_empty() {
        out = out.always("raw", json!(raw));
    }
    out.done()
}

fn pids(group: &Group) -> Value {
    let dir = match group.version {
        Version::V1 => group.dir("pids"),
        Version::V2 => Some(group.main()),
    };
    let Some(dir) = dir else {
        return json!({});
    };
    let max = limit(dir, "pids.max");
    Object::default()
        .nonzero("current", read_u64(dir, "pids.current"))
        // runc reports no limit as none at all.
        .nonzero("limit", if max == u64::MAX { 0 } else { max })
        .done()
}

/// One line of a v1 blkio statistics file: "8:0 Read 4096" or "8:0 4096";
/// the "Total" line is left out, as runc leaves it.
fn blkio_entry(line: &str) -> Option<Value> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (device, op, value) = match fields[..] {
        [device, op, value] => (device, op, value),
        [device, value] if device.contains(':') => (device, "", value),
        _ => return None,
    };
    let (major, minor) = device.split_once(':')?;
    let mut out = Object::default()
        .nonzero("major", major.parse().ok()?)
        .nonzero("minor", minor.parse().ok()?);
    if !op.is_empty() {
        out = out.always("op", op);
    }
    Some(out.nonzero("value", value.parse().ok()?).done())
}

fn blkio(group: &Group) -> Value {
    match group.version {
        Version::V1 => group
            .dir("blkio")
            .map(blkio_v1)
            .unwrap_or_else(|| json!({})),
        Version::V2 => io_v2(group.main()),
    }
}

fn blkio_v1(dir: &Path) -> Value {
    let entries = |file: &str| -> Vec<Value> {
        read(dir, file)
            .map(|t| t.lines().filter_map(blkio_entry).collect())
            .unwrap_or_default()
    };
    // CFQ's statistics where it schedules, else BFQ's, else the throttling
    // layer's, which counts on any scheduler.
    let sources: [&[(&str, &str)]; 3] = [
        &[
            (
                "ioServiceBytesRecursive",
                "blkio.io_service_bytes_recursive",
            ),
            ("ioServicedRecursive", "blkio.io_serviced_recursive"),
            ("ioQueueRecursive", "blkio.io_queued_recursive"),
            ("ioServiceTimeRecursive", "blkio.io_service_time_recursive"),
            ("ioWaitTimeRecursive", "blkio.io_wait_time_recursive"),
            ("ioMergedRecursive", "blkio.io_merged_recursive"),
            ("ioTimeRecursive", "blkio.time_recursive"),
            ("sectorsRecursive", "blkio.sectors_recursive"),
        ],
        &[
            (
                "ioServiceBytesRecursive",
                "blkio.bfq.io_service_bytes_recursive",
            ),
            ("ioServicedRecursive", "blkio.bfq.io_serviced_recursive"),
        ],
        &[
            (
                "ioServiceBytesRecursive",
                "blkio.throttle.io_service_bytes_recursive",
            ),
            (
                "ioServicedRecursive",
                "blkio.throttle.io_serviced_recursive",
            ),
        ],
    ];
    for source in sources {
        let mut out = Map::new();
        for (key, file) in source {
            let list = entries(file);
            if !list.is_empty() {
                out.insert((*key).to_owned(), list.into());
            }
        }
        if !out.is_empty() {
            return Value::Object(out);
        }
    }
    json!({})
}

/// io.stat ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...") in v1's two tables.
fn io_v2(dir: &Path) -> Value {
    let mut bytes = Vec::new();
    let mut ios = Vec::new();
    for line in read(dir, "io.stat").unwrap_or_default().lines() {
        let mut words = line.split_whitespace();
        let Some((major, minor)) = words.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse::<u64>(), minor.parse::<u64>()) else {
            continue;
        };
        for word in words {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            let (table, op) = match key {
                "rbytes" => (&mut bytes, "Read"),
                "wbytes" => (&mut bytes, "Write"),
                "rios" => (&mut ios, "Read"),
                "wios" => (&mut ios, "Write"),
                _ => continue,
            };
            table.push(
                Object::default()
                    .nonzero("major", major)
                    .nonzero("minor", minor)
                    .always("op", op)
                    .nonzero("value", value.parse().unwrap_or(0))
                    .done(),
            );
        }
    }
    let mut out = Map::new();
    if !bytes.is_empty() {
        out.insert("ioServiceBytesRecursive".into(), bytes.into());
    }
    if !ios.is_empty() {
        out.insert("ioServicedRecursive".into(), ios.into());
    }
    Value::Object(out)
}

fn hugetlb(group: &Group) -> Value {
    let mut out = Map::new();
    let dir = match group.version {
        Version::V1 => group.dir("hugetlb"),
        Version::V2 => Some(group.main()),
    };
    let Some(dir) = dir else {
        return Value::Object(out);
    };
    for size in hugetlb::sizes() {
        let value = match group.version {
            Version::V1 => {
                if !dir.join(format!("hugetlb.{size}.usage_in_bytes")).exists() {
                    continue;
                }
                Object::default()
                    .nonzero(
                        "usage",
                        read_u64(dir, &format!("hugetlb.{size}.usage_in_bytes")),
                    )
                    .nonzero(
                        "max",
                        read_u64(dir, &format!("hugetlb.{size}.max_usage_in_bytes")),
                    )
                    .always("failcnt", read_u64(dir, &format!("hugetlb.{size}.failcnt")))
            }
            Version::V2 => {
                let Some(current) = fs::read_u64(&dir.join(format!("hugetlb.{size}.current")))
                else {
                    continue;
                };
                let events = read(dir, &format!("hugetlb.{size}.events"))
                    .map(|t| keyed(&t))
                    .unwrap_or_default();
                Object::default()
                    .nonzero("usage", current)
                    .always("failcnt", events.get("max").copied().unwrap_or(0))
            }
        };
        out.insert(size, value.done());
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::fs::fixture;

    fn v1_group(dirs: &[(&str, &Path)]) -> Group {
        Group {
            version: Version::V1,
            dirs: dirs
                .iter()
                .map(|(c, d)| (vec![(*c).to_owned()], d.to_path_buf()))
                .collect(),
        }
    }

    #[test]
    fn v1_memory_cpu_and_pids_in_runcs_shape() {
        let memory = fixture(&[
            ("memory.limit_in_bytes", "67108864"),
            ("memory.usage_in_bytes", "4096"),
            ("memory.max_usage_in_bytes", "8192"),
            ("memory.failcnt", "0"),
            ("memory.memsw.limit_in_bytes", "134217728"),
            ("memory.memsw.usage_in_bytes", "4096"),
            ("memory.memsw.max_usage_in_bytes", "0"),
            ("memory.memsw.failcnt", "0"),
            ("memory.stat", "cache 1024\nrss 2048\ntotal_cache 1024\n"),
        ]);
        let acct = fixture(&[
            ("cpuacct.usage", "3000"),
            ("cpuacct.usage_percpu", "1000 2000 \n"),
            ("cpuacct.stat", "user 2\nsystem 1\n"),
            (
                "cpuacct.usage_all",
                "cpu user system\n0 600 400\n1 1500 500\n",
            ),
        ]);
        let cpu = fixture(&[(
            "cpu.stat",
            "nr_periods 4\nnr_throttled 1\nthrottled_time 900\n",
        )]);
        let pids = fixture(&[("pids.current", "2\n"), ("pids.max", "max\n")]);
        let group = v1_group(&[
            ("memory", memory.path()),
            ("cpuacct", acct.path()),
            ("cpu", cpu.path()),
            ("pids", pids.path()),
        ]);
        let stats = json(&group);
        let ns = 1_000_000_000 / clock_ticks();
        assert_eq!(
            stats["cpu"],
            json!({
                "usage": {
                    "total": 3000, "percpu": [1000, 2000], "percpu_kernel": [400, 500],
                    "percpu_user": [600, 1500], "kernel": ns, "user": 2 * ns
                },
                "throttling": { "periods": 4, "throttledPeriods": 1, "throttledTime": 900 }
            })
        );
        assert_eq!(
            stats["memory"],
            json!({
                "cache": 1024,
                "usage": { "limit": 67108864, "usage": 4096, "max": 8192, "failcnt": 0 },
                "swap": { "limit": 134217728, "usage": 4096, "failcnt": 0 },
                "kernel": { "limit": 0, "failcnt": 0 },
                "kernelTCP": { "limit": 0, "failcnt": 0 },
                "raw": { "cache": 1024, "rss": 2048, "total_cache": 1024 }
            })
        );
        assert_eq!(stats["pids"], json!({ "current": 2 }));
        assert_eq!(stats["blkio"], json!({}));
        assert_eq!(stats["hugetlb"], json!({}));
        assert_eq!(stats["network_interfaces"], Value::Null);
    }

    #[test]
    fn v1_blkio_falls_back_to_the_throttling_layer() {
        let blkio = fixture(&[
            ("blkio.io_serviced_recursive", "Total 0\n"),
            (
                "blkio.throttle.io_service_bytes_recursive",
                "8:0 Read 4096\n8:0 Write 0\n8:0 Total 4096\nTotal 4096\n",
            ),
            ("blkio.throttle.io_serviced_recursive", "8:0 Read 1\n"),
        ]);
        let stats = json(&v1_group(&[("blkio", blkio.path())]));
        assert_eq!(
            stats["blkio"],
            json!({
                "ioServiceBytesRecursive": [
                    { "major": 8, "op": "Read", "value": 4096 },
                    { "major": 8, "op": "Write" },
                    { "major": 8, "op": "Total", "value": 4096 }
                ],
                "ioServicedRecursive": [ { "major": 8, "op": "Read", "value": 1 } ]
            })
        );
    }

    #[test]
    fn v2_figures_in_v1s_units() {
        let dir = fixture(&[
            ("cpu.stat", "usage_usec 7\nuser_usec 5\nsystem_usec 2\nnr_periods 3\nnr_throttled 1\nthrottled_usec 4\n"),
            ("memory.current", "100"),
            ("memory.max", "max\n"),
            ("memory.swap.current", "5"),
            ("memory.swap.max", "max"),
            ("memory.events", "low 0\nhigh 0\nmax 2\noom 0\noom_kill 0\n"),
            ("memory.stat", "anon 60\nfile 40\n"),
            ("pids.current", "1"),
            ("pids.max", "50"),
            ("io.stat", "8:16 rbytes=512 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n"),
            ("cpuset.cpus.effective", "0-1\n"),
            ("cpuset.mems.effective", "0\n"),
        ]);
        let group = Group {
            version: Version::V2,
            dirs: vec![(vec![], dir.path().to_path_buf())],
        };
        let stats = json(&group);
        assert_eq!(
            stats["cpu"],
            json!({
                "usage": { "total": 7000, "kernel": 2000, "user": 5000 },
                "throttling": { "periods": 3, "throttledPeriods": 1, "throttledTime": 4000 }
            })
        );
        assert_eq!(stats["memory"]["cache"], 40);
        assert_eq!(
            stats["memory"]["usage"],
            json!({ "limit": u64::MAX, "usage": 100, "failcnt": 2 })
        );
        assert_eq!(
            stats["memory"]["swap"],
            json!({ "limit": u64::MAX, "usage": 105, "failcnt": 0 })
        );
        assert_eq!(stats["pids"], json!({ "current": 1, "limit": 50 }));
        assert_eq!(
            stats["blkio"],
            json!({
                "ioServiceBytesRecursive": [
                    { "major": 8, "minor": 16, "op": "Read", "value": 512 },
                    { "major": 8, "minor": 16, "op": "Write" }
                ],
                "ioServicedRecursive": [
                    { "major": 8, "minor": 16, "op": "Read", "value": 1 },
                    { "major": 8, "minor": 16, "op": "Write" }
                ]
            })
        );
        assert_eq!(stats["cpuset"]["cpus"], json!([0, 1]));
        assert_eq!(stats["cpuset"]["mems"], json!([0]));
    }

    #[test]
    fn cpu_lists_expand() {
        assert_eq!(cpu_list("0-2,5\n"), vec![0, 1, 2, 5]);
        assert_eq!(cpu_list(""), Vec::<u64>::new());
        assert_eq!(cpu_list("7"), vec![7]);
    }
}
