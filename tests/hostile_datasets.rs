//! CoOp split files that name images outside their image root: an absolute path or a `..` component, in any split,
//! is refused with an error naming the split file and the entry, before any image is read, even where the file it
//! names exists. A class folder that is a symbolic link to a folder elsewhere, as users make on purpose, still
//! loads.

#![cfg(unix)]

mod common;

use serde_json::json;
use std::path::Path;

const MEMORY_MIB: u64 = 4096;
const SECONDS: u64 = 60;
const CLASSES: [&str; 2] = ["fire_truck", "oak_tree"];

/// An image root in `dir/images` with the scoring fixture's images of two classes, the second class a link to a
/// folder outside the root; an image outside the root as `dir/outside/img0.png`.
fn image_root(dir: &Path) -> std::path::PathBuf {
    let from = common::fixtures().join("scoring/dataset");
    let root = dir.join("images");
    let elsewhere = dir.join("elsewhere").join(CLASSES[1]);
    let outside = dir.join("outside");
    for folder in [root.join(CLASSES[0]), elsewhere.clone(), outside.clone()] {
        std::fs::create_dir_all(folder).unwrap();
    }
    for image in ["img0.png", "img1.png"] {
        std::fs::copy(from.join(CLASSES[0]).join(image), root.join(CLASSES[0]).join(image)).unwrap();
        std::fs::copy(from.join(CLASSES[1]).join(image), elsewhere.join(image)).unwrap();
    }
    std::fs::copy(from.join(CLASSES[0]).join("img0.png"), outside.join("img0.png")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, root.join(CLASSES[1])).unwrap();
    root
}

fn score_args<'a>(root: &'a str, split_file: &'a str, templates: &'a str, clip: &'a str) -> Vec<&'a str> {
    let mut args = vec!["score", "--clip", clip, "--dataset", root, "--split-file", split_file];
    args.extend(["--split", "train", "--templates", templates, "--no-cache", "--format", "json"]);
    args
}

#[test]
fn image_paths_that_leave_the_root_are_refused_and_linked_class_folders_load() {
    let dir = tempfile::tempdir().unwrap();
    let root = image_root(dir.path());
    let templates = common::fixtures().join("scoring/templates.txt");
    let clip = common::fixtures().join("clip-tiny-quickgelu");
    let entry = |class: usize, image: &str| json!([format!("{}/{image}", CLASSES[class]), class, CLASSES[class]]);
    let good = vec![entry(0, "img0.png"), entry(1, "img0.png"), entry(0, "img1.png"), entry(1, "img1.png")];
    let split_file = dir.path().join("split.json");
    let args = score_args(
        root.to_str().unwrap(),
        split_file.to_str().unwrap(),
        templates.to_str().unwrap(),
        clip.to_str().unwrap(),
    );

    std::fs::write(&split_file, json!({"train": good, "val": good, "test": good}).to_string()).unwrap();
    let run = common::run_bounded(dir.path(), &args, MEMORY_MIB, SECONDS);
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    assert!(run.output.status.success(), "a linked class folder must load: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&run.output.stdout).unwrap();
    assert_eq!(report["images"], 4);

    let outside = dir.path().join("outside/img0.png");
    for bad in [
        outside.to_str().unwrap().to_string(),
        "../outside/img0.png".to_string(),
        format!("{}/../../outside/img0.png", CLASSES[0]),
        format!("./{}/../../outside/img0.png", CLASSES[1]),
    ] {
        // The bad entry sits in the test split: every split is checked, whichever is asked for.
        let mut test = good.clone();
        test.push(json!([bad, 0, CLASSES[0]]));
        std::fs::write(&split_file, json!({"train": good, "val": good, "test": test}).to_string()).unwrap();
        let run = common::run_bounded(dir.path(), &args, MEMORY_MIB, SECONDS);
        let entry = format!("\"test\" entry 4: the image path {bad:?} leaves the image root");
        common::assert_clear_error(&run, &[split_file.to_str().unwrap(), &entry]);
    }
}
