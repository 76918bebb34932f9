//! One-sentence descriptions of the 16 datasets GLOV reports on, in our own words, shown to the LLM in the
//! meta-prompt. `--dataset-name` picks one (spelling, case, spaces, `-` and `_` do not matter); `--description`
//! overrides it or describes any other dataset.

use anyhow::{Result, bail};

/// A dataset known by name.
#[derive(Clone, Copy, Debug)]
pub struct KnownDataset {
    /// The name shown to the LLM.
    pub name: &'static str,
    /// Other spellings accepted by `--dataset-name`.
    pub aliases: &'static [&'static str],
    pub description: &'static str,
}

pub const KNOWN: [KnownDataset; 16] = [
    KnownDataset {
        name: "ImageNet",
        aliases: &["imagenet1k", "ilsvrc2012"],
        description: "Photographs of everyday objects, animals, plants and scenes from a thousand fine-grained categories.",
    },
    KnownDataset {
        name: "ImageNetV2",
        aliases: &[],
        description: "A fresh test set of photographs collected the way ImageNet was, over the same thousand categories.",
    },
    KnownDataset {
        name: "Caltech101",
        aliases: &["caltech"],
        description: "Centred pictures of objects from a hundred and one everyday categories, mostly on plain backgrounds.",
    },
    KnownDataset {
        name: "ImageNet-R",
        aliases: &["imagenet_rendition"],
        description: "Renditions of ImageNet objects such as cartoons, paintings, sculptures, toys, tattoos and embroidery.",
    },
    KnownDataset {
        name: "ImageNet-Sketch",
        aliases: &[],
        description: "Black-and-white hand-drawn sketches of the thousand ImageNet categories.",
    },
    KnownDataset {
        name: "ImageNet-A",
        aliases: &["imagenet_adversarial"],
        description: "Natural photographs of ImageNet objects in unusual contexts that image classifiers often get wrong.",
    },
    KnownDataset {
        name: "Flowers102",
        aliases: &["oxford_flowers", "flowers"],
        description: "Close-up photographs of flowers from a hundred and two species commonly found in the United Kingdom.",
    },
    KnownDataset {
        name: "OxfordPets",
        aliases: &["pets"],
        description: "Photographs of cats and dogs, each labelled with its breed.",
    },
    KnownDataset {
        name: "StanfordCars",
        aliases: &["cars"],
        description: "Photographs of cars labelled with their make, model and year.",
    },
    KnownDataset {
        name: "DTD",
        aliases: &["describable_textures", "textures"],
        description: "Close-up images of surface textures, each named by a describable attribute such as striped or woven.",
    },
    KnownDataset {
        name: "Food101",
        aliases: &["food"],
        description: "Photographs of plated dishes from a hundred and one kinds of food.",
    },
    KnownDataset {
        name: "FGVCAircraft",
        aliases: &["aircraft"],
        description: "Photographs of aeroplanes, each labelled with its aircraft model variant.",
    },
    KnownDataset {
        name: "SUN397",
        aliases: &["sun"],
        description: "Photographs of indoor and outdoor scenes and places from three hundred and ninety-seven categories.",
    },
    KnownDataset {
        name: "UCF101",
        aliases: &["ucf"],
        description: "Single frames from videos of people performing a hundred and one kinds of action.",
    },
    KnownDataset {
        name: "RESISC45",
        aliases: &["nwpu_resisc45"],
        description: "Aerial and satellite images of land-use and land-cover scenes from forty-five categories.",
    },
    KnownDataset {
        name: "EuroSAT",
        aliases: &[],
        description: "Sentinel-2 satellite images of European land, labelled with one of ten land-use classes.",
    },
];

/// Lower-case letters and digits only: `ImageNet-R`, `imagenet_r` and `image net r` compare equal.
fn key(name: &str) -> String {
    name.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

pub fn find(name: &str) -> Option<&'static KnownDataset> {
    let wanted = key(name);
    KNOWN.iter().find(|d| key(d.name) == wanted || d.aliases.iter().any(|a| key(a) == wanted))
}

/// The name and description shown to the LLM: a known dataset's own (its description replaced by `description`
/// when given), or any name with a `description`.
pub fn resolve(name: &str, description: Option<&str>) -> Result<(String, String)> {
    match (find(name), description) {
        (Some(known), None) => Ok((known.name.to_string(), known.description.to_string())),
        (Some(known), Some(text)) => Ok((known.name.to_string(), text.to_string())),
        (None, Some(text)) => Ok((name.to_string(), text.to_string())),
        (None, None) => {
            let names: Vec<&str> = KNOWN.iter().map(|d| d.name).collect();
            bail!(
                "no built-in description for dataset {name:?}: give --description TEXT (one sentence saying what the \
                 images show), or use one of the built-in names: {}",
                names.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_in_any_spelling() {
        assert_eq!(find("imagenet_r").unwrap().name, "ImageNet-R");
        assert_eq!(find("Image Net-Sketch").unwrap().name, "ImageNet-Sketch");
        assert_eq!(find("oxford_pets").unwrap().name, "OxfordPets");
        assert_eq!(find("EUROSAT").unwrap().name, "EuroSAT");
        assert!(find("mnist").is_none());
        for d in KNOWN {
            for spelling in std::iter::once(d.name).chain(d.aliases.iter().copied()) {
                let owners = KNOWN
                    .iter()
                    .filter(|o| key(o.name) == key(spelling) || o.aliases.iter().any(|a| key(a) == key(spelling)));
                assert_eq!(owners.count(), 1, "{spelling} names one dataset");
            }
        }
    }

    #[test]
    fn descriptions_are_one_sentence_and_overridable() {
        for d in KNOWN {
            assert!(d.description.ends_with('.') && d.description.matches(". ").count() == 0, "{}", d.name);
        }
        assert_eq!(resolve("dtd", Some("Textures.")).unwrap(), ("DTD".to_string(), "Textures.".to_string()));
        assert_eq!(resolve("shapes", Some("Shapes.")).unwrap().0, "shapes");
        let err = resolve("shapes", None).unwrap_err().to_string();
        assert!(err.contains("--description") && err.contains("EuroSAT"), "{err}");
    }
}
