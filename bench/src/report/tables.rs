//! The results as titled tables of display strings, one per dimension: the
//! terminal and the HTML page both print these, so the text is the same.

use super::{
    fmt_bytes, fmt_mib_of_kib, fmt_ms, fmt_rate, fmt_ratio, label, median, ordered, rank, subject,
};
use crate::results::{Goal, LifecycleSeries, PullOnBase, Results, StartupSeries, TransferSeries};

/// `(title, headers, rows)`; every row has as many cells as there are
/// headers.
pub type Table = (String, Vec<String>, Vec<Vec<String>>);

const NONE: &str = "-";

/// Every table with at least one row, in report order. A dimension that did
/// not run has no table; its reason is in the errors table.
pub fn render(results: &Results) -> Vec<Table> {
    [
        startup_warm(results),
        startup_cold(results),
        phases(results),
        monitor(results),
        kernels(results),
        memory(results),
        disk_image(results),
        disk_per_sandbox(results),
        disk_vm_extra(results),
        disk_sharing(results),
        disk_distribution(results),
        runtime(results),
        density(results),
        lifecycle_start(results),
        lifecycle_exec(results),
        lifecycle_shims(results),
        lifecycle_goals(results),
        distribution_pull(results),
        distribution_push(results),
        distribution_on_base(results),
        distribution_goals(results),
        build_cold(results),
        build_cached(results),
        build_goals(results),
        oci_create_start_delete(results),
        oci_steps(results),
        oci_run(results),
        oci_containerd_first(results),
        oci_containerd_warm(results),
        oci_goals(results),
        isolation(results),
        errors(results),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn table(title: &str, headers: &[&str], rows: Vec<Vec<String>>) -> Option<Table> {
    if rows.is_empty() {
        return None;
    }
    Some((
        title.to_string(),
        headers.iter().map(|h| h.to_string()).collect(),
        rows,
    ))
}

fn opt_mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| NONE.to_string(), fmt_mib_of_kib)
}

fn series_rows(results: &Results, series: &[StartupSeries]) -> Vec<Vec<String>> {
    ordered(results, series, |s| &s.subject)
        .into_iter()
        .map(|s| {
            let paired = s
                .paired
                .iter()
                .map(|(other, ratio)| format!("{} vs {}", fmt_ratio(*ratio), label(results, other)))
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                label(results, &s.subject).to_string(),
                s.ms.len().to_string(),
                fmt_ms(s.summary.min),
                fmt_ms(s.summary.median),
                fmt_ms(s.summary.p90),
                fmt_ms(s.summary.max),
                median(&s.cpu_ms).map_or_else(|| NONE.to_string(), fmt_ms),
                opt_mib(s.peak_rss_kib),
                if paired.is_empty() {
                    NONE.to_string()
                } else {
                    paired
                },
            ]
        })
        .collect()
}

const SERIES_HEADERS: [&str; 9] = [
    "subject",
    "runs",
    "min ms",
    "median ms",
    "p90 ms",
    "max ms",
    "CPU ms (median)",
    "peak RSS MiB",
    "paired ratio (median)",
];

pub fn startup_warm(results: &Results) -> Option<Table> {
    table(
        "Startup, warm: start to exit of /bin/true",
        &SERIES_HEADERS,
        series_rows(results, &results.startup.warm),
    )
}

pub fn monitor(results: &Results) -> Option<Table> {
    table(
        "Monitor: the test guest booted to its exit",
        &SERIES_HEADERS,
        series_rows(results, &results.startup.monitor),
    )
}

pub fn kernels(results: &Results) -> Option<Table> {
    let ms = |m: Option<f64>| m.map_or_else(|| NONE.to_string(), fmt_ms);
    let rows = ordered(results, &results.startup.kernels, |k| &k.subject)
        .into_iter()
        .map(|k| {
            vec![
                label(results, &k.subject).to_string(),
                fmt_bytes(k.kernel_bytes),
                ms(k.to_init_median_ms),
                ms(k.to_exit_median_ms),
                k.to_exit_ms.len().to_string(),
            ]
        })
        .collect();
    table(
        "Guest kernels: isola run to isola-init, and to exit (median)",
        &["subject", "kernel size", "to init ms", "to exit ms", "runs"],
        rows,
    )
}

pub fn startup_cold(results: &Results) -> Option<Table> {
    let rows = ordered(results, &results.startup.cold, |c| &c.subject)
        .into_iter()
        .map(|c| {
            let warm = results
                .startup
                .warm
                .iter()
                .find(|w| w.subject == c.subject)
                .map(|w| w.summary.median);
            vec![
                label(results, &c.subject).to_string(),
                fmt_ms(c.ms),
                warm.map_or_else(|| NONE.to_string(), fmt_ms),
                warm.filter(|w| *w > 0.0)
                    .map_or_else(|| NONE.to_string(), |w| fmt_ratio(c.ms / w)),
            ]
        })
        .collect();
    table(
        "Startup, cold: the first run after the image was imported",
        &["subject", "cold ms", "warm median ms", "cold / warm"],
        rows,
    )
}

pub fn phases(results: &Results) -> Option<Table> {
    let mut rows = Vec::new();
    for p in ordered(results, &results.startup.phases, |p| &p.subject) {
        let total = p.at_ms.last().map_or(0.0, |(_, at)| *at);
        let mut previous = 0.0;
        for (phase, at) in &p.at_ms {
            let takes = at - previous;
            previous = *at;
            let share = if total > 0.0 {
                format!("{:.0}%", 100.0 * takes / total)
            } else {
                NONE.to_string()
            };
            rows.push(vec![
                label(results, &p.subject).to_string(),
                phase.clone(),
                fmt_ms(*at),
                fmt_ms(takes),
                share,
            ]);
        }
    }
    table(
        "Startup phases (median)",
        &["subject", "phase", "ends at ms", "takes ms", "share"],
        rows,
    )
}

pub fn memory(results: &Results) -> Option<Table> {
    let rows = ordered(results, &results.memory, |m| &m.subject)
        .into_iter()
        .map(|m| {
            vec![
                label(results, &m.subject).to_string(),
                fmt_mib_of_kib(m.host_pss_kib),
                opt_mib(m.cgroup_kib),
                opt_mib(m.vmm_rss_kib),
                opt_mib(m.guest_touched_kib),
                opt_mib(m.inside_total_kib),
                opt_mib(m.inside_available_kib),
            ]
        })
        .collect();
    table(
        "Memory: one idle sandbox",
        &[
            "subject",
            "host PSS MiB",
            "cgroup MiB",
            "VMM RSS MiB",
            "guest touched MiB",
            "MemTotal inside MiB",
            "MemAvailable inside MiB",
        ],
        rows,
    )
}

pub fn disk_image(results: &Results) -> Option<Table> {
    let i = &results.disk.image;
    if i.name.is_empty() && i.bytes == 0 {
        return None;
    }
    table(
        "Disk: the image in the store",
        &[
            "image",
            "layers",
            "size",
            "shared with other images",
            "unique to it",
        ],
        vec![vec![
            i.name.clone(),
            i.layers.to_string(),
            fmt_bytes(i.bytes),
            fmt_bytes(i.shared_bytes),
            fmt_bytes(i.unique_bytes),
        ]],
    )
}

fn disk_items(results: &Results, title: &str, items: &[crate::results::DiskItem]) -> Option<Table> {
    let rows = ordered(results, items, |d| &d.subject)
        .into_iter()
        .map(|d| {
            vec![
                label(results, &d.subject).to_string(),
                d.what.clone(),
                fmt_bytes(d.bytes),
            ]
        })
        .collect();
    table(title, &["subject", "what", "size"], rows)
}

pub fn disk_per_sandbox(results: &Results) -> Option<Table> {
    disk_items(
        results,
        "Disk: what one sandbox adds while it exists",
        &results.disk.per_sandbox,
    )
}

pub fn disk_vm_extra(results: &Results) -> Option<Table> {
    disk_items(
        results,
        "Disk: what the VM backend needs besides the store",
        &results.disk.vm_extra,
    )
}

pub fn disk_sharing(results: &Results) -> Option<Table> {
    let rows = results
        .disk
        .sharing
        .iter()
        .map(|s| {
            let saved = if s.sum_of_images_bytes > 0 {
                format!(
                    "{:.0}%",
                    100.0 * (1.0 - s.store_bytes as f64 / s.sum_of_images_bytes as f64)
                )
            } else {
                NONE.to_string()
            };
            vec![
                s.images.to_string(),
                fmt_bytes(s.store_bytes),
                fmt_bytes(s.sum_of_images_bytes),
                saved,
            ]
        })
        .collect();
    table(
        "Disk: N images sharing one base layer",
        &["images", "store holds", "sum of the images", "saved"],
        rows,
    )
}

/// An image pulled into a store holding its base: what was fetched.
fn on_base_row(p: &PullOnBase) -> Vec<String> {
    vec![
        p.image.clone(),
        p.base.clone(),
        format!("{} of {}", p.layers_fetched, p.layers),
        fmt_bytes(p.bytes_fetched),
        fmt_bytes(p.bytes_total),
        if p.bytes_total > 0 {
            format!(
                "{:.1}%",
                100.0 * p.bytes_fetched as f64 / p.bytes_total as f64
            )
        } else {
            NONE.to_string()
        },
    ]
}

const ON_BASE_HEADERS: [&str; 6] = [
    "image",
    "base already stored",
    "layers fetched",
    "bytes fetched",
    "the image's layers",
    "fetched",
];

pub fn disk_distribution(results: &Results) -> Option<Table> {
    let p = results.disk.distribution.as_ref()?;
    table(
        "Disk: pulling an image whose base is already stored (from a registry of the benchmark's own)",
        &ON_BASE_HEADERS,
        vec![on_base_row(p)],
    )
}

pub fn runtime(results: &Results) -> Option<Table> {
    let mut workloads: Vec<&str> = Vec::new();
    for f in &results.runtime {
        if !workloads.contains(&f.workload.as_str()) {
            workloads.push(&f.workload);
        }
    }
    let mut figures: Vec<_> = results.runtime.iter().collect();
    // Grouped by workload (first seen first), then in subject order.
    figures.sort_by_key(|f| {
        (
            workloads.iter().position(|w| *w == f.workload),
            rank(results, &f.subject),
        )
    });
    let rows = figures
        .into_iter()
        .map(|f| {
            let is_host = subject(results, &f.subject).is_some_and(|s| s.kind == "host");
            vec![
                f.workload.clone(),
                label(results, &f.subject).to_string(),
                fmt_rate(f.rate),
                f.unit.clone(),
                match f.ratio_to_host {
                    Some(r) => fmt_ratio(r),
                    None if is_host => "baseline".to_string(),
                    None => NONE.to_string(),
                },
            ]
        })
        .collect();
    table(
        "Runtime: workloads inside each sandbox",
        &["workload", "subject", "rate", "unit", "vs host"],
        rows,
    )
}

pub fn density(results: &Results) -> Option<Table> {
    let rows = ordered(results, &results.density, |d| &d.subject)
        .into_iter()
        .map(|d| {
            let per = if d.sandboxes > 0 {
                fmt_mib_of_kib(d.host_pss_kib / d.sandboxes as u64)
            } else {
                NONE.to_string()
            };
            vec![
                label(results, &d.subject).to_string(),
                d.sandboxes.to_string(),
                fmt_ms(d.all_running_ms),
                fmt_mib_of_kib(d.host_pss_kib),
                per,
            ]
        })
        .collect();
    table(
        "Density: N sandboxes at once",
        &[
            "subject",
            "sandboxes",
            "all running ms",
            "host PSS MiB (all)",
            "per sandbox MiB",
        ],
        rows,
    )
}

fn lifecycle_rows(results: &Results, series: &[LifecycleSeries]) -> Vec<Vec<String>> {
    ordered(results, series, |s| &s.subject)
        .into_iter()
        .map(|s| {
            let paired = s
                .paired
                .iter()
                .map(|(other, ratio)| format!("{} vs {}", fmt_ratio(*ratio), label(results, other)))
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                label(results, &s.subject).to_string(),
                s.command.clone(),
                s.ms.len().to_string(),
                fmt_ms(s.summary.min),
                fmt_ms(s.summary.median),
                fmt_ms(s.summary.p90),
                fmt_ms(s.summary.max),
                if paired.is_empty() {
                    NONE.to_string()
                } else {
                    paired
                },
            ]
        })
        .collect()
}

const LIFECYCLE_HEADERS: [&str; 8] = [
    "subject",
    "timed",
    "runs",
    "min ms",
    "median ms",
    "p90 ms",
    "max ms",
    "paired ratio (median)",
];

pub fn lifecycle_start(results: &Results) -> Option<Table> {
    let l = results.lifecycle.as_ref()?;
    table(
        "Lifecycle: a sandbox started detached (to the command's return, the workload running)",
        &LIFECYCLE_HEADERS,
        lifecycle_rows(results, &l.start),
    )
}

pub fn lifecycle_exec(results: &Results) -> Option<Table> {
    let l = results.lifecycle.as_ref()?;
    table(
        "Lifecycle: true run in a running sandbox",
        &LIFECYCLE_HEADERS,
        lifecycle_rows(results, &l.exec),
    )
}

pub fn lifecycle_shims(results: &Results) -> Option<Table> {
    let l = results.lifecycle.as_ref()?;
    let rows = ordered(results, &l.shims, |s| &s.subject)
        .into_iter()
        .map(|s| {
            vec![
                label(results, &s.subject).to_string(),
                s.process.clone(),
                fmt_mib_of_kib(s.rss_kib),
                fmt_mib_of_kib(s.pss_kib),
                fmt_mib_of_kib(s.private_kib),
                opt_mib(s.rss_after_exec_kib),
                opt_mib(s.pss_after_exec_kib),
            ]
        })
        .collect();
    let title = format!(
        "Lifecycle: the supervisor of one idle sandbox (isola's shim is {}, {} build)",
        l.isola.path, l.isola.profile
    );
    table(
        &title,
        &[
            "subject",
            "process",
            "VmRSS MiB",
            "Pss MiB",
            "private MiB",
            "VmRSS after the execs MiB",
            "Pss after the execs MiB",
        ],
        rows,
    )
}

pub fn lifecycle_goals(results: &Results) -> Option<Table> {
    let l = results.lifecycle.as_ref()?;
    goal_table("Lifecycle: goals", &l.goals)
}

/// Goals as a table: the target, what was measured, and whether it is met.
fn goal_table(title: &str, goals: &[Goal]) -> Option<Table> {
    let shown = |v: f64, unit: &str| match unit {
        "KiB" => format!("{} MiB", fmt_mib_of_kib(v.round() as u64)),
        "x" => fmt_ratio(v),
        "ms" => format!("{} ms", fmt_ms(v)),
        other => format!("{v} {other}"),
    };
    let rows = goals
        .iter()
        .map(|g| {
            vec![
                g.label.clone(),
                format!("at most {}", shown(g.limit, &g.unit)),
                g.value
                    .map_or_else(|| NONE.to_string(), |v| shown(v, &g.unit)),
                match g.met {
                    Some(true) => "met".to_string(),
                    Some(false) => "NOT met".to_string(),
                    None => "not measured".to_string(),
                },
            ]
        })
        .collect();
    table(title, &["goal", "target", "measured", "met"], rows)
}

fn transfer_rows(results: &Results, series: &[TransferSeries]) -> Vec<Vec<String>> {
    let s = |ms: f64| format!("{:.2}", ms / 1e3);
    ordered(results, series, |s| &s.subject)
        .into_iter()
        .map(|t| {
            let paired = t
                .paired
                .iter()
                .map(|(other, ratio)| format!("{} vs {}", fmt_ratio(*ratio), label(results, other)))
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                label(results, &t.subject).to_string(),
                t.command.clone(),
                t.ms.len().to_string(),
                s(t.summary.min),
                s(t.summary.median),
                s(t.summary.p90),
                s(t.cpu_median_ms),
                format!("{:.1}", t.mib_per_s),
                if paired.is_empty() {
                    NONE.to_string()
                } else {
                    paired
                },
            ]
        })
        .collect()
}

const TRANSFER_HEADERS: [&str; 9] = [
    "subject",
    "timed",
    "runs",
    "min s",
    "median s",
    "p90 s",
    "CPU s (median)",
    "MiB/s",
    "paired ratio (median)",
];

/// What the distribution tables' titles say of the image.
fn image_words(results: &Results) -> String {
    results.distribution.as_ref().map_or_else(String::new, |d| {
        format!(
            "{} ({} layers, {} compressed, {} unpacked)",
            d.image.label,
            d.image.layers,
            fmt_bytes(d.image.compressed_bytes),
            fmt_bytes(d.image.unpacked_bytes)
        )
    })
}

pub fn distribution_pull(results: &Results) -> Option<Table> {
    let d = results.distribution.as_ref()?;
    table(
        &format!(
            "Distribution: pull of {}, each run into a fresh store or directory (MiB/s: compressed bytes)",
            image_words(results)
        ),
        &TRANSFER_HEADERS,
        transfer_rows(results, &d.pull),
    )
}

pub fn distribution_push(results: &Results) -> Option<Table> {
    let d = results.distribution.as_ref()?;
    table(
        "Distribution: push of the same image, each run to a fresh registry",
        &TRANSFER_HEADERS,
        transfer_rows(results, &d.push),
    )
}

pub fn distribution_on_base(results: &Results) -> Option<Table> {
    let p = results.distribution.as_ref()?.on_base.as_ref()?;
    table(
        "Distribution: the image pulled into a store that holds its base",
        &ON_BASE_HEADERS,
        vec![on_base_row(p)],
    )
}

pub fn distribution_goals(results: &Results) -> Option<Table> {
    let d = results.distribution.as_ref()?;
    goal_table(
        &format!(
            "Distribution: goals (isola is {}, {} build)",
            d.isola.path, d.isola.profile
        ),
        &d.goals,
    )
}

pub fn build_cold(results: &Results) -> Option<Table> {
    let b = results.build.as_ref()?;
    table(
        &format!(
            "Build: {}, cold (a store with the base image only, no cache)",
            b.workload
        ),
        &LIFECYCLE_HEADERS,
        lifecycle_rows(results, &b.cold),
    )
}

pub fn build_cached(results: &Results) -> Option<Table> {
    let b = results.build.as_ref()?;
    table(
        "Build: the same build again, every step cached",
        &LIFECYCLE_HEADERS,
        lifecycle_rows(results, &b.cached),
    )
}

pub fn build_goals(results: &Results) -> Option<Table> {
    let b = results.build.as_ref()?;
    goal_table(
        &format!(
            "Build: goals (isola is {}, {} build)",
            b.isola.path, b.isola.profile
        ),
        &b.goals,
    )
}

pub fn oci_create_start_delete(results: &Results) -> Option<Table> {
    let o = results.oci.as_ref()?;
    table(
        &format!(
            "OCI runtime: create, start, the init reaped, delete ({}; each runtime on its own --root{})",
            o.workload,
            o.cgroup_view
                .as_deref()
                .map(|v| format!("; {v}"))
                .unwrap_or_default()
        ),
        &LIFECYCLE_HEADERS,
        lifecycle_rows(results, &o.create_start_delete),
    )
}

pub fn oci_steps(results: &Results) -> Option<Table> {
    let o = results.oci.as_ref()?;
    let steps: Vec<&str> = o
        .steps
        .first()
        .map(|s| s.median_ms.iter().map(|(n, _)| n.as_str()).collect())
        .unwrap_or_default();
    let rows = ordered(results, &o.steps, |s| &s.subject)
        .into_iter()
        .map(|s| {
            let mut row = vec![label(results, &s.subject).to_string()];
            row.extend(s.median_ms.iter().map(|(_, ms)| fmt_ms(*ms)));
            row
        })
        .collect();
    let mut headers = vec!["subject".to_string()];
    headers.extend(steps.iter().map(|s| format!("{s} ms (median)")));
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    table(
        "OCI runtime: each step's median (exited: from start's return until the init was reaped)",
        &headers,
        rows,
    )
}

pub fn oci_run(results: &Results) -> Option<Table> {
    let o = results.oci.as_ref()?;
    table(
        "OCI runtime: run, the same life in one call",
        &LIFECYCLE_HEADERS,
        lifecycle_rows(results, &o.run),
    )
}

pub fn oci_containerd_first(results: &Results) -> Option<Table> {
    let c = results.oci.as_ref()?.containerd.as_ref()?;
    let rows = c
        .first
        .iter()
        .enumerate()
        .map(|(i, f)| {
            vec![
                label(results, &f.subject).to_string(),
                if i == 0 {
                    "first after the import".to_string()
                } else {
                    format!("{}", i + 1)
                },
                fmt_ms(f.ms),
            ]
        })
        .collect();
    table(
        &format!(
            "OCI runtime through {}: each runtime's first ctr run --rm, in the order they ran",
            c.label
        ),
        &["subject", "order", "ms"],
        rows,
    )
}

pub fn oci_containerd_warm(results: &Results) -> Option<Table> {
    let c = results.oci.as_ref()?.containerd.as_ref()?;
    table(
        &format!(
            "OCI runtime through {}: ctr run --rm of /bin/true, warm",
            c.label
        ),
        &LIFECYCLE_HEADERS,
        lifecycle_rows(results, &c.warm),
    )
}

pub fn oci_goals(results: &Results) -> Option<Table> {
    let o = results.oci.as_ref()?;
    goal_table(
        &format!(
            "OCI runtime: goals (isola-runtime is {}, {} build)",
            o.runtime.path, o.runtime.profile
        ),
        &o.goals,
    )
}

pub fn isolation(results: &Results) -> Option<Table> {
    // A column for every subject any row has a value for, in subject order.
    let mut columns: Vec<&str> = Vec::new();
    for row in &results.isolation.rows {
        for (id, _) in &row.values {
            if !columns.contains(&id.as_str()) {
                columns.push(id);
            }
        }
    }
    columns.sort_by_key(|id| rank(results, id));

    let mut headers = vec!["".to_string()];
    headers.extend(columns.iter().map(|id| label(results, id).to_string()));
    headers.push("why it matters".to_string());

    let rows: Vec<Vec<String>> = results
        .isolation
        .rows
        .iter()
        .map(|row| {
            let mut cells = vec![row.label.clone()];
            cells.extend(columns.iter().map(|id| {
                row.values
                    .iter()
                    .find(|(s, _)| s == id)
                    .map_or_else(|| NONE.to_string(), |(_, v)| v.clone())
            }));
            cells.push(row.why.clone());
            cells
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    Some((
        "Isolation: what the sandbox lets through".to_string(),
        headers,
        rows,
    ))
}

pub fn errors(results: &Results) -> Option<Table> {
    let rows = results
        .errors
        .iter()
        .map(|e| {
            vec![
                label(results, &e.subject).to_string(),
                e.dimension.clone(),
                e.message.clone(),
            ]
        })
        .collect();
    table("Errors", &["subject", "dimension", "error"], rows)
}

/// Whether a row is about an emulated subject: the page shades those rows.
pub(crate) fn row_is_emulated(results: &Results, row: &[String]) -> bool {
    results
        .subjects
        .iter()
        .filter(|s| s.emulated)
        .any(|s| row.contains(&s.label))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample;

    fn find<'a>(tables: &'a [Table], prefix: &str) -> &'a Table {
        tables
            .iter()
            .find(|t| t.0.starts_with(prefix))
            .unwrap_or_else(|| panic!("no table {prefix:?}"))
    }

    #[test]
    fn every_row_is_as_wide_as_its_headers() {
        for (title, headers, rows) in render(&sample()) {
            for row in &rows {
                assert_eq!(row.len(), headers.len(), "{title}: {row:?}");
            }
        }
    }

    #[test]
    fn warm_startup_uses_labels_and_human_units() {
        let tables = render(&sample());
        let (_, headers, rows) = find(&tables, "Startup, warm");
        assert_eq!(headers[0], "subject");
        let firsts: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(
            firsts,
            [
                "isola container",
                "vm (qemu-tcg: emulated, not KVM speed)",
                "crun 1.8.1"
            ]
        );
        let container = &rows[0];
        assert_eq!(container[1], "6");
        assert_eq!(container[2], "4.90");
        assert_eq!(container[7], "2.7");
        assert_eq!(container[8], "0.49x vs crun 1.8.1");
    }

    #[test]
    fn phases_are_durations_between_consecutive_ends() {
        let tables = render(&sample());
        let (_, _, rows) = find(&tables, "Startup phases");
        assert_eq!(rows.len(), 8);
        let mounts = rows
            .iter()
            .find(|r| r[0] == "isola container" && r[1] == "mounts")
            .unwrap();
        assert_eq!(mounts[2], "2.10");
        assert_eq!(mounts[3], "1.30");
        let first = &rows[0];
        assert_eq!(
            (first[1].as_str(), first[3].as_str()),
            ("image lookup", "0.80")
        );
    }

    #[test]
    fn disk_runtime_isolation_and_errors() {
        let tables = render(&sample());
        assert_eq!(find(&tables, "Disk: the image").2[0][2], "4.2 MiB");
        assert_eq!(find(&tables, "Disk: what one sandbox").2[0][2], "12.0 KiB");
        assert_eq!(find(&tables, "Disk: N images").2[2][3], "68%");

        let (_, _, rows) = find(&tables, "Runtime");
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[0][..3], ["cpu", "host (no sandbox)", "1,000,000"]);
        assert_eq!(rows[0][4], "baseline");
        assert_eq!(rows[2][4], "0.08x");
        assert_eq!(rows[3][0], "memcpy");

        let (_, headers, rows) = find(&tables, "Isolation");
        assert_eq!(
            headers,
            &[
                "",
                "host (no sandbox)",
                "isola container",
                "vm (qemu-tcg: emulated, not KVM speed)",
                "why it matters"
            ]
        );
        assert_eq!(
            rows[0],
            [
                "kernel",
                "shared",
                "shared",
                "own",
                "a kernel bug is a host bug"
            ]
        );

        let (_, _, rows) = find(&tables, "Errors");
        assert_eq!(rows[0][0], "runc 1.1.5");
        assert!(rows[0][2].contains("<script>"));
    }

    #[test]
    fn empty_dimensions_have_no_table() {
        let tables = render(&sample());
        assert!(tables.iter().all(|t| !t.0.starts_with("Monitor")));
        let titles: Vec<&str> = tables.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(titles.len(), 31, "{titles:?}");
        let mut r = sample();
        r.lifecycle = None;
        r.distribution = None;
        r.disk.distribution = None;
        r.build = None;
        r.oci = None;
        let titles: Vec<String> = render(&r).into_iter().map(|t| t.0).collect();
        assert!(titles.iter().all(|t| !t.starts_with("Lifecycle")));
        assert!(titles.iter().all(|t| !t.starts_with("Distribution")));
        assert!(titles.iter().all(|t| !t.starts_with("Disk: pulling")));
        assert!(titles.iter().all(|t| !t.starts_with("Build")));
        assert!(titles.iter().all(|t| !t.starts_with("OCI")));
    }

    #[test]
    fn oci_tables_give_each_shape_its_steps_the_first_runs_and_the_goal() {
        let tables = render(&sample());
        let (title, _, rows) = find(&tables, "OCI runtime: create, start");
        assert!(title.contains("busybox"), "{title}");
        assert_eq!(rows[0][0], "isola container");
        assert_eq!(rows[0][7], "0.31x vs runc 1.1.5");
        let (_, headers, rows) = find(&tables, "OCI runtime: each step");
        assert_eq!(
            headers[1..],
            [
                "create ms (median)",
                "start ms (median)",
                "exited ms (median)",
                "delete ms (median)"
            ]
        );
        assert_eq!(rows[0][1..], ["5.00", "1.50", "0.50", "2.50"]);
        assert_eq!(find(&tables, "OCI runtime: run").2[0][3], "8.00");
        let (title, _, rows) = find(&tables, "OCI runtime through containerd 1.6.20~ds1: each");
        assert!(title.contains("first"));
        assert_eq!(rows[0][1..], ["first after the import", "390.00"]);
        assert_eq!(rows[1][1], "2");
        let (_, _, rows) = find(
            &tables,
            "OCI runtime through containerd 1.6.20~ds1: ctr run",
        );
        assert_eq!(rows[0][7], "0.70x vs runc 1.1.5");
        let (title, _, rows) = find(&tables, "OCI runtime: goals");
        assert!(title.contains("/usr/local/bin/isola-runtime, release, static"));
        assert_eq!(rows[0][1..], ["at most 1.00x", "-", "not measured"]);
    }

    #[test]
    fn build_tables_give_cold_and_cached_times_their_ratios_and_the_goals_in_ms() {
        let tables = render(&sample());
        let (title, headers, rows) = find(&tables, "Build: 11-line");
        assert!(title.ends_with("cold (a store with the base image only, no cache)"));
        assert_eq!(headers[4], "median ms");
        let isola = rows.iter().find(|r| r[1] == "isola build").unwrap();
        assert_eq!(isola[2..5], ["2", "900.00", "1100.00"]);
        assert!(isola[7].starts_with("0.45x vs "), "{}", isola[7]);
        let (_, _, rows) = find(&tables, "Build: the same build again");
        assert!(rows.iter().any(|r| r[7].starts_with("0.04x")));
        let (_, _, rows) = find(&tables, "Build: goals");
        assert_eq!(rows[0][1..], ["at most 100.00 ms", "44.00 ms", "met"]);
    }

    #[test]
    fn distribution_tables_give_seconds_rates_ratios_and_what_a_pull_on_a_base_fetched() {
        let tables = render(&sample());
        let (title, headers, rows) = find(&tables, "Distribution: pull of Debian");
        assert!(
            title.contains("(2 layers, 70.0 MiB compressed, 175.0 MiB unpacked)"),
            "{title}"
        );
        assert_eq!(headers[7], "MiB/s");
        assert_eq!(
            rows[1][..8],
            [
                "isola",
                "isola pull",
                "3",
                "1.00",
                "1.20",
                "1.40",
                "0.96",
                "58.3"
            ]
        );
        assert_eq!(rows[1][8], "0.40x vs podman 4.3.1 (conmon 2.1.6, runc)");
        assert_eq!(find(&tables, "Distribution: push").2[0][4], "0.35");
        let (_, _, rows) = find(&tables, "Distribution: the image pulled");
        assert_eq!(rows[0][2..], ["1 of 2", "8.8 MiB", "69.3 MiB", "12.7%"]);
        let (title, _, rows) = find(&tables, "Distribution: goals");
        assert!(
            title.contains("/usr/local/bin/isola, release, static build"),
            "{title}"
        );
        assert_eq!(rows[0][1..], ["at most 0.60x", "0.40x", "met"]);
        let (_, _, rows) = find(&tables, "Disk: pulling an image whose base");
        assert_eq!(
            rows[0][..3],
            ["isola/bench:latest", "isola/busybox:latest", "1 of 2"]
        );
        assert_eq!(rows[0][5], "25.0%");
    }

    #[test]
    fn lifecycle_tables_say_what_was_timed_and_the_goals() {
        let tables = render(&sample());
        let (_, headers, rows) = find(&tables, "Lifecycle: a sandbox started detached");
        assert_eq!(headers[1], "timed");
        assert_eq!(
            rows[0][..5],
            ["isola container", "isola run -d", "3", "7.50", "8.00"]
        );
        assert_eq!(
            rows[0][7],
            "1.80x vs floor (unshare+chroot), 0.08x vs podman 4.3.1 (conmon 2.1.6, runc)"
        );
        let (_, _, rows) = find(&tables, "Lifecycle: true run");
        assert_eq!(rows[1][0], "floor (nsenter -a)");
        let (title, _, rows) = find(&tables, "Lifecycle: the supervisor");
        assert!(
            title.contains("/usr/local/bin/isola, release, static build"),
            "{title}"
        );
        assert_eq!(rows[0][1..5], ["isola", "2.5", "1.1", "0.7"]);
        assert_eq!(rows[1][5], "-");
        let (_, _, rows) = find(&tables, "Lifecycle: goals");
        assert_eq!(rows[0][1..], ["at most 2.00x", "1.80x", "met"]);
        assert_eq!(rows[2][1..], ["at most 1.0 MiB", "2.5 MiB", "NOT met"]);
    }

    #[test]
    fn detached_density_is_a_row_of_its_own() {
        let tables = render(&sample());
        let (_, _, rows) = find(&tables, "Density");
        assert_eq!(
            rows[1][..2],
            ["container, detached (run -d: shim + workload)", "4"]
        );
        assert_eq!(rows[1][4], "2.2");
    }

    #[test]
    fn guest_kernels_show_medians_to_init_and_exit() {
        let tables = render(&sample());
        let (_, headers, rows) = find(&tables, "Guest kernels");
        assert_eq!(headers[2], "to init ms");
        assert_eq!(
            rows[0],
            [
                "qemu-tcg + isola-6.1.192-0123456789ab (emulated)",
                "18.1 MiB",
                "2010.00",
                "2300.00",
                "3"
            ]
        );
    }

    #[test]
    fn emulated_rows_are_recognised() {
        let r = sample();
        let row = |s: &str| vec![s.to_string(), "1".to_string()];
        assert!(row_is_emulated(
            &r,
            &row("vm (qemu-tcg: emulated, not KVM speed)")
        ));
        assert!(!row_is_emulated(&r, &row("isola container")));
    }
}
