//! Plots of a scenario's figures: grouped bars (one group per case, one bar per variant) at the
//! median with a min–max error bar, written as `<stem>.svg` and `<stem>.png`.
//!
//! Text needs a TrueType font (plotters' `ab_glyph` backend has none built in): the first of
//! [`FONT_PATHS`] that exists is loaded once. Without one, no plot is drawn and the report says
//! so; the numbers are all in the tables anyway.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;

use super::results::{Plot, ScenarioResult};
use super::stats::Metric;

/// Where fonts are looked for (Debian's fonts-dejavu-core and fonts-liberation, Fedora, Arch).
pub const FONT_PATHS: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
];

const FAMILY: &str = "sans-serif";
const SIZE: (u32, u32) = (960, 540);

/// Loads a font once; `Err` says why there is none.
fn font() -> Result<(), String> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let bytes = FONT_PATHS
                .iter()
                .find_map(|p| std::fs::read(p).ok())
                .ok_or_else(|| {
                    format!(
                        "no TrueType font found (looked in {}); install fonts-dejavu-core",
                        FONT_PATHS.join(", ")
                    )
                })?;
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font(FAMILY, FontStyle::Normal, bytes)
                .map_err(|_| "the font file is not usable".to_owned())
        })
        .clone()
}

/// Draws every plot of `result` into `dir`; returns the problems (empty when all went well).
pub fn draw(result: &ScenarioResult, dir: &Path) -> Vec<String> {
    if let Err(e) = font() {
        return vec![format!("plots not drawn: {e}")];
    }
    let mut problems = Vec::new();
    for plot in &result.plots {
        let metrics: Vec<&Metric> = result
            .metrics
            .iter()
            .filter(|m| m.name == plot.metric)
            .collect();
        if metrics.is_empty() {
            continue;
        }
        let svg = dir.join(format!("{}.svg", plot.stem));
        let png = dir.join(format!("{}.png", plot.stem));
        let drawn = bars(
            SVGBackend::new(&svg, SIZE).into_drawing_area(),
            plot,
            &metrics,
        )
        .and_then(|_| {
            bars(
                BitMapBackend::new(&png, SIZE).into_drawing_area(),
                plot,
                &metrics,
            )
        });
        if let Err(e) = drawn {
            problems.push(format!("plot {}: {e}", plot.stem));
        }
    }
    problems
}

/// A variant's colour: the same in every plot.
fn colour(variant: &str) -> RGBColor {
    match variant {
        v if v.starts_with("quic") && v.contains("1stream") => RGBColor(120, 170, 230),
        v if v.starts_with("quic") => RGBColor(31, 119, 180),
        "tcp" => RGBColor(255, 127, 14),
        "tls" => RGBColor(44, 160, 44),
        _ => RGBColor(148, 103, 189),
    }
}

fn unique<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen: Vec<&str> = Vec::new();
    for v in values {
        if !seen.contains(&v) {
            seen.push(v);
        }
    }
    seen
}

/// Short numbers for bar labels: 1234 -> 1.23k.
pub fn short(v: f64) -> String {
    match v.abs() {
        a if a >= 1e9 => format!("{:.2}G", v / 1e9),
        a if a >= 1e6 => format!("{:.2}M", v / 1e6),
        a if a >= 1e4 => format!("{:.1}k", v / 1e3),
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 10.0 => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    }
}

fn bars<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    plot: &Plot,
    metrics: &[&Metric],
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let cases = unique(metrics.iter().map(|m| m.case.as_str()));
    let variants = unique(metrics.iter().map(|m| m.variant.as_str()));
    let width = 0.8 / variants.len() as f64;
    let top = metrics
        .iter()
        .map(|m| m.figure.max)
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.15;
    root.fill(&WHITE).map_err(err)?;
    let unit = metrics.first().map(|m| m.unit.as_str()).unwrap_or("");
    let mut chart = ChartBuilder::on(&root)
        .caption(&plot.title, (FAMILY, 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..cases.len() as f64, 0.0..top)
        .map_err(err)?;
    // Key points fall every 0.5: the case names go at the middle of each group.
    let x_label = |x: &f64| {
        let centre = (x - x.floor() - 0.5).abs() < 1e-6;
        let name = cases.get(x.floor() as usize).filter(|_| centre);
        name.map_or_else(String::new, |c| c.to_string())
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(2 * cases.len() + 1)
        .x_label_formatter(&x_label)
        .y_label_formatter(&|y| short(*y))
        .y_desc(format!(
            "{} ({unit}); bar = median, whisker = min..max",
            plot.metric
        ))
        .label_style((FAMILY, 14))
        .draw()
        .map_err(err)?;
    let label = (FAMILY, 12)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    for (j, variant) in variants.iter().enumerate() {
        let mine: Vec<(f64, &Metric)> = metrics
            .iter()
            .filter(|m| m.variant == *variant)
            .filter_map(|m| {
                Some((
                    cases.iter().position(|c| *c == m.case)? as f64 + 0.1 + j as f64 * width,
                    *m,
                ))
            })
            .collect();
        let fill = colour(variant);
        chart
            .draw_series(mine.iter().map(|(x, m)| {
                Rectangle::new(
                    [(*x, 0.0), (x + width * 0.95, m.figure.median)],
                    fill.filled(),
                )
            }))
            .map_err(err)?
            .label(*variant)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], fill.filled()));
        let centre = |x: f64| x + width * 0.475;
        chart
            .draw_series(mine.iter().map(|(x, m)| {
                ErrorBar::new_vertical(
                    centre(*x),
                    m.figure.min,
                    m.figure.median,
                    m.figure.max,
                    BLACK.stroke_width(1),
                    8,
                )
            }))
            .map_err(err)?;
        chart
            .draw_series(mine.iter().map(|(x, m)| {
                Text::new(
                    short(m.figure.median),
                    (centre(*x), m.figure.max),
                    label.clone(),
                )
            }))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FAMILY, 14))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}
