//! Zero-shot scoring of prompt templates: image features computed once (and cached on disk), templates scored in
//! batches, ensembles (of a file's templates or a published set), and class descriptions.

pub mod descriptions;
pub mod feature_cache;
pub mod generative;
pub mod image_features;
pub mod scorer;
pub mod template_sets;
pub mod templates;
pub mod vlm_feature_cache;
pub mod waffle;

pub use image_features::{EncodeOptions, ImageFeatures, default_cache_dir, encode_images};
pub use scorer::{Accuracy, Scorer};
pub use templates::{fill, read_templates};
