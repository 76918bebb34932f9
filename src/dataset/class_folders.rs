//! Class-folder (ImageNet-style) datasets.
//!
//! Layout: `root/<class>/<image>`. The classes are the non-hidden subfolders of `root`, sorted by the bytes of
//! their names (folder names must be UTF-8); label `i` is the `i`-th folder. Class names come from
//! [`classnames`] (folder names with `_` -> space, or `root/classnames.txt`).
//!
//! Images are the regular files directly inside a class folder whose extension is one of [`IMAGE_EXTENSIONS`]
//! (ASCII case ignored). Hidden entries (names starting with `.`) and other files are ignored, and so are nested
//! subfolders inside a class folder: a class is exactly its folder's own images, and a class folder without any is
//! an error. Symbolic links are followed. Samples are ordered by label, then by path bytes.
//!
//! **Splits.** A plain class-folder dataset has no splits: every split is the whole dataset. When `root/train`,
//! `root/val` or `root/test` is a folder that itself contains class folders, the dataset has a split layout and
//! the split `s` is read from `root/<s>/<class>/<image>` (the requested split's folder must then exist). The class
//! list is the union of the class folders of all split folders present, so labels agree across splits and a class
//! absent from one split has no samples there (not an error); `classnames.txt` is still read from `root`. Only the
//! requested split's folders are scanned for images, and an empty class folder there is an error.

use super::{Dataset, Sample, Split, classnames, path_byte_order};
use anyhow::{Context, Result, anyhow, bail};
use rayon::prelude::*;
use std::fs;
use std::path::{Path, PathBuf};

/// The image file extensions recognised in class folders (compared ignoring ASCII case).
pub const IMAGE_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "webp", "bmp"];

/// Whether `path` names an image by its extension (ASCII case ignored) and is not hidden.
pub fn is_image_path(path: &Path) -> bool {
    let Some(name) = path.file_name() else { return false };
    if name.as_encoded_bytes().starts_with(b".") {
        return false;
    }
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|ext| IMAGE_EXTENSIONS.iter().any(|known| ext.eq_ignore_ascii_case(known)))
}

/// Loads `split` of the class-folder dataset at `root` (see the module documentation for the layouts).
pub fn load(root: &Path, split: Split) -> Result<Dataset> {
    let split_dirs = split_layout(root)?;
    let (image_dir, folders) = if split_dirs.is_empty() {
        let folders = class_dirs(root)?;
        if folders.is_empty() {
            bail!("the dataset directory {} has no class folders", root.display());
        }
        (root.to_path_buf(), folders)
    } else {
        if !split_dirs.iter().any(|(s, _)| *s == split) {
            let found: Vec<String> = split_dirs.iter().map(|(s, _)| format!("{s}/")).collect();
            let dir = root.join(split.as_str());
            if dir.is_dir() {
                bail!(
                    "the dataset {} has a train/val/test layout ({}) but {} has no class folders",
                    root.display(),
                    found.join(", "),
                    dir.display()
                );
            }
            bail!(
                "the dataset {} has a train/val/test layout ({}) but no {}/ folder",
                root.display(),
                found.join(", "),
                split
            );
        }
        let mut folders: Vec<String> = split_dirs.into_iter().flat_map(|(_, names)| names).collect();
        folders.sort();
        folders.dedup();
        (root.join(split.as_str()), folders)
    };

    let images: Vec<Option<Vec<PathBuf>>> = folders
        .par_iter()
        .map(|folder| {
            let dir = image_dir.join(folder);
            if dir.is_dir() { images_in(&dir).map(Some) } else { Ok(None) }
        })
        .collect::<Result<_>>()?;
    let empty: Vec<String> = images
        .iter()
        .zip(&folders)
        .filter(|(found, _)| found.as_ref().is_some_and(|paths| paths.is_empty()))
        .map(|(_, folder)| image_dir.join(folder).display().to_string())
        .collect();
    if !empty.is_empty() {
        bail!(
            "{} class folder{} contain{} no images (*.{}): {}{}",
            empty.len(),
            if empty.len() == 1 { "" } else { "s" },
            if empty.len() == 1 { "s" } else { "" },
            IMAGE_EXTENSIONS.join(", *."),
            empty.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
            if empty.len() > 5 { ", ..." } else { "" }
        );
    }

    let classnames = classnames::for_folders(root, &folders)?;
    let samples = images
        .into_iter()
        .enumerate()
        .flat_map(|(label, paths)| paths.unwrap_or_default().into_iter().map(move |path| Sample { path, label }))
        .collect();
    Ok(Dataset { classnames, samples })
}

/// The split folders of a train/val/test layout with their class folders (empty when `root` has no such layout).
fn split_layout(root: &Path) -> Result<Vec<(Split, Vec<String>)>> {
    let mut found = Vec::new();
    for split in Split::ALL {
        let dir = root.join(split.as_str());
        if dir.is_dir() {
            let classes = class_dirs(&dir)?;
            if !classes.is_empty() {
                found.push((split, classes));
            }
        }
    }
    Ok(found)
}

/// The names of the non-hidden subfolders of `dir` (symbolic links followed), sorted by bytes.
fn class_dirs(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name();
        if name.as_encoded_bytes().starts_with(b".") || !entry.path().is_dir() {
            continue;
        }
        let name = name
            .into_string()
            .map_err(|name| anyhow!("the class folder name {:?} in {} is not valid UTF-8", name, dir.display()))?;
        names.push(name);
    }
    names.sort();
    Ok(names)
}

/// The image files directly inside `dir` (see [`is_image_path`]; symbolic links followed), sorted by path bytes.
fn images_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry.with_context(|| format!("cannot list {}", dir.display()))?.path();
        if is_image_path(&path) && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort_by(|a, b| path_byte_order(a, b));
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::tests::{touch, write};

    fn relative(ds: &Dataset, root: &Path) -> Vec<(String, usize)> {
        ds.samples
            .iter()
            .map(|s| (s.path.strip_prefix(root).unwrap().to_string_lossy().into_owned(), s.label))
            .collect()
    }

    #[test]
    fn discovers_and_sorts_classes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in ["zebra/b.jpg", "zebra/a.jpg", "Zebra/1.png", "golden_retriever/x.jpeg", "apple/10.jpg", "apple/2.jpg"]
        {
            touch(root, f);
        }
        let ds = load(root, Split::Test).unwrap();
        // Byte order: upper case sorts before lower case.
        assert_eq!(ds.classnames, ["Zebra", "apple", "golden retriever", "zebra"]);
        assert_eq!(
            relative(&ds, root),
            [
                ("Zebra/1.png".to_string(), 0),
                ("apple/10.jpg".to_string(), 1),
                ("apple/2.jpg".to_string(), 1),
                ("golden_retriever/x.jpeg".to_string(), 2),
                ("zebra/a.jpg".to_string(), 3),
                ("zebra/b.jpg".to_string(), 3),
            ]
        );
        // Without a split layout the split does not matter.
        assert_eq!(load(root, Split::Train).unwrap(), ds);
    }

    #[test]
    fn filters_by_extension_and_skips_hidden_and_nested() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in [
            "cat/a.JPG",
            "cat/b.Jpeg",
            "cat/c.png",
            "cat/d.webp",
            "cat/e.BMP",
            "cat/f.gif",
            "cat/g.txt",
            "cat/jpg",
            "cat/.hidden.jpg",
            "cat/nested/h.jpg",
            "cat/folder.jpg/i.jpg",
            ".git/objects/x.jpg",
            "notes.jpg",
        ] {
            touch(root, f);
        }
        let ds = load(root, Split::Test).unwrap();
        assert_eq!(ds.classnames, ["cat"]);
        let names: Vec<_> = relative(&ds, root).into_iter().map(|(p, _)| p).collect();
        assert_eq!(names, ["cat/a.JPG", "cat/b.Jpeg", "cat/c.png", "cat/d.webp", "cat/e.BMP"]);
    }

    #[test]
    fn empty_class_folder_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(root, "cat/a.jpg");
        touch(root, "dog/readme.txt");
        touch(root, "dog/nested/b.jpg");
        let err = load(root, Split::Test).unwrap_err().to_string();
        assert!(err.contains("1 class folder contains no images") && err.contains("dog"), "{err}");
        assert!(!err.contains("cat"), "{err}");
    }

    #[test]
    fn no_class_folders_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "a.jpg");
        touch(dir.path(), ".hidden/b.jpg");
        let err = load(dir.path(), Split::Test).unwrap_err().to_string();
        assert!(err.contains("has no class folders"), "{err}");
    }

    #[test]
    fn classnames_file_list_form() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(root, "b_class/1.jpg");
        touch(root, "a_class/1.jpg");
        write(root, "classnames.txt", "first class\nsecond_class\n");
        assert_eq!(load(root, Split::Test).unwrap().classnames, ["first class", "second_class"]);
        write(root, "classnames.txt", "only one\n");
        let err = load(root, Split::Test).unwrap_err().to_string();
        assert!(err.contains("classnames.txt has 1 class names") && err.contains("2 class folders"), "{err}");
    }

    #[test]
    fn classnames_file_mapping_form() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(root, "n01443537/1.jpg");
        touch(root, "n01440764/1.jpg");
        write(root, "classnames.txt", "n01443537 goldfish\nn01440764 tench\n");
        let ds = load(root, Split::Val).unwrap();
        assert_eq!(ds.classnames, ["tench", "goldfish"]);
        write(root, "classnames.txt", "n01443537 goldfish\nn01443537 tench\n");
        let err = load(root, Split::Val).unwrap_err().to_string();
        assert!(err.contains("`n01443537` is listed twice"), "{err}");
    }

    #[test]
    fn split_layout_selects_the_split_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in ["train/cat/t1.jpg", "train/cat/t2.jpg", "train/dog/t3.jpg", "val/dog/v1.jpg", "test/bird/x.png"] {
            touch(root, f);
        }
        write(root, "classnames.txt", "a bird\na cat\na dog\n");
        let train = load(root, Split::Train).unwrap();
        // Classes are the union over the split folders, so labels agree across splits.
        assert_eq!(train.classnames, ["a bird", "a cat", "a dog"]);
        assert_eq!(
            relative(&train, root),
            [
                ("train/cat/t1.jpg".to_string(), 1),
                ("train/cat/t2.jpg".to_string(), 1),
                ("train/dog/t3.jpg".to_string(), 2)
            ]
        );
        assert_eq!(train.class_counts(), [0, 2, 1]);
        let val = load(root, Split::Val).unwrap();
        assert_eq!(relative(&val, root), [("val/dog/v1.jpg".to_string(), 2)]);
        let test = load(root, Split::Test).unwrap();
        assert_eq!(relative(&test, root), [("test/bird/x.png".to_string(), 0)]);
    }

    #[test]
    fn split_layout_requires_the_split_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(root, "train/cat/1.jpg");
        touch(root, "test/cat/2.jpg");
        let err = load(root, Split::Val).unwrap_err().to_string();
        assert!(err.contains("train/val/test layout") && err.contains("no val/ folder"), "{err}");
        fs::create_dir_all(root.join("val")).unwrap();
        let err = load(root, Split::Val).unwrap_err().to_string();
        assert!(err.contains("has no class folders"), "{err}");
        // An empty class folder in the requested split is an error.
        fs::create_dir_all(root.join("val/cat")).unwrap();
        let err = load(root, Split::Val).unwrap_err().to_string();
        assert!(err.contains("contains no images") && err.contains("cat"), "{err}");
    }

    #[test]
    fn a_train_folder_of_images_is_a_class() {
        // `train/` holding images rather than class folders is an ordinary class named "train".
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(root, "train/1.jpg");
        touch(root, "bus/2.jpg");
        let ds = load(root, Split::Val).unwrap();
        assert_eq!(ds.classnames, ["bus", "train"]);
    }

    #[cfg(unix)]
    #[test]
    fn follows_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        touch(dir.path(), "elsewhere/cat/a.jpg");
        touch(dir.path(), "elsewhere/b.jpg");
        touch(&root, "dog/c.jpg");
        std::os::unix::fs::symlink(dir.path().join("elsewhere/cat"), root.join("cat")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere/b.jpg"), root.join("dog/b.jpg")).unwrap();
        let ds = load(&root, Split::Test).unwrap();
        assert_eq!(ds.classnames, ["cat", "dog"]);
        assert_eq!(ds.class_counts(), [1, 2]);
    }
}
