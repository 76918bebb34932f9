//! One trajectory's history of scored templates, and what the method reads from it: the in-context examples (the
//! k best and k worst), the best template, and the guidance pair p+ / p-.

use super::answer::to_llm_form;
use super::meta_prompt::Example;

/// A scored template in a trajectory's history.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The step that proposed it; `None` for the baseline.
    pub step: Option<usize>,
    /// The template with `{}` as the slot.
    pub template: String,
    /// Top-1 accuracy (percent) on the few-shot train set.
    pub accuracy: f64,
}

/// The templates that define the guidance offset: alpha * (H(positive) - H(negative)).
#[derive(Clone, Debug, PartialEq)]
pub struct GuidancePair {
    pub positive: String,
    pub negative: String,
}

/// A trajectory's history, in the order its templates were scored (the baseline first).
#[derive(Clone, Debug)]
pub struct History {
    entries: Vec<Entry>,
    /// Index of the best entry: the first to reach the highest accuracy.
    best: usize,
    /// Set when a template first beats the baseline; replaced whenever a new best appears.
    pair: Option<GuidancePair>,
}

/// Whole percent, as the LLM sees accuracies.
pub fn whole_percent(accuracy: f64) -> i64 {
    accuracy.round() as i64
}

/// How many best and worst examples the meta-prompt shows: k = min(limit, floor(len / 2)).
pub fn examples_per_side(len: usize, limit: usize) -> usize {
    limit.min(len / 2)
}

impl History {
    pub fn new(baseline: &str, accuracy: f64) -> Self {
        Self { entries: vec![Entry { step: None, template: baseline.to_string(), accuracy }], best: 0, pair: None }
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn contains(&self, template: &str) -> bool {
        self.entries.iter().any(|e| e.template == template)
    }

    pub fn baseline(&self) -> &Entry {
        &self.entries[0]
    }

    pub fn best(&self) -> &Entry {
        &self.entries[self.best]
    }

    /// The current guidance pair; `None` until a template beats the baseline.
    pub fn guidance(&self) -> Option<&GuidancePair> {
        self.pair.as_ref()
    }

    /// Adds one step's templates (in the order they were proposed). When the step brings a new best (strictly
    /// higher than the old), the pair becomes the best template and the best of those strictly below it. Returns
    /// whether the pair changed.
    pub fn push_step(&mut self, entries: impl IntoIterator<Item = Entry>) -> bool {
        let old_best = self.best().accuracy;
        for entry in entries {
            debug_assert!(!self.contains(&entry.template), "a template enters a history once");
            if entry.accuracy > self.best().accuracy {
                self.best = self.entries.len();
            }
            self.entries.push(entry);
        }
        if self.best().accuracy <= old_best {
            return false;
        }
        let best = self.best();
        let runner_up = self
            .entries
            .iter()
            .filter(|e| e.accuracy < best.accuracy)
            .reduce(|a, b| if b.accuracy > a.accuracy { b } else { a })
            .expect("the old best is strictly lower than the new");
        self.pair = Some(GuidancePair { positive: best.template.clone(), negative: runner_up.template.clone() });
        true
    }

    /// Indices of entries ranked by accuracy, best first; ties go to the earlier entry.
    fn ranking(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.entries.len()).collect();
        order.sort_by(|&a, &b| self.entries[b].accuracy.total_cmp(&self.entries[a].accuracy).then(a.cmp(&b)));
        order
    }

    /// The in-context examples `(best, worst, k)`: the k best and the k worst templates of the whole history,
    /// each list in ascending order of accuracy (so the best template stands last). With k = 0 (the baseline
    /// alone), `best` is the whole history and `worst` is empty.
    pub fn examples(&self, limit: usize) -> (Vec<Example>, Vec<Example>, usize) {
        let k = examples_per_side(self.entries.len(), limit);
        let ranking = self.ranking();
        let example = |&i: &usize| Example {
            template: to_llm_form(&self.entries[i].template),
            accuracy: whole_percent(self.entries[i].accuracy),
        };
        if k == 0 {
            return (ranking.iter().rev().map(example).collect(), Vec::new(), 0);
        }
        let best = ranking[..k].iter().rev().map(example).collect();
        let worst = ranking[ranking.len() - k..].iter().rev().map(example).collect();
        (best, worst, k)
    }

    /// Up to `n` best templates proposed at `step`, best first (ties: earlier first).
    pub fn step_top(&self, step: usize, n: usize) -> Vec<&Entry> {
        self.ranking().into_iter().map(|i| &self.entries[i]).filter(|e| e.step == Some(step)).take(n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(step: usize, template: &str, accuracy: f64) -> Entry {
        Entry { step: Some(step), template: template.to_string(), accuracy }
    }

    #[test]
    fn the_k_rule() {
        assert_eq!(
            (0..14).map(|n| examples_per_side(n, 5)).collect::<Vec<_>>(),
            [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5, 5]
        );
        assert_eq!(examples_per_side(9, 2), 2);
    }

    #[test]
    fn examples_are_the_extremes_in_ascending_order() {
        let mut h = History::new("a photo of a {}.", 40.4);
        let (best, worst, k) = h.examples(5);
        assert_eq!((k, worst.len()), (0, 0));
        assert_eq!(best, vec![Example { template: "a photo of a <category>.".into(), accuracy: 40 }]);
        h.push_step([entry(0, "b {}", 55.5), entry(0, "c {}", 10.0), entry(0, "d {}", 30.0), entry(0, "e {}", 55.5)]);
        // 5 entries: k = 2. Ranking: b 55.5, e 55.5 (later), baseline 40.4, d 30, c 10.
        let (best, worst, k) = h.examples(5);
        assert_eq!(k, 2);
        let names = |v: &[Example]| v.iter().map(|e| (e.template.clone(), e.accuracy)).collect::<Vec<_>>();
        assert_eq!(names(&best), [("e <category>".to_string(), 56), ("b <category>".to_string(), 56)]);
        assert_eq!(names(&worst), [("c <category>".to_string(), 10), ("d <category>".to_string(), 30)]);
    }

    #[test]
    fn guidance_starts_when_the_baseline_is_beaten_and_follows_new_bests() {
        let mut h = History::new("base {}", 50.0);
        assert!(!h.push_step([entry(0, "worse {}", 40.0), entry(0, "equal {}", 50.0)]));
        assert!(h.guidance().is_none(), "equalling the baseline does not switch guidance on");
        assert_eq!(h.best().template, "base {}");
        // Two better templates in one step: p+ the best, p- the best strictly below it (the other new one).
        assert!(h.push_step([entry(1, "good {}", 60.0), entry(1, "better {}", 70.0)]));
        assert_eq!(h.guidance(), Some(&GuidancePair { positive: "better {}".into(), negative: "good {}".into() }));
        // A template between p- and p+ does not change the pair; a tie with the best is not a new best.
        assert!(!h.push_step([entry(2, "middle {}", 65.0), entry(2, "tie {}", 70.0)]));
        assert_eq!(h.guidance().unwrap().negative, "good {}");
        assert_eq!(h.best().template, "better {}");
        // A new best: the runner-up is now the old best (ties among runners-up go to the earlier).
        assert!(h.push_step([entry(3, "best {}", 80.0)]));
        assert_eq!(h.guidance(), Some(&GuidancePair { positive: "best {}".into(), negative: "better {}".into() }));
    }

    #[test]
    fn step_top_takes_the_step_own_templates() {
        let mut h = History::new("base {}", 50.0);
        h.push_step([entry(0, "a {}", 90.0), entry(0, "b {}", 20.0)]);
        h.push_step([entry(1, "c {}", 30.0), entry(1, "d {}", 60.0), entry(1, "e {}", 60.0), entry(1, "f {}", 10.0)]);
        let top: Vec<&str> = h.step_top(1, 3).iter().map(|e| e.template.as_str()).collect();
        assert_eq!(top, ["d {}", "e {}", "c {}"]);
        assert!(h.step_top(2, 3).is_empty());
    }
}
