//! `glov-cuda bench gemm`: TFLOP/s of the linear layers' product (`x W^T`, bf16 in and out, f32 accumulation) at
//! the shapes that dominate a GLOV step, in each tile shape of the tensor-core kernel side by side (`--tiles`), for
//! comparison with the card's cuBLAS ceiling (`scripts/ceilings.py` times `torch.matmul` at the shapes of the same
//! names).
//!
//! Each figure is the median of `--repeat` runs after a warm-up; a run launches `--iterations` products and stops
//! once the backend has finished them.

use super::bench::{median_seconds, values};
use super::bench_llm::BenchDevice;
use crate::backend::Activation;
use crate::backend::cuda::ops::GemmTiles;
use crate::checkpoint::StoredTensor;
use anyhow::{Context, Result, bail, ensure};
use clap::{Args, ValueEnum};
use serde_json::json;

#[derive(Args)]
pub struct GemmBenchArgs {
    /// Products to time, each `M x N x K` (`x` [M, K] times `W` [N, K] transposed) or a name: decode-o-proj
    /// (40x4096x4096: Llama-3-8B's output projection at a decode batch of 40), prefill-o-proj (2000x4096x4096),
    /// prefill-gate-up (2000x28672x4096), clip-b32-mlp (12800x3072x768: 256 images of 50 tokens), square-8192.
    #[arg(long, value_delimiter = ',', default_value = "decode-o-proj,prefill-o-proj,prefill-gate-up,clip-b32-mlp")]
    shapes: Vec<String>,
    /// Tile shapes of the CUDA kernel to time each product in: auto (chosen per product, as everywhere else),
    /// 64x64 (4 warps), 64x128, 64x256 (8 warps; decoding's), 128x128 (8 warps). The CPU backend has auto only.
    #[arg(long, value_delimiter = ',', default_value = "auto,64x64,64x128,64x256,128x128")]
    tiles: Vec<TilesArg>,
    /// Timed runs of each measurement (the median is reported), after one untimed warm-up.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Products launched per run.
    #[arg(long, default_value_t = 10)]
    iterations: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum TilesArg {
    Auto,
    #[value(name = "64x64")]
    Small,
    #[value(name = "64x128")]
    Wide,
    #[value(name = "64x256")]
    Widest,
    #[value(name = "128x128")]
    Large,
}

impl From<TilesArg> for GemmTiles {
    fn from(t: TilesArg) -> Self {
        match t {
            TilesArg::Auto => GemmTiles::Auto,
            TilesArg::Small => GemmTiles::Small,
            TilesArg::Wide => GemmTiles::Wide,
            TilesArg::Widest => GemmTiles::Widest,
            TilesArg::Large => GemmTiles::Large,
        }
    }
}

/// The named products: (name, M, N, K).
const NAMED: [(&str, usize, usize, usize); 5] = [
    ("decode-o-proj", 40, 4096, 4096),
    ("prefill-o-proj", 2000, 4096, 4096),
    ("prefill-gate-up", 2000, 28672, 4096),
    ("clip-b32-mlp", 12800, 3072, 768),
    ("square-8192", 8192, 8192, 8192),
];

/// `(name, m, n, k)` of a `--shapes` entry.
fn parse_shape(entry: &str) -> Result<(String, usize, usize, usize)> {
    if let Some(&(name, m, n, k)) = NAMED.iter().find(|(name, ..)| *name == entry) {
        return Ok((name.to_string(), m, n, k));
    }
    let dims: Vec<&str> = entry.split('x').collect();
    let parsed: Vec<usize> = dims.iter().filter_map(|d| d.trim().parse().ok()).collect();
    if dims.len() != 3 || parsed.len() != 3 || parsed.contains(&0) {
        let names: Vec<&str> = NAMED.iter().map(|(name, ..)| *name).collect();
        bail!("--shapes {entry:?}: neither M x N x K (three positive counts, as 2000x4096x4096) nor one of {names:?}");
    }
    let (m, n, k) = (parsed[0], parsed[1], parsed[2]);
    let elements = [m.checked_mul(k), n.checked_mul(k), m.checked_mul(n)];
    ensure!(
        elements.iter().all(|e| e.is_some_and(|e| e <= i32::MAX as usize)),
        "--shapes {entry}: a matrix of more than 2^31 values"
    );
    Ok((entry.to_string(), m, n, k))
}

pub fn run<B: BenchDevice>(backend: &B, args: GemmBenchArgs) -> Result<()> {
    ensure!(args.repeat > 0 && args.iterations > 0, "--repeat and --iterations must be positive");
    let shapes = args.shapes.iter().map(|s| parse_shape(s)).collect::<Result<Vec<_>>>()?;
    let mut products = Vec::new();
    for (name, m, n, k) in shapes {
        let x = backend.upload(&values(m * k, 1), m, k)?;
        let w = StoredTensor::from_f32("bench weight", &[n, k], &values(n * k, 2));
        let w = backend.load_weight(&[&w]).with_context(|| format!("the weight of {name}"))?;
        let mut runs = Vec::new();
        for &arg in &args.tiles {
            let tiles = GemmTiles::from(arg);
            backend.force_gemm_tiles(tiles)?;
            let what = format!("{name} ({m}x{n}x{k}), {tiles}");
            let timed = median_seconds(&what, args.repeat, || {
                for _ in 0..args.iterations {
                    backend.linear(&x, &w, None, Activation::None, None)?;
                }
                backend.synchronize()
            });
            backend.force_gemm_tiles(GemmTiles::Auto)?;
            let seconds = timed? / args.iterations as f64;
            let flops = 2.0 * m as f64 * n as f64 * k as f64;
            // Reading x and W once and writing y once: the floor of the bytes a product moves.
            let bytes = 2.0 * (m * k + n * k + m * n) as f64;
            runs.push(json!({
                "tiles": arg.to_possible_value().map(|v| v.get_name().to_string()),
                "tile": backend.gemm_tile(m, n, tiles),
                "seconds": seconds,
                "tflop_per_s": flops / seconds / 1e12,
                "floor_gb_per_s": bytes / seconds / 1e9,
            }));
        }
        products.push(json!({"name": name, "m": m, "n": n, "k": k, "runs": runs}));
    }
    let out = json!({
        "bench": "gemm",
        "backend": backend.describe(),
        "engine": concat!(env!("CARGO_PKG_VERSION"), " (", env!("GLOV_CUDA_COMMIT"), ")"),
        "iterations": args.iterations,
        "products": products,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_shape;

    #[test]
    fn shapes_by_name_or_dimensions() {
        assert_eq!(parse_shape("clip-b32-mlp").unwrap(), ("clip-b32-mlp".to_string(), 12800, 3072, 768));
        assert_eq!(parse_shape("3x5x7").unwrap(), ("3x5x7".to_string(), 3, 5, 7));
        for bad in ["3x5", "3x0x7", "axbxc", "3x5x7x9", "100000x100000x1", "clip"] {
            assert!(parse_shape(bad).is_err(), "{bad} accepted");
        }
    }
}
