//! The published CLIP template sets, shipped in `data/template-sets/` (sources in its `SOURCES.md`): OpenAI's 80
//! ImageNet templates, the 7 of its forward selection, and CLIP's list for each dataset of its evaluation. A set is
//! named by its file name or by a dataset it was written for (spelling, case, spaces, `-` and `_` do not matter).

use super::templates::parse_templates;
use anyhow::{Result, bail};

/// One published template set.
#[derive(Debug)]
pub struct TemplateSet {
    pub name: &'static str,
    /// Dataset names it is selected by, beside its own.
    pub datasets: &'static [&'static str],
    /// Where it was published.
    pub source: &'static str,
    text: &'static str,
}

impl TemplateSet {
    /// The templates, in the published order.
    pub fn templates(&self) -> Vec<String> {
        parse_templates(self.text).expect("the shipped template sets are checked by the tests")
    }
}

const NOTEBOOK: &str = "openai/CLIP, notebooks/Prompt_Engineering_for_ImageNet.ipynb";
const PROMPTS: &str = "openai/CLIP, data/prompts.md";

macro_rules! set {
    ($name:literal, $source:expr, [$($dataset:literal),*]) => {
        TemplateSet {
            name: $name,
            datasets: &[$($dataset),*],
            source: $source,
            text: include_str!(concat!("../../data/template-sets/", $name, ".txt")),
        }
    };
}

pub const SETS: &[TemplateSet] = &[
    set!("imagenet-80", NOTEBOOK, ["ImageNet", "ImageNetV2", "ImageNet-Sketch", "ImageNet-A", "ImageNet-R"]),
    set!("imagenet-7", NOTEBOOK, []),
    set!("caltech101", PROMPTS, ["caltech-101"]),
    set!("oxford_pets", PROMPTS, ["OxfordPets"]),
    set!("stanford_cars", PROMPTS, ["StanfordCars"]),
    set!("oxford_flowers", PROMPTS, ["Flowers102"]),
    set!("food101", PROMPTS, ["food-101"]),
    set!("fgvc_aircraft", PROMPTS, ["FGVCAircraft"]),
    set!("sun397", PROMPTS, []),
    set!("dtd", PROMPTS, ["DescribableTextures"]),
    set!("eurosat", PROMPTS, []),
    set!("ucf101", PROMPTS, []),
    set!("cifar10", PROMPTS, []),
    set!("cifar100", PROMPTS, []),
    set!("birdsnap", PROMPTS, []),
    set!("clevr_counts", PROMPTS, ["CLEVRCounts"]),
    set!("country211", PROMPTS, []),
    set!("fer2013", PROMPTS, ["FacialEmotionRecognition2013"]),
    set!("gtsrb", PROMPTS, []),
    set!("hateful_memes", PROMPTS, []),
    set!("kitti", PROMPTS, []),
    set!("kinetics700", PROMPTS, []),
    set!("mnist", PROMPTS, []),
    set!("pascal_voc2007", PROMPTS, ["PascalVOC2007"]),
    set!("patch_camelyon", PROMPTS, ["PatchCamelyon"]),
    set!("resisc45", PROMPTS, []),
    set!("rendered_sst2", PROMPTS, ["SST2"]),
    set!("stl10", PROMPTS, []),
];

/// Lower-case letters and digits only.
fn key(name: &str) -> String {
    name.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// The set of a name or dataset name; an unknown name is an error listing the sets.
pub fn find(name: &str) -> Result<&'static TemplateSet> {
    let wanted = key(name);
    let found = SETS.iter().find(|s| key(s.name) == wanted || s.datasets.iter().any(|d| key(d) == wanted));
    match found {
        Some(set) => Ok(set),
        None => {
            let names: Vec<&str> = SETS.iter().map(|s| s.name).collect();
            bail!(
                "no template set is named {name:?}; the sets (or a dataset they were written for): {}",
                names.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_set_parses_with_one_slot_per_template() {
        for set in SETS {
            let templates = set.templates();
            assert!(!templates.is_empty(), "{}", set.name);
            assert_eq!(templates.len(), set.text.lines().count(), "{} has a blank line", set.name);
        }
        assert_eq!(find("imagenet-80").unwrap().templates().len(), 80);
        assert_eq!(find("imagenet-7").unwrap().templates().len(), 7);
        assert_eq!(find("imagenet-7").unwrap().templates()[0], "itap of a {}.");
        assert!(
            find("imagenet-7").unwrap().templates().iter().all(|t| find("imagenet").unwrap().templates().contains(t))
        );
    }

    #[test]
    fn sets_are_found_by_their_name_or_a_dataset_in_any_spelling() {
        assert_eq!(find("Oxford Pets").unwrap().name, "oxford_pets");
        assert_eq!(find("flowers102").unwrap().name, "oxford_flowers");
        assert_eq!(find("ImageNet_R").unwrap().name, "imagenet-80");
        assert_eq!(find("caltech-101").unwrap().name, "caltech101");
        for set in SETS {
            for spelling in std::iter::once(set.name).chain(set.datasets.iter().copied()) {
                let owners = SETS
                    .iter()
                    .filter(|s| key(s.name) == key(spelling) || s.datasets.iter().any(|d| key(d) == key(spelling)));
                assert_eq!(owners.count(), 1, "{spelling} names one set");
            }
        }
        let err = find("imagenet-81").unwrap_err().to_string();
        assert!(err.contains("\"imagenet-81\"") && err.contains("imagenet-7, caltech101"), "{err}");
    }
}
