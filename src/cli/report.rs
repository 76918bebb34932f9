//! `glov-cuda report`: the tables of finished runs (one row per dataset, one block per CLIP model).

use crate::report::{self, render};
use anyhow::Result;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Markdown,
    Csv,
    Json,
}

#[derive(Args)]
#[command(after_long_help = "Each block is one CLIP model (and one combination of the other settings, when the runs \
    differ in more than dataset and seed); each row one dataset, with the zero-shot baseline, GLOV without guidance \
    (alpha 0), GLOV (the chosen alpha) and the gain, as mean ± standard deviation over seeds on the test split; the \
    last row is the mean over datasets. Then each alpha's result. Unfinished or inconsistent runs are named and left \
    out.")]
pub struct ReportArgs {
    /// Run directories, or folders holding them at any depth (a sweep's --out).
    #[arg(required = true, value_name = "DIR")]
    dirs: Vec<PathBuf>,
    /// Output: an aligned table, markdown, csv (one row per dataset and block), or json.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Also draw the gain over the baseline per dataset as a PNG.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
}

pub fn run(args: ReportArgs) -> Result<()> {
    let report = report::build(&args.dirs)?;
    let text = match args.format {
        Format::Table => render::table(&report),
        Format::Markdown => render::markdown_report(&report),
        Format::Csv => render::csv(&report),
        Format::Json => render::json(&report)?,
    };
    if matches!(args.format, Format::Csv) {
        for l in &report.left_out {
            eprintln!("left out: {}: {}", l.dir.display(), l.reason);
        }
    }
    print!("{text}");
    if let Some(path) = &args.plot {
        crate::atomic_file::write(path, &report::plot::gain_png(&report)?)?;
    }
    Ok(())
}
