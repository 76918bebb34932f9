//! Generative accuracy, as GLOV's reference judges a VLM's prompt: the VLM answers the prompt about each image
//! (greedy, the reference's conversation, the prompt's double quotes stripped and a `?` appended), a sentence
//! encoder embeds each answer and every class name, and the class of highest cosine is the prediction.
//!
//! Each image's features are computed once and kept for every prompt while they fit the host memory given to them
//! ([`FeatureMemory`], shared by the scorers of a run: the first one built fills it first). With a cache folder they
//! are also written to disk ([`VlmFeatureCache`]), so that an image past the memory is read back instead of encoded
//! again, and a later run of the same model on the same files encodes nothing; without one, an image past the
//! memory has its features computed again each time it is asked about. The class names are embedded once. The
//! (prompt, image) pairs decode in batches of at most `batch` answers, image by image: the questions about one image
//! in a batch share its prefix (the system turn, the user header, the image's features), which is prefilled once
//! for all of them.

use super::Accuracy;
use super::feature_cache::image_key;
use super::vlm_feature_cache::VlmFeatureCache;
use crate::backend::Backend;
use crate::generation::generate::{GenerateOptions, PromptEmbeddings, SharedPrefix, generate_shared};
use crate::models::llava::{ImageFeatures, LlavaModel};
use crate::models::sentence::SentenceModel;
use crate::preprocess::decode_rgb8;
use anyhow::{Context, Result, ensure};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

/// The question the VLM is asked for `prompt`, as the reference asks it.
pub fn question(prompt: &str) -> String {
    format!("{}?", prompt.replace('"', ""))
}

/// One answer and the class it was matched to.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Judged {
    pub image: usize,
    pub label: usize,
    pub answer: String,
    pub predicted: usize,
}

/// The host memory image features may take unless told otherwise: 16 GiB.
pub const DEFAULT_FEATURE_MEMORY_GIB: usize = 16;

/// Bytes of host memory image features may still take, shared by the scorers that clone it.
#[derive(Clone, Debug)]
pub struct FeatureMemory(Rc<Cell<usize>>);

impl FeatureMemory {
    pub fn new(bytes: usize) -> Self {
        Self(Rc::new(Cell::new(bytes)))
    }

    /// Takes `bytes` if that many are left.
    fn take(&self, bytes: usize) -> bool {
        let left = self.0.get();
        let fits = bytes <= left;
        if fits {
            self.0.set(left - bytes);
        }
        fits
    }
}

/// How a scorer asks: the longest answer, the most answers decoded at once, and where image features are kept.
#[derive(Clone, Debug)]
pub struct AskOptions {
    pub max_new_tokens: usize,
    pub batch: usize,
    pub memory: FeatureMemory,
    /// The folder of the feature caches on disk; `None`: no disk cache.
    pub cache_dir: Option<PathBuf>,
}

pub struct GenerativeScorer<'a, B: Backend> {
    backend: &'a B,
    vlm: &'a LlavaModel<B>,
    matcher: &'a SentenceModel<B>,
    paths: Vec<PathBuf>,
    /// The features kept, by image.
    kept: RefCell<HashMap<usize, Rc<ImageFeatures>>>,
    memory: FeatureMemory,
    disk: Option<VlmFeatureCache>,
    /// Images encoded by the vision tower and read from the disk cache so far; whether a failed cache write was
    /// reported.
    encoded: Cell<usize>,
    read_back: Cell<usize>,
    warned: Cell<bool>,
    labels: Vec<usize>,
    /// L2-normalised class-name embeddings, `[classes][dim]`.
    classes: Vec<Vec<f32>>,
    max_new_tokens: usize,
    batch: usize,
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

impl<'a, B: Backend> GenerativeScorer<'a, B> {
    /// A scorer of `images`, whose features are computed now as far as `options.memory` keeps them.
    pub fn new(
        backend: &'a B,
        (vlm, matcher): (&'a LlavaModel<B>, &'a SentenceModel<B>),
        images: &[PathBuf],
        labels: Vec<usize>,
        classnames: &[String],
        options: &AskOptions,
    ) -> Result<Self> {
        ensure!(images.len() == labels.len() && !images.is_empty(), "{} images, {} labels", images.len(), labels.len());
        ensure!(
            options.batch >= 1 && options.max_new_tokens >= 1,
            "the batch and the answer's length must be at least 1"
        );
        let classes = matcher.embed(backend, classnames)?.into_iter().map(normalised).collect();
        let disk = match &options.cache_dir {
            Some(dir) => Some(VlmFeatureCache::open(
                dir,
                &vlm.checkpoint.checksum()?,
                backend.kind(),
                vlm.image.config.text_hidden,
            )),
            None => None,
        };
        let scorer = Self {
            backend,
            vlm,
            matcher,
            paths: images.to_vec(),
            kept: RefCell::new(HashMap::new()),
            memory: options.memory.clone(),
            disk,
            encoded: Cell::new(0),
            read_back: Cell::new(0),
            warned: Cell::new(false),
            labels,
            classes,
            max_new_tokens: options.max_new_tokens,
            batch: options.batch,
        };
        let _span = tracing::info_span!("vlm_image_features", images = images.len()).entered();
        for i in 0..images.len() {
            scorer.features(i)?;
            if scorer.kept.borrow().len() <= i {
                let then = if scorer.disk.is_some() { "read from the disk cache or encoded" } else { "encoded" };
                tracing::info!(
                    kept = i,
                    images = images.len(),
                    "image features past the memory given are {then} when asked"
                );
                break;
            }
        }
        tracing::info!(
            encoded = scorer.encoded.get(),
            read_from_disk = scorer.read_back.get(),
            kept = scorer.kept.borrow().len(),
            "image features"
        );
        Ok(scorer)
    }

    /// Image `i`'s features: kept ones, else read from the disk cache, else computed (and written to the disk cache);
    /// kept where they fit the memory.
    fn features(&self, i: usize) -> Result<Rc<ImageFeatures>> {
        if let Some(kept) = self.kept.borrow().get(&i) {
            return Ok(kept.clone());
        }
        let path = &self.paths[i];
        let key = match &self.disk {
            Some(_) => Some(image_key(path)?),
            None => None,
        };
        let cached = self.disk.as_ref().zip(key.as_deref()).and_then(|(disk, key)| disk.get(key));
        let features = match cached {
            Some(c) => {
                self.read_back.set(self.read_back.get() + 1);
                ImageFeatures { tiles: c.tiles, features: c.features, tokens: c.tokens }
            }
            None => {
                let img = decode_rgb8(path).with_context(|| format!("image {}", path.display()))?;
                let features =
                    self.vlm.image.features(self.backend, &img).with_context(|| format!("image {}", path.display()))?;
                self.encoded.set(self.encoded.get() + 1);
                if let Some((disk, key)) = self.disk.as_ref().zip(key.as_deref())
                    && let Err(e) = disk.put(key, &features.features, features.tiles)
                    && !self.warned.replace(true)
                {
                    tracing::warn!("image features are not cached on disk: {e:#}");
                }
                features
            }
        };
        let features = Rc::new(features);
        if self.memory.take(features.features.len() * std::mem::size_of::<f32>()) {
            self.kept.borrow_mut().insert(i, features.clone());
        }
        Ok(features)
    }

    /// Every image's answer to `prompt`, matched to a class, and the accuracy.
    pub fn score(&self, prompt: &str) -> Result<(Accuracy, Vec<Judged>)> {
        Ok(self.score_all(&[prompt])?.remove(0))
    }

    /// [`Self::score`] for several prompts at once: the answers of all (prompt, image) pairs decode in batches of
    /// up to `batch`, and are embedded together.
    pub fn score_all(&self, prompts: &[&str]) -> Result<Vec<(Accuracy, Vec<Judged>)>> {
        let _span = tracing::info_span!("vlm_score", prompts = prompts.len(), images = self.paths.len()).entered();
        let options = GenerateOptions::greedy(self.max_new_tokens, self.vlm.stop_tokens.clone());
        let questions: Vec<String> = prompts.iter().map(|p| question(p)).collect();
        // Image by image, so that a batch holds few images, each with many questions.
        let pairs: Vec<(usize, usize)> =
            (0..self.paths.len()).flat_map(|i| (0..prompts.len()).map(move |p| (p, i))).collect();
        let mut answers = vec![String::new(); pairs.len()];
        let mut done = 0;
        for chunk in pairs.chunks(self.batch) {
            let runs: Vec<&[(usize, usize)]> = chunk.chunk_by(|a, b| a.1 == b.1).collect();
            let images: Vec<Rc<ImageFeatures>> =
                runs.iter().map(|run| self.features(run[0].1)).collect::<Result<_>>()?;
            let mut groups: Vec<SharedPrefix> = Vec::new();
            let mut replaced = Vec::new();
            for (same_image, image) in runs.iter().zip(&images) {
                let mut prompts = Vec::with_capacity(same_image.len());
                let mut positions = Vec::new();
                for &(p, _) in *same_image {
                    let (ids, image_positions) = self.vlm.prompt(&questions[p], image.tokens)?;
                    prompts.push(ids);
                    positions = image_positions;
                }
                let shared = shared_prefix(&prompts);
                ensure!(
                    positions.last().is_none_or(|&p| p < shared),
                    "the questions' shared prefix ({shared} tokens) ends inside the image's tokens"
                );
                groups.push(SharedPrefix {
                    prefix: prompts[0][..shared].to_vec(),
                    continuations: prompts.iter().map(|ids| ids[shared..].to_vec()).collect(),
                    steer: None,
                });
                replaced.push(PromptEmbeddings { positions, values: &image.features });
            }
            let generation = generate_shared(self.backend, &self.vlm.llm, &groups, &replaced, &options)?;
            for sequence in &generation.sequences {
                answers[done + sequence.index] = self.vlm.tokenizer.decode(&sequence.tokens)?;
            }
            done += chunk.len();
        }
        let embedded = self.matcher.embed(self.backend, &answers)?;
        let mut out: Vec<(Vec<Judged>, Vec<usize>)> = vec![(Vec::new(), Vec::new()); prompts.len()];
        for ((&(p, i), answer), e) in pairs.iter().zip(answers).zip(embedded) {
            let e = normalised(e);
            let cosines: Vec<f32> = self.classes.iter().map(|c| c.iter().zip(&e).map(|(a, b)| a * b).sum()).collect();
            // The first class of the highest cosine, as argmax takes it.
            let predicted =
                cosines.iter().enumerate().fold(0, |best, (c, &v)| if v > cosines[best] { c } else { best });
            let label = self.labels[i];
            out[p].1.push(cosines.iter().filter(|&&v| v > cosines[label]).count());
            out[p].0.push(Judged { image: i, label, answer, predicted });
        }
        Ok(out.into_iter().map(|(judged, ranks)| (accuracy(&judged, &ranks, self.classes.len()), judged)).collect())
    }

    /// The images' labels, in order.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }
}

/// The tokens all of `prompts` begin with, less one where that would leave one of them nothing to continue with.
fn shared_prefix(prompts: &[Vec<u32>]) -> usize {
    let first = &prompts[0];
    let common = prompts[1..]
        .iter()
        .map(|p| first.iter().zip(p).take_while(|(a, b)| a == b).count())
        .fold(first.len(), usize::min);
    let shortest = prompts.iter().map(Vec::len).min().unwrap_or(0);
    common.min(shortest.saturating_sub(1))
}

/// Top-1, top-5 (with five classes or more; a class ranked by how many classes have a higher cosine) and the mean
/// per-class recall, in percent.
fn accuracy(judged: &[Judged], ranks: &[usize], classes: usize) -> Accuracy {
    let n = judged.len().max(1) as f64;
    let top1 = judged.iter().filter(|j| j.predicted == j.label).count() as f64;
    let top5 = ranks.iter().filter(|&&r| r < 5).count() as f64;
    let mut per_class = vec![(0usize, 0usize); classes];
    for j in judged {
        per_class[j.label].1 += 1;
        per_class[j.label].0 += usize::from(j.predicted == j.label);
    }
    let recalls: Vec<f64> = per_class.iter().filter(|(_, n)| *n > 0).map(|(h, n)| *h as f64 / *n as f64).collect();
    Accuracy {
        top1: 100.0 * top1 / n,
        top5: (classes >= 5).then(|| 100.0 * top5 / n),
        mean_per_class: 100.0 * recalls.iter().sum::<f64>() / recalls.len().max(1) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_question_is_the_reference_s() {
        assert_eq!(question(r#"Describe the "category" in this image"#), "Describe the category in this image?");
    }

    #[test]
    fn the_shared_prefix_leaves_every_prompt_a_token() {
        assert_eq!(shared_prefix(&[vec![1, 2, 3, 4], vec![1, 2, 5]]), 2);
        assert_eq!(shared_prefix(&[vec![1, 2, 3], vec![1, 2, 3]]), 2);
        assert_eq!(shared_prefix(&[vec![1, 2, 3]]), 2);
        assert_eq!(shared_prefix(&[vec![1, 2, 3], vec![1, 2]]), 1);
        assert_eq!(shared_prefix(&[vec![7], vec![8, 9]]), 0);
    }

    #[test]
    fn accuracy_counts_hits_per_class() {
        let j = |label, predicted| Judged { image: 0, label, answer: String::new(), predicted };
        let judged = [j(0, 0), j(0, 1), j(1, 1), j(2, 0)];
        let a = accuracy(&judged, &[0, 1, 0, 3], 3);
        assert_eq!(a.top1, 50.0);
        assert_eq!(a.top5, None);
        // Recalls 1/2, 1, 0.
        assert!((a.mean_per_class - 50.0).abs() < 1e-12);
    }
}
