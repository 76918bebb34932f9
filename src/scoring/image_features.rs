//! Image features of a list of files: read from the disk cache where present, otherwise decoded and preprocessed
//! on CPU threads (one batch ahead of the vision tower), encoded by the vision tower in batches, and added to the
//! cache.

use super::feature_cache::{FeatureCache, image_key};
use crate::backend::Backend;
use crate::models::clip::ClipModel;
use crate::preprocess;
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};

pub struct EncodeOptions {
    /// Images per vision-tower batch.
    pub batch_size: usize,
    /// Where cached features live; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Leave out images that cannot be read or decoded (with a warning) instead of failing.
    pub skip_bad_images: bool,
}

/// Unnormalised features of the images that could be read, in input order.
pub struct ImageFeatures {
    /// `[kept.len(), dim]`, row-major.
    pub features: Vec<f32>,
    pub dim: usize,
    /// Indices into the input list of the images that have a row.
    pub kept: Vec<usize>,
    /// Images left out, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
    /// How many rows came from the cache.
    pub cached: usize,
}

fn describe_bad(bad: &[(PathBuf, String)]) -> String {
    let mut text: Vec<String> = bad.iter().take(10).map(|(p, e)| format!("  {}: {e}", p.display())).collect();
    if bad.len() > 10 {
        text.push(format!("  ... and {} more", bad.len() - 10));
    }
    text.join("\n")
}

fn progress(len: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(Some(len as u64), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta})") {
        bar.set_style(style);
    }
    bar.set_message(what.to_string());
    bar
}

pub fn encode_images<B: Backend>(
    backend: &B,
    model: &ClipModel<B>,
    paths: &[PathBuf],
    options: &EncodeOptions,
) -> Result<ImageFeatures> {
    let _span = tracing::info_span!("image_features", images = paths.len()).entered();
    let dim = model.clip.config.projection_dim;
    let mut cache = match &options.cache_dir {
        Some(dir) => Some(FeatureCache::open(dir, &model.checkpoint.checksum()?, backend.kind(), dim)),
        None => None,
    };
    let mut rows: Vec<Option<Vec<f32>>> = vec![None; paths.len()];
    let mut bad: Vec<(PathBuf, String)> = Vec::new();
    let mut todo: Vec<(usize, String)> = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        match image_key(path) {
            Ok(key) => match cache.as_ref().and_then(|c| c.get(&key)) {
                Some(row) => rows[i] = Some(row.to_vec()),
                None => todo.push((i, key)),
            },
            Err(e) => bad.push((path.clone(), format!("{e:#}"))),
        }
    }
    let cached = paths.len() - todo.len() - bad.len();
    tracing::info!(cached, to_encode = todo.len(), "image features");
    let bar = progress(todo.len(), "encoding images");
    let mut fresh: Vec<(String, Vec<f32>)> = Vec::new();
    // Decoding and preprocessing run one batch ahead on another thread (itself using the CPU pool), so that the
    // next batch is ready when the towers finish the current one.
    let chunks: Vec<&[(usize, String)]> = todo.chunks(options.batch_size.max(1)).collect();
    std::thread::scope(|scope| -> Result<()> {
        let (sender, batches) = std::sync::mpsc::sync_channel(1);
        scope.spawn(move || {
            for chunk in &chunks {
                let chunk_paths: Vec<PathBuf> = chunk.iter().map(|(i, _)| paths[*i].clone()).collect();
                let decoded = {
                    let _span = tracing::info_span!("preprocess", images = chunk.len()).entered();
                    preprocess::load_images(&chunk_paths, &model.preprocess)
                };
                if sender.send((*chunk, decoded)).is_err() {
                    break;
                }
            }
        });
        for (chunk, decoded) in batches {
            let mut pixels = Vec::new();
            let mut good = Vec::new();
            for ((i, key), result) in chunk.iter().zip(decoded) {
                match result {
                    Ok(values) => {
                        pixels.extend_from_slice(&values);
                        good.push((*i, key.clone()));
                    }
                    Err(e) => bad.push((paths[*i].clone(), format!("{e:#}"))),
                }
            }
            if !good.is_empty() {
                let batch = {
                    let _span = tracing::info_span!("upload", images = good.len()).entered();
                    backend.upload(&pixels, good.len(), pixels.len() / good.len())?
                };
                let features = backend.download(&model.clip.encode_images(backend, &batch)?)?;
                for ((i, key), row) in good.into_iter().zip(features.chunks_exact(dim)) {
                    rows[i] = Some(row.to_vec());
                    fresh.push((key, row.to_vec()));
                }
            }
            bar.inc(chunk.len() as u64);
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    if let Some(cache) = cache.as_mut()
        && !fresh.is_empty()
    {
        cache.insert(fresh);
        if let Err(e) = cache.save() {
            tracing::warn!("could not save the image feature cache: {e:#}");
        }
    }
    if !bad.is_empty() {
        if !options.skip_bad_images {
            bail!(
                "{} image(s) could not be read (use --skip-bad-images to leave them out):\n{}",
                bad.len(),
                describe_bad(&bad)
            );
        }
        tracing::warn!("left out {} unreadable image(s):\n{}", bad.len(), describe_bad(&bad));
    }
    let mut features = Vec::with_capacity(paths.len() * dim);
    let mut kept = Vec::with_capacity(paths.len());
    for (i, row) in rows.into_iter().enumerate() {
        if let Some(row) = row {
            features.extend_from_slice(&row);
            kept.push(i);
        }
    }
    Ok(ImageFeatures { features, dim, kept, skipped: bad, cached })
}

/// The default cache folder: `$GLOV_CUDA_CACHE`, else `$XDG_CACHE_HOME/glov-cuda`, else `~/.cache/glov-cuda`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("GLOV_CUDA_CACHE") {
        return Some(PathBuf::from(dir));
    }
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(Path::new(&xdg).join("glov-cuda"));
    }
    std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache").join("glov-cuda"))
}
