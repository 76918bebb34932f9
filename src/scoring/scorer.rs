//! Zero-shot accuracy of templates: each template filled with every class name, the texts of a group of templates
//! encoded in one pass (trimmed to that pass's longest text), normalised, and compared with the normalised image
//! features, all on the backend; only the counts come back.

use crate::backend::{Backend, TemplateCounts};
use crate::models::clip::Clip;
use crate::scoring::descriptions::Aggregate;
use crate::scoring::templates::fill;
use crate::tokenizer::ClipTokenizer;
use anyhow::{Result, ensure};
use serde::Serialize;

/// Accuracies in percent.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Accuracy {
    pub top1: f64,
    /// Present when there are at least five classes.
    pub top5: Option<f64>,
    /// The mean over classes (with at least one image) of each class's top-1 recall.
    pub mean_per_class: f64,
}

pub struct Scorer<'a, B: Backend> {
    backend: &'a B,
    clip: &'a Clip<B>,
    tokenizer: &'a ClipTokenizer,
    /// Normalised image features `[images, dim]`.
    images: B::Tensor,
    labels: Vec<u32>,
    classnames: Vec<String>,
    class_sizes: Vec<usize>,
    /// The most texts encoded in one pass of the text tower.
    max_texts: usize,
}

impl<'a, B: Backend> Scorer<'a, B> {
    /// `features` are unnormalised image features `[labels.len(), dim]`.
    pub fn new(
        backend: &'a B,
        clip: &'a Clip<B>,
        tokenizer: &'a ClipTokenizer,
        features: &[f32],
        labels: Vec<u32>,
        classnames: Vec<String>,
        max_texts: usize,
    ) -> Result<Self> {
        let dim = clip.config.projection_dim;
        ensure!(!labels.is_empty(), "there are no images to score against");
        ensure!(
            features.len() == labels.len() * dim,
            "{} feature values for {} images of width {dim}",
            features.len(),
            labels.len()
        );
        let images = backend.l2_normalize(&backend.upload(features, labels.len(), dim)?)?;
        let mut class_sizes = vec![0; classnames.len()];
        for &l in &labels {
            class_sizes[l as usize] += 1;
        }
        Ok(Self { backend, clip, tokenizer, images, labels, classnames, class_sizes, max_texts: max_texts.max(1) })
    }

    pub fn num_images(&self) -> usize {
        self.labels.len()
    }

    /// Normalised text features `[texts, dim]`, encoded in passes of at most `max_texts` texts.
    fn encode_texts(&self, texts: &[String]) -> Result<B::Tensor> {
        let b = self.backend;
        let dim = self.clip.config.projection_dim;
        let mut parts = Vec::new();
        for chunk in texts.chunks(self.max_texts) {
            let tokens = self.tokenizer.encode_batch(chunk)?;
            parts.push(b.l2_normalize(&self.clip.encode_text(b, &tokens)?)?);
        }
        if parts.len() == 1 {
            return Ok(parts.pop().expect("one part"));
        }
        // A single template with more classes than one pass holds: join the passes through the host.
        let mut joined = Vec::with_capacity(texts.len() * dim);
        for part in &parts {
            joined.extend(b.download(part)?);
        }
        b.upload(&joined, texts.len(), dim)
    }

    fn class_texts(&self, templates: &[String]) -> Vec<String> {
        templates.iter().flat_map(|t| self.classnames.iter().map(move |c| fill(t, c))).collect()
    }

    fn accuracy(&self, counts: &TemplateCounts) -> Accuracy {
        let n = self.labels.len() as f64;
        let recalls: Vec<f64> = counts
            .top1_per_class
            .iter()
            .zip(&self.class_sizes)
            .filter(|(_, size)| **size > 0)
            .map(|(&correct, &size)| correct as f64 / size as f64)
            .collect();
        Accuracy {
            top1: 100.0 * counts.top1 as f64 / n,
            top5: (self.classnames.len() >= 5).then(|| 100.0 * counts.top5 as f64 / n),
            mean_per_class: 100.0 * recalls.iter().sum::<f64>() / recalls.len().max(1) as f64,
        }
    }

    /// The accuracy of each template on its own.
    pub fn score_templates(&self, templates: &[String]) -> Result<Vec<Accuracy>> {
        let _span =
            tracing::info_span!("score", templates = templates.len(), classes = self.classnames.len()).entered();
        let classes = self.classnames.len();
        let per_pass = (self.max_texts / classes.max(1)).max(1);
        let mut scores = Vec::with_capacity(templates.len());
        for group in templates.chunks(per_pass) {
            let features = self.encode_texts(&self.class_texts(group))?;
            let counts = self.backend.score(&self.images, &features, &self.labels, group.len(), classes)?;
            scores.extend(counts.iter().map(|c| self.accuracy(c)));
        }
        Ok(scores)
    }

    /// The accuracy of the ensemble of templates: per class, the mean of the templates' normalised features,
    /// normalised again.
    pub fn score_ensemble(&self, templates: &[String]) -> Result<Accuracy> {
        let _span = tracing::info_span!("score_ensemble", templates = templates.len()).entered();
        ensure!(!templates.is_empty(), "an ensemble needs at least one template");
        let classes = self.classnames.len();
        let features = self.encode_texts(&self.class_texts(templates))?;
        let ensemble = self.backend.average_templates(&features, templates.len(), classes)?;
        let counts = self.backend.score(&self.images, &ensemble, &self.labels, 1, classes)?;
        Ok(self.accuracy(&counts[0]))
    }

    /// The accuracy of class descriptions: `sentences[c]` describe class `c` (none empty). Both aggregations take
    /// the mean of each class's normalised sentence features: normalised again it is CuPL's class embedding; as it
    /// is, its cosine-free dot product with an image is the mean of the sentences' cosines, DCLIP's score.
    pub fn score_descriptions(&self, sentences: &[Vec<String>], aggregate: Aggregate) -> Result<Accuracy> {
        let total: usize = sentences.iter().map(Vec::len).sum();
        let _span = tracing::info_span!("score_descriptions", sentences = total, %aggregate).entered();
        let classes = self.classnames.len();
        ensure!(sentences.len() == classes, "descriptions for {} classes, the dataset has {classes}", sentences.len());
        ensure!(sentences.iter().all(|s| !s.is_empty()), "a class has no description");
        let texts: Vec<String> = sentences.iter().flatten().cloned().collect();
        let features = self.encode_texts(&texts)?;
        let segments: Vec<(usize, usize)> = sentences
            .iter()
            .scan(0, |start, s| {
                let segment = (*start, s.len());
                *start += s.len();
                Some(segment)
            })
            .collect();
        let means = self.backend.mean_rows(&features, &segments)?;
        let class_features = match aggregate {
            Aggregate::Embedding => self.backend.l2_normalize(&means)?,
            Aggregate::Score => means,
        };
        let counts = self.backend.score(&self.images, &class_features, &self.labels, 1, classes)?;
        Ok(self.accuracy(&counts[0]))
    }
}
