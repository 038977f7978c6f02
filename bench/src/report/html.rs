//! The report as one self-contained HTML page: no network, no external CSS,
//! scripts or fonts; the charts are inlined SVG and every text that came
//! from the results (error lines of other programs included) is escaped.

use std::fmt::Write as _;

use super::charts::EMULATED_NOTE;
use super::tables::{self, Table};
use super::{fmt_bytes, fmt_ms};
use crate::results::Results;

/// Escapes text for HTML content and attribute values alike.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body { font-family: sans-serif; color: #222; background: #fff; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; line-height: 1.4; }
h1 { margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
p.method { max-width: 60em; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
caption { text-align: left; font-weight: bold; padding: 0.3em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; vertical-align: top; }
th { background: #f0f0f0; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.emu td { background: #fff4e0; }
table.kv th { width: 12em; }
.warning { border: 2px solid #e69500; background: #fff4e0; padding: 0.6em 1em; }
figure { margin: 1em 0; }
figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #666; }
pre.error { white-space: pre-wrap; margin: 0; font-size: 0.95em; }
";

struct Section {
    id: &'static str,
    title: &'static str,
    method: String,
    tables: Vec<Option<Table>>,
    charts: &'static [&'static str],
}

fn sections(r: &Results) -> Vec<Section> {
    let c = &r.config;
    vec![
        Section {
            id: "startup",
            title: "Startup",
            method: format!(
                "Warm: start-to-exit wall time of <code>/bin/true</code> in the \
                 benchmark image, a whole process per run as a user starts it. \
                 The subjects run interleaved, run by run (A B C A B C ...), so \
                 drift on a noisy machine hits all alike: {} warm-up runs, then \
                 {} measured runs each. CPU is the user + system time of the run \
                 and of all it waited for; peak RSS is the median peak resident \
                 set. The paired ratio is the median of the run-by-run ratios to \
                 another subject of the same interleaved series, which cancels \
                 the drift a ratio of medians keeps. Cold: the first run after \
                 the image was imported, which builds the per-image artefacts \
                 (the VM's rootfs archive) the warm runs reuse. Phases: the \
                 median time from the start of the backend's run at which each \
                 phase ended; a phase takes the difference between consecutive \
                 ends. For scale, the harness's own cost per measured run (spawn, \
                 wait, bookkeeping, timed on a no-op run) is {} ms (median).",
                c.warmup,
                c.runs,
                fmt_ms(r.harness.overhead_ms)
            ),
            tables: vec![
                tables::startup_warm(r),
                tables::startup_cold(r),
                tables::phases(r),
            ],
            charts: &["startup.svg", "phases.svg"],
        },
        Section {
            id: "monitor",
            title: "Monitor",
            method: "The bare monitor: the test guest booted to its exit, isola's \
                     monitor against QEMU microvm, interleaved run by run as above."
                .to_string(),
            tables: vec![tables::monitor(r)],
            charts: &["monitor.svg"],
        },
        Section {
            id: "kernels",
            title: "Guest kernels",
            method: "Each guest kernel boots the image to /bin/true a few times, on \
                     isola's monitor where it can boot there, else on QEMU's software \
                     CPU: the median time from isola's start to isola-init's start, \
                     and to the guest's end."
                .to_string(),
            tables: vec![tables::kernels(r)],
            charts: &[],
        },
        Section {
            id: "memory",
            title: "Memory",
            method: "One idle sandbox (the probe waiting), seen from the host and \
                     from inside. Host PSS is what the host pays: the proportional \
                     set size of every process of the sandbox, isola's own included \
                     (the VMM's for a VM), so a page shared by several processes is \
                     counted once in all. The cgroup charge is the container's pages \
                     and kernel memory; VMM RSS is the VMM's resident set, and guest \
                     touched the part of it that is guest memory the guest has \
                     touched. MemTotal and MemAvailable are what the workload reads \
                     inside."
                .to_string(),
            tables: vec![tables::memory(r)],
            charts: &["memory.svg"],
        },
        Section {
            id: "disk",
            title: "Disk",
            method: "The benchmark image in the store (bytes shared with other \
                     images and unique to it), what one sandbox adds while it \
                     exists, what the VM backend needs besides the store (kernel, \
                     rootfs archive), N images sharing one base layer: what the \
                     store really holds against what they would take unshared, and \
                     what <code>isola pull</code> fetches of the benchmark image when \
                     the store holds its base, from a registry the benchmark starts \
                     (the bytes isola counted, against the image's layers)."
                .to_string(),
            tables: vec![
                tables::disk_image(r),
                tables::disk_per_sandbox(r),
                tables::disk_vm_extra(r),
                tables::disk_sharing(r),
                tables::disk_distribution(r),
            ],
            charts: &["disk.svg", "sharing.svg"],
        },
        Section {
            id: "runtime",
            title: "Runtime",
            method: "Each workload inside each sandbox and on the host itself. \
                     Rates are operations per second (MiB/s for memcpy and \
                     stdout); the ratio is the rate over the host's: 1.0 is no \
                     overhead, below 1 is slower."
                .to_string(),
            tables: vec![tables::runtime(r)],
            charts: &[],
        },
        Section {
            id: "density",
            title: "Density",
            method: format!(
                "{} sandboxes at once: the time from the first start until every \
                 sandbox's workload was running, and the host memory of all of \
                 them idle (the sum of their PSS). The container backend's \
                 sandboxes are also started detached (<code>isola run -d</code>, \
                 all at once): until every one of those commands has returned, \
                 and the PSS of each sandbox's shim and workload.",
                c.density
            ),
            tables: vec![tables::density(r)],
            charts: &[],
        },
        Section {
            id: "lifecycle",
            title: "Lifecycle",
            method: format!(
                "A detached sandbox, with the container backend. Started: <code>isola \
                 run -d</code> timed until it returns, which it does once the \
                 workload runs, against the floor's start to exit of \
                 <code>/bin/true</code> (<code>unshare</code> + <code>chroot</code>), \
                 <code>podman run -d</code> (conmon and runc, a configuration of the \
                 benchmark's own), <code>ctr run -d</code> (a containerd of the \
                 benchmark's own) and runc's <code>create</code> + <code>start</code>; \
                 the peers run the image flattened (<code>--rootfs</code>, a bundle), \
                 without the overlay mount isola makes. Each sandbox is removed \
                 after its run, outside the timed part. Exec: <code>true</code> run \
                 in a running sandbox by <code>isola exec</code>, <code>runc \
                 exec</code>, and the floor for joining a sandbox, <code>nsenter \
                 -a</code> into isola's. Both are interleaved run by run, {} warm-up \
                 runs then {} measured ones each, with ratios paired run by run. The \
                 supervisors' memory is read from /proc (VmRSS; Pss and the private \
                 pages from smaps_rollup) 300 ms after each idle sandbox started, \
                 and isola's shim's again 1.5 s after the exec runs; \
                 isola's shim is the isola binary that ran the benchmark, and its \
                 Pss shares that binary's pages with the benchmark's own process.",
                c.warmup, c.runs
            ),
            tables: vec![
                tables::lifecycle_start(r),
                tables::lifecycle_exec(r),
                tables::lifecycle_shims(r),
                tables::lifecycle_goals(r),
            ],
            charts: &[],
        },
        Section {
            id: "distribution",
            title: "Distribution",
            method: "<code>isola bench distribution</code>, run on its own: an image \
                     moved between a docker-registry the benchmark starts on \
                     127.0.0.1 and a store. <code>isola pull</code> (fetched, \
                     verified, unpacked) against <code>podman pull</code> (overlay \
                     storage, which also unpacks); its fetch part alone (<code>isola \
                     pull --fetch-only</code>) against <code>skopeo copy</code> to an \
                     OCI layout (fetched and verified); <code>isola push</code> \
                     against <code>skopeo copy</code> from an OCI layout, each to a \
                     fresh registry. Every run goes into a fresh store or directory, \
                     the subjects interleaved run by run, ratios paired run by run; \
                     CPU is user + system of all the command waited for (the \
                     registry's own is not counted)."
                .to_string(),
            tables: vec![
                tables::distribution_pull(r),
                tables::distribution_push(r),
                tables::distribution_on_base(r),
                tables::distribution_goals(r),
            ],
            charts: &[],
        },
        Section {
            id: "build",
            title: "Build",
            method: "<code>isola bench build</code>, run on its own: an 11-line \
                     two-stage Dockerfile over the busybox base built by <code>isola \
                     build</code> and by <code>buildah bud --layers</code> (vfs \
                     storage, chroot isolation), both from the same base image. Cold: \
                     each run on a store that holds only the base, made again after \
                     the run; cached: each run on a store that built the same thing \
                     before. The two tools interleaved run by run, ratios paired run \
                     by run, everything written back (<code>sync</code>) between runs."
                .to_string(),
            tables: vec![
                tables::build_cold(r),
                tables::build_cached(r),
                tables::build_goals(r),
            ],
            charts: &[],
        },
        Section {
            id: "oci",
            title: "OCI runtime",
            method: "<code>isola bench oci</code>, run on its own: one bundle (a busybox \
                     rootfs, <code>config.json</code> from <code>isola-runtime spec</code> \
                     running <code>/bin/true</code> without a terminal) taken through \
                     runc's command line by isola-runtime, runc and crun, each on a \
                     <code>--root</code> of its own: <code>create</code>, \
                     <code>start</code>, the init reaped by the benchmark (a child \
                     subreaper, as containerd's shim is), <code>delete</code>; then \
                     <code>run</code>, the same in one call. Then the same image, \
                     imported once into a containerd of the benchmark's own, run by \
                     <code>ctr run --rm --runc-binary</code> with each runtime; the \
                     first run of each is shown apart. The runtimes interleaved run by \
                     run, ratios paired run by run. A runtime that cannot run on the \
                     host is listed in the errors with its own message."
                .to_string(),
            tables: vec![
                tables::oci_create_start_delete(r),
                tables::oci_steps(r),
                tables::oci_run(r),
                tables::oci_containerd_first(r),
                tables::oci_containerd_warm(r),
                tables::oci_goals(r),
            ],
            charts: &[],
        },
        Section {
            id: "isolation",
            title: "Isolation",
            method: "What a process can observe about where it runs, read by the \
                     same probe on the host and inside each sandbox. The values are \
                     the limits the probe observed, not the ones configured."
                .to_string(),
            tables: vec![tables::isolation(r)],
            charts: &[],
        },
    ]
}

/// The whole page. `charts` are `(file name, svg)` as [`super::charts::all`]
/// returns them; each is inlined in its dimension's section, and one this
/// page does not know is inlined at the end rather than dropped.
pub fn render(results: &Results, charts: &[(String, String)]) -> String {
    let r = results;
    let mut page = String::new();
    let title = format!("isola benchmark: {}", r.config.image);
    // Writing into a String cannot fail.
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n\
         <p>Run started {} by isola {}.</p>\n",
        escape(&title),
        escape(&title),
        escape(&r.created),
        escape(&r.isola_version),
    );

    let sections = sections(r);
    page.push_str("<nav>");
    for s in &sections {
        let _ = write!(page, "<a href=\"#{}\">{}</a>", s.id, s.title);
    }
    page.push_str("<a href=\"#errors\">Errors</a></nav>\n");

    emulated_warning(&mut page, r);
    machine(&mut page, r);

    let mut placed = Vec::new();
    for s in &sections {
        let _ = write!(
            page,
            "<section id=\"{}\">\n<h2>{}</h2>\n<p class=\"method\">{}</p>\n",
            s.id, s.title, s.method
        );
        let mut shown = false;
        for t in s.tables.iter().flatten() {
            table(&mut page, r, t);
            shown = true;
        }
        for name in s.charts {
            if let Some((name, svg)) = charts.iter().find(|(n, _)| n == name) {
                figure(&mut page, name, svg);
                placed.push(name.as_str());
                shown = true;
            }
        }
        if !shown {
            page.push_str(
                "<p>Not measured in this run (see <a href=\"#errors\">errors</a>).</p>\n",
            );
        }
        page.push_str("</section>\n");
    }

    let others: Vec<_> = charts
        .iter()
        .filter(|(n, _)| !placed.contains(&n.as_str()))
        .collect();
    if !others.is_empty() {
        page.push_str("<section id=\"charts\">\n<h2>Other charts</h2>\n");
        for (name, svg) in others {
            figure(&mut page, name, svg);
        }
        page.push_str("</section>\n");
    }

    page.push_str(
        "<section id=\"errors\">\n<h2>Errors</h2>\n<p class=\"method\">A subject or \
         dimension that could not run, with its own error line as the program \
         printed it.</p>\n",
    );
    match tables::errors(r) {
        Some(t) => error_table(&mut page, &t),
        None => page.push_str("<p>None: every subject ran every dimension.</p>\n"),
    }
    page.push_str("</section>\n</body>\n</html>\n");
    page
}

fn emulated_warning(page: &mut String, r: &Results) {
    let emulated: Vec<String> = r
        .subjects
        .iter()
        .filter(|s| s.emulated)
        .map(|s| format!("<strong>{}</strong>", escape(&s.label)))
        .collect();
    if emulated.is_empty() {
        return;
    }
    let _ = writeln!(
        page,
        "<p class=\"warning\">{} ran with an emulated CPU (QEMU TCG, no KVM \
         on this host). Their figures are not KVM figures: their table rows are \
         shaded and their marks in the charts are hollow or hatched.</p>",
        emulated.join(", ")
    );
}

fn machine(page: &mut String, r: &Results) {
    let m = &r.machine;
    let c = &r.config;
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let rows = [
        ("CPU", format!("{} ({} cores)", m.cpu_model, m.cores)),
        ("memory", fmt_bytes(m.mem_total_kib.saturating_mul(1024))),
        ("kernel", m.kernel.clone()),
        ("cgroup", m.cgroup.clone()),
        ("KVM", m.kvm.clone()),
        (
            "guest kernel",
            m.guest_kernel.clone().unwrap_or_else(|| "none".to_string()),
        ),
        ("image", c.image.clone()),
        ("backends", list(&c.backends)),
        ("peers", list(&c.peers)),
        (
            "runs",
            format!(
                "{} measured after {} warm-up{}",
                c.runs,
                c.warmup,
                if c.quick { " (quick)" } else { "" }
            ),
        ),
        ("density", format!("{} sandboxes", c.density)),
        (
            "harness overhead",
            format!("{} ms per run", fmt_ms(r.harness.overhead_ms)),
        ),
    ];
    page.push_str("<h2 id=\"machine\">Machine and configuration</h2>\n<table class=\"kv\">\n");
    for (k, v) in rows {
        let _ = writeln!(
            page,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(k),
            escape(&v)
        );
    }
    page.push_str("</table>\n<table>\n<caption>Subjects</caption>\n");
    page.push_str("<thead><tr><th>subject</th><th>kind</th><th>CPU</th></tr></thead>\n<tbody>\n");
    for s in &r.subjects {
        let _ = writeln!(
            page,
            "<tr{}><td>{}</td><td>{}</td><td>{}</td></tr>",
            if s.emulated { " class=\"emu\"" } else { "" },
            escape(&s.label),
            escape(&s.kind),
            if s.emulated { EMULATED_NOTE } else { "native" },
        );
    }
    page.push_str("</tbody>\n</table>\n");
}

fn looks_numeric(cell: &str) -> bool {
    let c = cell.strip_prefix('-').unwrap_or(cell);
    c.starts_with(|ch: char| ch.is_ascii_digit()) && cell.len() < 24
}

/// A table's caption and header row, and the opening of its body.
fn table_head(page: &mut String, title: &str, headers: &[String]) {
    let _ = write!(
        page,
        "<table>\n<caption>{}</caption>\n<thead><tr>",
        escape(title)
    );
    for h in headers {
        let _ = write!(page, "<th>{}</th>", escape(h));
    }
    page.push_str("</tr></thead>\n<tbody>\n");
}

fn table(page: &mut String, r: &Results, (title, headers, rows): &Table) {
    table_head(page, title, headers);
    for row in rows {
        let class = if tables::row_is_emulated(r, row) {
            " class=\"emu\""
        } else {
            ""
        };
        let _ = write!(page, "<tr{class}>");
        for cell in row {
            let n = if looks_numeric(cell) {
                " class=\"n\""
            } else {
                ""
            };
            let _ = write!(page, "<td{n}>{}</td>", escape(cell));
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</tbody>\n</table>\n");
}

fn error_table(page: &mut String, (title, headers, rows): &Table) {
    table_head(page, title, headers);
    for row in rows {
        page.push_str("<tr>");
        let last = row.len().saturating_sub(1);
        for (i, cell) in row.iter().enumerate() {
            // An error line keeps its own spacing and line breaks.
            if i == last {
                let _ = write!(page, "<td><pre class=\"error\">{}</pre></td>", escape(cell));
            } else {
                let _ = write!(page, "<td>{}</td>", escape(cell));
            }
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</tbody>\n</table>\n");
}

/// Inlines an SVG. The namespace declaration is dropped: HTML puts `<svg>`
/// in the SVG namespace itself, and the page then names no URL at all.
fn figure(page: &mut String, name: &str, svg: &str) {
    let svg = svg
        .trim()
        .replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1);
    let svg = match svg.find("<svg") {
        // Whatever precedes the root element (an XML declaration) has no
        // place inside HTML.
        Some(start) => &svg[start..],
        None => svg.as_str(),
    };
    let _ = write!(
        page,
        "<figure>\n{svg}\n<figcaption>{}</figcaption>\n</figure>\n",
        escape(name)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::charts::{self, tests::assert_well_formed};
    use crate::report::sample;

    fn page() -> (String, Vec<(String, String)>) {
        let r = sample();
        let charts = charts::all(&r);
        (render(&r, &charts), charts)
    }

    /// Every value of `attr="..."` in the page.
    fn attr_values<'a>(page: &'a str, attr: &str) -> Vec<&'a str> {
        let needle = format!("{attr}=\"");
        page.match_indices(&needle)
            .filter_map(|(i, _)| {
                let v = &page[i + needle.len()..];
                v.find('"').map(|end| &v[..end])
            })
            .collect()
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        let (page, _) = page();
        for attr in ["src", "href", "xlink:href", "action", "xmlns"] {
            for v in attr_values(&page, attr) {
                assert!(
                    v.starts_with('#'),
                    "{attr}=\"{v}\" refers to something outside the page"
                );
            }
        }
        let lower = page.to_lowercase();
        for bad in [
            "http://", "https://", "url(", "@import", "<link", "<script", "<img",
        ] {
            assert!(!lower.contains(bad), "the page contains {bad}");
        }
    }

    #[test]
    fn every_chart_is_inline() {
        let (page, charts) = page();
        assert!(!charts.is_empty());
        for (name, svg) in &charts {
            assert!(
                page.contains(&format!("<figcaption>{name}</figcaption>")),
                "{name}"
            );
            // The chart's body, past its root tag, is in the page verbatim.
            let body = &svg[svg.find('>').unwrap() + 1..];
            assert!(page.contains(body.trim()), "{name} is not inlined");
        }
        assert_eq!(page.matches("<svg").count(), charts.len());
    }

    #[test]
    fn text_from_the_results_is_escaped() {
        let (page, _) = page();
        assert!(!page.contains("<script>"));
        assert!(page.contains(
            "runc: &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; cgroups in hybrid mode"
        ));
        // The peer that refused to run has its own error line, under its label.
        assert!(page.contains("<td>runc 1.1.5</td><td>startup</td>"));
    }

    #[test]
    fn the_page_is_well_formed_and_names_emulated_rows() {
        let (page, _) = page();
        let body = &page[page.find("<html").unwrap()..];
        assert_well_formed(
            "report.html",
            &body.replace("<meta charset=\"utf-8\">", "").replace(
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
                "",
            ),
        );
        assert!(page.contains("<tr class=\"emu\"><td>vm (qemu-tcg: emulated, not KVM speed)</td>"));
        assert!(page.contains(EMULATED_NOTE));
        for id in [
            "startup",
            "kernels",
            "memory",
            "disk",
            "runtime",
            "density",
            "lifecycle",
            "distribution",
            "isolation",
            "errors",
        ] {
            assert!(page.contains(&format!("<section id=\"{id}\">")), "{id}");
        }
        // No monitor series in the sample: that section says so.
        let monitor = &page[page.find("<section id=\"monitor\">").unwrap()..];
        let monitor = &monitor[..monitor.find("</section>").unwrap()];
        assert!(monitor.contains("Not measured in this run"));
    }

    #[test]
    fn a_run_without_errors_says_so() {
        let mut r = sample();
        r.errors.clear();
        let page = render(&r, &[]);
        assert!(page.contains("None: every subject ran every dimension."));
    }

    #[test]
    fn an_unknown_chart_is_still_shown() {
        let r = sample();
        let page = render(
            &r,
            &[(
                "extra.svg".to_string(),
                "<svg width=\"1\" height=\"1\"></svg>".to_string(),
            )],
        );
        assert!(page.contains("<h2>Other charts</h2>"));
        assert!(page.contains("<figcaption>extra.svg</figcaption>"));
    }
}
