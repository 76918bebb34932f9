//! The project's own kernels, as the engine embeds them (reported skipped where it was built without them): `gemm_mma` and its wider twins against a plain product on the host, and the executor's speed on them.

use super::kit::Device;
use crate::exec::{Launch, Options, Stats, launch};
use crate::ir::Module;
use crate::project_kernels;

fn bf16(v: f32) -> u16 {
    let b = v.to_bits();
    ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) as u16
}

fn f32_of(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// Values in [-1, 1) from a SplitMix64 stream, rounded to bf16.
fn random_bf16(n: usize, seed: u64) -> Vec<u16> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            bf16(((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0)
        })
        .collect()
}

fn upload(d: &Device, values: &[u16]) -> u64 {
    let a = d.alloc(values.len() as u64 * 2, false);
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    d.memory.write(a, &bytes).unwrap();
    a
}

/// The parameter buffer of `module`'s kernel 0 from one value per parameter (each written at its size).
fn params(module: &Module, values: &[u64]) -> Vec<u8> {
    let f = &module.kernels[0];
    let mut buf = vec![0u8; f.param_bytes as usize];
    for (p, v) in f.params.iter().zip(values) {
        let at = p.offset as usize;
        buf[at..at + p.size as usize].copy_from_slice(&v.to_le_bytes()[..p.size as usize]);
    }
    buf
}

/// Runs `kernel` (`gemm_mma` or `gemm_plain`) on an `m x k` by `k x n` product; returns Y, the product on the
/// host, and what the launch counted.
fn gemm(ptx: &str, kernel: &str, m: usize, n: usize, k: usize, options: &Options) -> (Vec<f32>, Vec<f32>, Stats) {
    let mut module = crate::ptx::load(ptx).expect("gemm.ptx loads");
    let index = module.kernel(kernel).expect("the kernel");
    module.kernels.swap(0, index);
    let d = Device::new();
    let (x, w) = (random_bf16(m * k, 1), random_bf16(n * k, 2));
    let (xa, wa) = (upload(&d, &x), upload(&d, &w));
    let y = d.alloc((m * n * 2) as u64, false);
    let p = params(&module, &[xa, wa, 0, 0, y, m as u64, n as u64, k as u64, 0, 0]);
    // gemm_mma: a block of 128 threads per 64 x 64 tile; gemm_mma_RxC: 256 threads per R x C tile, with their
    // shared memory dynamic (4 stages of X's and W's 32-wide tiles, or the staged f32 output with rows of C + 8:
    // the larger); gemm_plain: a block per row and 128 columns.
    let (grid, block, dynamic_shared) = match kernel {
        "gemm_mma" => ([m.div_ceil(64) as u32, n.div_ceil(64) as u32, 1], 128, 0),
        "gemm_mma_64x128" => ([m.div_ceil(64) as u32, n.div_ceil(128) as u32, 1], 256, 4 * (64 + 128) * 64),
        "gemm_mma_64x256" => ([m.div_ceil(64) as u32, n.div_ceil(256) as u32, 1], 256, 4 * (64 + 256) * 64),
        "gemm_mma_128x128" => ([m.div_ceil(128) as u32, n.div_ceil(128) as u32, 1], 256, 128 * 136 * 4),
        _ => ([m as u32, n.div_ceil(128) as u32, 1], 128, 0),
    };
    let l = Launch { grid, block: [block, 1, 1], dynamic_shared, params: &p };
    let stats =
        launch(&module, 0, &d.globals(&module), &l, &d.memory, options).unwrap_or_else(|f| panic!("{}", f.report));
    let mut bytes = vec![0u8; m * n * 2];
    d.memory.read(y, &mut bytes).unwrap();
    let got = bytes.chunks(2).map(|c| f32_of(u16::from_le_bytes([c[0], c[1]]))).collect();
    let mut want = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let dot: f64 = (0..k).map(|kk| f32_of(x[i * k + kk]) as f64 * f32_of(w[j * k + kk]) as f64).sum();
            want[i * n + j] = dot as f32;
        }
    }
    (got, want, stats)
}

/// Runs `kernel` on an `m x n x k` product, checks it and prints the executor's speed.
fn check_gemm(kernel: &str, m: usize, n: usize, k: usize, options: &Options) {
    let Some(ptx) = project_kernels::ptx("gemm") else { return };
    let (got, want, stats) = gemm(ptx, kernel, m, n, k, options);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        // bf16 output: within a rounding of the exact product.
        assert!((g - w).abs() <= w.abs() / 128.0 + 1e-3, "y[{i}] = {g}, expected {w}");
    }
    if kernel.starts_with("gemm_mma") {
        // Every tile multiplies whole: the edge tiles' rows and columns past the matrix are zeros, multiplied too.
        let (rows, cols) = match kernel {
            "gemm_mma_64x128" => (64, 128),
            "gemm_mma_64x256" => (64, 256),
            "gemm_mma_128x128" => (128, 128),
            _ => (64, 64),
        };
        let mmas = m.next_multiple_of(rows) * n.next_multiple_of(cols) * k.next_multiple_of(32) / (16 * 8 * 16);
        assert_eq!(stats.warp_insts[super::class(crate::ir::Class::Tensor)], mmas as u64);
        // The swizzled tiles take the copies' 16-byte writes and ldmatrix's row reads without bank conflicts.
        assert_eq!(stats.bank_conflicts(), 0, "{kernel}'s shared-memory accesses conflict");
    }
    eprintln!(
        "{kernel} {m}x{n}x{k}: {} thread instructions in {:.3} s: {:.1} M thread instructions/s on {} host threads",
        stats.total_thread_insts(),
        stats.seconds,
        stats.total_thread_insts() as f64 / stats.seconds / 1e6,
        options.threads
    );
    eprintln!("{}", stats.to_json());
}

#[test]
fn gemm_mma_and_gemm_plain_match_a_host_product() {
    check_gemm("gemm_mma", 128, 192, 256, &super::kit::options());
    check_gemm("gemm_mma_64x128", 40, 200, 256, &super::kit::options());
    check_gemm("gemm_mma_64x256", 40, 300, 256, &super::kit::options());
    check_gemm("gemm_mma_128x128", 200, 192, 256, &super::kit::options());
    check_gemm("gemm_plain", 64, 96, 80, &super::kit::options());
}

/// The executor's speed on CLIP-sized products: `cargo test --release -p glov-emu gemm_speed -- --ignored
/// --nocapture`.
#[test]
#[ignore]
fn gemm_speed() {
    check_gemm("gemm_mma", 512, 768, 768, &super::kit::options());
    check_gemm("gemm_plain", 128, 768, 768, &super::kit::options());
}

/// Runs `layer_norm` (a block of 256 threads per row, sums by warp shuffles and shared memory) on `rows x cols`
/// and checks it against the host.
fn check_layer_norm(rows: usize, cols: usize, options: &Options) {
    let Some(ptx) = project_kernels::ptx("norm") else { return };
    let mut module = crate::ptx::load(ptx).expect("norm.ptx loads");
    let index = module.kernel("layer_norm").expect("layer_norm");
    module.kernels.swap(0, index);
    let d = Device::new();
    let (x, gain, bias) = (random_bf16(rows * cols, 3), random_bf16(cols, 4), random_bf16(cols, 5));
    let (xa, ga, ba) = (upload(&d, &x), upload(&d, &gain), upload(&d, &bias));
    let y = d.alloc((rows * cols * 2) as u64, false);
    let p = params(&module, &[xa, ga, ba, y, rows as u64, cols as u64, 1e-5f32.to_bits() as u64]);
    let l = Launch { grid: [rows as u32, 1, 1], block: [256, 1, 1], dynamic_shared: 0, params: &p };
    let stats =
        launch(&module, 0, &d.globals(&module), &l, &d.memory, options).unwrap_or_else(|f| panic!("{}", f.report));
    let mut bytes = vec![0u8; rows * cols * 2];
    d.memory.read(y, &mut bytes).unwrap();
    for r in 0..rows {
        let row: Vec<f64> = (0..cols).map(|c| f32_of(x[r * cols + c]) as f64).collect();
        let mean = row.iter().sum::<f64>() / cols as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / cols as f64;
        for c in 0..cols {
            let want = (row[c] - mean) / (var + 1e-5).sqrt() * f32_of(gain[c]) as f64 + f32_of(bias[c]) as f64;
            let got = f32_of(u16::from_le_bytes([bytes[(r * cols + c) * 2], bytes[(r * cols + c) * 2 + 1]])) as f64;
            assert!((got - want).abs() <= want.abs() / 64.0 + 1e-2, "y[{r}][{c}] = {got}, expected {want}");
        }
    }
    eprintln!(
        "layer_norm {rows}x{cols}: {} thread instructions in {:.3} s: {:.1} M thread instructions/s",
        stats.total_thread_insts(),
        stats.seconds,
        stats.total_thread_insts() as f64 / stats.seconds / 1e6
    );
}

#[test]
fn layer_norm_matches_the_host() {
    check_layer_norm(8, 768, &super::kit::options());
}

/// The executor's speed on shuffles and barriers: `cargo test --release -p glov-emu layer_norm_speed -- --ignored
/// --nocapture`.
#[test]
#[ignore]
fn layer_norm_speed() {
    check_layer_norm(512, 768, &super::kit::options());
}

/// What a launch costs besides its blocks: `cargo test --release -p glov-emu launch_overhead -- --ignored
/// --nocapture`.
#[test]
#[ignore]
fn launch_overhead() {
    let Some(ptx) = project_kernels::ptx("gemm") else { return };
    let module = crate::ptx::load(ptx).expect("gemm.ptx loads");
    let f = &module.kernels[module.kernel("gemm_mma").unwrap()];
    let t = std::time::Instant::now();
    crate::exec::slots::slots(f);
    let s = crate::exec::slots::slots(f);
    eprintln!(
        "register packing: {:?} ({} instructions, {} registers in {} slots)",
        t.elapsed(),
        f.insts.len(),
        f.nregs,
        s.count
    );
    let t = std::time::Instant::now();
    crate::exec::slots::slots(f);
    eprintln!("register packing again: {:?}", t.elapsed());
    let d = Device::new();
    let small = super::kit::ptx(".visible .entry nop()\n{\n\tret;\n}\n");
    let t = std::time::Instant::now();
    for _ in 0..100 {
        d.launch(&small, [1, 1, 1], [32, 1, 1], &[], &super::kit::options()).unwrap();
    }
    eprintln!("an empty launch: {:?}", t.elapsed() / 100);
}

/// The cached-attention kernels on a row that sees no key (its record's two runs are empty): both write zeros,
/// not 0/0. The engine's rows always see themselves; a kernel must not depend on that to stay finite.
#[test]
fn cached_attention_of_a_row_with_no_visible_key_is_zero() {
    let Some(ptx) = project_kernels::ptx("attention_cached") else { return };
    let head_dim = 64usize;
    for (kernel, block) in [("attention_cached_plain", 128u32), ("attention_cached_64", 128)] {
        let mut module = crate::ptx::load(ptx).expect("attention_cached.ptx loads");
        let index = module.kernel(kernel).expect("the kernel");
        module.kernels.swap(0, index);
        let d = Device::new();
        // One row, one head and one key/value head: q, k, v of 64 each; the cache holds one token.
        let qkv = upload(&d, &random_bf16(3 * head_dim, 3));
        let (keys, values) = (upload(&d, &random_bf16(head_dim, 4)), upload(&d, &random_bf16(head_dim, 5)));
        let records = d.alloc(7 * 4, false);
        d.memory.write(records, &[0u8; 28]).unwrap();
        let out = d.alloc((head_dim * 2) as u64, false);
        let scale = (1.0f32 / 8.0).to_bits() as u64;
        let values_of = |rest: &[u64]| [&[qkv, records, keys, values, out][..], rest].concat();
        let (p, grid) = match kernel {
            // rows, heads, kv_heads, head_dim, scale, window
            "attention_cached_plain" => (params(&module, &values_of(&[1, 1, 1, head_dim as u64, scale, 0])), [1, 1, 1]),
            // partial_ml, partial_acc (unused with one split), heads, kv_heads, scale, split_len, window, cascade,
            // partials per row and head (1: the output is written)
            _ => (params(&module, &values_of(&[0, 0, 1, 1, scale, 256, 0, 0, 1])), [1, 1, 1]),
        };
        let l = Launch { grid, block: [block, 1, 1], dynamic_shared: 0, params: &p };
        launch(&module, 0, &d.globals(&module), &l, &d.memory, &Options::default())
            .unwrap_or_else(|f| panic!("{kernel}: {}", f.report));
        let mut bytes = vec![0u8; head_dim * 2];
        d.memory.read(out, &mut bytes).unwrap();
        let got: Vec<f32> = bytes.chunks(2).map(|c| f32_of(u16::from_le_bytes([c[0], c[1]]))).collect();
        assert!(got.iter().all(|&v| v == 0.0), "{kernel}: {got:?}");
    }
}
