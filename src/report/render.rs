//! The report's text forms: an aligned table, Markdown, CSV (one line per dataset and measure) and JSON.

use super::aggregate::{Block, Comparison, Report, Stat};
use std::fmt::Write;

/// `53.33 ± 2.10` over several seeds, `53.33` for one.
fn cell(stat: &Stat) -> String {
    match stat.std() {
        Some(std) => format!("{:.2} ± {std:.2}", stat.mean()),
        None => format!("{:.2}", stat.mean()),
    }
}

fn alpha_header(alpha: f32) -> String {
    format!("alpha={alpha}")
}

/// The main table of a block: header, one row per dataset, the mean row.
fn main_rows(block: &Block) -> Vec<Vec<String>> {
    let method = block.method_label();
    // LLM-OPT runs only without guidance: its alpha 0 is the method itself.
    let with_alpha_zero = method == "GLOV" && block.rows.iter().all(|r| r.without_guidance.is_some());
    let with_llm_opt = block.rows.iter().any(|r| r.llm_opt.is_some());
    let comparisons: Vec<Comparison> =
        Comparison::ALL.into_iter().filter(|c| block.rows.iter().any(|r| r.comparisons.contains_key(c))).collect();
    let mut header = vec!["dataset".to_string(), "runs".to_string(), "baseline".to_string()];
    header.extend(comparisons.iter().map(|c| c.header().to_string()));
    if with_llm_opt {
        header.push("LLM-OPT".to_string());
    }
    if with_alpha_zero {
        header.push("GLOV alpha=0".to_string());
    }
    header.extend([method.to_string(), "gain".to_string()]);
    let mut rows = vec![header];
    for r in &block.rows {
        let mut line = vec![r.dataset.clone(), r.runs.len().to_string(), cell(&r.baseline)];
        line.extend(comparisons.iter().map(|c| r.comparisons.get(c).map_or("-".to_string(), cell)));
        if with_llm_opt {
            line.push(r.llm_opt.as_ref().map_or("-".to_string(), cell));
        }
        if let Some(without) = r.without_guidance.as_ref().filter(|_| with_alpha_zero) {
            line.push(cell(without));
        }
        line.extend([cell(&r.glov), format!("{:+.2}", r.gain.mean())]);
        rows.push(line);
    }
    let means = block.means();
    let runs: usize = block.rows.iter().map(|r| r.runs.len()).sum();
    let mut line = vec!["mean".to_string(), runs.to_string(), format!("{:.2}", means.baseline)];
    line.extend(comparisons.iter().map(|c| means.comparisons.get(c).map_or("-".to_string(), |m| format!("{m:.2}"))));
    if with_llm_opt {
        line.push(means.llm_opt.map_or("-".to_string(), |m| format!("{m:.2}")));
    }
    if let Some(without) = means.without_guidance.filter(|_| with_alpha_zero) {
        line.push(format!("{without:.2}"));
    }
    line.extend([format!("{:.2}", means.glov), format!("{:+.2}", means.gain)]);
    rows.push(line);
    rows
}

/// The per-alpha detail of a block: each alpha's ensemble on the test split, and how often each was chosen.
fn alpha_rows(block: &Block) -> Vec<Vec<String>> {
    let mut header = vec!["dataset".to_string()];
    header.extend(block.alphas.iter().map(|&a| alpha_header(a)));
    header.push("chosen alpha (runs)".to_string());
    let mut rows = vec![header];
    for r in &block.rows {
        let mut line = vec![r.dataset.clone()];
        line.extend(r.per_alpha.iter().map(|(_, s)| cell(s)));
        let chosen: Vec<String> = r.chosen.iter().map(|(a, n)| format!("{a} ({n})")).collect();
        line.push(chosen.join(", "));
        rows.push(line);
    }
    let mut line = vec!["mean".to_string()];
    line.extend(block.means().per_alpha.iter().map(|(_, m)| format!("{m:.2}")));
    line.push(String::new());
    rows.push(line);
    rows
}

fn block_caption(block: &Block) -> String {
    let runs: usize = block.rows.iter().map(|r| r.runs.len()).sum();
    let mut seeds: Vec<u64> = block.rows.iter().flat_map(|r| r.seeds.iter().copied()).collect();
    seeds.sort_unstable();
    seeds.dedup();
    let seeds: Vec<String> = seeds.iter().map(u64::to_string).collect();
    format!(
        "{} ({}): {} dataset(s), {runs} run(s), seeds {}",
        block.title(),
        block.model,
        block.rows.len(),
        seeds.join(", ")
    )
}

const LEGEND: &str = "top-1 accuracy (%) on the test split, mean ± standard deviation over seeds; baseline: the \
                      zero-shot template; CLIP set: the ensemble of the dataset's published CLIP templates; \
                      CuPL, DCLIP: class descriptions written by the run's LLM; Waffle: WaffleCLIP's random \
                      descriptors, the mean of 7 runs; GLOV alpha=0: without guidance; GLOV: the chosen alpha; LLM-OPT: its \
                      runs (no guidance), beside GLOV's where their other settings are the same; gain: the block's method - \
                      baseline";

/// Columns padded to their widest cell; the first left-aligned, the others right-aligned.
fn aligned(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, text)| {
                let pad = " ".repeat(widths[c] - text.chars().count());
                if c == 0 { format!("{text}{pad}") } else { format!("{pad}{text}") }
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

fn markdown(rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let _ = writeln!(out, "| {} |", row.join(" | "));
        if i == 0 {
            let rule: Vec<&str> = row.iter().enumerate().map(|(c, _)| if c == 0 { "---" } else { "---:" }).collect();
            let _ = writeln!(out, "|{}|", rule.join("|"));
        }
    }
    out
}

fn left_out_lines(report: &Report) -> String {
    let mut out = String::new();
    if !report.left_out.is_empty() {
        let _ = writeln!(out, "left out ({} run(s), not averaged in):", report.left_out.len());
        for l in &report.left_out {
            let _ = writeln!(out, "  {}: {}", l.dir.display(), l.reason);
        }
    }
    out
}

pub fn table(report: &Report) -> String {
    let mut out = format!("{LEGEND}\n");
    for block in &report.blocks {
        let _ = write!(out, "\n{}\n{}", block_caption(block), aligned(&main_rows(block)));
        let _ = write!(out, "per alpha (each alpha's ensemble on the test split):\n{}", aligned(&alpha_rows(block)));
    }
    let left = left_out_lines(report);
    if !left.is_empty() {
        let _ = write!(out, "\n{left}");
    }
    out
}

pub fn markdown_report(report: &Report) -> String {
    let mut out = format!("{LEGEND}.\n");
    for block in &report.blocks {
        let _ = write!(out, "\n### {}\n\n{}\n", block_caption(block), markdown(&main_rows(block)));
        let _ = write!(out, "Per alpha (each alpha's ensemble on the test split):\n\n{}", markdown(&alpha_rows(block)));
    }
    if !report.left_out.is_empty() {
        let _ = writeln!(out, "\nLeft out ({} run(s), not averaged in):\n", report.left_out.len());
        for l in &report.left_out {
            let _ = writeln!(out, "- `{}`: {}", l.dir.display(), l.reason);
        }
    }
    out
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}

/// One line per block, dataset and measure: `n` is the number of runs (of datasets, on a block's mean line), `std`
/// empty where there is one value.
pub fn csv(report: &Report) -> String {
    let mut out = String::from("model,settings,dataset,measure,n,mean,std\n");
    for block in &report.blocks {
        let settings: Vec<String> = block.distinct.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let prefix = format!("{},{}", csv_field(&block.model), csv_field(&settings.join(";")));
        for r in &block.rows {
            let mut measures: Vec<(String, &Stat)> = vec![("baseline".into(), &r.baseline)];
            measures.extend(r.comparisons.iter().map(|(c, s)| (c.key().to_string(), s)));
            if let Some(llm_opt) = &r.llm_opt {
                measures.push(("llm_opt".into(), llm_opt));
            }
            if let Some(without) = &r.without_guidance {
                measures.push(("glov_alpha0".into(), without));
            }
            measures.extend([("glov".into(), &r.glov), ("gain".into(), &r.gain)]);
            measures.extend(r.per_alpha.iter().map(|(a, s)| (alpha_header(*a), s)));
            for (measure, stat) in measures {
                let std = stat.std().map(|s| s.to_string()).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{prefix},{},{measure},{},{},{std}",
                    csv_field(&r.dataset),
                    stat.values.len(),
                    stat.mean()
                );
            }
        }
        let means = block.means();
        let n = block.rows.len();
        let mut measures: Vec<(String, f64)> = vec![("baseline".into(), means.baseline)];
        measures.extend(means.comparisons.iter().map(|(c, m)| (c.key().to_string(), *m)));
        if let Some(llm_opt) = means.llm_opt {
            measures.push(("llm_opt".into(), llm_opt));
        }
        if let Some(without) = means.without_guidance {
            measures.push(("glov_alpha0".into(), without));
        }
        measures.extend([("glov".into(), means.glov), ("gain".into(), means.gain)]);
        measures.extend(means.per_alpha.iter().map(|(a, m)| (alpha_header(*a), *m)));
        for (measure, mean) in measures {
            let _ = writeln!(out, "{prefix},mean,{measure},{n},{mean},");
        }
    }
    out
}

pub fn json(report: &Report) -> anyhow::Result<String> {
    let blocks: Vec<serde_json::Value> = report
        .blocks
        .iter()
        .map(|b| {
            let mut value = serde_json::to_value(b)?;
            value["title"] = b.title().into();
            value["mean"] = serde_json::to_value(b.means())?;
            Ok(value)
        })
        .collect::<anyhow::Result<_>>()?;
    let value = serde_json::json!({ "blocks": blocks, "left_out": report.left_out });
    Ok(serde_json::to_string_pretty(&value)? + "\n")
}
