//! Generative accuracy, as GLOV's reference judges a VLM's prompt: the VLM answers the prompt about each image
//! (greedy, the reference's conversation, the prompt's double quotes stripped and a `?` appended), a sentence
//! encoder embeds each answer and every class name, and the class of highest cosine is the prediction.
//!
//! Each image's features are computed once and kept for every prompt; the class names are embedded once. The
//! (prompt, image) pairs of a prompt decode in batches of at most `batch` answers.

use super::Accuracy;
use crate::backend::Backend;
use crate::generation::generate::{GenerateOptions, PromptEmbeddings, Request, Streams, generate_replacing};
use crate::models::llava::{ImageFeatures, LlavaModel};
use crate::models::sentence::SentenceModel;
use crate::preprocess::decode_rgb8;
use crate::sampling::SamplingParams;
use anyhow::{Context, Result, ensure};
use std::path::PathBuf;

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

pub struct GenerativeScorer<'a, B: Backend> {
    backend: &'a B,
    vlm: &'a LlavaModel<B>,
    matcher: &'a SentenceModel<B>,
    images: Vec<ImageFeatures>,
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
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        backend: &'a B,
        vlm: &'a LlavaModel<B>,
        matcher: &'a SentenceModel<B>,
        images: &[PathBuf],
        labels: Vec<usize>,
        classnames: &[String],
        max_new_tokens: usize,
        batch: usize,
    ) -> Result<Self> {
        ensure!(images.len() == labels.len() && !images.is_empty(), "{} images, {} labels", images.len(), labels.len());
        ensure!(batch >= 1 && max_new_tokens >= 1, "the batch and the answer's length must be at least 1");
        let _span = tracing::info_span!("vlm_image_features", images = images.len()).entered();
        let images = images
            .iter()
            .map(|path| {
                let img = decode_rgb8(path).with_context(|| format!("image {}", path.display()))?;
                vlm.image_features(backend, &img).with_context(|| format!("image {}", path.display()))
            })
            .collect::<Result<Vec<_>>>()?;
        let classes = matcher.embed(backend, classnames)?.into_iter().map(normalised).collect();
        Ok(Self { backend, vlm, matcher, images, labels, classes, max_new_tokens, batch })
    }

    /// Every image's answer to `prompt`, matched to a class, and the accuracy.
    pub fn score(&self, prompt: &str) -> Result<(Accuracy, Vec<Judged>)> {
        let _span = tracing::info_span!("vlm_score", images = self.images.len()).entered();
        let question = question(prompt);
        let options = GenerateOptions {
            max_new_tokens: self.max_new_tokens,
            sampling: SamplingParams { temperature: 0.0, top_k: 0, top_p: 1.0, greedy: true },
            seed: 0,
            stop_tokens: self.vlm.stop_tokens.clone(),
            steer: None,
            streams: Streams::Batch,
        };
        let mut answers = Vec::with_capacity(self.images.len());
        let indices: Vec<usize> = (0..self.images.len()).collect();
        for chunk in indices.chunks(self.batch) {
            let mut requests = Vec::with_capacity(chunk.len());
            let mut replaced = Vec::with_capacity(chunk.len());
            for &i in chunk {
                let image = &self.images[i];
                let (prompt, positions) = self.vlm.prompt(&question, image.tokens)?;
                requests.push(Request { prompt, n: 1, steer: None });
                replaced.push(PromptEmbeddings { positions, values: &image.features });
            }
            let generation = generate_replacing(self.backend, &self.vlm.llm, &requests, &replaced, &options)?;
            for sequence in &generation.sequences {
                answers.push(self.vlm.tokenizer.decode(&sequence.tokens)?);
            }
        }
        let embedded = self.matcher.embed(self.backend, &answers)?;
        let mut judged = Vec::with_capacity(answers.len());
        let mut ranks = Vec::with_capacity(answers.len());
        for (i, (answer, e)) in answers.into_iter().zip(embedded).enumerate() {
            let e = normalised(e);
            let cosines: Vec<f32> = self.classes.iter().map(|c| c.iter().zip(&e).map(|(a, b)| a * b).sum()).collect();
            // The first class of the highest cosine, as argmax takes it.
            let predicted =
                cosines.iter().enumerate().fold(0, |best, (c, &v)| if v > cosines[best] { c } else { best });
            let label = self.labels[i];
            ranks.push(cosines.iter().filter(|&&v| v > cosines[label]).count());
            judged.push(Judged { image: i, label, answer, predicted });
        }
        Ok((accuracy(&judged, &ranks, self.classes.len()), judged))
    }
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
