//! WaffleCLIP's random descriptors (Roth et al., "Waffling around for Performance", ExplainableML/WaffleCLIP): each
//! class is described by the same `2 N` sentences "A photo of a {class}, which is/has {descriptor}.", N of them with
//! a few random words and N with groups of random characters, scored as DCLIP scores descriptions (the mean of the
//! sentences' cosines). The shape of a descriptor follows the class names as published: as many words as a class
//! name has on average, cut to its average word length; as many character groups as a name has words, as long in
//! all as its longest word on average. The words are the published list (`data/waffle/words.json`, 4,330 entries,
//! the empty one included); the characters are those of the published ImageNet descriptors, for every dataset (the
//! published code takes them from each dataset's DCLIP descriptors). Runs draw from seeds 0, 1, ..., as published,
//! with our own generator, so the random words are not the published runs' words.

use crate::backend::Backend;
use crate::sampling::mix64;
use crate::scoring::descriptions::{Aggregate, sentence};
use crate::scoring::{Accuracy, Scorer};
use anyhow::Result;

/// The published random-word list, sorted, as a JSON array.
const WORDS: &str = include_str!("../../data/waffle/words.json");
/// The word list, parsed once.
fn words() -> &'static [String] {
    static PARSED: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    PARSED.get_or_init(|| serde_json::from_str(WORDS).expect("the shipped word list is a JSON array of strings"))
}

/// The characters of the published ImageNet DCLIP descriptors, without `,` and `.`.
const CHARACTERS: &str = "\"'()-/0123456789:ABCDEFGIJKLMNOPQRSTUVWZabcdefghijklmnopqrstuvwxyz";

/// The published descriptor shape of a dataset, from its class names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Random words per word descriptor.
    pub words: usize,
    /// The length the words are cut to.
    pub word_length: usize,
    /// Groups of random characters per character descriptor, joined by ", ".
    pub groups: usize,
    /// Characters per group.
    pub group_length: usize,
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    sum / n.max(1) as f64
}

impl Shape {
    /// As the published code computes it (numpy's rounding: halves to even).
    pub fn of(classnames: &[String]) -> Self {
        let words_of = |name: &str| name.replace('_', " ").split(' ').map(str::len).collect::<Vec<usize>>();
        let words = mean(classnames.iter().map(|c| words_of(c).len() as f64)).round_ties_even().max(1.0) as usize;
        let word_length = mean(classnames.iter().map(|c| {
            let lengths = words_of(c);
            mean(lengths.iter().map(|&l| l as f64))
        }))
        .round_ties_even() as usize;
        let groups = mean(classnames.iter().map(|c| c.matches(' ').count() as f64)).round_ties_even() as usize + 1;
        let longest = mean(classnames.iter().map(|c| c.split(' ').map(str::len).max().unwrap_or(0) as f64));
        // Padded up to a multiple of the groups, by a whole group's worth where it already is one, as published.
        let characters = longest.ceil() as usize;
        let characters = characters + groups - characters % groups;
        Shape { words, word_length: word_length.max(1), groups, group_length: characters / groups }
    }
}

/// A counter-based generator seeded by the run.
struct Draws {
    state: u64,
}

impl Draws {
    fn below(&mut self, n: usize) -> usize {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        ((u128::from(mix64(self.state)) * n as u128) >> 64) as usize
    }
}

/// The `2 pairs` descriptors of one run: a word descriptor, then a character descriptor, `pairs` times.
pub fn descriptors(shape: Shape, pairs: usize, run: u64) -> Vec<String> {
    let words = words();
    let characters: Vec<char> = CHARACTERS.chars().collect();
    let mut draws = Draws { state: mix64(run ^ 0x3AFF_1E5E_ED00_0000) };
    let mut out = Vec::with_capacity(2 * pairs);
    for _ in 0..pairs {
        let picked: Vec<String> = (0..shape.words)
            .map(|_| words[draws.below(words.len())].chars().take(shape.word_length).collect())
            .collect();
        out.push(picked.join(" "));
        let groups: Vec<String> = (0..shape.groups)
            .map(|_| (0..shape.group_length).map(|_| characters[draws.below(characters.len())]).collect())
            .collect();
        out.push(groups.join(", "));
    }
    out
}

/// Every class's sentences for the descriptors, the same descriptors for all.
pub fn sentences(classnames: &[String], descriptors: &[String]) -> Vec<Vec<String>> {
    classnames.iter().map(|class| descriptors.iter().map(|d| sentence(class, d)).collect()).collect()
}

/// The runs drawn from `seeds`, each scored as DCLIP scores descriptions: the first run's descriptors (for a look
/// at what was scored) and every run's accuracy.
pub fn score_runs<B: Backend>(
    scorer: &Scorer<B>,
    classnames: &[String],
    pairs: usize,
    seeds: impl IntoIterator<Item = u64>,
) -> Result<(Vec<String>, Vec<Accuracy>)> {
    let shape = Shape::of(classnames);
    let mut first = Vec::new();
    let mut accuracies = Vec::new();
    for seed in seeds {
        let descriptors = descriptors(shape, pairs, seed);
        accuracies.push(scorer.score_descriptions(&sentences(classnames, &descriptors), Aggregate::Score)?);
        if first.is_empty() {
            first = descriptors;
        }
    }
    Ok((first, accuracies))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_word_list_is_the_published_one() {
        let words = words();
        assert_eq!(words.len(), 4330);
        assert_eq!((words[0].as_str(), words[1].as_str(), words[4329].as_str()), ("", "06-12", "zygodactyl"));
        assert!(words.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(CHARACTERS.chars().count(), 66);
    }

    #[test]
    fn the_shape_follows_the_class_names_as_published() {
        // Words per name 1 and 3 (underscores are spaces): 2; mean word lengths 3 and 13 / 3: 3.67 -> 4; spaces in
        // the raw names 0 and 1: 0.5 rounds to 0 (halves to even), so 1 group; longest raw words 3 and 9 ("tabby_cat"):
        // 6, padded by a whole group to 7.
        let shape = Shape::of(&names(&["cat", "tabby_cat dwarf"]));
        assert_eq!(shape, Shape { words: 2, word_length: 4, groups: 1, group_length: 7 });
        // Two spaces each: 3 groups; longest words 4 and 6: 5, padded to 6, 2 per group.
        let shape = Shape::of(&names(&["red oak tree", "silver birch tree"]));
        assert_eq!((shape.groups, shape.group_length), (3, 2));
    }

    #[test]
    fn descriptors_interleave_words_and_characters_and_follow_the_seed() {
        let shape = Shape { words: 2, word_length: 4, groups: 2, group_length: 3 };
        let run = descriptors(shape, 15, 0);
        assert_eq!(run.len(), 30);
        for pair in run.chunks(2) {
            assert!(pair[0].split(' ').count() == 2 && pair[0].split(' ').all(|w| w.chars().count() <= 4), "{pair:?}");
            let groups: Vec<&str> = pair[1].split(", ").collect();
            assert!(groups.len() == 2 && groups.iter().all(|g| g.chars().count() == 3), "{pair:?}");
        }
        assert_eq!(run, descriptors(shape, 15, 0));
        assert_ne!(run, descriptors(shape, 15, 1));
    }

    #[test]
    fn every_class_gets_the_same_descriptors() {
        let s = sentences(&names(&["sail_boat", "cat"]), &names(&["a mast", "xQ3, (ab"]));
        assert_eq!(s[0], ["A photo of a sail boat, which is a mast.", "A photo of a sail boat, which has xQ3, (ab."]);
        assert_eq!(s[1][0], "A photo of a cat, which is a mast.");
    }
}
