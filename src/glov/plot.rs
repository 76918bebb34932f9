//! PNG line plots of accuracy against optimisation step, one line per alpha trajectory.
//!
//! Drawn with plotters into an in-memory RGB buffer (the DejaVu Sans font is embedded, so no system fonts are
//! needed) and encoded to PNG with the `image` crate. No file I/O happens here: [`accuracy_png`] returns the PNG
//! bytes and the caller writes them.

use anyhow::{Context, Result, anyhow, bail};
use plotters::backend::RGBPixel;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use std::io::Cursor;
use std::sync::OnceLock;

/// One line of the plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend entry (an empty label gets no legend entry).
    pub label: String,
    /// `(step, accuracy in percent)`; points whose accuracy is not finite are skipped.
    pub points: Vec<(usize, f64)>,
}

/// Width of the plot in pixels.
pub const WIDTH: u32 = 1000;
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

        let mut chart = ChartBuilder::on(&root)
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

        let mut any_label = false;
        for (i, (label, points)) in lines.into_iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let drawn = chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)).point_size(3))
                .map_err(|e| anyhow!("cannot draw the plot line `{label}`: {e}"))?;
            if !label.is_empty() {
                any_label = true;
                drawn.label(label).legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (20, 0)], colour.stroke_width(2))
                        + Circle::new((10, 0), 3, colour.filled())
                });
            }
        }
        if any_label {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .label_font((FONT, 15))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(|e| anyhow!("cannot draw the plot legend: {e}"))?;
        }
        root.present().map_err(|e| anyhow!("cannot finish the plot: {e}"))?;
    }

    let image = image::RgbImage::from_raw(WIDTH, HEIGHT, buf).context("the plot buffer has the wrong size")?;
    let mut png = Cursor::new(Vec::new());
    image.write_to(&mut png, image::ImageFormat::Png).context("cannot encode the plot as PNG")?;
    Ok(png.into_inner())
}

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

    fn series(label: &str, points: &[(usize, f64)]) -> Series {
        Series { label: label.to_string(), points: points.to_vec() }
    }

    /// Whether the image has a pixel close to `colour`.
    fn has_colour(png: &[u8], colour: RGBColor) -> bool {
        let image = image::load_from_memory(png).unwrap().to_rgb8();
        image.pixels().any(|p| p.0 == [colour.0, colour.1, colour.2])
    }

    #[test]
    fn draws_several_series() {
        let s = [
            series("alpha = 0", &[(0, 61.5), (1, 63.0), (2, 62.25), (3, 66.0)]),
            series("alpha = 0.5", &[(0, 61.5), (1, 64.0), (2, 67.5), (3, 68.0)]),
            series("alpha = 1", &[(0, 61.5), (2, 60.0), (1, 65.0), (3, 70.0)]),
        ];
        let png = accuracy_png("GLOV on tiny", "top-1 accuracy (%)", &s).unwrap();
        assert!(check_png(&png) > 2);
        for colour in &COLOURS[..3] {
            assert!(has_colour(&png, *colour), "no pixel of {colour:?}");
        }
        assert!(!has_colour(&png, COLOURS[3]));
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

    /// Writes a sample plot for looking at: `GLOV_PLOT_SAMPLE=/tmp/plot.png cargo test ... write_sample`.
    #[test]
    fn write_sample() {
        let Ok(path) = std::env::var("GLOV_PLOT_SAMPLE") else { return };
        let s: Vec<Series> = [0.0, 0.25, 0.5, 1.0]
            .iter()
            .enumerate()
            .map(|(k, alpha)| Series {
                label: format!("alpha = {alpha}"),
                points: (0..=20).map(|step| (step, 60.0 + (step as f64).sqrt() * (1.0 + k as f64 * 0.4))).collect(),
            })
            .collect();
        std::fs::write(path, accuracy_png("GLOV: tiny dataset, test split", "top-1 accuracy (%)", &s).unwrap())
            .unwrap();
    }
}
