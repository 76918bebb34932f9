//! The `glov-cuda` binary end to end: `score` against accuracies computed by HF transformers
//! (`scripts/make_scoring_fixture.py`), the image-feature cache, k-shot sampling, bad input, `probe clip`,
//! `inspect` and the CUDA device answer.

mod common;

use common::{fixtures, glov_with_cache as glov, max_row_relative_error, read_tensor, stderr};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn model() -> String {
    fixtures().join("clip-tiny-quickgelu").display().to_string()
}

fn copy_dataset(to: &Path) {
    let from = fixtures().join("scoring").join("dataset");
    for class in std::fs::read_dir(&from).unwrap() {
        let class = class.unwrap().path();
        let target = to.join(class.file_name().unwrap());
        std::fs::create_dir_all(&target).unwrap();
        for image in std::fs::read_dir(&class).unwrap() {
            let image = image.unwrap().path();
            std::fs::copy(&image, target.join(image.file_name().unwrap())).unwrap();
        }
    }
}

fn score_json(dataset: &Path, cache: &Path, extra: &[&str]) -> (Value, String) {
    let templates = fixtures().join("scoring").join("templates.txt").display().to_string();
    let model = model();
    let mut args = vec!["score", "--clip", &model, "--dataset", dataset.to_str().unwrap()];
    args.extend(["--templates", &templates, "--ensemble", "--format", "json"]);
    args.extend(extra);
    let out = glov(&args, cache);
    assert!(out.status.success(), "score failed: {}", stderr(&out));
    (serde_json::from_slice(&out.stdout).unwrap(), stderr(&out))
}

fn assert_close(got: &Value, want: &Value, what: &str) {
    for key in ["top1", "top5", "mean_per_class"] {
        let (g, w) = (got[key].as_f64().unwrap(), want[key].as_f64().unwrap());
        assert!((g - w).abs() < 1e-4, "{what} {key}: {g} vs HF {w}");
    }
}

#[test]
fn score_matches_hf_and_reuses_the_cache() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("scoring").join("expected.json")).unwrap())
            .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let dataset = fixtures().join("scoring").join("dataset");
    let (report, log) = score_json(&dataset, cache.path(), &[]);
    assert_eq!(report["images"], 12);
    assert_eq!(report["classes"], 6);
    let rows = report["templates"].as_array().unwrap();
    let want = expected["templates"].as_array().unwrap();
    assert_eq!(rows.len(), want.len());
    for (got, want) in rows.iter().zip(want) {
        assert_eq!(got["template"], want["template"]);
        assert_close(got, want, want["template"].as_str().unwrap());
    }
    assert_close(&report["ensemble"], &expected["ensemble"], "ensemble");
    assert!(log.contains("cached=0"), "{log}");

    let (again, log) = score_json(&dataset, cache.path(), &[]);
    assert!(log.contains("cached=12") && log.contains("to_encode=0"), "second run must read the cache: {log}");
    assert_eq!(again["templates"], report["templates"]);
}

#[test]
fn a_changed_image_is_encoded_again() {
    let cache = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    copy_dataset(data.path());
    score_json(data.path(), cache.path(), &[]);
    let image: PathBuf = data.path().join("oak_tree").join("img0.png");
    let replacement = data.path().join("tabby_cat").join("img1.png");
    std::fs::copy(&replacement, &image).unwrap();
    let (_, log) = score_json(data.path(), cache.path(), &[]);
    assert!(log.contains("cached=11") && log.contains("to_encode=1"), "{log}");
}

#[test]
fn k_shot_scores_one_image_per_class() {
    let cache = tempfile::tempdir().unwrap();
    let dataset = fixtures().join("scoring").join("dataset");
    let (report, _) = score_json(&dataset, cache.path(), &["--shots", "1", "--seed", "3"]);
    assert_eq!(report["images"], 6);
}

#[test]
fn csv_and_table_formats() {
    let cache = tempfile::tempdir().unwrap();
    let dataset = fixtures().join("scoring").join("dataset").display().to_string();
    let templates = fixtures().join("scoring").join("templates.txt").display().to_string();
    for (format, first) in [("csv", "template,top1,top5,mean_per_class"), ("table", "")] {
        let model = model();
        let out = glov(
            &["score", "--clip", &model, "--dataset", &dataset, "--templates", &templates, "--format", format],
            cache.path(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.starts_with(first), "{text}");
        assert!(text.contains("a close-up photo of the {}, taken at night!"), "{text}");
        if format == "csv" {
            assert_eq!(text.lines().count(), 6);
            assert!(text.contains("\"a close-up photo of the {}, taken at night!\""), "quoted: {text}");
        }
    }
}

#[test]
fn bad_input_gets_clear_errors() {
    let cache = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    copy_dataset(data.path());
    let dataset = data.path().display().to_string();
    let good_templates = fixtures().join("scoring").join("templates.txt").display().to_string();
    let model = model();

    let bad_templates = data.path().join("templates.txt");
    std::fs::write(&bad_templates, "a photo of a {}.\n\nno slot\n").unwrap();
    let out = glov(
        &["score", "--clip", &model, "--dataset", &dataset, "--templates", bad_templates.to_str().unwrap()],
        cache.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("line 3"), "{}", stderr(&out));

    std::fs::write(data.path().join("red_house").join("broken.jpg"), b"not a jpeg").unwrap();
    let args = ["score", "--clip", &model, "--dataset", &dataset, "--templates", &good_templates, "--format", "json"];
    let out = glov(&args, cache.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("broken.jpg") && stderr(&out).contains("--skip-bad-images"), "{}", stderr(&out));
    let mut skipping = args.to_vec();
    skipping.push("--skip-bad-images");
    let out = glov(&skipping, cache.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["images"], 12);
    assert_eq!(report["skipped_images"], 1);

    std::fs::create_dir(data.path().join("empty_class")).unwrap();
    let out = glov(&args, cache.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("empty_class"), "{}", stderr(&out));
    std::fs::remove_dir(data.path().join("empty_class")).unwrap();

    let out = glov(
        &["score", "--clip", "/no/such/model", "--dataset", &dataset, "--templates", &good_templates],
        cache.path(),
    );
    assert!(stderr(&out).contains("/no/such/model"), "{}", stderr(&out));
}

#[test]
fn cuda_device_answers_without_panicking() {
    let cache = tempfile::tempdir().unwrap();
    let model = model();
    let out = glov(&["--device", "cuda", "probe", "clip", "--model", &model, "--text", "a cat"], cache.path());
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    if out.status.success() {
        return; // a machine with a GPU and a binary with kernels: CLIP runs there
    }
    // What is missing depends on the machine: kernels in the binary, or an NVIDIA driver.
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("--device cuda:0"), "{err}");
    assert!(["built without CUDA kernels", "no NVIDIA driver"].iter().any(|why| err.contains(why)), "{err}");
}

#[test]
fn probe_clip_prints_hf_features() {
    let cache = tempfile::tempdir().unwrap();
    let dir = fixtures().join("clip-tiny-gelu");
    let image = fixtures().join("images").join("rgb.png").display().to_string();
    let out = glov(
        &[
            "probe",
            "clip",
            "--model",
            dir.to_str().unwrap(),
            "--text",
            "a photo of a cat.",
            "--text",
            "a photo of a dog.",
            "--image",
            &image,
        ],
        cache.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<f32> = json["text_features"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32))
        .collect();
    let (shape, want) = read_tensor(&dir.join("golden.safetensors"), "text_features");
    // The golden texts start with these two.
    let err = max_row_relative_error(&got, &want[..2 * shape[1]], shape[1]);
    assert!(err < 1e-4, "probe text features differ from HF by {err:e}");
    assert_eq!(json["image_features"].as_array().unwrap().len(), 1);
    let (_, image_want) = read_tensor(&dir.join("golden.safetensors"), "image_features");
    let image_got: Vec<f32> =
        json["image_features"][0].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let err = max_row_relative_error(&image_got, &image_want[..shape[1]], shape[1]);
    assert!(err < 1e-4, "probe image features of rgb.png differ from HF by {err:e}");
    assert!((json["logit_scale"].as_f64().unwrap() - 2.765625).abs() < 1e-6);
}

#[test]
fn inspect_describes_a_sharded_bf16_model() {
    let cache = tempfile::tempdir().unwrap();
    let dir = fixtures().join("clip-tiny-gelu");
    let out = glov(&["inspect", "--model", dir.to_str().unwrap(), "--format", "json"], cache.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["model_type"], "clip");
    assert!(json["dtypes"]["bf16"].as_u64().unwrap() > 0);
    assert_eq!(json["sizes"]["vision"]["patch_size"], 7);
    assert_eq!(json["sizes"]["text"]["layers"], 3);
    let out = glov(&["inspect", dir.to_str().unwrap()], cache.path());
    assert!(String::from_utf8_lossy(&out.stdout).contains("parameters:"));
}

#[test]
fn pickle_only_model_explains_the_conversion() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures().join("clip-tiny-gelu").join("config.json"), dir.path().join("config.json")).unwrap();
    std::fs::write(dir.path().join("pytorch_model.bin"), b"pickle").unwrap();
    let out = glov(&["inspect", dir.path().to_str().unwrap()], cache.path());
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("CLIPModel.from_pretrained(") && err.contains("CLIPProcessor"), "{err}");
    assert!(err.contains("save_pretrained('NEW_DIR'"), "into a new folder: {err}");
}

#[test]
fn split_file_selects_its_split() {
    let cache = tempfile::tempdir().unwrap();
    let root = fixtures().join("scoring").join("dataset");
    let classes = ["fire_truck", "golden_retriever", "oak_tree", "red_house", "sail_boat", "tabby_cat"];
    let entries = |image: &str| -> Vec<Value> {
        classes.iter().enumerate().map(|(label, c)| serde_json::json!([format!("{c}/{image}"), label, c])).collect()
    };
    let split =
        serde_json::json!({"train": entries("img0.png"), "val": entries("img1.png"), "test": entries("img1.png")});
    let dir = tempfile::tempdir().unwrap();
    let split_file = dir.path().join("split.json");
    std::fs::write(&split_file, split.to_string()).unwrap();
    let (report, _) =
        score_json(&root, cache.path(), &["--split-file", split_file.to_str().unwrap(), "--split", "val"]);
    assert_eq!(report["images"], 6);
    assert_eq!(report["split"], "val");

    let broken = serde_json::json!({"train": [["fire_truck/missing.png", 0, "fire_truck"]], "val": [], "test": []});
    std::fs::write(&split_file, broken.to_string()).unwrap();
    let model = model();
    let templates = fixtures().join("scoring").join("templates.txt").display().to_string();
    let out = glov(
        &[
            "score",
            "--clip",
            &model,
            "--dataset",
            root.to_str().unwrap(),
            "--split-file",
            split_file.to_str().unwrap(),
            "--split",
            "train",
            "--templates",
            &templates,
        ],
        cache.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("missing.png"), "{}", stderr(&out));
}
