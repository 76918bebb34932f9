//! CLIP end to end: a random-weight model's image and text features on a backend against the reference, and
//! whether each image picks the same text on both.

use super::measure::{Measure, worst_row_error};
use super::{CaseResult, Cases, Inputs};
use crate::backend::Backend;
use crate::backend::cpu::CpuBackend;
use crate::checkpoint::DType;
use crate::models::clip::{Clip, random_weights, shape_config};
use crate::tokenizer::openai_clip_tokenizer;
use anyhow::Result;

/// Features of a random-weight CLIP (ViT-B/32 widths, 2 layers per tower) on `subject` against the reference:
/// relative error of image and text features, and the share of images whose best-matching text (argmax of the
/// cosine) is the same on both.
pub fn cases<B: Backend>(subject: &B, label: &str, seed: u64) -> Result<Vec<CaseResult>> {
    let mut config = shape_config("vit-b-32")?;
    config.text.tower.num_layers = 2;
    config.vision.tower.num_layers = 2;
    let store = random_weights(&config, DType::BF16, seed);
    let tokenizer = openai_clip_tokenizer(config.text.eos_token_id)?;
    let subjects = ["cat", "dog", "fire truck", "oak tree", "sail boat", "red house", "tabby cat", "golden retriever"];
    let styles = ["a photo of a {}.", "a blurry photo of the {}.", "itap of a {}.", "a drawing of a {} in a book."];
    let texts: Vec<String> = styles.iter().flat_map(|t| subjects.iter().map(move |c| t.replace("{}", c))).collect();
    let tokens = tokenizer.encode_batch(&texts)?;
    let images = 32;
    let size = 3 * config.vision.image_size * config.vision.image_size;
    let pixels = Inputs { state: seed ^ 0xC11B }.values(images * size, 2.0);

    fn features<B: Backend>(
        b: &B,
        store: &crate::checkpoint::WeightStore,
        config: &crate::models::clip::ClipConfig,
        pixels: &[f32],
        images: usize,
        tokens: &crate::tokenizer::TokenBatch,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let clip = Clip::from_store(b, store, config.clone())?;
        let batch = b.upload(pixels, images, pixels.len() / images)?;
        let image = b.download(&b.l2_normalize(&clip.encode_images(b, &batch)?)?)?;
        let text = b.download(&b.l2_normalize(&clip.encode_text(b, tokens)?)?)?;
        Ok((image, text))
    }
    let (want_images, want_texts) = features(&CpuBackend::new(), &store, &config, &pixels, images, &tokens)?;
    let (got_images, got_texts) = features(subject, &store, &config, &pixels, images, &tokens)?;
    let dim = config.projection_dim;
    // Random weights give every image nearly the same direction, so the cosine's argmax would pick one text for
    // all of them; with each side's mean removed the choice varies from image to image and the check means
    // something.
    let centred = |rows: &[f32]| -> Vec<f32> {
        let n = rows.len() / dim;
        let mean: Vec<f32> = (0..dim).map(|d| rows.iter().skip(d).step_by(dim).sum::<f32>() / n as f32).collect();
        rows.chunks_exact(dim).flat_map(|r| r.iter().zip(&mean).map(|(v, m)| v - m).collect::<Vec<_>>()).collect()
    };
    // Per image: the best text and its lead over the runner-up, relative to the spread of its scores.
    let best_texts = |images_f: &[f32], texts_f: &[f32]| -> Vec<(usize, f32)> {
        let (images_c, texts_c) = (centred(images_f), centred(texts_f));
        images_c
            .chunks_exact(dim)
            .map(|image| {
                let sims: Vec<f32> =
                    texts_c.chunks_exact(dim).map(|t| t.iter().zip(image).map(|(a, b)| a * b).sum()).collect();
                let best = crate::sampling::argmax(&sims) as usize;
                let runner_up =
                    sims.iter().enumerate().filter(|&(j, _)| j != best).map(|(_, &v)| v).fold(f32::MIN, f32::max);
                let spread =
                    sims.iter().copied().fold(f32::MIN, f32::max) - sims.iter().copied().fold(f32::MAX, f32::min);
                (best, (sims[best] - runner_up) / spread.max(f32::MIN_POSITIVE))
            })
            .collect()
    };
    // Images whose best text leads by less than 5% of the spread are near ties that bf16 rounding may flip; the
    // agreement is taken over the others.
    let (want_best, got_best) = (best_texts(&want_images, &want_texts), best_texts(&got_images, &got_texts));
    let clear: Vec<usize> = (0..images).filter(|&i| want_best[i].1 >= 0.05).collect();
    let agree = clear.iter().filter(|&&i| want_best[i].0 == got_best[i].0).count();
    let shape = format!("vit-b-32 widths, 2 layers, {images} images ({} clear), {} texts", clear.len(), texts.len());
    // Reported as the share of disagreeing images among the clear ones (all of them when fewer than a quarter are
    // clear: the check would say nothing).
    let top1: Measure = if got_images.iter().chain(&got_texts).any(|v| !v.is_finite()) {
        Err("the features hold a NaN or an infinity, so no best text means anything".into())
    } else if clear.len() * 4 < images {
        Ok(1.0)
    } else {
        Ok(1.0 - agree as f64 / clear.len() as f64)
    };
    let mut cases = Cases { label, results: Vec::new() };
    cases.push("clip_images", shape.clone(), worst_row_error(&got_images, &want_images, dim), 2e-2);
    cases.push("clip_texts", shape.clone(), worst_row_error(&got_texts, &want_texts, dim), 2e-2);
    cases.push("clip_top1", shape, top1, 0.01);
    Ok(cases.results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_against_itself_is_exact() {
        let results = cases(&CpuBackend::new(), "cpu", 3).unwrap();
        assert_eq!(results.len(), 3);
        assert!(results.iter().all(|r| r.passed && r.error == 0.0), "{results:?}");
    }
}
