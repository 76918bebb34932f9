//! Image datasets: class folders, CoOp split files, k-shot sampling.
//!
//! A [`Dataset`] is one split of a labelled image collection: its class names (label `i` is `classnames[i]`) and
//! its samples (an image path and a label each). Two on-disk forms are read by [`open`]:
//!
//! - **Class folders** (ImageNet style, see [`class_folders`]): `root/<class>/<image>`, or the same per split under
//!   `root/train/`, `root/val/`, `root/test/`. Class names come from the folder names or `root/classnames.txt`
//!   (see [`classnames`]).
//! - **CoOp split files** (see [`split_file`]): a JSON file with `train` / `val` / `test` lists of
//!   `[relative_path, label, classname]`, the images living under the dataset directory.
//!
//! [`Dataset::k_shot`] draws the few-shot subsets (GLOV scores templates on a 1-shot train set) with a documented,
//! platform-independent algorithm (see [`shots`]).

pub mod class_folders;
pub mod classnames;
pub mod shots;
pub mod split_file;

use anyhow::{Result, bail};
use std::cmp::Ordering;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// One labelled image.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sample {
    /// The image file (the dataset directory joined with the image's relative path).
    pub path: PathBuf,
    /// The class index, `< classnames.len()` of the dataset holding the sample.
    pub label: usize,
}

/// One split of a labelled image dataset.
///
/// Invariant: every sample's label is below `classnames.len()`. The class list is the dataset's full class list
/// even when this split has no sample of some class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    /// Human-readable class names, indexed by label (the text that fills a template's class slot).
    pub classnames: Vec<String>,
    /// The samples, ordered by label, then as documented by the loader that produced them.
    pub samples: Vec<Sample>,
}

impl Dataset {
    /// The number of classes (including classes with no sample in this split).
    pub fn num_classes(&self) -> usize {
        self.classnames.len()
    }

    /// The number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether the split has no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The number of samples of each class, indexed by label (length `num_classes()`).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classnames.len()];
        for sample in &self.samples {
            counts[sample.label] += 1;
        }
        counts
    }

    /// A k-shot subset: at most `k` samples per class (all of a class's samples when it has fewer; `k = 0` means
    /// all samples), drawn deterministically from `seed`. The algorithm is documented exactly in [`shots`]; the
    /// result is ordered by label, then in the drawn order. Class names are kept as they are.
    pub fn k_shot(&self, k: usize, seed: u64) -> Dataset {
        shots::k_shot(self, k, seed)
    }
}

/// A dataset split. Only split files and `train/` / `val/` / `test/` folder layouts have splits; a plain class-folder
/// dataset is the same for every split.
///
/// Parses from and displays as `train`, `val`, `test` (parsing ignores ASCII case), so it works as a command-line
/// value both through `FromStr` and through `clap::ValueEnum`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    /// All splits, in the order train, val, test.
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    /// The split's name: `train`, `val` or `test` (also its key in split files and its folder name).
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`Split`] from an unknown name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown split `{0}` (expected train, val or test)")]
pub struct ParseSplitError(pub String);

impl FromStr for Split {
    type Err = ParseSplitError;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Split::ALL
            .into_iter()
            .find(|split| split.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseSplitError(s.to_string()))
    }
}

/// Opens one split of a dataset.
///
/// With `split_file`, `dataset` is the image root that the split file's relative paths are resolved against (see
/// [`split_file::load`]). Without it, `dataset` is a class-folder root (see [`class_folders::load`]); there `split`
/// selects `dataset/<split>/` when the dataset has a train/val/test folder layout, and is ignored otherwise (all
/// images form the dataset).
pub fn open(dataset: &Path, split_file: Option<&Path>, split: Split) -> Result<Dataset> {
    if !dataset.is_dir() {
        if dataset.exists() {
            bail!("the dataset path {} is not a directory", dataset.display());
        }
        bail!("the dataset directory {} does not exist", dataset.display());
    }
    let loaded = match split_file {
        Some(file) => split_file::load(dataset, file, split)?,
        None => class_folders::load(dataset, split)?,
    };
    tracing::debug!(
        dataset = %dataset.display(),
        %split,
        classes = loaded.num_classes(),
        samples = loaded.len(),
        "opened dataset"
    );
    Ok(loaded)
}

/// Orders paths by the bytes of their platform string (UTF-8 on Unix), not by components: this is the order that
/// other languages get by sorting the path strings.
pub(crate) fn path_byte_order(a: &Path, b: &Path) -> Ordering {
    a.as_os_str().as_encoded_bytes().cmp(b.as_os_str().as_encoded_bytes())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::fs;

    /// Creates an empty file (and its parent folders) at `root/relative`.
    pub(crate) fn touch(root: &Path, relative: &str) {
        let path = root.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"").unwrap();
    }

    /// Writes `text` to `root/relative`, creating parent folders.
    pub(crate) fn write(root: &Path, relative: &str, text: &str) {
        let path = root.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn split_parses_and_displays() {
        for split in Split::ALL {
            assert_eq!(split.to_string().parse::<Split>().unwrap(), split);
        }
        assert_eq!("VAL".parse::<Split>().unwrap(), Split::Val);
        let err = "validation".parse::<Split>().unwrap_err();
        assert!(err.to_string().contains("validation"));
        assert_eq!(Split::Test.to_string(), "test");
    }

    #[test]
    fn split_is_a_clap_value() {
        use clap::ValueEnum;
        let names: Vec<String> =
            Split::value_variants().iter().map(|v| v.to_possible_value().unwrap().get_name().to_string()).collect();
        assert_eq!(names, ["train", "val", "test"]);
    }

    #[test]
    fn open_rejects_missing_dataset_dir() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = open(&missing, None, Split::Test).unwrap_err().to_string();
        assert!(err.contains("does not exist") && err.contains("nope"), "{err}");
        touch(dir.path(), "file.jpg");
        let err = open(&dir.path().join("file.jpg"), None, Split::Test).unwrap_err().to_string();
        assert!(err.contains("not a directory"), "{err}");
    }

    #[test]
    fn open_dispatches_on_split_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("images");
        touch(&root, "cat/1.jpg");
        touch(&root, "dog/2.jpg");
        let folders = open(&root, None, Split::Train).unwrap();
        assert_eq!(folders.classnames, ["cat", "dog"]);
        write(
            dir.path(),
            "split.json",
            r#"{"train": [["dog/2.jpg", 0, "dog"]], "val": [], "test": [["cat/1.jpg", 1, "cat"]]}"#,
        );
        let split = open(&root, Some(&dir.path().join("split.json")), Split::Test).unwrap();
        assert_eq!(split.classnames, ["dog", "cat"]);
        assert_eq!(split.samples, [Sample { path: root.join("cat/1.jpg"), label: 1 }]);
    }

    #[test]
    fn class_counts_cover_every_class() {
        let ds = Dataset {
            classnames: vec!["a".into(), "b".into(), "c".into()],
            samples: vec![
                Sample { path: "x".into(), label: 0 },
                Sample { path: "y".into(), label: 2 },
                Sample { path: "z".into(), label: 2 },
            ],
        };
        assert_eq!(ds.class_counts(), [1, 0, 2]);
        assert_eq!(ds.num_classes(), 3);
        assert_eq!(ds.len(), 3);
    }
}
