//! Horizontal bars: panels of rows sharing an x axis, each row one or more
//! lanes of stacked segments with a figure after each; hatched when emulated.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::{label_area, tick};
use super::hatch::hatch;
use super::legend::{draw_legend, legend_height, Key};
use super::style::{font, lighter, FONT, GRID, SMALL, TITLE, WIDTH};
use super::{Area, ChartError};

pub(super) struct Seg {
    pub(super) from: f64,
    pub(super) to: f64,
    pub(super) color: RGBColor,
    pub(super) hatched: bool,
}

/// One bar (stacked segments) and the figure written after it.
pub(super) struct Lane {
    pub(super) segs: Vec<Seg>,
    pub(super) text: String,
}

pub(super) struct BarRow {
    pub(super) label: String,
    pub(super) lanes: Vec<Lane>,
}

/// Rows sharing one x axis.
pub(super) struct Panel {
    pub(super) x_desc: String,
    pub(super) rows: Vec<BarRow>,
}

const LANE: u32 = 16;
const ROW_PAD: u32 = 14;

pub(super) fn lane(value: f64, c: RGBColor, hatched: bool, text: String) -> Lane {
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

pub(super) fn hbars(title: &str, panels: &[Panel], keys: &[Key]) -> Result<String, ChartError> {
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
