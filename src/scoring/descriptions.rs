//! Class descriptions: sentences per class, as CuPL publishes them (a JSON object `{"class name": ["sentence", ...]}`)
//! and as `describe` writes them, and the two ways of turning them into a class's score: CuPL's class embedding
//! (the normalised mean of the normalised sentence embeddings) and DCLIP's mean of the per-sentence cosine
//! similarities.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::Path;

/// The most bytes a descriptions file may hold (ImageNet's published CuPL file is about 8 MB).
const MAX_FILE_BYTES: u64 = 512 << 20;

/// How a class's sentences become its score against an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// CuPL: the cosine with the class embedding, the normalised mean of the sentences' normalised embeddings.
    Embedding,
    /// DCLIP: the mean of the cosines with the sentences' normalised embeddings.
    Score,
}

impl std::fmt::Display for Aggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Aggregate::Embedding => "embedding",
            Aggregate::Score => "score",
        })
    }
}

/// Sentences per class name, in the file's spelling.
#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Descriptions(pub BTreeMap<String, Vec<String>>);

/// Lower case, `_` as a space, runs of spaces as one: `Golden_Retriever` and `golden retriever` compare equal.
fn key(name: &str) -> String {
    name.replace('_', " ").split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

impl Descriptions {
    /// Reads a descriptions file; errors name the file (and, from the JSON parser, the line and column).
    pub fn read(path: &Path) -> Result<Self> {
        let size =
            std::fs::metadata(path).with_context(|| format!("cannot read descriptions file {}", path.display()))?.len();
        if size > MAX_FILE_BYTES {
            bail!("descriptions file {} holds {size} bytes, more than the {MAX_FILE_BYTES} allowed", path.display());
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read descriptions file {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| {
            format!("descriptions file {} is not a JSON object of class names to lists of sentences", path.display())
        })
    }

    /// The sentences of each of `classnames`, in that order: a class is found by its exact name, else by a name
    /// equal up to case, `_` and spacing. Classes missing from the file, or with no sentence, are an error naming
    /// them.
    pub fn for_classes(&self, classnames: &[String]) -> Result<Vec<Vec<String>>> {
        let mut by_key: BTreeMap<String, Vec<&String>> = BTreeMap::new();
        for name in self.0.keys() {
            by_key.entry(key(name)).or_default().push(name);
        }
        let (mut found, mut missing, mut empty, mut ambiguous) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for class in classnames {
            let name = match (self.0.contains_key(class), by_key.get(&key(class)).map(Vec::as_slice)) {
                (true, _) => class,
                (false, Some([one])) => *one,
                (false, Some(several)) => {
                    ambiguous.push(format!("{class:?} (as {several:?})"));
                    continue;
                }
                (false, None) => {
                    missing.push(format!("{class:?}"));
                    continue;
                }
            };
            let sentences: Vec<String> =
                self.0[name].iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
            if sentences.is_empty() {
                empty.push(format!("{class:?}"));
            }
            found.push(sentences);
        }
        let mut problems = Vec::new();
        for (what, names) in [("missing", missing), ("with no sentence", empty), ("spelled ambiguously", ambiguous)] {
            if !names.is_empty() {
                let shown: Vec<&str> = names.iter().take(20).map(String::as_str).collect();
                let more = if names.len() > 20 { format!(" and {} more", names.len() - 20) } else { String::new() };
                problems.push(format!("{} {what}: {}{more}", names.len(), shown.join(", ")));
            }
        }
        if !problems.is_empty() {
            bail!("the descriptions do not cover the dataset's classes: {}", problems.join("; "));
        }
        Ok(found)
    }
}

/// DCLIP's clause before a descriptor, by the descriptor's first letters, as published (case-sensitive prefixes,
/// not words: "antennae" is "which is").
pub fn descriptor_clause(descriptor: &str) -> String {
    if descriptor.starts_with('a') || descriptor.starts_with("used") {
        format!("which is {descriptor}")
    } else if ["has", "often", "typically", "may", "can"].iter().any(|p| descriptor.starts_with(p)) {
        format!("which {descriptor}")
    } else {
        format!("which has {descriptor}")
    }
}

/// A descriptor's sentence as DCLIP's descriptors are scored in WaffleCLIP's code: "A photo of a {class}, which
/// is/has {descriptor}." (`_` in the class name as a space).
pub fn sentence(class: &str, descriptor: &str) -> String {
    format!("A photo of a {}, {}.", class.replace('_', " "), descriptor_clause(descriptor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_follow_dclips_clause_rule() {
        assert_eq!(descriptor_clause("antennae"), "which is antennae");
        assert_eq!(descriptor_clause("used for rowing"), "which is used for rowing");
        assert_eq!(descriptor_clause("often red"), "which often red");
        assert_eq!(descriptor_clause("A large tail"), "which has A large tail");
        assert_eq!(sentence("sail_boat", "a mast"), "A photo of a sail boat, which is a mast.");
    }

    fn descriptions(json: &str) -> Descriptions {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn classes_are_found_exactly_or_up_to_case_and_underscores() {
        let d = descriptions(r#"{"golden_retriever": ["a dog.", " "], "Cat": ["a cat.", "whiskers."]}"#);
        let classes = ["cat".to_string(), "Golden Retriever".to_string()];
        assert_eq!(d.for_classes(&classes).unwrap(), [vec!["a cat.", "whiskers."], vec!["a dog."]]);
    }

    #[test]
    fn missing_empty_and_ambiguous_classes_are_named() {
        let d = descriptions(r#"{"cat": ["  "], "Dog": ["a dog."], "dog": ["another dog."]}"#);
        let classes = ["cat".to_string(), "DOG".to_string(), "fish".to_string()];
        let err = d.for_classes(&classes).unwrap_err().to_string();
        assert!(err.contains("1 missing: \"fish\""), "{err}");
        assert!(err.contains("1 with no sentence: \"cat\""), "{err}");
        assert!(err.contains("1 spelled ambiguously: \"DOG\""), "{err}");
    }

    #[test]
    fn the_file_round_trips_and_bad_files_name_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.json");
        let d = descriptions(r#"{"cat": ["a cat.", "whiskers."], "dog": ["a dog."]}"#);
        std::fs::write(&path, serde_json::to_string_pretty(&d).unwrap()).unwrap();
        assert_eq!(Descriptions::read(&path).unwrap(), d);
        std::fs::write(&path, r#"{"cat": "a cat."}"#).unwrap();
        let err = format!("{:#}", Descriptions::read(&path).unwrap_err());
        assert!(err.contains(&path.display().to_string()) && err.contains("line 1"), "{err}");
        let err = format!("{:#}", Descriptions::read(&dir.path().join("none.json")).unwrap_err());
        assert!(err.contains("none.json"), "{err}");
    }
}
