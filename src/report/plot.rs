//! The report's plot: the gain over the zero-shot baseline per dataset, as grouped bars (GLOV, and GLOV without
//! guidance where alpha 0 was run), one group of bars per dataset and a pair per block. Drawn as the run
//! directory's plot is: plotters into an RGB buffer with the embedded font, encoded to PNG.

use super::aggregate::Report;
use crate::glov::plot::{COLOURS, FONT, ensure_font};
use anyhow::{Context, Result, anyhow};
use plotters::backend::RGBPixel;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::io::Cursor;

const HEIGHT: u32 = 600;
/// Pixels per dataset along the x axis (the plot widens with the number of datasets).
const PER_DATASET: u32 = 120;

struct Bars {
    label: String,
    /// Gain in points per dataset index (`None`: the block has no such dataset).
    gains: Vec<Option<f64>>,
}

pub fn gain_png(report: &Report) -> Result<Vec<u8>> {
    ensure_font()?;
    let mut datasets: Vec<String> = Vec::new();
    for block in &report.blocks {
        for row in &block.rows {
            if !datasets.contains(&row.dataset) {
                datasets.push(row.dataset.clone());
            }
        }
    }
    let mut series: Vec<Bars> = Vec::new();
    for block in &report.blocks {
        let gain = |f: &dyn Fn(&super::aggregate::Row) -> Option<f64>| -> Vec<Option<f64>> {
            datasets.iter().map(|d| block.rows.iter().find(|r| &r.dataset == d).and_then(f)).collect()
        };
        series.push(Bars { label: format!("{}: GLOV", block.title()), gains: gain(&|r| Some(r.gain.mean())) });
        if block.rows.iter().any(|r| r.without_guidance.is_some()) {
            series.push(Bars {
                label: format!("{}: GLOV alpha=0", block.title()),
                gains: gain(&|r| r.without_guidance.as_ref().map(|w| w.mean() - r.baseline.mean())),
            });
        }
    }

    let values: Vec<f64> = series.iter().flat_map(|s| s.gains.iter().flatten().copied()).collect();
    let lo = values.iter().copied().fold(0.0f64, f64::min);
    let hi = values.iter().copied().fold(0.0f64, f64::max);
    let margin = ((hi - lo) * 0.1).max(1.0);
    let (y_lo, y_hi) = (lo - margin, hi + margin);
    let n = datasets.len().max(1);
    let width = (200 + PER_DATASET * n as u32).max(800);

    let mut buf = vec![0u8; width as usize * HEIGHT as usize * 3];
    {
        let backend = BitMapBackend::<RGBPixel>::with_buffer_and_format(&mut buf, (width, HEIGHT))
            .map_err(|e| anyhow!("cannot create the plot bitmap: {e}"))?;
        let root = backend.into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("cannot fill the plot background: {e}"))?;
        let mut chart = ChartBuilder::on(&root)
            .caption("GLOV: gain over the zero-shot baseline (test split)", (FONT, 24))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..n as f64, y_lo..y_hi)
            .map_err(|e| anyhow!("cannot lay out the plot: {e}"))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc("gain (accuracy points)")
            .y_labels(10)
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 18))
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(205, 205, 205))
            .y_label_formatter(&|y| format!("{y:.1}"))
            .draw()
            .map_err(|e| anyhow!("cannot draw the plot axes: {e}"))?;
        chart
            .draw_series(std::iter::once(PathElement::new(vec![(0.0, 0.0), (n as f64, 0.0)], BLACK.stroke_width(1))))
            .map_err(|e| anyhow!("cannot draw the zero line: {e}"))?;

        let group = series.len().max(1) as f64;
        let bar = 0.8 / group;
        for (k, s) in series.iter().enumerate() {
            let colour = COLOURS[k % COLOURS.len()];
            let rects = s.gains.iter().enumerate().filter_map(|(i, g)| {
                g.map(|g| {
                    let x0 = i as f64 + 0.1 + k as f64 * bar;
                    Rectangle::new([(x0, 0.0), (x0 + bar * 0.9, g)], colour.filled())
                })
            });
            chart
                .draw_series(rects)
                .map_err(|e| anyhow!("cannot draw the bars of `{}`: {e}", s.label))?
                .label(s.label.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| anyhow!("cannot draw the plot legend: {e}"))?;

        let style = TextStyle::from((FONT, 14).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        for (i, name) in datasets.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(i as f64 + 0.5, y_lo));
            root.draw(&Text::new(name.clone(), (x, y + 8), style.clone()))
                .map_err(|e| anyhow!("cannot draw the label {name}: {e}"))?;
        }
        root.present().map_err(|e| anyhow!("cannot finish the plot: {e}"))?;
    }
    let image = image::RgbImage::from_raw(width, HEIGHT, buf).context("the plot buffer has the wrong size")?;
    let mut png = Cursor::new(Vec::new());
    image.write_to(&mut png, image::ImageFormat::Png).context("cannot encode the plot as PNG")?;
    Ok(png.into_inner())
}
