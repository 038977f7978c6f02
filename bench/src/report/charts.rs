//! SVG charts of the results, drawn with plotters' SVG backend: startup runs,
//! phase breakdown, memory and disk. Emulated subjects are drawn lighter
//! (hollow points, hatched bars) with a legend note wherever they appear.

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{emulated, fmt_bytes, fmt_mib_of_kib, fmt_ms, label, ordered};
use crate::results::{ColdStart, Results, StartupSeries};

#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("drawing the chart: {0}")]
    Draw(String),
}

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for ChartError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        ChartError::Draw(e.to_string())
    }
}

type Chart = fn(&Results) -> Result<Option<String>, ChartError>;
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// The legend's words for an emulated subject, on every chart that has one.
pub const EMULATED_NOTE: &str = "emulated CPU: not KVM speed";

const WIDTH: u32 = 960;
/// plotters' SVG backend writes `font-size` as size / 1.24: these are about
/// 13 px, 11 px and 18 px on the page.
const FONT: f64 = 16.0;
const SMALL: f64 = 14.0;
const TITLE: f64 = 22.0;
/// A sans-serif character at 13 px is about this wide; labels are laid out
/// with it since no font metrics are at hand.
const CHAR_PX: f64 = 7.0;

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];
const INK: RGBColor = RGBColor(40, 40, 40);
const GRID: RGBColor = RGBColor(225, 225, 225);
/// The legend's emulated swatch: no data colour, it stands for all of them.
const NEUTRAL: RGBColor = RGBColor(110, 110, 110);

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn lighter(c: RGBColor) -> RGBColor {
    let mix = |v: u8| (f64::from(v) + (255.0 - f64::from(v)) * 0.6).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

fn font(size: f64) -> TextStyle<'static> {
    (FontFamily::SansSerif, size).into_font().color(&INK)
}

fn text_px(text: &str) -> i32 {
    (text.chars().count() as f64 * CHAR_PX).ceil() as i32
}

/// Every chart with data, as `(file name, svg)`. A chart that fails to draw
/// is replaced by a small SVG saying why, so the report still shows the gap.
pub fn all(results: &Results) -> Vec<(String, String)> {
    let charts: [(&str, Chart); 6] = [
        ("startup.svg", startup),
        ("monitor.svg", monitor),
        ("phases.svg", phases),
        ("memory.svg", memory),
        ("disk.svg", disk),
        ("sharing.svg", sharing),
    ];
    charts
        .into_iter()
        .filter_map(|(name, draw)| match draw(results) {
            Ok(Some(svg)) => Some((name.to_string(), svg)),
            Ok(None) => None,
            Err(e) => Some((name.to_string(), placeholder(name, &e))),
        })
        .collect()
}

fn placeholder(name: &str, error: &ChartError) -> String {
    let text = format!("{name} could not be drawn: {error}");
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<svg width=\"{WIDTH}\" height=\"40\" viewBox=\"0 0 {WIDTH} 40\" \
         xmlns=\"http://www.w3.org/2000/svg\">\n<text x=\"10\" y=\"25\" \
         font-family=\"sans-serif\" font-size=\"13\" fill=\"#B00\">{escaped}</text>\n</svg>\n"
    )
}

// ---- legend ----------------------------------------------------------------

#[derive(Clone, Copy)]
enum Swatch {
    Box,
    Hatched,
    Dot,
    Hollow,
    Tick,
    Cross,
}

struct Key {
    swatch: Swatch,
    color: RGBColor,
    text: String,
}

fn key(swatch: Swatch, color: RGBColor, text: impl Into<String>) -> Key {
    Key {
        swatch,
        color,
        text: text.into(),
    }
}

fn emulated_key(swatch: Swatch) -> Key {
    let how = match swatch {
        Swatch::Hollow => "hollow",
        _ => "hatched, lighter",
    };
    key(swatch, NEUTRAL, format!("{how}: {EMULATED_NOTE}"))
}

const LEGEND_LINE: i32 = 22;

/// Keys flowed into lines that fit the width.
fn legend_lines(keys: &[Key]) -> Vec<Vec<&Key>> {
    let mut lines: Vec<Vec<&Key>> = Vec::new();
    let mut used = 0;
    for k in keys {
        let w = 26 + text_px(&k.text) + 20;
        if lines.is_empty() || used + w > WIDTH as i32 - 40 {
            lines.push(Vec::new());
            used = 0;
        }
        used += w;
        if let Some(line) = lines.last_mut() {
            line.push(k);
        }
    }
    lines
}

fn legend_height(keys: &[Key]) -> u32 {
    let lines = legend_lines(keys).len() as u32;
    if lines == 0 {
        0
    } else {
        lines * LEGEND_LINE as u32 + 12
    }
}

fn draw_legend(root: &Area, top: i32, keys: &[Key]) -> Result<(), ChartError> {
    for (n, line) in legend_lines(keys).into_iter().enumerate() {
        let y = top + 6 + n as i32 * LEGEND_LINE + LEGEND_LINE / 2;
        let mut x = 20;
        for k in line {
            draw_swatch(root, (x, y), k.swatch, k.color)?;
            root.draw(&Text::new(
                k.text.clone(),
                (x + 22, y),
                font(FONT).pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
            x += 26 + text_px(&k.text) + 20;
        }
    }
    Ok(())
}

fn draw_swatch(
    root: &Area,
    (x, y): (i32, i32),
    swatch: Swatch,
    c: RGBColor,
) -> Result<(), ChartError> {
    match swatch {
        Swatch::Box => root.draw(&Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled()))?,
        Swatch::Hatched => {
            root.draw(&Rectangle::new(
                [(x, y - 6), (x + 14, y + 6)],
                lighter(c).filled(),
            ))?;
            hatch(root, (x, y - 6), (x + 14, y + 6), c)?;
        }
        Swatch::Dot => root.draw(&Circle::new((x + 7, y), 4, c.filled()))?,
        Swatch::Hollow => root.draw(&Circle::new((x + 7, y), 4, c.stroke_width(2)))?,
        Swatch::Tick => root.draw(&PathElement::new(
            vec![(x + 7, y - 8), (x + 7, y + 8)],
            c.stroke_width(3),
        ))?,
        Swatch::Cross => root.draw(&Cross::new((x + 7, y), 5, c.stroke_width(2)))?,
    }
    Ok(())
}

/// 45° lines across a pixel rectangle: the mark of an emulated subject's bar.
fn hatch(
    root: &Area,
    (x0, y0): (i32, i32),
    (x1, y1): (i32, i32),
    c: RGBColor,
) -> Result<(), ChartError> {
    let (left, right) = (x0.min(x1), x0.max(x1));
    let (top, bottom) = (y0.min(y1), y0.max(y1));
    let h = bottom - top;
    if right - left < 2 || h < 2 {
        return Ok(());
    }
    let mut t = left - h;
    while t < right {
        // The line from (t, bottom) to (t + h, top), clipped to the sides.
        let (mut ax, mut ay) = (t, bottom);
        let (mut bx, mut by) = (t + h, top);
        if ax < left {
            ay -= left - ax;
            ax = left;
        }
        if bx > right {
            by += bx - right;
            bx = right;
        }
        if ax < bx {
            root.draw(&PathElement::new(
                vec![(ax, ay), (bx, by)],
                c.stroke_width(1),
            ))?;
        }
        t += 6;
    }
    Ok(())
}

fn tick(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn label_area(labels: impl Iterator<Item = usize>) -> u32 {
    let widest = labels.max().unwrap_or(0) as f64 * CHAR_PX;
    (widest + 24.0).clamp(80.0, 460.0) as u32
}

// ---- startup: every run as a point -----------------------------------------

pub fn startup(results: &Results) -> Result<Option<String>, ChartError> {
    strip(
        "Warm startup, every run (start to exit of /bin/true)",
        results,
        &results.startup.warm,
        &results.startup.cold,
    )
}

pub fn monitor(results: &Results) -> Result<Option<String>, ChartError> {
    strip(
        "Monitor: the test guest booted to its exit, every run",
        results,
        &results.startup.monitor,
        &[],
    )
}

fn positive(v: &f64) -> bool {
    v.is_finite() && *v > 0.0
}

struct Strip<'r> {
    title: &'r str,
    rows: Vec<&'r StartupSeries>,
    labels: Vec<&'r str>,
    emulated: Vec<bool>,
    colors: Vec<RGBColor>,
    cold: Vec<Option<f64>>,
    keys: Vec<Key>,
}

const STRIP_ROW: u32 = 46;

fn strip(
    title: &str,
    results: &Results,
    series: &[StartupSeries],
    cold: &[ColdStart],
) -> Result<Option<String>, ChartError> {
    let rows: Vec<&StartupSeries> = ordered(results, series, |s| &s.subject)
        .into_iter()
        .filter(|s| s.ms.iter().any(positive))
        .collect();
    if rows.is_empty() {
        return Ok(None);
    }
    let cold: Vec<Option<f64>> = rows
        .iter()
        .map(|s| {
            cold.iter()
                .find(|c| c.subject == s.subject)
                .map(|c| c.ms)
                .filter(positive)
        })
        .collect();
    let values = || {
        rows.iter()
            .flat_map(|s| s.ms.iter().copied())
            .chain(cold.iter().flatten().copied())
            .filter(positive)
    };
    let lo = values().fold(f64::INFINITY, f64::min);
    let hi = values().fold(0.0, f64::max);

    let emulated: Vec<bool> = rows.iter().map(|s| emulated(results, &s.subject)).collect();
    let mut keys = vec![
        key(Swatch::Dot, NEUTRAL, "one run"),
        key(Swatch::Tick, INK, "median"),
    ];
    if cold.iter().any(Option::is_some) {
        keys.push(key(Swatch::Cross, INK, "cold: first run after the import"));
    }
    if emulated.contains(&true) {
        keys.push(emulated_key(Swatch::Hollow));
    }
    let s = Strip {
        title,
        labels: rows.iter().map(|s| label(results, &s.subject)).collect(),
        colors: rows
            .iter()
            .map(|s| color(super::rank(results, &s.subject)))
            .collect(),
        rows,
        emulated,
        cold,
        keys,
    };

    // Runs that span more than a decade (a container next to a VM) only
    // read on a log axis; a narrow spread reads better on a linear one.
    if hi / lo > 20.0 {
        draw_strip(
            &s,
            (lo / 1.4..hi * 1.4).log_scale(),
            lo / 1.4,
            "milliseconds (log scale)",
        )
    } else {
        draw_strip(&s, 0.0..hi * 1.1, 0.0, "milliseconds")
    }
    .map(Some)
}

fn draw_strip<X>(s: &Strip, x: X, x_start: f64, x_desc: &str) -> Result<String, ChartError>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let n = s.rows.len();
    let plot_h = n as u32 * STRIP_ROW;
    let upper_h = 50 + plot_h + 50;
    let height = upper_h + legend_height(&s.keys) + 10;
    let label_w = label_area(s.labels.iter().map(|l| l.chars().count()));

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let (upper, _) = root.split_vertically(upper_h);
        let mut chart = ChartBuilder::on(&upper)
            .margin(10)
            .margin_right(30)
            .caption(s.title, font(TITLE))
            .x_label_area_size(45)
            .y_label_area_size(label_w)
            .build_cartesian_2d(x, -0.5..n as f64 - 0.5)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .y_label_formatter(&|_| String::new())
            .x_labels(10)
            .x_label_formatter(&|v| tick(*v))
            .x_desc(x_desc)
            .label_style(font(SMALL))
            .axis_desc_style(font(FONT))
            .bold_line_style(GRID)
            .light_line_style(WHITE)
            .draw()?;

        for (i, series) in s.rows.iter().enumerate() {
            // The first subject on top.
            let y = (n - 1 - i) as f64;
            let (c, hollow) = (s.colors[i], s.emulated[i]);
            if i % 2 == 1 {
                let (left, top) = chart.backend_coord(&(x_start, y + 0.5));
                let (_, bottom) = chart.backend_coord(&(x_start, y - 0.5));
                let right = root.dim_in_pixel().0 as i32 - 30;
                root.draw(&Rectangle::new(
                    [(left + 1, top), (right, bottom)],
                    RGBColor(248, 248, 248).filled(),
                ))?;
            }
            for (k, ms) in series.ms.iter().copied().filter(positive).enumerate() {
                // A fixed spread (golden ratio steps) keeps equal runs apart
                // and the chart identical from one rendering to the next.
                let jitter = ((k as f64 * 0.618_034) % 1.0 - 0.5) * 0.5;
                let style = if hollow {
                    c.stroke_width(2)
                } else {
                    c.mix(0.8).filled()
                };
                chart.draw_series(std::iter::once(Circle::new((ms, y + jitter), 4, style)))?;
            }
            let median = series.summary.median;
            if positive(&median) {
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(median, y - 0.4), (median, y + 0.4)],
                    INK.stroke_width(3),
                )))?;
            }
            if let Some(cold) = s.cold[i] {
                let at = chart.backend_coord(&(cold, y));
                root.draw(&Cross::new(at, 6, INK.stroke_width(2)))?;
            }
            let (left, mid) = chart.backend_coord(&(x_start, y));
            root.draw(&Text::new(
                s.labels[i].to_string(),
                (left - 8, mid),
                font(FONT).pos(Pos::new(HPos::Right, VPos::Center)),
            ))?;
            if positive(&median) {
                // Above the points, beside the median's tick.
                let (x, _) = chart.backend_coord(&(median, y));
                let text = format!("median {} ms", fmt_ms(median));
                // Left of the tick when it would run off the chart.
                let (x, side) = if x + 5 + text_px(&text) > WIDTH as i32 {
                    (x - 5, HPos::Right)
                } else {
                    (x + 5, HPos::Left)
                };
                root.draw(&Text::new(
                    text,
                    (x, mid - STRIP_ROW as i32 / 2 + 7),
                    font(SMALL).pos(Pos::new(side, VPos::Center)),
                ))?;
            }
        }
        draw_legend(&root, upper_h as i32, &s.keys)?;
        root.present()?;
    }
    Ok(svg)
}

// ---- horizontal bars: phases, memory, disk ---------------------------------

struct Seg {
    from: f64,
    to: f64,
    color: RGBColor,
    hatched: bool,
}

/// One bar (stacked segments) and the figure written after it.
struct Lane {
    segs: Vec<Seg>,
    text: String,
}

struct BarRow {
    label: String,
    lanes: Vec<Lane>,
}

/// Rows sharing one x axis.
struct Panel {
    x_desc: String,
    rows: Vec<BarRow>,
}

const LANE: u32 = 16;
const ROW_PAD: u32 = 14;

fn lane(value: f64, c: RGBColor, hatched: bool, text: String) -> Lane {
    Lane {
        segs: vec![Seg {
            from: 0.0,
            to: value,
            color: c,
            hatched,
        }],
        text,
    }
}

fn row_height(row: &BarRow) -> u32 {
    row.lanes.len().max(1) as u32 * LANE + ROW_PAD
}

fn panel_height(panel: &Panel) -> u32 {
    panel.rows.iter().map(row_height).sum::<u32>() + 55
}

fn hbars(title: &str, panels: &[Panel], keys: &[Key]) -> Result<String, ChartError> {
    let title_h = 40;
    let panels_h: u32 = panels.iter().map(panel_height).sum();
    let height = title_h + panels_h + legend_height(keys) + 10;
    let label_w = label_area(
        panels
            .iter()
            .flat_map(|p| &p.rows)
            .map(|r| r.label.chars().count()),
    );

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        root.draw(&Text::new(
            title.to_string(),
            (WIDTH as i32 / 2, 12),
            font(TITLE).pos(Pos::new(HPos::Center, VPos::Top)),
        ))?;
        let mut top = title_h;
        for panel in panels {
            let h = panel_height(panel);
            let (_, below) = root.split_vertically(top);
            let (area, _) = below.split_vertically(h);
            draw_panel(&root, &area, panel, label_w)?;
            top += h;
        }
        draw_legend(&root, top as i32, keys)?;
        root.present()?;
    }
    Ok(svg)
}

fn draw_panel(root: &Area, area: &Area, panel: &Panel, label_w: u32) -> Result<(), ChartError> {
    let total: u32 = panel.rows.iter().map(row_height).sum();
    let max = panel
        .rows
        .iter()
        .flat_map(|r| &r.lanes)
        .flat_map(|l| &l.segs)
        .map(|s| s.to.max(s.from))
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    // Room on the right for the figure written after the longest bar.
    let x_max = if max > 0.0 { max * 1.22 } else { 1.0 };

    let mut chart = ChartBuilder::on(area)
        .margin_left(10)
        .margin_right(30)
        .margin_top(5)
        .x_label_area_size(45)
        .y_label_area_size(label_w)
        .build_cartesian_2d(0.0..x_max, 0.0..f64::from(total))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .y_label_formatter(&|_| String::new())
        .x_labels(8)
        .x_label_formatter(&|v| tick(*v))
        .x_desc(panel.x_desc.as_str())
        .label_style(font(SMALL))
        .axis_desc_style(font(FONT))
        .bold_line_style(GRID)
        .light_line_style(WHITE)
        .draw()?;

    // y counts pixels down from the top of the panel's rows.
    let y_of = |from_top: f64| f64::from(total) - from_top;
    let mut row_top = 0.0;
    for (i, row) in panel.rows.iter().enumerate() {
        let h = f64::from(row_height(row));
        if i > 0 {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(0.0, y_of(row_top)), (x_max, y_of(row_top))],
                GRID.stroke_width(1),
            )))?;
        }
        for (k, lane) in row.lanes.iter().enumerate() {
            let mid = row_top + f64::from(ROW_PAD) / 2.0 + (k as f64 + 0.5) * f64::from(LANE);
            let (y_top, y_bottom) = (y_of(mid - 6.5), y_of(mid + 6.5));
            let mut end = 0.0_f64;
            for seg in &lane.segs {
                if !(seg.from.is_finite() && seg.to.is_finite()) || seg.to <= seg.from {
                    continue;
                }
                end = end.max(seg.to);
                let fill = if seg.hatched {
                    lighter(seg.color)
                } else {
                    seg.color
                };
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(seg.from, y_top), (seg.to, y_bottom)],
                    fill.filled(),
                )))?;
                if seg.hatched {
                    hatch(
                        root,
                        chart.backend_coord(&(seg.from, y_top)),
                        chart.backend_coord(&(seg.to, y_bottom)),
                        seg.color,
                    )?;
                }
            }
            let (x, y) = chart.backend_coord(&(end, y_of(mid)));
            root.draw(&Text::new(
                lane.text.clone(),
                (x + 5, y),
                font(SMALL).pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
        }
        let (left, y) = chart.backend_coord(&(0.0, y_of(row_top + h / 2.0)));
        root.draw(&Text::new(
            row.label.clone(),
            (left - 8, y),
            font(FONT).pos(Pos::new(HPos::Right, VPos::Center)),
        ))?;
        row_top += h;
    }
    Ok(())
}

// ---- phases ------------------------------------------------------------------

pub fn phases(results: &Results) -> Result<Option<String>, ChartError> {
    let all = ordered(results, &results.startup.phases, |p| &p.subject);
    let all: Vec<_> = all.into_iter().filter(|p| !p.at_ms.is_empty()).collect();
    if all.is_empty() {
        return Ok(None);
    }
    // One colour per phase name, the same in every backend's bar.
    let mut names: Vec<&str> = Vec::new();
    for p in &all {
        for (name, _) in &p.at_ms {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
    }
    let any_emulated = all.iter().any(|p| emulated(results, &p.subject));
    // Each backend gets its own axis: a VM's boot next to a container's
    // few milliseconds would leave the container's phases invisible.
    let panels = all
        .iter()
        .map(|p| {
            let hatched = emulated(results, &p.subject);
            let mut previous = 0.0;
            let segs = p
                .at_ms
                .iter()
                .map(|(name, at)| {
                    let from = previous;
                    previous = at.max(previous);
                    Seg {
                        from,
                        to: previous,
                        color: color(names.iter().position(|n| n == name).unwrap_or(0)),
                        hatched,
                    }
                })
                .collect();
            Panel {
                x_desc: "milliseconds since the backend's start".to_string(),
                rows: vec![BarRow {
                    label: label(results, &p.subject).to_string(),
                    lanes: vec![Lane {
                        segs,
                        text: format!("{} ms", fmt_ms(previous)),
                    }],
                }],
            }
        })
        .collect::<Vec<_>>();
    let mut keys: Vec<Key> = names
        .iter()
        .enumerate()
        .map(|(i, n)| key(Swatch::Box, color(i), *n))
        .collect();
    if any_emulated {
        keys.push(emulated_key(Swatch::Hatched));
    }
    hbars("Startup phases (median), per isola backend", &panels, &keys).map(Some)
}

// ---- memory ------------------------------------------------------------------

pub fn memory(results: &Results) -> Result<Option<String>, ChartError> {
    if results.memory.is_empty() {
        return Ok(None);
    }
    const METRICS: [&str; 4] = [
        "host PSS (what the host pays)",
        "cgroup charge",
        "VMM resident set",
        "guest memory touched",
    ];
    let mut used = [false; 4];
    let rows = ordered(results, &results.memory, |m| &m.subject)
        .into_iter()
        .map(|m| {
            let hatched = emulated(results, &m.subject);
            let figures = [
                Some(m.host_pss_kib),
                m.cgroup_kib,
                m.vmm_rss_kib,
                m.guest_touched_kib,
            ];
            let lanes = figures
                .iter()
                .enumerate()
                .filter_map(|(i, kib)| {
                    let kib = (*kib)?;
                    used[i] = true;
                    Some(lane(
                        kib as f64 / 1024.0,
                        color(i),
                        hatched,
                        format!("{} MiB", fmt_mib_of_kib(kib)),
                    ))
                })
                .collect();
            BarRow {
                label: label(results, &m.subject).to_string(),
                lanes,
            }
        })
        .collect::<Vec<_>>();
    let mut keys: Vec<Key> = METRICS
        .iter()
        .enumerate()
        .filter(|(i, _)| used[*i])
        .map(|(i, m)| key(Swatch::Box, color(i), *m))
        .collect();
    if results.memory.iter().any(|m| emulated(results, &m.subject)) {
        keys.push(emulated_key(Swatch::Hatched));
    }
    let panel = Panel {
        x_desc: "MiB".to_string(),
        rows,
    };
    hbars("Memory of one idle sandbox", &[panel], &keys).map(Some)
}

// ---- disk ----------------------------------------------------------------------

/// MiB unless everything is under one, then KiB: `(divisor, unit)`.
fn byte_unit(max: u64) -> (f64, &'static str) {
    if max >= 1024 * 1024 {
        (1024.0 * 1024.0, "MiB")
    } else {
        (1024.0, "KiB")
    }
}

pub fn disk(results: &Results) -> Result<Option<String>, ChartError> {
    let d = &results.disk;
    let has_image = d.image.bytes > 0;
    if !has_image && d.per_sandbox.is_empty() && d.vm_extra.is_empty() {
        return Ok(None);
    }
    let max = d
        .per_sandbox
        .iter()
        .chain(&d.vm_extra)
        .map(|i| i.bytes)
        .chain([d.image.bytes, d.image.shared_bytes + d.image.unique_bytes])
        .max()
        .unwrap_or(0);
    let (div, unit) = byte_unit(max);
    let mut rows = Vec::new();
    if has_image {
        let shared = d.image.shared_bytes as f64 / div;
        let unique = d.image.unique_bytes as f64 / div;
        rows.push(BarRow {
            label: format!("image {}", d.image.name),
            lanes: vec![Lane {
                segs: vec![
                    Seg {
                        from: 0.0,
                        to: shared,
                        color: color(0),
                        hatched: false,
                    },
                    Seg {
                        from: shared,
                        to: shared + unique,
                        color: color(1),
                        hatched: false,
                    },
                ],
                text: fmt_bytes(d.image.bytes),
            }],
        });
    }
    let items = ordered(results, &d.per_sandbox, |i| &i.subject)
        .into_iter()
        .map(|i| (i, 2))
        .chain(
            ordered(results, &d.vm_extra, |i| &i.subject)
                .into_iter()
                .map(|i| (i, 3)),
        );
    for (item, c) in items {
        rows.push(BarRow {
            label: format!("{}: {}", label(results, &item.subject), item.what),
            lanes: vec![lane(
                item.bytes as f64 / div,
                color(c),
                emulated(results, &item.subject),
                fmt_bytes(item.bytes),
            )],
        });
    }
    let mut keys = Vec::new();
    if has_image {
        keys.push(key(
            Swatch::Box,
            color(0),
            "image: shared with other images",
        ));
        keys.push(key(Swatch::Box, color(1), "image: unique to it"));
    }
    if !d.per_sandbox.is_empty() {
        keys.push(key(Swatch::Box, color(2), "what one sandbox adds"));
    }
    if !d.vm_extra.is_empty() {
        keys.push(key(
            Swatch::Box,
            color(3),
            "what the VM needs besides the store",
        ));
    }
    if d.per_sandbox
        .iter()
        .chain(&d.vm_extra)
        .any(|i| emulated(results, &i.subject))
    {
        keys.push(emulated_key(Swatch::Hatched));
    }
    let panel = Panel {
        x_desc: unit.to_string(),
        rows,
    };
    hbars("Disk", &[panel], &keys).map(Some)
}

pub fn sharing(results: &Results) -> Result<Option<String>, ChartError> {
    let sharing = &results.disk.sharing;
    if sharing.is_empty() {
        return Ok(None);
    }
    let max = sharing
        .iter()
        .map(|s| s.store_bytes.max(s.sum_of_images_bytes))
        .max()
        .unwrap_or(0);
    let (div, unit) = byte_unit(max);
    let rows = sharing
        .iter()
        .map(|s| BarRow {
            label: format!("{} image{}", s.images, if s.images == 1 { "" } else { "s" }),
            lanes: vec![
                lane(
                    s.store_bytes as f64 / div,
                    color(0),
                    false,
                    fmt_bytes(s.store_bytes),
                ),
                lane(
                    s.sum_of_images_bytes as f64 / div,
                    color(7),
                    false,
                    fmt_bytes(s.sum_of_images_bytes),
                ),
            ],
        })
        .collect();
    let keys = [
        key(Swatch::Box, color(0), "what the store holds"),
        key(
            Swatch::Box,
            color(7),
            "the images' sizes added up (unshared)",
        ),
    ];
    let panel = Panel {
        x_desc: unit.to_string(),
        rows,
    };
    hbars("N images sharing one base layer", &[panel], &keys).map(Some)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::sample;

    /// A minimal well-formedness check (no XML parser in the dependency
    /// tree): tags nest and close, attributes are quoted, `&` starts an
    /// entity.
    pub(crate) fn assert_well_formed(name: &str, svg: &str) {
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = svg;
        while let Some(open) = rest.find('<') {
            let text = &rest[..open];
            assert_entities(name, text);
            let close = rest[open..]
                .find('>')
                .unwrap_or_else(|| panic!("{name}: unclosed tag"))
                + open;
            let tag = &rest[open + 1..close];
            rest = &rest[close + 1..];
            if let Some(end) = tag.strip_prefix('/') {
                let top = stack
                    .pop()
                    .unwrap_or_else(|| panic!("{name}: stray </{end}>"));
                assert_eq!(top, end.trim(), "{name}: </{end}> closes <{top}>");
            } else if tag.starts_with('?') || tag.starts_with('!') {
                continue;
            } else {
                assert_eq!(tag.matches('"').count() % 2, 0, "{name}: <{tag}>");
                assert_entities(name, tag);
                let tag_name = tag
                    .split(|c: char| c.is_whitespace() || c == '/')
                    .next()
                    .unwrap_or("");
                assert!(!tag_name.is_empty(), "{name}: empty tag");
                if !tag.ends_with('/') {
                    stack.push(tag_name);
                }
            }
        }
        assert!(stack.is_empty(), "{name}: unclosed {stack:?}");
        assert_entities(name, rest);
    }

    fn assert_entities(name: &str, text: &str) {
        for (i, _) in text.match_indices('&') {
            let entity = &text[i..text[i..].find(';').map_or(text.len(), |e| i + e + 1)];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#39;"].contains(&entity),
                "{name}: bare & in {text:?}"
            );
        }
    }

    #[test]
    fn every_chart_is_well_formed_and_names_its_subjects_by_label() {
        let r = sample();
        let charts = all(&r);
        let names: Vec<&str> = charts.iter().map(|(n, _)| n.as_str()).collect();
        // No monitor series in the sample: no monitor chart.
        assert_eq!(
            names,
            [
                "startup.svg",
                "phases.svg",
                "memory.svg",
                "disk.svg",
                "sharing.svg"
            ]
        );
        for (name, svg) in &charts {
            assert!(svg.starts_with("<svg"), "{name}");
            assert!(svg.trim_end().ends_with("</svg>"), "{name}");
            assert!(!svg.contains("could not be drawn"), "{name}: {svg}");
            assert_well_formed(name, svg);
        }
        let svg = |n: &str| &charts.iter().find(|(name, _)| name == n).unwrap().1;
        for name in ["startup.svg", "phases.svg", "memory.svg"] {
            for l in ["isola container", "vm (qemu-tcg: emulated, not KVM speed)"] {
                assert!(svg(name).contains(l), "{name} lacks {l}");
            }
            assert!(svg(name).contains(EMULATED_NOTE), "{name}");
        }
        assert!(svg("startup.svg").contains("crun 1.8.1"));
        assert!(svg("disk.svg").contains("isola container: upper dir and scratch"));
        assert!(svg("disk.svg").contains("image isola/busybox"));
        assert!(svg("sharing.svg").contains("4 images"));
    }

    #[test]
    fn an_emulated_subject_is_never_drawn_like_a_real_one() {
        let mut r = sample();
        let svg = memory(&r).unwrap().unwrap();
        assert!(svg.contains(EMULATED_NOTE));
        for s in &mut r.subjects {
            s.emulated = false;
        }
        let svg = memory(&r).unwrap().unwrap();
        assert!(!svg.contains(EMULATED_NOTE));
    }

    #[test]
    fn an_empty_dimension_has_no_chart() {
        let mut r = sample();
        r.startup.warm.clear();
        r.startup.phases.clear();
        r.memory.clear();
        r.disk.sharing.clear();
        let names: Vec<String> = all(&r).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["disk.svg"]);
    }

    #[test]
    fn a_narrow_spread_gets_a_linear_axis() {
        let mut r = sample();
        r.startup.warm.retain(|s| s.subject != "vm");
        r.startup.cold.retain(|c| c.subject != "vm");
        let svg = startup(&r).unwrap().unwrap();
        assert!(!svg.contains("log scale"));
        assert_well_formed("startup.svg", &svg);
        let wide = startup(&sample()).unwrap().unwrap();
        assert!(wide.contains("log scale"));
    }

    #[test]
    fn hatching_stays_inside_its_rectangle() {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (100, 100)).into_drawing_area();
            hatch(&root, (10, 20), (60, 40), INK).unwrap();
            root.present().unwrap();
        }
        assert!(svg.contains("polyline"), "{svg}");
        for line in svg.lines().filter(|l| l.contains("points=")) {
            let start = line.find("points=\"").unwrap() + 8;
            let end = line[start..].find('"').unwrap() + start;
            for pair in line[start..end].split_whitespace() {
                let (x, y) = pair.split_once(',').unwrap();
                let (x, y): (i32, i32) = (x.parse().unwrap(), y.parse().unwrap());
                assert!((10..=60).contains(&x) && (20..=40).contains(&y), "{pair}");
            }
        }
    }
}
