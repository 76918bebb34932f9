//! Rendering of score results as a table, JSON or CSV.

use crate::scoring::Accuracy;
use crate::scoring::descriptions::Aggregate;
use anyhow::Result;
use serde::Serialize;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Serialize)]
pub struct TemplateRow {
    pub template: String,
    #[serde(flatten)]
    pub accuracy: Accuracy,
}

#[derive(Serialize)]
pub struct ScoreReport {
    pub model: String,
    pub dataset: String,
    pub split: String,
    pub images: usize,
    pub skipped_images: usize,
    pub classes: usize,
    /// The published template set scored, if one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_set: Option<TemplateSetName>,
    pub templates: Vec<TemplateRow>,
    pub ensemble: Option<Accuracy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub descriptions: Option<DescriptionsScore>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waffle: Option<WaffleScore>,
}

/// WaffleCLIP's runs and their summary.
#[derive(Serialize)]
pub struct WaffleScore {
    pub pairs: usize,
    /// The first run's descriptors, for a look at what was scored.
    pub first_run_descriptors: Vec<String>,
    pub mean: Accuracy,
    /// The population standard deviation over the runs, as published.
    pub std: Accuracy,
    pub runs: Vec<Accuracy>,
}

impl WaffleScore {
    pub fn new(pairs: usize, first_run_descriptors: Vec<String>, runs: Vec<Accuracy>) -> Self {
        let n = runs.len().max(1) as f64;
        let summary = |value: fn(&Accuracy) -> f64| {
            let mean = runs.iter().map(value).sum::<f64>() / n;
            let var = runs.iter().map(|a| (value(a) - mean).powi(2)).sum::<f64>() / n;
            (mean, var.sqrt())
        };
        let (top1, mean_per_class) = (summary(|a| a.top1), summary(|a| a.mean_per_class));
        let top5 = runs.iter().all(|a| a.top5.is_some()).then(|| summary(|a| a.top5.unwrap_or(0.0)));
        WaffleScore {
            pairs,
            first_run_descriptors,
            mean: Accuracy { top1: top1.0, top5: top5.map(|t| t.0), mean_per_class: mean_per_class.0 },
            std: Accuracy { top1: top1.1, top5: top5.map(|t| t.1), mean_per_class: mean_per_class.1 },
            runs,
        }
    }
}

/// A published template set and where it was published.
#[derive(Serialize)]
pub struct TemplateSetName {
    pub name: String,
    pub source: String,
}

/// The accuracy of a descriptions file.
#[derive(Serialize)]
pub struct DescriptionsScore {
    pub file: String,
    pub aggregate: Aggregate,
    pub sentences: usize,
    pub accuracy: Accuracy,
}

fn percent(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.2}"))
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}

impl ScoreReport {
    pub fn render(&self, format: Format) -> Result<String> {
        Ok(match format {
            Format::Json => serde_json::to_string_pretty(self)? + "\n",
            Format::Csv => self.csv(),
            Format::Table => self.table(),
        })
    }

    fn rows(&self) -> Vec<(String, &Accuracy)> {
        let mut rows: Vec<(String, &Accuracy)> =
            self.templates.iter().map(|r| (r.template.clone(), &r.accuracy)).collect();
        if let Some(e) = &self.ensemble {
            let set = self.template_set.as_ref().map_or(String::new(), |set| format!(" ({})", set.name));
            rows.push((format!("ensemble of {} templates{set}", self.templates.len()), e));
        }
        if let Some(d) = &self.descriptions {
            let style = match d.aggregate {
                Aggregate::Embedding => "class embedding",
                Aggregate::Score => "mean score",
            };
            rows.push((format!("descriptions, {style} of {} sentences", d.sentences), &d.accuracy));
        }
        if let Some(w) = &self.waffle {
            rows.push((format!("WaffleCLIP, {} pairs: mean of {} runs", w.pairs, w.runs.len()), &w.mean));
            rows.push((format!("WaffleCLIP, {} pairs: std over {} runs", w.pairs, w.runs.len()), &w.std));
        }
        rows
    }

    fn csv(&self) -> String {
        let mut out = String::from("template,top1,top5,mean_per_class\n");
        for (name, a) in self.rows() {
            let top5 = a.top5.map_or(String::new(), |v| format!("{v:.4}"));
            out += &format!("{},{:.4},{},{:.4}\n", csv_field(&name), a.top1, top5, a.mean_per_class);
        }
        out
    }

    fn table(&self) -> String {
        let mut out = format!(
            "{} | {} ({}) | {} images, {} classes{}\n",
            self.model,
            self.dataset,
            self.split,
            self.images,
            self.classes,
            if self.skipped_images > 0 {
                format!(", {} unreadable left out", self.skipped_images)
            } else {
                String::new()
            }
        );
        let rows = self.rows();
        let width = rows.iter().map(|(n, _)| n.chars().count()).max().unwrap_or(8).max(8);
        out += &format!("{:<width$}  {:>7}  {:>7}  {:>10}\n", "template", "top1 %", "top5 %", "class avg %");
        for (i, (name, a)) in rows.iter().enumerate() {
            if i > 0 && i == self.templates.len() {
                out += &format!("{}\n", "-".repeat(width + 31));
            }
            out += &format!(
                "{:<width$}  {:>7}  {:>7}  {:>10}\n",
                name,
                percent(Some(a.top1)),
                percent(a.top5),
                percent(Some(a.mean_per_class))
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waffle_runs_are_summarised_by_mean_and_population_std() {
        let run = |top1, top5| Accuracy { top1, top5, mean_per_class: top1 };
        let w = WaffleScore::new(15, Vec::new(), vec![run(60.0, Some(80.0)), run(62.0, Some(84.0))]);
        assert_eq!((w.mean.top1, w.std.top1), (61.0, 1.0));
        assert_eq!((w.mean.top5, w.std.top5), (Some(82.0), Some(2.0)));
        let w = WaffleScore::new(15, Vec::new(), vec![run(50.0, None)]);
        assert_eq!((w.mean.top1, w.std.top1, w.mean.top5), (50.0, 0.0, None));
    }

    #[test]
    fn csv_quotes_fields_that_need_it() {
        assert_eq!(csv_field("a photo of a {}."), "a photo of a {}.");
        assert_eq!(csv_field("a \"big\", {}"), "\"a \"\"big\"\", {}\"");
    }
}
