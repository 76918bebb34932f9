//! PNG line plots of accuracy against optimisation step: one colour and one marker shape per group (an alpha's
//! trajectory), one line style per kind of series (solid, dashed), the legend beside the chart, off the data.
//! Series that coincide stay visible: an earlier group's line is drawn wider and its hollow markers larger, so a
//! later group's line and markers on top of it leave it showing around them.
//!
//! Drawn with plotters into an in-memory RGB buffer (the DejaVu Sans font is embedded, so no system fonts are
//! needed) and encoded to PNG with the `image` crate. No file I/O happens here: [`accuracy_png`] returns the PNG
//! bytes and the caller writes them.

use anyhow::{Context, Result, anyhow, bail};
use plotters::backend::RGBPixel;
use plotters::element::{DashedPathElement, Drawable, PointCollection};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use plotters_backend::{BackendCoord, DrawingErrorKind};
use std::io::Cursor;
use std::sync::OnceLock;

/// How a series' line is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineStyle {
    Solid,
    Dashed,
}

/// One line of the plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend entry (an empty label gets no legend entry).
    pub label: String,
    /// `(step, accuracy in percent)`; points whose accuracy is not finite are skipped.
    pub points: Vec<(usize, f64)>,
    /// Which group the series belongs to: its colour and marker shape.
    pub group: usize,
    pub line: LineStyle,
}

/// Width of the plot in pixels, the legend included.
pub const WIDTH: u32 = 1200;
/// Width of the legend panel to the right of the chart.
const LEGEND_WIDTH: u32 = 290;
/// Height of the plot in pixels.
pub const HEIGHT: u32 = 600;

/// The largest step that can be plotted (plotters' integer tick computation overflows near `usize::MAX`).
pub const MAX_STEP: usize = 1_000_000_000_000;
/// The largest accuracy magnitude that can be plotted (plotters' tick computation breaks down for spans near the
/// end of the f64 range).
pub const MAX_ABS_Y: f64 = 1e15;

/// The font family name the embedded DejaVu Sans is registered under.
pub(crate) const FONT: &str = "sans-serif";

/// Line colours (the matplotlib "tab10" palette), cycled when there are more series.
pub(crate) const COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Registers the embedded DejaVu Sans with plotters once per process.
pub(crate) fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok());
    if ok { Ok(()) } else { Err(anyhow!("cannot register the embedded DejaVu Sans font with plotters")) }
}

/// The y axis range for the finite values `ys`: their min to max with a 5% margin (at least 0.5 either side), or
/// 0..100 when there are none.
fn y_range(ys: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| (lo.min(y), hi.max(y)));
    if lo > hi {
        return (0.0, 100.0);
    }
    // The last term keeps the margin visible next to large values, where 0.5 could be lost to rounding.
    let margin = ((hi - lo) * 0.05).max(0.5).max(lo.abs().max(hi.abs()) * 1e-6);
    let (a, b) = (lo - margin, hi + margin);
    if a < b && a.is_finite() && b.is_finite() { (a, b) } else { (0.0, 100.0) }
}

/// Draws `series` as a line plot of accuracy (`y_label`) against step and returns the PNG bytes.
///
/// The x axis runs from 0 to the largest step (at least 1); the y axis from the smallest to the largest finite
/// accuracy with a small margin (0..100 when there is none). Non-finite accuracies are skipped, each series'
/// points are drawn in step order, and each series gets its own colour, small point markers and (when its label
/// is not empty) a legend entry.
///
/// Errors when a step exceeds [`MAX_STEP`] or a finite accuracy's magnitude exceeds [`MAX_ABS_Y`] (plotters
/// cannot lay out such axes), or when drawing or encoding fails.
pub fn accuracy_png(title: &str, y_label: &str, series: &[Series]) -> Result<Vec<u8>> {
    ensure_font()?;
    for s in series {
        if let Some(&(step, _)) = s.points.iter().find(|&&(step, _)| step > MAX_STEP) {
            bail!("cannot plot `{}`: step {step} is beyond the largest plottable step {MAX_STEP}", s.label);
        }
        if let Some(&(_, y)) = s.points.iter().find(|&&(_, y)| y.is_finite() && y.abs() > MAX_ABS_Y) {
            bail!("cannot plot `{}`: the value {y} is beyond the plottable range ±{MAX_ABS_Y:e}", s.label);
        }
    }

    let lines: Vec<(&str, Vec<(usize, f64)>)> = series
        .iter()
        .map(|s| {
            let mut points: Vec<(usize, f64)> = s.points.iter().copied().filter(|(_, y)| y.is_finite()).collect();
            points.sort_by_key(|&(x, _)| x);
            (s.label.as_str(), points)
        })
        .collect();
    let max_step = lines.iter().flat_map(|(_, p)| p.iter().map(|&(x, _)| x)).max().unwrap_or(0).max(1);
    let (y_lo, y_hi) = y_range(lines.iter().flat_map(|(_, p)| p.iter().map(|&(_, y)| y)));

    let mut buf = vec![0u8; WIDTH as usize * HEIGHT as usize * 3];
    {
        let backend = BitMapBackend::<RGBPixel>::with_buffer_and_format(&mut buf, (WIDTH, HEIGHT))
            .map_err(|e| anyhow!("cannot create the plot bitmap: {e}"))?;
        let root = backend.into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("cannot fill the plot background: {e}"))?;

        let (chart_area, legend_area) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
        let mut chart = ChartBuilder::on(&chart_area)
            .caption(title, (FONT, 26))
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(0..max_step, y_lo..y_hi)
            .map_err(|e| anyhow!("cannot lay out the plot: {e}"))?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc(y_label)
            .x_labels(12)
            .y_labels(10)
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 18))
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(205, 205, 205))
            .y_label_formatter(&|y| format!("{y:.1}"))
            .draw()
            .map_err(|e| anyhow!("cannot draw the plot axes: {e}"))?;

        // Group by group, the widest first, so that a later group's line lies inside an earlier one's.
        let groups = series.iter().map(|s| s.group + 1).max().unwrap_or(0);
        let mut order: Vec<usize> = (0..series.len()).collect();
        order.sort_by_key(|&i| series[i].group);
        for &i in &order {
            let ((label, points), look) = (&lines[i], Look::of(&series[i], groups));
            let style = look.colour.stroke_width(look.width);
            let drawn = match series[i].line {
                LineStyle::Solid => chart.draw_series(LineSeries::new(points.iter().copied(), style)),
                LineStyle::Dashed => chart.draw_series(DashedLineSeries::new(points.iter().copied(), 10, 6, style)),
            };
            drawn.map_err(|e| anyhow!("cannot draw the plot line `{label}`: {e}"))?;
        }
        // The markers over all the lines, the largest first, so that coinciding ones nest.
        for &i in &order {
            let ((label, points), look) = (&lines[i], Look::of(&series[i], groups));
            chart
                .draw_series(points.iter().map(|&p| look.marker(p)))
                .map_err(|e| anyhow!("cannot draw the markers of `{label}`: {e}"))?;
        }
        draw_legend(&legend_area, series, groups)?;
        root.present().map_err(|e| anyhow!("cannot finish the plot: {e}"))?;
    }

    let image = image::RgbImage::from_raw(WIDTH, HEIGHT, buf).context("the plot buffer has the wrong size")?;
    let mut png = Cursor::new(Vec::new());
    image.write_to(&mut png, image::ImageFormat::Png).context("cannot encode the plot as PNG")?;
    Ok(png.into_inner())
}

/// The drawn look of a series: its colour, its line width and its marker.
struct Look {
    colour: RGBColor,
    width: u32,
    shape: usize,
    size: i32,
}

impl Look {
    /// Group `g` of `groups`: the colour and shape of its index; earlier groups wider and with larger markers.
    fn of(series: &Series, groups: usize) -> Self {
        let g = series.group;
        let rank = groups.saturating_sub(g + 1).min(4) as u32;
        Look { colour: COLOURS[g % COLOURS.len()], width: 2 + 2 * rank, shape: g % MARKERS, size: 3 + 2 * rank as i32 }
    }

    /// Its hollow marker at `at` (chart coordinates, or pixels within the legend).
    fn marker<C>(&self, at: C) -> Marker<C> {
        Marker { at, shape: self.shape, radius: self.size, style: self.colour.stroke_width(2) }
    }
}

/// A hollow marker: circle, triangle, square, cross or diamond.
struct Marker<C> {
    at: C,
    shape: usize,
    radius: i32,
    style: ShapeStyle,
}

impl<'a, C> PointCollection<'a, C> for &'a Marker<C> {
    type Point = &'a C;
    type IntoIter = std::iter::Once<&'a C>;
    fn point_iter(self) -> Self::IntoIter {
        std::iter::once(&self.at)
    }
}

impl<C, DB: DrawingBackend> Drawable<DB> for Marker<C> {
    fn draw<I: Iterator<Item = BackendCoord>>(
        &self,
        mut at: I,
        backend: &mut DB,
        _: (u32, u32),
    ) -> Result<(), DrawingErrorKind<DB::ErrorType>> {
        let Some((x, y)) = at.next() else { return Ok(()) };
        let r = self.radius;
        let outline = |corners: &[(i32, i32)]| -> Vec<BackendCoord> {
            corners.iter().chain(&corners[..1]).map(|&(dx, dy)| (x + dx, y + dy)).collect()
        };
        match self.shape {
            0 => backend.draw_circle((x, y), r as u32, &self.style, false),
            1 => backend.draw_path(outline(&[(0, -r - 1), (r + 1, r), (-r - 1, r)]), &self.style),
            2 => backend.draw_rect((x - r, y - r), (x + r, y + r), &self.style, false),
            3 => {
                backend.draw_line((x - r, y - r), (x + r, y + r), &self.style)?;
                backend.draw_line((x - r, y + r), (x + r, y - r), &self.style)
            }
            _ => backend.draw_path(outline(&[(0, -r - 1), (r + 1, 0), (0, r + 1), (-r - 1, 0)]), &self.style),
        }
    }
}

/// The marker shapes cycled through by group: circle, triangle, square, cross, diamond.
const MARKERS: usize = 5;

/// One legend row per labelled series in the panel beside the chart: a sample of its line with its marker, and
/// its label; the rows that do not fit are counted on a last line.
fn draw_legend(area: &LegendArea<'_>, series: &[Series], groups: usize) -> Result<()> {
    const TOP: i32 = 70;
    const ROW: i32 = 28;
    let labelled: Vec<&Series> = series.iter().filter(|s| !s.label.is_empty()).collect();
    let fit = ((HEIGHT as i32 - TOP - ROW) / ROW) as usize;
    let shown = if labelled.len() > fit { fit - 1 } else { labelled.len() };
    for (row, s) in labelled[..shown].iter().enumerate() {
        let y = TOP + ROW * row as i32;
        let look = Look::of(s, groups);
        let style = look.colour.stroke_width(look.width.min(4));
        let line = [(8, y), (58, y)];
        let drawn = match s.line {
            LineStyle::Solid => area.draw(&PathElement::new(line, style)),
            LineStyle::Dashed => area.draw(&DashedPathElement::new(line, 8, 5, style)),
        };
        drawn
            .and_then(|_| area.draw(&look.marker((33, y))))
            .and_then(|_| area.draw(&Text::new(s.label.clone(), (68, y - 9), (FONT, 15).into_font())))
            .map_err(|e| anyhow!("cannot draw the legend entry `{}`: {e}", s.label))?;
    }
    if shown < labelled.len() {
        let more = format!("... and {} more", labelled.len() - shown);
        area.draw(&Text::new(more, (8, TOP + ROW * shown as i32 - 9), (FONT, 15).into_font()))
            .map_err(|e| anyhow!("cannot draw the legend: {e}"))?;
    }
    Ok(())
}

type LegendArea<'a> = DrawingArea<BitMapBackend<'a, RGBPixel>, plotters::coord::Shift>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

    /// Checks that `png` is a PNG of the plot's size and returns its number of distinct colours.
    fn check_png(png: &[u8]) -> usize {
        assert!(png.starts_with(&PNG_SIGNATURE));
        let image = image::load_from_memory(png).unwrap().to_rgb8();
        assert_eq!(image.dimensions(), (WIDTH, HEIGHT));
        image.pixels().map(|p| p.0).collect::<HashSet<_>>().len()
    }

    /// A solid series of group 0.
    fn series(label: &str, points: &[(usize, f64)]) -> Series {
        grouped(label, points, 0, LineStyle::Solid)
    }

    fn grouped(label: &str, points: &[(usize, f64)], group: usize, line: LineStyle) -> Series {
        Series { label: label.to_string(), points: points.to_vec(), group, line }
    }

    /// Whether the part of the image from column `x0` to column `x1` has a pixel of exactly `colour`.
    fn has_colour_in(png: &[u8], colour: RGBColor, x0: u32, x1: u32) -> bool {
        let image = image::load_from_memory(png).unwrap().to_rgb8();
        image.enumerate_pixels().any(|(x, _, p)| (x0..x1).contains(&x) && p.0 == [colour.0, colour.1, colour.2])
    }

    /// Whether the image has a pixel close to `colour`.
    fn has_colour(png: &[u8], colour: RGBColor) -> bool {
        let image = image::load_from_memory(png).unwrap().to_rgb8();
        image.pixels().any(|p| p.0 == [colour.0, colour.1, colour.2])
    }

    #[test]
    fn draws_several_series() {
        let s = [
            grouped("alpha = 0", &[(0, 61.5), (1, 63.0), (2, 62.25), (3, 66.0)], 0, LineStyle::Solid),
            grouped("alpha = 0.5", &[(0, 61.5), (1, 64.0), (2, 67.5), (3, 68.0)], 1, LineStyle::Dashed),
            grouped("alpha = 1", &[(0, 61.5), (2, 60.0), (1, 65.0), (3, 70.0)], 2, LineStyle::Solid),
        ];
        let png = accuracy_png("GLOV on tiny", "top-1 accuracy (%)", &s).unwrap();
        assert!(check_png(&png) > 2);
        for colour in &COLOURS[..3] {
            assert!(has_colour(&png, *colour), "no pixel of {colour:?}");
        }
        assert!(!has_colour(&png, COLOURS[3]));
    }

    /// Two groups with the same points, as when two alphas find the same templates: both colours show in the
    /// chart (the earlier group's wider line and larger markers around the later one's), and the legend panel has
    /// both, beside the chart.
    #[test]
    fn coinciding_series_both_show_and_the_legend_is_beside_the_chart() {
        let points = [(0, 40.0), (1, 45.0), (2, 45.0), (3, 52.5)];
        let s = [
            grouped("alpha 1: best train", &points, 0, LineStyle::Solid),
            grouped("alpha 0: best train", &points, 1, LineStyle::Solid),
            grouped("alpha 1: step ensemble, val", &points, 0, LineStyle::Dashed),
            grouped("alpha 0: step ensemble, val", &points, 1, LineStyle::Dashed),
        ];
        let png = accuracy_png("coinciding", "top-1 accuracy (%)", &s).unwrap();
        let chart = WIDTH - LEGEND_WIDTH;
        for colour in &COLOURS[..2] {
            assert!(has_colour_in(&png, *colour, 0, chart), "{colour:?} hidden in the chart");
            assert!(has_colour_in(&png, *colour, chart, WIDTH), "{colour:?} not in the legend");
        }
        // Without the wider line of the earlier group, the later one covers it.
        let s = [grouped("a", &points, 0, LineStyle::Solid), grouped("b", &points, 0, LineStyle::Solid)];
        let png = accuracy_png("same group", "top-1 accuracy (%)", &s).unwrap();
        assert!(has_colour_in(&png, COLOURS[0], 0, chart) && !has_colour(&png, COLOURS[1]));
    }

    #[test]
    fn empty_input_still_draws_axes() {
        let png = accuracy_png("empty", "accuracy (%)", &[]).unwrap();
        assert!(check_png(&png) > 2);
        let png = accuracy_png("", "", &[series("", &[]), series("no points", &[])]).unwrap();
        assert!(check_png(&png) > 2);
    }

    #[test]
    fn single_point() {
        let png = accuracy_png("one", "accuracy (%)", &[series("only", &[(0, 50.0)])]).unwrap();
        assert!(check_png(&png) > 2);
        assert!(has_colour(&png, COLOURS[0]));
        let png = accuracy_png("one", "accuracy (%)", &[series("only", &[(7, 0.0)])]).unwrap();
        assert!(check_png(&png) > 2);
    }

    #[test]
    fn equal_values() {
        let png = accuracy_png("flat", "accuracy (%)", &[series("a", &[(0, 42.0), (5, 42.0), (10, 42.0)])]).unwrap();
        assert!(check_png(&png) > 2);
        assert!(has_colour(&png, COLOURS[0]));
    }

    #[test]
    fn nan_and_infinite_values_are_skipped() {
        let s = [
            series("nan", &[(0, f64::NAN), (1, 30.0), (2, f64::NAN), (3, 35.0)]),
            series("all nan", &[(0, f64::NAN), (1, f64::INFINITY), (2, f64::NEG_INFINITY)]),
        ];
        let png = accuracy_png("nan", "accuracy (%)", &s).unwrap();
        assert!(check_png(&png) > 2);
        assert!(has_colour(&png, COLOURS[0]));
    }

    #[test]
    fn values_at_the_limits() {
        for points in [
            vec![(0, MAX_ABS_Y), (1, -MAX_ABS_Y)],
            vec![(0, MAX_ABS_Y)],
            vec![(0, -MAX_ABS_Y), (MAX_STEP, -MAX_ABS_Y)],
            vec![(MAX_STEP, 1.0), (0, 2.0)],
            vec![(MAX_STEP - 1, 1.0), (MAX_STEP, 1.0 + 1e-9)],
            vec![(3, f64::MIN_POSITIVE), (4, 0.0)],
            vec![(1, 1e-300), (2, -1e-300)],
            vec![(1, 12345.678), (2, 12345.679)],
        ] {
            let png = accuracy_png("limits", "accuracy (%)", &[series("x", &points)]).unwrap();
            assert!(check_png(&png) > 2, "{points:?}");
        }
        let many: Vec<Series> =
            (0..25).map(|i| series(&format!("s{i}"), &[(0, i as f64), (1, 2.0 * i as f64)])).collect();
        check_png(&accuracy_png("many", "accuracy (%)", &many).unwrap());
    }

    #[test]
    fn values_beyond_the_limits_are_errors() {
        for points in [
            vec![(0, f64::MAX), (1, 1.0)],
            vec![(0, -MAX_ABS_Y * 1.01)],
            vec![(usize::MAX, 1.0)],
            vec![(MAX_STEP + 1, 1.0)],
        ] {
            let err = accuracy_png("beyond", "accuracy (%)", &[series("bad", &points)]).unwrap_err().to_string();
            assert!(err.contains("cannot plot `bad`"), "{err}");
        }
    }

    #[test]
    fn y_range_margins() {
        assert_eq!(y_range([].into_iter()), (0.0, 100.0));
        assert_eq!(y_range([50.0].into_iter()), (49.5, 50.5));
        let (lo, hi) = y_range([10.0, 90.0].into_iter());
        assert!((lo - 6.0).abs() < 1e-9 && (hi - 94.0).abs() < 1e-9, "{lo} {hi}");
        assert_eq!(y_range([0.0, f64::MAX].into_iter()), (0.0, 100.0));
        let (lo, hi) = y_range([MAX_ABS_Y].into_iter());
        assert!(lo < MAX_ABS_Y && MAX_ABS_Y < hi, "{lo} {hi}");
    }

    /// Writes a sample plot for looking at.
    #[test]
    #[ignore = "writes a sample plot: GLOV_PLOT_SAMPLE=/tmp/plot.png cargo test --release --lib write_sample -- --ignored"]
    fn write_sample() {
        let path = std::env::var("GLOV_PLOT_SAMPLE").expect("GLOV_PLOT_SAMPLE names the file to write");
        let alphas = [1.0, 0.75, 0.5, 0.25, 0.0];
        let curve = |k: usize, step: usize| 60.0 + (step as f64).sqrt() * (1.0 + (k % 3) as f64 * 0.4);
        let mut s = Vec::new();
        for (k, alpha) in alphas.iter().enumerate() {
            let points = (0..=20).map(|step| (step, curve(k, step))).collect::<Vec<_>>();
            s.push(grouped(&format!("alpha {alpha}: best train"), &points, k, LineStyle::Solid));
        }
        for (k, alpha) in alphas.iter().enumerate() {
            let points = (0..=20).step_by(2).map(|step| (step, curve(k, step) - 3.0)).collect::<Vec<_>>();
            s.push(grouped(&format!("alpha {alpha}: step ensemble, val"), &points, k, LineStyle::Dashed));
        }
        std::fs::write(path, accuracy_png("GLOV: tiny dataset, test split", "top-1 accuracy (%)", &s).unwrap())
            .unwrap();
    }
}
