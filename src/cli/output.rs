//! Rendering of score results as a table, JSON or CSV.

use crate::scoring::Accuracy;
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
    pub templates: Vec<TemplateRow>,
    pub ensemble: Option<Accuracy>,
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
            rows.push((format!("ensemble of {} templates", self.templates.len()), e));
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
            if self.ensemble.is_some() && i == rows.len() - 1 {
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
    fn csv_quotes_fields_that_need_it() {
        assert_eq!(csv_field("a photo of a {}."), "a photo of a {}.");
        assert_eq!(csv_field("a \"big\", {}"), "\"a \"\"big\"\", {}\"");
    }
}
