//! CLIP end to end: a random-weight model's image and text features on a backend against the reference, and how
//! far each image's best text on the backend trails the reference's best.

use super::measure::worst_row_error;
use super::{CaseResult, Cases, Inputs, Selection};
use crate::backend::Backend;
use crate::backend::cpu::CpuBackend;
use crate::checkpoint::DType;
use crate::models::clip::{Clip, random_weights, shape_config};
use crate::tokenizer::openai_clip_tokenizer;
use anyhow::Result;

/// Features of a random-weight CLIP (ViT-B/32 widths, 2 layers per tower) on `subject` against the reference:
/// relative error of image and text features, and the worst image's pick deficit (`worst_pick_deficit`). Nothing
/// runs unless `only` chooses one of the three cases.
pub fn cases<B: Backend>(subject: &B, label: &str, seed: u64, only: &Selection) -> Result<Vec<CaseResult>> {
    if !only.wants(&["clip_images", "clip_texts", "clip_top1"]) {
        return Ok(Vec::new());
    }
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
    let pixels = Inputs::for_case(seed, "clip_images").values(images * size, 2.0);

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
    let shape = format!("vit-b-32 widths, 2 layers, {images} images, {} texts", texts.len());
    let top1 = if got_images.iter().chain(&got_texts).any(|v| !v.is_finite()) {
        Err("the features hold a NaN or an infinity, so no best text means anything".into())
    } else {
        Ok(worst_pick_deficit([&want_images, &want_texts], [&got_images, &got_texts], dim))
    };
    let mut cases = Cases { label, results: Vec::new() };
    cases.push("clip_images", shape.clone(), worst_row_error(&got_images, &want_images, dim), 2e-2);
    cases.push("clip_texts", shape.clone(), worst_row_error(&got_texts, &want_texts, dim), 2e-2);
    cases.push("clip_top1", shape, top1, PICK_TOLERANCE);
    Ok(cases.results)
}

/// How far the subject's best text may fall behind the reference's, as a share of the spread of an image's
/// similarities. The random model's features are nearly collinear, and once centred, bf16 rounding at 0.5% of the
/// features moves a lead by up to about 12% of the spread; a wrong tower picks texts far down the reference's order.
const PICK_TOLERANCE: f64 = 0.2;

/// Cosine similarities of every image with every text, each side's mean removed first: random weights give every
/// image nearly the same direction, so that without centring one text would be best for all of them.
fn centred_similarities(images: &[f32], texts: &[f32], dim: usize) -> Vec<Vec<f32>> {
    let centred = |rows: &[f32]| -> Vec<Vec<f32>> {
        let n = rows.len() / dim;
        let mean: Vec<f32> = (0..dim).map(|d| rows.iter().skip(d).step_by(dim).sum::<f32>() / n as f32).collect();
        rows.chunks_exact(dim).map(|r| r.iter().zip(&mean).map(|(v, m)| v - m).collect()).collect()
    };
    let texts = centred(texts);
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    centred(images).iter().map(|image| texts.iter().map(|t| dot(image, t)).collect()).collect()
}

/// Over the images: how far the subject's best text (the argmax of its similarities) trails the reference's best
/// in the reference's own similarities, as a share of their spread (0 where both pick the same text, 1 where the
/// subject picks the reference's worst).
fn worst_pick_deficit(want: [&[f32]; 2], got: [&[f32]; 2], dim: usize) -> f64 {
    let reference = centred_similarities(want[0], want[1], dim);
    let subject = centred_similarities(got[0], got[1], dim);
    let deficits = reference.iter().zip(&subject).map(|(r, s)| {
        let (best, picked) = (r[crate::sampling::argmax(r) as usize], r[crate::sampling::argmax(s) as usize]);
        let spread = best - r.iter().copied().fold(f32::INFINITY, f32::min);
        f64::from((best - picked) / spread.max(f32::MIN_POSITIVE))
    });
    deficits.fold(0.0, super::measure::worse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_against_itself_is_exact() {
        let results = cases(&CpuBackend::new(), "cpu", 3, &Selection::all()).unwrap();
        assert_eq!(results.len(), 3);
        assert!(results.iter().all(|r| r.passed && r.error == 0.0), "{results:?}");
    }

    #[test]
    fn the_pick_deficit_is_how_far_the_subjects_best_text_trails() {
        // Two dimensions, each side's mean zero: texts along +x, +y, -x and -y, images along +x and -x.
        let texts = [1.0, 0.0, 0.0, 1.0, -1.0, 0.0, 0.0, -1.0];
        let images = [1.0, 0.0, -1.0, 0.0];
        assert_eq!(worst_pick_deficit([&images, &texts], [&images, &texts], 2), 0.0);
        // The subject sees the images reversed: each picks the reference's worst text.
        let reversed = [-1.0, 0.0, 1.0, 0.0];
        assert_eq!(worst_pick_deficit([&images, &texts], [&reversed, &texts], 2), 1.0);
        // Turned a quarter: each picks a text halfway down the reference's spread.
        let turned = [0.0, 1.0, 0.0, -1.0];
        let deficit = worst_pick_deficit([&images, &texts], [&turned, &texts], 2);
        assert!((deficit - 0.5).abs() < 1e-6, "{deficit}");
    }
}
