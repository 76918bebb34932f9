//! `glov-cuda report`: finished run directories laid out as the paper's tables (see [`aggregate`]), as text,
//! Markdown, CSV or JSON, and a plot of the gain over the baseline per dataset. Runs that have not finished or do
//! not agree with themselves are named and left out.

pub mod aggregate;
pub mod plot;
pub mod render;
pub mod runs;

use anyhow::{Result, bail};
use std::path::PathBuf;

/// Reads every run directory at or below `roots` and lays them out.
pub fn build(roots: &[PathBuf]) -> Result<aggregate::Report> {
    let mut finished = Vec::new();
    let mut left_out = Vec::new();
    for dir in runs::find(roots)? {
        match runs::read(&dir) {
            Ok(run) => finished.push(run),
            Err(skipped) => left_out.push(skipped),
        }
    }
    if finished.is_empty() {
        let names: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        let mut message = format!("no finished run under {}", names.join(", "));
        for l in &left_out {
            message.push_str(&format!("\n  {}: {}", l.dir.display(), l.reason));
        }
        bail!(message);
    }
    Ok(aggregate::aggregate(finished, left_out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glov::settings::Overrides;
    use aggregate::{Comparison, Stat};
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::path::Path;

    /// A finished run: (baseline, alpha 0's ensemble, the chosen alpha 1's ensemble) test accuracies.
    struct Fake {
        clip: &'static str,
        dataset: &'static str,
        seed: u64,
        shots: usize,
        accuracies: (f64, f64, f64),
    }

    fn write_config(dir: &Path, f: &Fake, steps: usize) {
        let settings = Overrides {
            llm: Some("org/llm".into()),
            clip: Some(f.clip.into()),
            dataset: Some(format!("/data/{}", f.dataset.to_lowercase()).into()),
            dataset_name: Some(f.dataset.into()),
            seed: Some(f.seed),
            shots: Some(f.shots),
            steps: Some(steps),
            alphas: Some(vec![1.0, 0.0]),
            ..Overrides::default()
        }
        .resolve()
        .unwrap();
        std::fs::create_dir_all(dir).unwrap();
        let config = json!({"format": 1, "settings": settings, "dataset_name_shown": f.dataset, "layer_used": 17});
        std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    }

    fn write_run(dir: &Path, f: &Fake, steps_reported: usize) {
        write_config(dir, f, 4);
        let (baseline, without, glov) = f.accuracies;
        let trajectory = |alpha: f64, test: f64| {
            json!({"alpha": alpha, "best_template": "a {}", "best_train_accuracy": 50.0, "templates_scored": 3,
                   "chosen_step": 1, "ensemble": ["a {}"], "ensemble_val_accuracy": 50.0,
                   "ensemble_test_accuracy": test})
        };
        let results = json!({
            "dataset": f.dataset, "steps": steps_reported,
            "baseline": {"template": "a photo of a {}.", "train_accuracy": 40.0, "val_accuracy": 40.0,
                         "test_accuracy": baseline},
            "trajectories": [trajectory(1.0, glov), trajectory(0.0, without)],
            "chosen_alpha": 1.0, "test_accuracy": glov, "test_accuracy_without_guidance": without,
            "final_ensemble": ["a {}"],
        });
        let mut results = results;
        // Runs of clip-b also scored the dataset's published CLIP template set and the description baselines.
        if f.clip == "org/clip-b" {
            results["template_set"] = json!({"name": "eurosat", "templates": 3, "test_accuracy": baseline + 2.0});
            let described = |file: &str, accuracy: f64| json!({"file": file, "sentences": 20, "classes_without_sentence": [], "test_accuracy": accuracy});
            results["descriptions"] = json!({
                "cupl": described("descriptions-cupl.json", baseline + 3.0),
                "dclip": described("descriptions-dclip.json", baseline + 1.5),
                "waffle": {"pairs": 15, "seeds": [7, 8], "runs": [61.0, 62.0], "test_accuracy": 61.5, "std": 0.5},
            });
        }
        std::fs::write(dir.join("results.json"), results.to_string()).unwrap();
    }

    fn fake(clip: &'static str, dataset: &'static str, seed: u64, accuracies: (f64, f64, f64)) -> Fake {
        Fake { clip, dataset, seed, shots: 1, accuracies }
    }

    /// Whitespace-separated words of each line, so that column widths do not matter.
    fn words(text: &str) -> Vec<String> {
        text.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect()
    }

    #[test]
    fn rows_average_seeds_and_leave_out_what_is_not_finished_or_consistent() {
        let root = tempfile::tempdir().unwrap();
        let at = |p: &str| root.path().join(p);
        write_run(&at("a/eurosat/seed1"), &fake("org/clip-a", "EuroSAT", 1, (40.0, 45.0, 50.0)), 4);
        write_run(&at("a/eurosat/seed2"), &fake("org/clip-a", "EuroSAT", 2, (40.0, 47.0, 52.0)), 4);
        write_run(&at("a/eurosat/seed3"), &fake("org/clip-a", "EuroSAT", 3, (40.0, 49.0, 57.0)), 4);
        write_run(&at("a/dtd/seed1"), &fake("org/clip-a", "DTD", 1, (30.0, 31.0, 33.0)), 4);
        write_run(&at("b/eurosat/seed1"), &fake("org/clip-b", "EuroSAT", 1, (60.0, 58.0, 61.0)), 4);
        // Left out: a second run of a row's seed, a run cut short, results that disagree with the config, a cell
        // that failed before it started.
        write_run(&at("a/eurosat/seed1-again"), &fake("org/clip-a", "EuroSAT", 1, (0.0, 0.0, 0.0)), 4);
        let cut = fake("org/clip-a", "DTD", 2, (0.0, 0.0, 0.0));
        write_config(&at("a/dtd/seed2"), &cut, 4);
        std::fs::write(at("a/dtd/seed2/state.json"), r#"{"completed_steps":2,"history_bytes":0,"steps_bytes":0}"#)
            .unwrap();
        write_run(&at("a/dtd/seed3"), &fake("org/clip-a", "DTD", 3, (0.0, 0.0, 0.0)), 3);
        std::fs::create_dir_all(at("a/gone/seed1")).unwrap();
        std::fs::write(at("a/gone/seed1/cell.toml"), "seed = 1\n").unwrap();
        std::fs::write(at("a/gone/seed1/error.txt"), "exit status 1\nlast lines:\nerror: no such dataset\n\n").unwrap();

        let report = build(&[root.path().to_path_buf()]).unwrap();
        assert_eq!(report.blocks.len(), 2);
        let a = &report.blocks[0];
        assert_eq!((a.model.as_str(), a.title()), ("org/clip-a", "CLIP clip-a".to_string()));
        let datasets: Vec<&str> = a.rows.iter().map(|r| r.dataset.as_str()).collect();
        assert_eq!(datasets, ["DTD", "EuroSAT"], "rows in the order of the runs' paths");
        let eurosat = &a.rows[1];
        assert_eq!(eurosat.seeds, [1, 2, 3]);
        // GLOV 50, 52, 57: mean 53, deviations -3, -1, 4, sample variance 26 / 2 = 13.
        assert_eq!(eurosat.glov.mean(), 53.0);
        assert!((eurosat.glov.std().unwrap() - 13f64.sqrt()).abs() < 1e-12);
        // Alpha 0: 45, 47, 49: mean 47, variance (4 + 0 + 4) / 2 = 4.
        let without = eurosat.without_guidance.as_ref().unwrap();
        assert_eq!((without.mean(), without.std()), (47.0, Some(2.0)));
        assert_eq!(eurosat.gain.values, [10.0, 12.0, 17.0]);
        assert_eq!(eurosat.chosen, [(1.0, 3)]);
        let means = a.means();
        // Means over the two datasets: baseline (40 + 30) / 2, alpha 0 (47 + 31) / 2, GLOV (53 + 33) / 2.
        assert_eq!((means.baseline, means.without_guidance, means.glov, means.gain), (35.0, Some(39.0), 43.0, 8.0));
        assert_eq!(means.per_alpha, [(1.0, 43.0), (0.0, 39.0)]);
        assert!(eurosat.comparisons.is_empty() && means.comparisons.is_empty());
        let b = &report.blocks[1];
        let means_of = |c: &BTreeMap<Comparison, Stat>| -> Vec<(Comparison, f64)> {
            c.iter().map(|(k, s)| (*k, s.mean())).collect()
        };
        use Comparison::{Cupl, Dclip, TemplateSet, Waffle};
        let expected = vec![(TemplateSet, 62.0), (Cupl, 63.0), (Dclip, 61.5), (Waffle, 61.5)];
        assert_eq!(means_of(&b.rows[0].comparisons), expected);
        assert_eq!(b.means().comparisons.into_iter().collect::<Vec<_>>(), expected);

        let table = words(&render::table(&report));
        for line in [
            "CLIP clip-a (org/clip-a): 2 dataset(s), 4 run(s), seeds 1, 2, 3",
            "dataset runs baseline GLOV alpha=0 GLOV gain",
            "DTD 1 30.00 31.00 33.00 +3.00",
            "EuroSAT 3 40.00 ± 0.00 47.00 ± 2.00 53.00 ± 3.61 +13.00",
            "mean 4 35.00 39.00 43.00 +8.00",
            "dataset alpha=1 alpha=0 chosen alpha (runs)",
            "EuroSAT 53.00 ± 3.61 47.00 ± 2.00 1 (3)",
            "CLIP clip-b (org/clip-b): 1 dataset(s), 1 run(s), seeds 1",
            "dataset runs baseline CLIP set CuPL DCLIP Waffle GLOV alpha=0 GLOV gain",
            "EuroSAT 1 60.00 62.00 63.00 61.50 61.50 58.00 61.00 +1.00",
            "left out (4 run(s), not averaged in):",
        ] {
            assert!(table.iter().any(|l| l == line), "no line {line:?} in:\n{}", table.join("\n"));
        }
        let left: Vec<(String, String)> = report
            .left_out
            .iter()
            .map(|l| (l.dir.strip_prefix(root.path()).unwrap().display().to_string(), l.reason.clone()))
            .collect();
        assert_eq!(left.len(), 4, "{left:?}");
        assert!(left.contains(&("a/dtd/seed2".into(), "unfinished: 2 of 4 steps, no results.json".into())), "{left:?}");
        assert!(
            left.contains(&(
                "a/dtd/seed3".into(),
                "inconsistent: results.json reports 3 steps, config.json asks 4".into()
            )),
            "{left:?}"
        );
        assert!(
            left.contains(&(
                "a/gone/seed1".into(),
                "not started (no config.json); the last attempt failed: error: no such dataset".into()
            )),
            "{left:?}"
        );
        let duplicate = left.iter().find(|(dir, _)| dir == "a/eurosat/seed1-again").expect("the duplicate");
        assert!(
            duplicate.1.contains("the same settings and seed as")
                && duplicate.1.ends_with("eurosat/seed1, which is counted instead"),
            "{duplicate:?}"
        );

        let csv = render::csv(&report);
        let line = |dataset: &str, measure: &str| -> Vec<String> {
            csv.lines()
                .find(|l| l.starts_with(&format!("org/clip-a,,{dataset},{measure},")))
                .unwrap_or_else(|| panic!("no {dataset} {measure} line in\n{csv}"))
                .split(',')
                .map(str::to_string)
                .collect()
        };
        let glov = line("EuroSAT", "glov");
        assert_eq!((glov[4].as_str(), glov[5].parse::<f64>().unwrap()), ("3", 53.0));
        assert!((glov[6].parse::<f64>().unwrap() - 13f64.sqrt()).abs() < 1e-12);
        assert_eq!(line("DTD", "glov")[6], "", "one seed: no standard deviation");
        assert_eq!(line("mean", "gain")[4..], ["2".to_string(), "8".to_string(), String::new()]);

        let json: serde_json::Value = serde_json::from_str(&render::json(&report).unwrap()).unwrap();
        assert_eq!(json["blocks"][0]["rows"][1]["glov"]["values"], json!([50.0, 52.0, 57.0]));
        assert_eq!(json["blocks"][0]["mean"]["glov"], 43.0);
        assert_eq!(json["blocks"][1]["rows"][0]["comparisons"]["cupl"]["values"], json!([63.0]));
        assert_eq!(json["blocks"][1]["mean"]["comparisons"]["waffle"], 61.5);
        assert!(csv.contains("org/clip-b,,EuroSAT,dclip,1,61.5,\n"), "{csv}");
        assert!(csv.contains("org/clip-b,,mean,cupl,1,63,\n"), "{csv}");
        assert_eq!(json["left_out"].as_array().unwrap().len(), 4);
        let png = plot::gain_png(&report).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    }

    #[test]
    fn runs_that_differ_in_another_setting_get_blocks_of_their_own() {
        let root = tempfile::tempdir().unwrap();
        write_run(&root.path().join("s1"), &fake("org/clip-a", "DTD", 1, (30.0, 31.0, 33.0)), 4);
        let four_shots = Fake { shots: 4, ..fake("org/clip-a", "DTD", 1, (30.0, 35.0, 36.0)) };
        write_run(&root.path().join("s4"), &four_shots, 4);
        let report = build(&[root.path().to_path_buf()]).unwrap();
        let titles: Vec<String> = report.blocks.iter().map(|b| b.title()).collect();
        assert_eq!(titles, ["CLIP clip-a (shots=1)", "CLIP clip-a (shots=4)"]);
        assert!(report.left_out.is_empty());
        assert_eq!(report.blocks[1].rows[0].glov.values, [36.0]);

        let empty = tempfile::tempdir().unwrap();
        let e = build(&[empty.path().to_path_buf()]).unwrap_err().to_string();
        assert!(e.starts_with("no finished run under"), "{e}");
        let e = build(&[empty.path().join("absent")]).unwrap_err().to_string();
        assert!(e.contains("is not a folder"), "{e}");
    }
}
