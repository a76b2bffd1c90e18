//! SVG curves of the benchmarks' figures, drawn with `plotters` (its SVG
//! backend only: no fonts are loaded, text is left to the viewer):
//! latency against offered load for a staged run ([`latency_curve`]), and
//! quantities over time for a soak ([`time_series`]).

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

/// Width and height of every plot, in pixels.
const SIZE: (u32, u32) = (900, 540);

/// The colours of successive series.
const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// One point of a staged run: offered load and the latencies at it.
#[derive(Debug, Clone, Copy)]
pub struct LatencyPoint {
    /// Offered load (requests or events per second).
    pub offered: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
}

/// Creates the folder of `path`.
fn create_parent(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

/// `(low, high)` padded for a logarithmic axis: a decade's tenth either
/// side, never zero or negative.
fn log_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return (0.1, 1.0);
    }
    (lo / 1.25, hi * 1.25)
}

/// p50 and p99 latency against offered load, both axes logarithmic; the
/// knee (if any) marked by a vertical line. Written to `path` (an SVG
/// file; its folder is created).
pub fn latency_curve(
    path: &Path,
    title: &str,
    load_unit: &str,
    points: &[LatencyPoint],
    knee: Option<usize>,
) -> anyhow::Result<()> {
    create_parent(path)?;
    let (x0, x1) = log_range(points.iter().map(|p| p.offered));
    let (y0, y1) = log_range(points.iter().flat_map(|p| [p.p50_ms, p.p99_ms]));
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())?;
    chart
        .configure_mesh()
        .x_desc(format!("offered load ({load_unit}, log scale)"))
        .y_desc("latency, ms (log scale)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.3}"))
        .draw()?;
    for (i, (name, pick)) in [
        (
            "p50",
            (|p: &LatencyPoint| p.p50_ms) as fn(&LatencyPoint) -> f64,
        ),
        ("p99", |p: &LatencyPoint| p.p99_ms),
    ]
    .into_iter()
    .enumerate()
    {
        let colour = COLOURS[i];
        let series: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.offered, pick(p).max(y0)))
            .collect();
        chart
            .draw_series(LineSeries::new(series.clone(), colour.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
        chart.draw_series(
            series
                .into_iter()
                .map(|xy| Circle::new(xy, 4, colour.filled())),
        )?;
    }
    if let Some(knee) = knee.and_then(|k| points.get(k)) {
        let grey = RGBColor(120, 120, 120);
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(knee.offered, y0), (knee.offered, y1)],
                grey.stroke_width(1),
            )))?
            .label(format!("knee: {:.0} {load_unit}", knee.offered))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// One named series over time: `(seconds, value)`.
pub type Series = (String, Vec<(f64, f64)>);

/// `series` against time in seconds, on linear axes from 0. Written to
/// `path` (an SVG file; its folder is created).
pub fn time_series(
    path: &Path,
    title: &str,
    y_desc: &str,
    series: &[Series],
) -> anyhow::Result<()> {
    create_parent(path)?;
    let points = || series.iter().flat_map(|(_, s)| s.iter());
    let x1 = points().map(|p| p.0).fold(1.0, f64::max);
    let y1 = points()
        .map(|p| p.1)
        .filter(|v| v.is_finite())
        .fold(1.0, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(0.0..x1, 0.0..y1)?;
    chart
        .configure_mesh()
        .x_desc("time since the feed started, s")
        .y_desc(y_desc)
        .draw()?;
    for (i, (name, s)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(s.iter().copied(), colour.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
