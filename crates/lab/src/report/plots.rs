//! The report's charts, drawn with plotters' SVG backend into strings.
//!
//! Every section builds its figures from three shapes: lines of named series (also used
//! for CDFs, timelines and scatter points), grouped bars over categories, and histograms
//! of raw samples. Each helper returns `None` when there is nothing finite to draw, so a
//! section never shows an empty or invented chart.

use std::ops::Range;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::{self, Categories};

/// Size of one chart panel, in pixels.
pub const WIDTH: u32 = 720;
pub const HEIGHT: u32 = 320;

const TITLE_FONT: (&str, u32) = ("sans-serif", 20);
const LABEL_FONT: (&str, u32) = ("sans-serif", 16);
const TICK_FONT: (&str, u32) = ("sans-serif", 14);
const GRID: RGBColor = RGBColor(222, 222, 222);
const FINE_GRID: RGBColor = RGBColor(245, 245, 245);
const MARKER_COLOR: RGBColor = RGBColor(110, 110, 110);
/// Beyond this many points a line is thinned: the SVG would grow without a visible gain.
const MAX_LINE_POINTS: usize = 600;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn = Result<(), DrawingAreaErrorKind<std::io::Error>>;

/// Distinct colours for series that have no meaning of their own (sizes, phases).
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];
pub const OK_GREEN: RGBColor = RGBColor(44, 160, 44);
pub const FAIL_RED: RGBColor = RGBColor(214, 39, 40);

pub fn palette(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Title and axis labels (with units) of a chart.
#[derive(Clone, Copy)]
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
}

impl<'a> Chart<'a> {
    pub fn new(title: &'a str, x_label: &'a str, y_label: &'a str) -> Self {
        Self {
            title,
            x_label,
            y_label,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Line,
    LineAndPoints,
    Points,
}

#[derive(Clone, Copy)]
pub enum LegendAt {
    UpperLeft,
    UpperRight,
    LowerRight,
}

/// One named series of a line chart.
pub struct Series {
    pub name: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
    pub mark: Mark,
    /// Whether the series gets a legend entry; with a hundred nodes only one line per
    /// colour should.
    pub legend: bool,
    pub thin: bool,
}

impl Series {
    pub fn new(name: impl Into<String>, color: RGBColor, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            color,
            points,
            mark: Mark::Line,
            legend: true,
            thin: false,
        }
    }

    pub fn mark(mut self, mark: Mark) -> Self {
        self.mark = mark;
        self
    }

    /// A 1 px line, one of many; `legend` picks whether it stands for its colour in the legend.
    pub fn thin(mut self, legend: bool) -> Self {
        self.thin = true;
        self.legend = legend;
        self
    }
}

/// A labelled vertical line at `x`, for events on a timeline.
pub struct Marker {
    pub x: f64,
    pub label: String,
}

/// A chart of named series over a numeric x axis.
pub struct LineChart<'a> {
    pub chart: Chart<'a>,
    pub series: Vec<Series>,
    pub markers: Vec<Marker>,
    /// Use a log x axis when the data spans more than two decades.
    pub log_x_if_wide: bool,
    /// A fixed y range (a CDF's 0..1), else fitted to the data from zero.
    pub y_fixed: Option<Range<f64>>,
    pub legend_at: LegendAt,
}

impl<'a> LineChart<'a> {
    pub fn new(chart: Chart<'a>, series: Vec<Series>) -> Self {
        Self {
            chart,
            series,
            markers: Vec::new(),
            log_x_if_wide: false,
            y_fixed: None,
            legend_at: LegendAt::UpperRight,
        }
    }
}

/// Draws `spec`, or `None` when it has no finite point (nor marker) to show.
pub fn line_chart(spec: &LineChart) -> Option<String> {
    let series: Vec<Series> = spec.series.iter().map(clean_series).collect();
    let mut xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    let has_points = !xs.is_empty();
    xs.extend(axis::finite(spec.markers.iter().map(|m| m.x)));
    if xs.is_empty() {
        return None;
    }
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .collect();
    let y = spec.y_fixed.clone().unwrap_or_else(|| {
        let fitted = axis::linear_range(&ys, true);
        if needs_headroom(spec) {
            fitted.start..fitted.end + (fitted.end - fitted.start) * 0.25
        } else {
            fitted
        }
    });
    // A log axis only when every x is positive, so no point has to be dropped for it.
    let log = has_points && spec.log_x_if_wide && axis::spans_decades(&xs, 2.0);
    render((WIDTH, HEIGHT), |area| {
        if log {
            draw_lines(area, spec, &series, axis::log_range(&xs).log_scale(), y)
        } else {
            draw_lines(area, spec, &series, axis::linear_range(&xs, false), y)
        }
    })
}

/// Whether the top of the plot must stay clear of data: an upper legend or event labels
/// would otherwise hide the lines under them.
fn needs_headroom(spec: &LineChart) -> bool {
    let upper_legend = !matches!(spec.legend_at, LegendAt::LowerRight)
        && spec.series.iter().any(|s| s.legend && !s.points.is_empty());
    upper_legend || !spec.markers.is_empty()
}

/// The series without non-finite points, thinned to a drawable size.
fn clean_series(s: &Series) -> Series {
    let points: Vec<(f64, f64)> = s
        .points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    Series {
        name: s.name.clone(),
        color: s.color,
        points: thin_out(points, MAX_LINE_POINTS),
        mark: s.mark,
        legend: s.legend,
        thin: s.thin,
    }
}

/// At most about `max` points, evenly picked, always keeping the last one.
fn thin_out(points: Vec<(f64, f64)>, max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max {
        return points;
    }
    let step = points.len().div_ceil(max);
    let last = points[points.len() - 1];
    let mut kept: Vec<_> = points.into_iter().step_by(step).collect();
    if kept.last() != Some(&last) {
        kept.push(last);
    }
    kept
}

fn draw_lines<X>(area: &Area, spec: &LineChart, series: &[Series], x: X, y: Range<f64>) -> Drawn
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let (y_lo, y_hi) = (y.start, y.end);
    let mut chart = ChartBuilder::on(area)
        .caption(spec.chart.title, TITLE_FONT)
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc(spec.chart.x_label)
        .y_desc(spec.chart.y_label)
        .axis_desc_style(LABEL_FONT)
        .label_style(TICK_FONT)
        .x_label_formatter(&|v| axis::tick(*v))
        .y_label_formatter(&|v| axis::tick(*v))
        .light_line_style(FINE_GRID)
        .bold_line_style(GRID)
        .draw()?;
    for s in series {
        draw_one_series(&mut chart, s)?;
    }
    for (i, m) in spec.markers.iter().enumerate() {
        draw_marker(&mut chart, m, i, (y_lo, y_hi))?;
    }
    if series.iter().any(|s| s.legend && !s.points.is_empty()) {
        chart
            .configure_series_labels()
            .position(legend_position(spec.legend_at))
            .label_font(TICK_FONT)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()?;
    }
    Ok(())
}

type LineContext<'a, X> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, RangedCoordf64>>;

fn draw_one_series<'a, X>(chart: &mut LineContext<'a, X>, s: &Series) -> Drawn
where
    X: Ranged<ValueType = f64>,
{
    if s.points.is_empty() {
        return Ok(());
    }
    let color = s.color;
    let width = if s.thin { 1 } else { 2 };
    let line = color.stroke_width(width);
    let dots = color.filled();
    let pts = s.points.iter().copied();
    // A lone point makes no line; draw it as a dot so the sample is still seen.
    let mark = match s.mark {
        Mark::Line if s.points.len() == 1 => Mark::Points,
        mark => mark,
    };
    let anno = match mark {
        Mark::Line => chart.draw_series(LineSeries::new(pts, line))?,
        Mark::LineAndPoints => {
            chart.draw_series(pts.clone().map(|p| Circle::new(p, 4, dots)))?;
            chart.draw_series(LineSeries::new(pts, line))?
        }
        Mark::Points => chart.draw_series(pts.map(|p| Circle::new(p, 3, dots)))?,
    };
    if s.legend {
        let points_only = mark == Mark::Points;
        anno.label(s.name.as_str()).legend(move |(x, y)| {
            if points_only {
                Circle::new((x + 8, y), 4, color.filled()).into_dyn()
            } else {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)).into_dyn()
            }
        });
    }
    Ok(())
}

/// A vertical line with its label; labels are staggered over four rows because events
/// (kill, restart) often come seconds apart and would overwrite each other.
fn draw_marker<'a, X>(
    chart: &mut LineContext<'a, X>,
    m: &Marker,
    index: usize,
    (y_lo, y_hi): (f64, f64),
) -> Drawn
where
    X: Ranged<ValueType = f64>,
{
    if !m.x.is_finite() {
        return Ok(());
    }
    let style = MARKER_COLOR.stroke_width(1);
    chart.draw_series(DashedLineSeries::new(
        [(m.x, y_lo), (m.x, y_hi)],
        4,
        3,
        style,
    ))?;
    let row = (index % 4) as i32;
    let label = EmptyElement::at((m.x, y_hi))
        + Text::new(
            m.label.clone(),
            (3, 2 + row * 13),
            TICK_FONT.into_font().color(&MARKER_COLOR),
        );
    chart.draw_series(std::iter::once(label))?;
    Ok(())
}

fn legend_position(at: LegendAt) -> SeriesLabelPosition {
    match at {
        LegendAt::UpperLeft => SeriesLabelPosition::UpperLeft,
        LegendAt::UpperRight => SeriesLabelPosition::UpperRight,
        LegendAt::LowerRight => SeriesLabelPosition::LowerRight,
    }
}

/// One named sample of raw values (latencies in ms, usually).
pub struct Sample<'a> {
    pub name: &'a str,
    pub color: RGBColor,
    pub values: &'a [f64],
}

/// Empirical CDF of each sample, one line each; `None` when all samples are empty.
pub fn cdf_chart(chart: Chart, samples: &[Sample]) -> Option<String> {
    let series: Vec<Series> = samples
        .iter()
        .filter_map(|s| {
            let points = ecdf(s.values);
            (!points.is_empty()).then(|| Series::new(s.name, s.color, points))
        })
        .collect();
    if series.is_empty() {
        return None;
    }
    let mut spec = LineChart::new(chart, series);
    spec.log_x_if_wide = true;
    spec.y_fixed = Some(0.0..1.0);
    spec.legend_at = LegendAt::LowerRight;
    line_chart(&spec)
}

/// Step points of the empirical CDF of the finite `values`.
pub fn ecdf(values: &[f64]) -> Vec<(f64, f64)> {
    let mut sorted = axis::finite(values.iter().copied());
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    let mut points = Vec::with_capacity(sorted.len() * 2);
    for (i, v) in sorted.iter().enumerate() {
        points.push((*v, i as f64 / n));
        points.push((*v, (i + 1) as f64 / n));
    }
    points
}

/// One coloured set of bar heights, one value per category (or bin).
pub struct BarGroup {
    pub name: String,
    pub values: Vec<f64>,
    /// Cycled over the bars, so a single colour or one colour per bar both work.
    pub colors: Vec<RGBColor>,
}

impl BarGroup {
    pub fn new(name: impl Into<String>, color: RGBColor, values: Vec<f64>) -> Self {
        Self {
            name: name.into(),
            values,
            colors: vec![color],
        }
    }

    fn color(&self, i: usize) -> RGBColor {
        if self.colors.is_empty() {
            palette(0)
        } else {
            self.colors[i % self.colors.len()]
        }
    }
}

/// Grouped bars over labelled categories.
pub struct BarPanel<'a> {
    pub chart: Chart<'a>,
    pub labels: Vec<String>,
    pub groups: Vec<BarGroup>,
}

impl BarPanel<'_> {
    fn is_drawable(&self) -> bool {
        !self.labels.is_empty()
            && self
                .groups
                .iter()
                .any(|g| g.values.iter().any(|v| v.is_finite()))
    }
}

pub fn bar_chart(panel: BarPanel) -> Option<String> {
    bar_panels(vec![panel])
}

/// Bar panels stacked in one figure (for quantities with different units side by side).
pub fn bar_panels(panels: Vec<BarPanel>) -> Option<String> {
    let panels: Vec<BarPanel> = panels.into_iter().filter(|p| p.is_drawable()).collect();
    if panels.is_empty() {
        return None;
    }
    let rows = panels.len();
    render((WIDTH, HEIGHT * rows as u32), |root| {
        for (area, panel) in root.split_evenly((rows, 1)).iter().zip(&panels) {
            let categories = Categories::new(panel.labels.clone());
            let slots: Vec<Range<f64>> = (0..categories.len())
                .map(|i| i as f64..i as f64 + 1.0)
                .collect();
            let labels = categories.label_capacity(WIDTH - 80);
            let bars = Bars {
                chart: panel.chart,
                slots: &slots,
                groups: &panel.groups,
                x_labels: labels,
                numeric_x: false,
                values_on_top: slots.len() * panel.groups.len() <= 12,
            };
            draw_bars(area, &bars, categories)?;
        }
        Ok(())
    })
}

/// Histogram of each sample over shared bins, the samples' bars side by side in each bin.
pub fn histogram_chart(chart: Chart, samples: &[Sample], bins: usize) -> Option<String> {
    let all: Vec<f64> = samples
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .collect();
    let (lo, hi) = axis::bounds(&all)?;
    let range = if hi > lo {
        lo..hi
    } else {
        axis::linear_range(&[lo], false)
    };
    let bins = bins.max(1);
    let width = (range.end - range.start) / bins as f64;
    let slots: Vec<Range<f64>> = (0..bins)
        .map(|i| range.start + width * i as f64..range.start + width * (i + 1) as f64)
        .collect();
    // An empty sample gets neither bars nor a legend entry.
    let groups: Vec<BarGroup> = samples
        .iter()
        .filter(|s| s.values.iter().any(|v| v.is_finite()))
        .map(|s| BarGroup::new(s.name, s.color, bin_counts(s.values, &range, bins)))
        .collect();
    let bars = Bars {
        chart,
        slots: &slots,
        groups: &groups,
        x_labels: 10,
        numeric_x: true,
        values_on_top: false,
    };
    render((WIDTH, HEIGHT), |area| {
        draw_bars(area, &bars, range.clone())
    })
}

/// Counts of the finite `values` in `bins` equal bins over `range` (the last bin closed).
fn bin_counts(values: &[f64], range: &Range<f64>, bins: usize) -> Vec<f64> {
    let mut counts = vec![0.0; bins];
    let width = (range.end - range.start) / bins as f64;
    for v in values.iter().filter(|v| v.is_finite()) {
        let i = ((v - range.start) / width).floor();
        if i >= 0.0 {
            counts[(i as usize).min(bins - 1)] += 1.0;
        }
    }
    counts
}

/// What `draw_bars` needs: where each slot lies on x, and the groups' heights per slot.
struct Bars<'a> {
    chart: Chart<'a>,
    slots: &'a [Range<f64>],
    groups: &'a [BarGroup],
    x_labels: usize,
    numeric_x: bool,
    values_on_top: bool,
}

fn draw_bars<X>(area: &Area, bars: &Bars, x: X) -> Drawn
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let heights: Vec<f64> = bars
        .groups
        .iter()
        .flat_map(|g| g.values.iter().copied())
        .collect();
    let mut y = axis::linear_range(&heights, true);
    if bars.values_on_top {
        // Room for the figures printed above the tallest bar.
        y.end += (y.end - y.start) * 0.08;
    }
    if bars.groups.len() > 1 {
        // The legend sits in the upper right: a row of about 18 px per group plus its frame,
        // in a plot area about 220 px high. The axis is stretched so that the bars and their
        // figures end below it.
        let share = (16.0 + 18.0 * bars.groups.len() as f64) / 220.0;
        y.end = y.start + (y.end - y.start) / (1.0 - share.min(0.6));
    }
    let mut chart = ChartBuilder::on(area)
        .caption(bars.chart.title, TITLE_FONT)
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y)?;
    let mut mesh = chart.configure_mesh();
    mesh.disable_x_mesh()
        .x_labels(bars.x_labels)
        .x_desc(bars.chart.x_label)
        .y_desc(bars.chart.y_label)
        .axis_desc_style(LABEL_FONT)
        .label_style(TICK_FONT)
        .y_label_formatter(&|v| axis::tick(*v))
        .light_line_style(FINE_GRID)
        .bold_line_style(GRID);
    // A category axis names its own ticks; a numeric one gets the compact labels.
    if bars.numeric_x {
        mesh.x_label_formatter(&|v| axis::tick(*v));
    }
    mesh.draw()?;
    let k = bars.groups.len().max(1) as f64;
    for (g, group) in bars.groups.iter().enumerate() {
        let rects =
            bars.slots
                .iter()
                .zip(&group.values)
                .enumerate()
                .filter_map(|(i, (slot, v))| {
                    let w = (slot.end - slot.start) * 0.8 / k;
                    let x0 = slot.start + (slot.end - slot.start) * 0.1 + w * g as f64;
                    v.is_finite()
                        .then(|| Rectangle::new([(x0, 0.0), (x0 + w, *v)], group.color(i).filled()))
                });
        let anno = chart.draw_series(rects)?;
        if bars.groups.len() > 1 {
            let color = group.color(0);
            anno.label(group.name.as_str()).legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
            });
        }
    }
    if bars.values_on_top {
        draw_bar_values(&mut chart, bars)?;
    }
    if bars.groups.len() > 1 {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(TICK_FONT)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()?;
    }
    Ok(())
}

/// Few bars: print each height above its bar so exact figures need no table lookup.
fn draw_bar_values<'a, X>(chart: &mut LineContext<'a, X>, bars: &Bars) -> Drawn
where
    X: Ranged<ValueType = f64>,
{
    let k = bars.groups.len().max(1) as f64;
    let style = TICK_FONT
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    for (g, group) in bars.groups.iter().enumerate() {
        let texts = bars
            .slots
            .iter()
            .zip(&group.values)
            .filter_map(|(slot, v)| {
                let w = (slot.end - slot.start) * 0.8 / k;
                let xc = slot.start + (slot.end - slot.start) * 0.1 + w * (g as f64 + 0.5);
                v.is_finite()
                    .then(|| Text::new(axis::tick(*v), (xc, *v), style.clone()))
            });
        chart.draw_series(texts)?;
    }
    Ok(())
}

/// Draws into a fresh SVG string; `None` if plotters reports an error.
fn render(size: (u32, u32), draw: impl FnOnce(&Area) -> Drawn) -> Option<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).ok()?;
        draw(&root).ok()?;
        root.present().ok()?;
    }
    Some(svg)
}
