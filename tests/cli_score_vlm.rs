//! `score --vlm --matcher --prompts` on the tiny LLaVA-OneVision and MPNet fixtures: every answer is the one
//! `probe vlm` gives alone for the reference's question (quotes stripped, `?` appended), every prediction is the
//! class whose name `probe embed` puts nearest to the answer, and the accuracies count them.

mod common;

use common::{fixtures, glov_with_cache as glov, stderr};
use serde_json::Value;

fn run(args: &[&str], cache: &std::path::Path) -> Value {
    let out = glov(args, cache);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (a.iter().map(|x| x * x).sum::<f64>().sqrt() * b.iter().map(|x| x * x).sum::<f64>().sqrt())
}

#[test]
fn answers_are_the_vlm_s_and_predictions_the_matcher_s() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (vlm, matcher) = (fixtures().join("llava-tiny"), fixtures().join("sentence").join("mpnet-mean"));
    let (vlm, matcher) = (vlm.to_str().unwrap(), matcher.to_str().unwrap());
    let dataset = fixtures().join("scoring").join("dataset");
    let prompts = dir.path().join("prompts.txt");
    std::fs::write(&prompts, "What is shown in this picture\n\nDescribe the \"category\" of this image\n").unwrap();
    let answers = dir.path().join("answers.jsonl");
    let report = run(
        &[
            "score",
            "--vlm",
            vlm,
            "--matcher",
            matcher,
            "--dataset",
            dataset.to_str().unwrap(),
            "--prompts",
            prompts.to_str().unwrap(),
            "--max-new-tokens",
            "8",
            "--vlm-batch",
            "5",
            "--answers",
            answers.to_str().unwrap(),
            "--format",
            "json",
        ],
        cache.path(),
    );
    let rows = report["templates"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let lines: Vec<Value> =
        std::fs::read_to_string(&answers).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let images = report["images"].as_u64().unwrap() as usize;
    assert_eq!(lines.len(), 2 * images);

    // The class names' embeddings, as `probe embed` gives them.
    let classes = ["fire truck", "golden retriever", "oak tree", "red house", "sail boat", "tabby cat"];
    let mut args = vec!["probe", "embed", "--model", matcher];
    for c in &classes {
        args.extend(["--text", c]);
    }
    let class_embeddings: Vec<Vec<f64>> =
        serde_json::from_value(run(&args, cache.path())["embeddings"].clone()).unwrap();
    for (row, prompt) in rows.iter().zip(["What is shown in this picture", "Describe the \"category\" of this image"]) {
        let mine: Vec<&Value> = lines.iter().filter(|l| l["prompt"] == prompt).collect();
        assert_eq!(mine.len(), images, "{prompt}");
        let mut hits = 0;
        for line in &mine {
            // The answer alone, as `probe vlm` gives it for the reference's question.
            let question = format!("{}?", prompt.replace('"', ""));
            let alone = run(
                &[
                    "probe",
                    "vlm",
                    "--model",
                    vlm,
                    "--image",
                    line["image"].as_str().unwrap(),
                    "--prompt",
                    &question,
                    "--max-new-tokens",
                    "8",
                ],
                cache.path(),
            );
            assert_eq!(alone["answer"], line["answer"], "{line}");
            let answer = line["answer"].as_str().unwrap();
            let e: Vec<Vec<f64>> = serde_json::from_value(
                run(&["probe", "embed", "--model", matcher, "--text", answer], cache.path())["embeddings"].clone(),
            )
            .unwrap();
            let nearest = (0..classes.len()).fold(0, |best, c| {
                if cosine(&e[0], &class_embeddings[c]) > cosine(&e[0], &class_embeddings[best]) { c } else { best }
            });
            assert_eq!(line["predicted"], classes[nearest], "{line}");
            hits += usize::from(line["predicted"] == line["label"]);
        }
        let top1 = row["top1"].as_f64().unwrap();
        assert!((top1 - 100.0 * hits as f64 / images as f64).abs() < 1e-9, "{row}");
    }

    // A prompts file without prompts is an error naming it; --prompts needs --vlm.
    std::fs::write(&prompts, "\n  \n").unwrap();
    let out = glov(
        &[
            "score",
            "--vlm",
            vlm,
            "--matcher",
            matcher,
            "--dataset",
            dataset.to_str().unwrap(),
            "--prompts",
            prompts.to_str().unwrap(),
        ],
        cache.path(),
    );
    assert!(!out.status.success() && stderr(&out).contains("holds no prompts"), "{}", stderr(&out));
}

#[test]
fn image_features_are_written_to_the_disk_cache_once_and_read_back_unchanged() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (vlm, matcher) = (fixtures().join("llava-tiny"), fixtures().join("sentence").join("mpnet-mean"));
    let dataset = fixtures().join("scoring").join("dataset");
    let prompts = dir.path().join("prompts.txt");
    std::fs::write(&prompts, "What is shown in this picture\nName the object\n").unwrap();
    let score = |extra: &[&str], answers: &str| {
        let answers = dir.path().join(answers);
        let mut args = vec![
            "score",
            "--vlm",
            vlm.to_str().unwrap(),
            "--matcher",
            matcher.to_str().unwrap(),
            "--dataset",
            dataset.to_str().unwrap(),
            "--prompts",
            prompts.to_str().unwrap(),
            "--max-new-tokens",
            "6",
            "--answers",
            answers.to_str().unwrap(),
            "--format",
            "json",
        ];
        args.extend(extra);
        let report = run(&args, cache.path());
        (report["templates"].clone(), std::fs::read_to_string(answers).unwrap(), report["images"].as_u64().unwrap())
    };
    let cached_files = || -> Vec<(std::path::PathBuf, std::time::SystemTime)> {
        let mut files = Vec::new();
        for folder in std::fs::read_dir(cache.path()).unwrap().map(|e| e.unwrap().path()) {
            let name = folder.file_name().unwrap().to_string_lossy().into_owned();
            assert!(name.starts_with("vlm-features-v1-cpu-"), "{name}");
            for file in std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().path()) {
                files.push((file.clone(), std::fs::metadata(&file).unwrap().modified().unwrap()));
            }
        }
        files.sort();
        files
    };

    let (first, first_answers, images) = score(&[], "first.jsonl");
    let written = cached_files();
    assert_eq!(written.len() as u64, images, "one file per image: {written:?}");
    // Nothing kept in memory: every batch reads its image's features back from the disk, and the files are not
    // written again (a miss would encode the image again and replace its file).
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (again, again_answers, _) = score(&["--vlm-feature-memory", "0"], "again.jsonl");
    assert_eq!((&again, &again_answers), (&first, &first_answers));
    assert_eq!(cached_files(), written, "read, not rewritten");
    // Without the cache, the same answers, and the cache is left alone.
    let (uncached, uncached_answers, _) = score(&["--vlm-feature-memory", "0", "--no-cache"], "uncached.jsonl");
    assert_eq!((&uncached, &uncached_answers), (&first, &first_answers));
    assert_eq!(cached_files(), written);
}
