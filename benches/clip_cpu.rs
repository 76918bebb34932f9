//! CPU throughput of a randomly initialised ViT-B/32-shaped CLIP (bf16 weights, as the engine stores them):
//! image encoding in images/s, and template scoring in templates/s for 100 classes against 1,000 images.
//!
//! `cargo bench --bench clip_cpu` (set RAYON_NUM_THREADS to pin the thread count). Prints one JSON line per
//! measurement, after a warm-up run of each.

use glov_cuda::backend::Backend;
use glov_cuda::backend::cpu::CpuBackend;
use glov_cuda::checkpoint::DType;
use glov_cuda::models::clip::{Clip, random_weights, vit_b32_config};
use glov_cuda::scoring::Scorer;
use glov_cuda::tokenizer::openai_clip_tokenizer;
use std::time::Instant;

const IMAGES_PER_BATCH: usize = 32;
const CLASSES: usize = 100;
const SCORED_IMAGES: usize = 1000;
const TEMPLATES: [&str; 8] = [
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a black and white photo of the {}.",
    "a low resolution photo of a {}.",
    "itap of a {}.",
    "a close-up photo of a {} in the wild.",
    "a sculpture of the {}.",
    "a drawing of a {}, in a children's book.",
];

/// Made-up class names of one to three words, like real label sets.
fn class_names() -> Vec<String> {
    let words =
        ["red", "spotted", "mountain", "river", "golden", "wild", "desert", "sea", "giant", "small", "night", "garden"];
    let things = ["fox", "owl", "bicycle", "lighthouse", "tulip", "beetle", "canoe", "harp", "cactus", "truck"];
    (0..CLASSES)
        .map(|i| {
            let thing = things[i % things.len()];
            match i % 3 {
                0 => thing.to_string(),
                1 => format!("{} {thing}", words[i % words.len()]),
                _ => format!("{} {} {thing}", words[i % words.len()], words[(i / 3) % words.len()]),
            }
        })
        .collect()
}

fn report(name: &str, count: usize, unit: &str, seconds: f64) {
    println!(
        "{{\"bench\": \"{name}\", \"count\": {count}, \"seconds\": {seconds:.3}, \"{unit}_per_s\": {:.2}, \"threads\": {}}}",
        count as f64 / seconds,
        rayon::current_num_threads()
    );
}

fn main() {
    let backend = CpuBackend::new();
    let config = vit_b32_config();
    let store = random_weights(&config, DType::BF16, 1);
    let clip = Clip::from_store(&backend, &store, config.clone()).unwrap();

    let size = config.vision.image_size;
    let pixels: Vec<f32> =
        (0..IMAGES_PER_BATCH * 3 * size * size).map(|i| ((i * 7919) % 255) as f32 / 128.0 - 1.0).collect();
    let batch = backend.upload(&pixels, IMAGES_PER_BATCH, 3 * size * size).unwrap();
    clip.encode_images(&backend, &batch).unwrap();
    let start = Instant::now();
    clip.encode_images(&backend, &batch).unwrap();
    report("clip_b32_image_encoding", IMAGES_PER_BATCH, "images", start.elapsed().as_secs_f64());

    let tokenizer = openai_clip_tokenizer(2).unwrap();
    let dim = config.projection_dim;
    let features: Vec<f32> = (0..SCORED_IMAGES * dim).map(|i| ((i * 104_729) % 1000) as f32 / 500.0 - 1.0).collect();
    let labels: Vec<u32> = (0..SCORED_IMAGES).map(|i| (i % CLASSES) as u32).collect();
    let scorer = Scorer::new(&backend, &clip, &tokenizer, &features, labels, class_names(), 1024).unwrap();
    let templates: Vec<String> = TEMPLATES.iter().map(|t| t.to_string()).collect();
    scorer.score_templates(&templates[..1]).unwrap();
    let start = Instant::now();
    scorer.score_templates(&templates).unwrap();
    report("clip_b32_template_scoring_100_classes", templates.len(), "templates", start.elapsed().as_secs_f64());
}
