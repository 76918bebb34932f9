//! CoOp split files (`split_zhou_<Dataset>.json`).
//!
//! Format: a JSON object with the keys `train`, `val` and `test`, each a list of entries
//! `[relative_path, label, classname]` (a string, a non-negative integer, a string). Image paths are relative to the
//! image root (the dataset directory given to [`load`]). Other keys are ignored.
//!
//! Classes are gathered across all splits present (so every class is known even when the requested split lacks
//! one): the labels must be exactly `0..C` and each label must have one class name everywhere. The class name is
//! the entry's name with `_` replaced by a space, as CoOp's zero-shot CLIP does before filling a template (the
//! consistency check compares the names as written).
//!
//! Only the requested split's key is required, and its samples keep the file's order. Every image it lists must be
//! an existing file, named by a path that stays below the image root (neither absolute nor with a `..` component,
//! in any split).

use super::{Dataset, Sample, Split, classnames::default_name};
use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Component, Path};

/// One parsed entry of a split list.
struct Entry<'a> {
    path: &'a str,
    label: usize,
    classname: &'a str,
}

/// Loads `split` from the CoOp split file `split_file`, with image paths resolved against `image_root`.
pub fn load(image_root: &Path, split_file: &Path, split: Split) -> Result<Dataset> {
    let text = std::fs::read_to_string(split_file)
        .with_context(|| format!("cannot read the split file {}", split_file.display()))?;
    let json: Value = serde_json::from_str(&text)
        .with_context(|| format!("the split file {} is not valid JSON", split_file.display()))?;
    let Some(object) = json.as_object() else {
        bail!(
            "the split file {} must hold a JSON object with train/val/test lists, found {}",
            split_file.display(),
            kind(&json)
        );
    };

    let mut splits: Vec<(Split, Vec<Entry<'_>>)> = Vec::new();
    for s in Split::ALL {
        if let Some(list) = object.get(s.as_str()) {
            splits.push((s, parse_list(list, s, split_file)?));
        }
    }
    let Some(entries) = splits.iter().find(|(s, _)| *s == split).map(|(_, e)| e) else {
        let found: Vec<&str> = splits.iter().map(|(s, _)| s.as_str()).collect();
        bail!(
            "the split file {} has no \"{}\" split (found: {})",
            split_file.display(),
            split,
            if found.is_empty() { "none".to_string() } else { found.join(", ") }
        );
    };
    if entries.is_empty() {
        bail!("the \"{}\" split of {} is empty", split, split_file.display());
    }

    let classnames = gather_classnames(&splits, split_file)?;

    if !image_root.is_dir() {
        bail!("the image root {} of the split file {} does not exist", image_root.display(), split_file.display());
    }
    let samples: Vec<Sample> =
        entries.iter().map(|e| Sample { path: image_root.join(e.path), label: e.label }).collect();
    let missing: Vec<&Sample> = samples.par_iter().filter(|s| !s.path.is_file()).collect();
    if !missing.is_empty() {
        bail!(
            "{} of the {} images of the \"{}\" split of {} are missing under {}: {}{}",
            missing.len(),
            samples.len(),
            split,
            split_file.display(),
            image_root.display(),
            missing.iter().take(5).map(|s| s.path.display().to_string()).collect::<Vec<_>>().join(", "),
            if missing.len() > 5 { ", ..." } else { "" }
        );
    }
    Ok(Dataset { classnames, samples })
}

/// Parses one split's list, with errors naming the file, the split and the entry index.
fn parse_list<'a>(list: &'a Value, split: Split, file: &Path) -> Result<Vec<Entry<'a>>> {
    let Some(items) = list.as_array() else {
        bail!("{}: \"{}\" must be a list of entries, found {}", file.display(), split, kind(list));
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let entry = match item.as_array().map(Vec::as_slice) {
                Some([Value::String(path), label, Value::String(classname)]) => {
                    label.as_u64().and_then(|l| usize::try_from(l).ok()).map(|label| Entry { path, label, classname })
                }
                _ => None,
            };
            let entry = entry.with_context(|| {
                format!(
                    "{}: \"{}\" entry {}: expected [relative_path, label, classname] with a non-negative integer \
                     label, found {}",
                    file.display(),
                    split,
                    index,
                    truncated(item)
                )
            })?;
            if !stays_below(entry.path) {
                bail!(
                    "{}: \"{}\" entry {}: the image path {:?} leaves the image root (it is absolute or has a `..` \
                     component); a split file names images below its root",
                    file.display(),
                    split,
                    index,
                    entry.path
                );
            }
            Ok(entry)
        })
        .collect()
}

/// Whether a relative path stays below the folder it is joined to, read lexically: no root, no `..`. Links below
/// the image root (a class folder kept on another disk) are followed as the user made them.
fn stays_below(path: &str) -> bool {
    Path::new(path).components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// The class names by label, gathered across all splits; errors on conflicting names and on gaps in the labels.
fn gather_classnames(splits: &[(Split, Vec<Entry<'_>>)], file: &Path) -> Result<Vec<String>> {
    // label -> (name as written, split and entry index of its first occurrence)
    let mut names: BTreeMap<usize, (&str, Split, usize)> = BTreeMap::new();
    for (split, entries) in splits {
        for (index, entry) in entries.iter().enumerate() {
            let (first, first_split, first_index) =
                *names.entry(entry.label).or_insert((entry.classname, *split, index));
            if first != entry.classname {
                bail!(
                    "{}: \"{}\" entry {} names label {} \"{}\", but \"{}\" entry {} named it \"{}\"",
                    file.display(),
                    split,
                    index,
                    entry.label,
                    entry.classname,
                    first_split,
                    first_index,
                    first
                );
            }
        }
    }
    let Some(count) = names.keys().next_back().map_or(Some(0), |&max| max.checked_add(1)) else {
        bail!("{}: label {} is too large", file.display(), usize::MAX);
    };
    if names.len() != count {
        let missing: Vec<String> =
            (0..count).filter(|l| !names.contains_key(l)).take(10).map(|l| l.to_string()).collect();
        bail!(
            "{}: labels must be 0 to {} with every label used, but {} of them have no entry in any split: {}{}",
            file.display(),
            count - 1,
            count - names.len(),
            missing.join(", "),
            if count - names.len() > missing.len() { ", ..." } else { "" }
        );
    }
    Ok(names.into_values().map(|(name, _, _)| default_name(name)).collect())
}

/// A short description of a JSON value's type, for error messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A JSON value's text, cut to a readable length.
fn truncated(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::tests::{touch, write};

    /// A temp dir with `images/` holding `paths` and `split.json` holding `json`.
    fn setup(paths: &[&str], json: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for p in paths {
            touch(&dir.path().join("images"), p);
        }
        write(dir.path(), "split.json", json);
        dir
    }

    fn load_in(dir: &tempfile::TempDir, split: Split) -> Result<Dataset> {
        load(&dir.path().join("images"), &dir.path().join("split.json"), split)
    }

    const GOOD: &str = r#"{
        "train": [["face/1.jpg", 0, "face"], ["leopard/2.jpg", 2, "leopard"]],
        "val": [["snow_leopard/3.jpg", 1, "snow_leopard"]],
        "test": [["leopard/4.jpg", 2, "leopard"], ["face/5.jpg", 0, "face"], ["face/6.jpg", 0, "face"]]
    }"#;
    const GOOD_IMAGES: [&str; 6] =
        ["face/1.jpg", "leopard/2.jpg", "snow_leopard/3.jpg", "leopard/4.jpg", "face/5.jpg", "face/6.jpg"];

    #[test]
    fn parses_each_split_with_classes_from_all_splits() {
        let dir = setup(&GOOD_IMAGES, GOOD);
        let root = dir.path().join("images");
        let train = load_in(&dir, Split::Train).unwrap();
        // Label 1 only appears in val, yet the train split knows it; `_` becomes a space.
        assert_eq!(train.classnames, ["face", "snow leopard", "leopard"]);
        assert_eq!(
            train.samples,
            [Sample { path: root.join("face/1.jpg"), label: 0 }, Sample { path: root.join("leopard/2.jpg"), label: 2 }]
        );
        let test = load_in(&dir, Split::Test).unwrap();
        assert_eq!(test.classnames, train.classnames);
        // The file's order is kept.
        assert_eq!(test.samples.iter().map(|s| s.label).collect::<Vec<_>>(), [2, 0, 0]);
        assert_eq!(test.class_counts(), [2, 0, 1]);
        assert_eq!(load_in(&dir, Split::Val).unwrap().len(), 1);
    }

    #[test]
    fn missing_split_key() {
        let dir = setup(&["a/1.jpg"], r#"{"train": [["a/1.jpg", 0, "a"]], "test": [["a/1.jpg", 0, "a"]]}"#);
        let err = load_in(&dir, Split::Val).unwrap_err().to_string();
        assert!(err.contains("split.json") && err.contains("no \"val\" split (found: train, test)"), "{err}");
    }

    #[test]
    fn empty_requested_split() {
        let dir = setup(&["a/1.jpg"], r#"{"train": [["a/1.jpg", 0, "a"]], "val": [], "test": []}"#);
        let err = load_in(&dir, Split::Val).unwrap_err().to_string();
        assert!(err.contains("\"val\" split of") && err.contains("is empty"), "{err}");
    }

    #[test]
    fn malformed_json() {
        let dir = setup(&[], r#"{"train": [["a/1.jpg", 0, "a"]"#);
        let err = format!("{:#}", load_in(&dir, Split::Train).unwrap_err());
        assert!(err.contains("split.json is not valid JSON") && err.contains("EOF"), "{err}");
        let dir = setup(&[], r#"[["a/1.jpg", 0, "a"]]"#);
        let err = load_in(&dir, Split::Train).unwrap_err().to_string();
        assert!(err.contains("must hold a JSON object") && err.contains("found a list"), "{err}");
        let dir = setup(&[], r#"{"train": {"a/1.jpg": 0}}"#);
        let err = load_in(&dir, Split::Train).unwrap_err().to_string();
        assert!(err.contains("\"train\" must be a list of entries, found an object"), "{err}");
    }

    #[test]
    fn wrong_entry_shapes() {
        for (bad, shown) in [
            (r#"["a/2.jpg", 0]"#, r#"["a/2.jpg",0]"#),
            (r#"["a/2.jpg", "0", "a"]"#, r#"["a/2.jpg","0","a"]"#),
            (r#"["a/2.jpg", -1, "a"]"#, r#"["a/2.jpg",-1,"a"]"#),
            (r#"["a/2.jpg", 0.5, "a"]"#, r#"["a/2.jpg",0.5,"a"]"#),
            (r#"[0, 0, "a"]"#, r#"[0,0,"a"]"#),
            (r#"["a/2.jpg", 0, null]"#, r#"["a/2.jpg",0,null]"#),
            (r#"["a/2.jpg", 0, "a", 1]"#, r#"["a/2.jpg",0,"a",1]"#),
            (r#""a/2.jpg""#, r#""a/2.jpg""#),
        ] {
            // The bad entry sits in `val`, which is not the requested split: every split is validated.
            let json = format!(r#"{{"train": [["a/1.jpg", 0, "a"]], "val": [["a/1.jpg", 0, "a"], {bad}]}}"#);
            let dir = setup(&["a/1.jpg"], &json);
            let err = load_in(&dir, Split::Train).unwrap_err().to_string();
            assert!(err.contains("split.json: \"val\" entry 1: expected [relative_path, label, classname]"), "{err}");
            assert!(err.contains(shown), "{err}");
        }
    }

    #[test]
    fn paths_that_leave_the_image_root_are_refused() {
        for bad in ["/etc/passwd", "../outside.jpg", "a/../../outside.jpg", "a/./../b/1.jpg"] {
            let json =
                format!(r#"{{"train": [["a/1.jpg", 0, "a"]], "test": [["a/1.jpg", 0, "a"], ["{bad}", 0, "a"]]}}"#);
            let dir = setup(&["a/1.jpg"], &json);
            let err = load_in(&dir, Split::Train).unwrap_err().to_string();
            assert!(err.contains(&format!("split.json: \"test\" entry 1: the image path {bad:?} leaves")), "{err}");
        }
        assert!(stays_below("a/./b/1.jpg") && stays_below("1.jpg"));
    }

    #[test]
    fn conflicting_class_names() {
        let json = r#"{"train": [["a/1.jpg", 0, "cat"], ["b/2.jpg", 1, "dog"]],
                       "test": [["a/1.jpg", 0, "cat"], ["b/2.jpg", 1, "puppy"]]}"#;
        let dir = setup(&["a/1.jpg", "b/2.jpg"], json);
        let err = load_in(&dir, Split::Train).unwrap_err().to_string();
        assert!(
            err.contains("\"test\" entry 1 names label 1 \"puppy\", but \"train\" entry 1 named it \"dog\""),
            "{err}"
        );
    }

    #[test]
    fn labels_must_be_contiguous() {
        let json = r#"{"train": [["a/1.jpg", 0, "cat"], ["b/2.jpg", 3, "dog"]]}"#;
        let dir = setup(&["a/1.jpg", "b/2.jpg"], json);
        let err = load_in(&dir, Split::Train).unwrap_err().to_string();
        assert!(err.contains("labels must be 0 to 3") && err.contains("2 of them have no entry in any split: 1, 2"));
    }

    #[test]
    fn missing_images_are_listed() {
        let entries: Vec<String> = (0..8).map(|i| format!(r#"["c/{i}.jpg", 0, "c"]"#)).collect();
        let json = format!(r#"{{"test": [{}]}}"#, entries.join(","));
        let dir = setup(&["c/0.jpg", "c/3.jpg"], &json);
        let err = load_in(&dir, Split::Test).unwrap_err().to_string();
        assert!(err.contains("6 of the 8 images of the \"test\" split") && err.contains("are missing under"), "{err}");
        for shown in ["c/1.jpg", "c/2.jpg", "c/4.jpg", "c/5.jpg", "c/6.jpg"] {
            assert!(err.contains(shown), "{err}");
        }
        assert!(!err.contains("c/7.jpg") && !err.contains("c/0.jpg") && err.ends_with(", ..."), "{err}");
    }

    #[test]
    fn missing_image_root() {
        let dir = setup(&[], r#"{"test": [["c/0.jpg", 0, "c"]]}"#);
        let err = load(&dir.path().join("nope"), &dir.path().join("split.json"), Split::Test).unwrap_err();
        assert!(err.to_string().contains("image root") && err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn missing_split_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(dir.path(), &dir.path().join("split_zhou_X.json"), Split::Test).unwrap_err().to_string();
        assert!(err.contains("cannot read the split file") && err.contains("split_zhou_X.json"), "{err}");
    }
}
