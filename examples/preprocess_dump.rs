//! Preprocesses images as the CLIP image processor does and writes the tensors as raw little-endian f32.
//!
//! Usage: `preprocess_dump <preprocessor_config.json> <out.bin> <images...>`
//!
//! The output holds N x 3 x H x W values in the order the images were given; the shape is printed on stdout.
//! Any image that fails to load is reported on stderr and the exit status is non-zero (no output is written).
//! Used by `scripts/compare_preprocess.py` to compare against transformers.

use glov_cuda::preprocess::{PreprocessConfig, load_images};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

fn run() -> anyhow::Result<bool> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        anyhow::bail!("usage: preprocess_dump <preprocessor_config.json> <out.bin> <images...>");
    }
    let cfg = PreprocessConfig::from_file(args[0].as_ref())?;
    let out_path = PathBuf::from(&args[1]);
    let images: Vec<PathBuf> = args[2..].iter().map(PathBuf::from).collect();

    let results = load_images(&images, &cfg);
    let mut ok = true;
    for result in &results {
        if let Err(e) = result {
            eprintln!("error: {e:#}");
            ok = false;
        }
    }
    if !ok {
        return Ok(false);
    }

    let (h, w) = cfg.output_size();
    let mut bytes = Vec::with_capacity(images.len() * 3 * h * w * 4);
    for tensor in results.into_iter().flatten() {
        anyhow::ensure!(tensor.len() == 3 * h * w, "tensor of {} values, expected 3x{h}x{w}", tensor.len());
        for v in tensor {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    let mut file =
        std::fs::File::create(&out_path).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out_path.display()))?;
    file.write_all(&bytes).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out_path.display()))?;
    println!("{} 3 {h} {w}", images.len());
    Ok(true)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
