//! `glov-cuda bench llm`, `bench glov-step`, `bench vlm` and `bench gemm` end to end on the CPU, with tiny
//! settings: the JSON they print has every field, with sane values.

use serde_json::Value;
use std::process::Command;

fn bench(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_glov-cuda"))
        .args(["--device", "cpu", "-q", "bench"])
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the glov-cuda binary runs");
    assert!(out.status.success(), "bench {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("bench prints JSON")
}

fn f64_at(v: &Value, path: &str) -> f64 {
    v.pointer(path).and_then(Value::as_f64).unwrap_or_else(|| panic!("no number at {path} in {v:#}"))
}

fn usize_at(v: &Value, path: &str) -> usize {
    v.pointer(path).and_then(Value::as_u64).unwrap_or_else(|| panic!("no count at {path} in {v:#}")) as usize
}

fn positive(v: &Value, path: &str) -> f64 {
    let x = f64_at(v, path);
    assert!(x.is_finite() && x > 0.0, "{path} = {x}");
    x
}

#[test]
fn bench_llm_reports_prefill_decode_and_the_roofline() {
    // Enough new tokens that decoding takes far longer than the prefill it is told apart from, even on a loaded
    // machine.
    let (prompt, new_tokens) = (16, 32);
    let v = bench(&[
        "llm",
        "--shape",
        "small-100m",
        "--layers",
        "1",
        "--vocab",
        "512",
        "--prompt-tokens",
        "16",
        "--new-tokens",
        "32",
        "--batch",
        "1,3",
        "--repeat",
        "3",
    ]);
    assert_eq!(v["bench"], "llm");
    assert_eq!(v["shape"], "small-100m");
    assert_eq!((usize_at(&v, "/config/layers"), usize_at(&v, "/config/vocab")), (1, 512));
    assert!(v["backend"].as_str().unwrap().starts_with("cpu"));
    assert!(v["memory"].is_null(), "the CPU backend reports no device memory");
    assert_eq!(usize_at(&v, "/kv_element_bytes"), 4);
    positive(&v, "/copy_bandwidth/bytes_per_s");
    assert!(v["copy_bandwidth"]["counting"].as_str().unwrap().contains("read + bytes written"));
    assert_eq!(usize_at(&v, "/prefill/tokens"), prompt);
    positive(&v, "/prefill/tokens_per_s");

    let decode = v["decode"].as_array().unwrap();
    assert_eq!(decode.len(), 2);
    let config = &v["config"];
    let (hidden, params) = (usize_at(config, "/hidden"), usize_at(config, "/parameters"));
    let kv_per_position = 2 * usize_at(config, "/kv_heads") * usize_at(config, "/head_dim") * 4;
    for (d, batch) in decode.iter().zip([1, 3]) {
        assert_eq!(usize_at(d, "/batch"), batch);
        assert_eq!(usize_at(d, "/tokens"), batch * new_tokens, "decode tokens = batch x new tokens");
        let seconds = positive(d, "/seconds");
        let rate = positive(d, "/tokens_per_s");
        assert!((rate * seconds - (batch * new_tokens) as f64).abs() < 1e-6);
        assert!(f64_at(d, "/generate_seconds") > f64_at(d, "/prefix_seconds"));
        positive(d, "/kv_cache_bytes");
        // Tied embeddings: the table is read whole as the LM head; batch rows of it as the input embedding.
        assert_eq!(f64_at(d, "/roofline/weight_bytes_per_step"), (2 * (params + batch * hidden)) as f64);
        let mean_positions = prompt as f64 + (new_tokens as f64 - 1.0) / 2.0;
        assert_eq!(f64_at(d, "/roofline/kv_bytes_per_step"), batch as f64 * mean_positions * kv_per_position as f64);
        let fraction = f64_at(d, "/roofline/fraction");
        assert!(fraction > 0.0 && fraction < 1.5, "batch {batch}: fraction of the roofline {fraction}");
        let unique = f64_at(d, "/roofline/fraction_unique");
        assert!(unique > 0.0 && unique <= fraction, "batch {batch}: {unique} vs {fraction}");
        positive(d, "/roofline/tokens_per_s");
    }
}

#[test]
fn bench_glov_step_times_generation_encoding_and_scoring() {
    let v = bench(&[
        "glov-step",
        "--llm-shape",
        "small-100m",
        "--llm-layers",
        "2",
        "--vocab",
        "512",
        "--clip-layers",
        "1",
        "--groups",
        "2",
        "--sequences",
        "6",
        "--prompt-tokens",
        "16",
        "--new-tokens",
        "4",
        "--templates",
        "5",
        "--classes",
        "10",
        "--images",
        "20",
        "--text-batch",
        "25",
    ]);
    assert_eq!(v["bench"], "glov_step");
    assert_eq!((v["llm_shape"].as_str(), v["clip_shape"].as_str()), (Some("small-100m"), Some("vit-b-32")));
    let g = &v["generation"];
    assert_eq!((usize_at(g, "/groups"), usize_at(g, "/sequences"), usize_at(g, "/samples_per_group")), (2, 6, 3));
    assert_eq!(usize_at(g, "/tokens"), 6 * 4, "every answer runs to --new-tokens");
    assert_eq!(usize_at(g, "/steer/layer"), 1, "block 17 of 32, scaled to 2 blocks");
    assert_eq!(g["steer"]["mode"], "last");
    assert_eq!(g["steer"]["alphas"].as_array().unwrap().len(), 2);
    positive(g, "/tokens_per_s");
    // 25 texts per pass hold 2 templates of 10 classes: 5 templates take 3 passes.
    let s = &v["scoring"];
    assert_eq!((usize_at(s, "/texts"), usize_at(s, "/passes")), (50, 3));
    let total = positive(&v, "/seconds/total");
    let parts: f64 =
        ["generation", "text_encoding", "scoring"].iter().map(|p| positive(&v, &format!("/seconds/{p}"))).sum();
    assert!(parts <= total * 1.0001, "phases {parts} s within the total {total} s");
    // The KV cache: per layer, the two 15-token prefixes and six 5-token sequence parts, f32 keys and values.
    let kv = usize_at(&v, "/llm/kv_heads") * usize_at(&v, "/llm/head_dim");
    assert_eq!(usize_at(&v, "/kv_cache_bytes"), 2 * (2 * 15 + 6 * 5) * 2 * kv * 4);
    assert!(v["memory"].is_null());
}

#[test]
fn bench_glov_step_with_a_vlm_times_its_phases_and_prefills_each_image_once_per_batch() {
    let args = "glov-step --llm-shape small-100m --llm-layers 1 --vocab 512 --groups 2 --sequences 4 --prompt-tokens 16 \
                --new-tokens 4 --vlm-shape llava-ov-0.5b --vlm-vision-layers 1 --vlm-layers 1 --vlm-vocab 512 \
                --matcher-layers 1 --image 100x80 --images 1 --templates 3 --question-tokens 20 --vlm-new-tokens 8 \
                --vlm-batch 2";
    let v = bench(&args.split_whitespace().collect::<Vec<_>>());
    assert_eq!(v["vlm_shape"], "llava-ov-0.5b");
    assert!(v.get("scoring").is_none() && v.get("clip").is_none(), "no CLIP in a VLM step: {v:#}");
    let vlm = &v["vlm"];
    assert_eq!((usize_at(vlm, "/answers"), usize_at(vlm, "/decoded_tokens")), (3, 3 * 8));
    // Three questions in batches of two: the image's prefix (14 + 1317 + 1 tokens) twice, once per batch, then each
    // question's 25 tokens but the last.
    assert_eq!(usize_at(vlm, "/prefill_tokens"), 2 * (14 + 1317 + 1) + 3 * 24);
    let total = positive(&v, "/seconds/total");
    let parts: f64 =
        ["generation", "prefill", "decoding", "matching"].iter().map(|p| f64_at(&v, &format!("/seconds/{p}"))).sum();
    assert!((parts - total).abs() <= 1e-9 * total.max(1.0), "the total is the phases' sum");
    for phase in ["generation", "prefill", "matching", "vision_once"] {
        positive(&v, &format!("/seconds/{phase}"));
    }
}

#[test]
fn bench_glov_step_rejects_uneven_groups() {
    let out = Command::new(env!("CARGO_BIN_EXE_glov-cuda"))
        .args(["--device", "cpu", "bench", "glov-step", "--groups", "3", "--sequences", "10"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("multiple of --groups"));
}

#[test]
fn bench_vlm_times_the_image_side_prefill_decoding_and_the_matcher() {
    let args = "vlm --vision-layers 1 --llm-layers 1 --vocab 512 --matcher-layers 1 --image 100x80 --questions 2 \
                --question-tokens 20 --new-tokens 24 --answers 20 --answer-tokens 16 --repeat 1";
    let v = bench(&args.split_whitespace().collect::<Vec<_>>());
    assert_eq!((v["bench"].as_str(), v["shape"].as_str()), (Some("vlm"), Some("llava-ov-0.5b")));
    // A 100x80 image: the 384x384 grid of one tile, plus the base tile (729 tokens); the grid's 27x27 features
    // unpadded as transformers' unpad_image does (new height int(80 * 27 / 100) = 21, padding (27 - 21) / 2 = 3 rows
    // each side: rows 3..24), a newline after each of the 21 rows.
    let image = &v["image"];
    assert_eq!((usize_at(image, "/tiles"), usize_at(image, "/image_tokens")), (2, 729 + 21 * 28));
    for part in ["tiles_seconds", "tower_seconds", "pack_seconds", "images_per_s"] {
        positive(image, &format!("/{part}"));
    }
    // Each prompt: 14 conversation tokens, the image, 6 more around the 20-token question. The image's prefix
    // (14 + 1317 + 1) is prefilled once; each question's 25 tokens but the last (its first decode step) after it.
    let prompt = 14 + 1317 + 6 + 20;
    assert_eq!(usize_at(&v, "/prefill/prompt_tokens"), prompt);
    assert_eq!(usize_at(&v, "/prefill/prefix_tokens"), 14 + 1317 + 1);
    assert_eq!(usize_at(&v, "/prefill/tokens"), 14 + 1317 + 1 + 2 * 24);
    assert_eq!(usize_at(&v, "/prefill/tokens_unshared"), 2 * (prompt - 1));
    positive(&v, "/prefill/tokens_per_s");
    assert_eq!(usize_at(&v, "/decode/tokens"), 2 * 24, "greedy, no stop tokens: every answer runs to --new-tokens");
    positive(&v, "/decode/tokens_per_s");
    assert_eq!(usize_at(&v, "/matcher/answers"), 20);
    positive(&v, "/matcher/answers_per_s");
    assert_eq!(usize_at(&v, "/config/vision/tokens_per_tile"), 729);
}

#[test]
fn bench_vlm_rejects_an_empty_image() {
    let out = Command::new(env!("CARGO_BIN_EXE_glov-cuda"))
        .args(["--device", "cpu", "bench", "vlm", "--image", "0x80"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"0\" is not a side of 1 to 8192 pixels"));
}

#[test]
fn bench_gemm_reports_each_product_and_refuses_tiles_the_cpu_lacks() {
    let v =
        bench(&["gemm", "--shapes", "decode-o-proj,3x5x7", "--tiles", "auto", "--repeat", "1", "--iterations", "2"]);
    assert_eq!(v["bench"], "gemm");
    assert_eq!(usize_at(&v, "/iterations"), 2);
    assert_eq!(v["products"][0]["name"], "decode-o-proj");
    let dims = |i: usize| ["m", "n", "k"].map(|d| usize_at(&v, &format!("/products/{i}/{d}")));
    assert_eq!((dims(0), dims(1)), ([40, 4096, 4096], [3, 5, 7]));
    for i in 0..2 {
        assert_eq!(v["products"][i]["runs"][0]["tiles"], "auto");
        assert!(v["products"][i]["runs"][0]["tile"].is_null(), "the CPU backend has no tiles");
        positive(&v, &format!("/products/{i}/runs/0/tflop_per_s"));
        positive(&v, &format!("/products/{i}/runs/0/floor_gb_per_s"));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_glov-cuda"))
        .args(["--device", "cpu", "-q", "bench", "gemm", "--shapes", "3x5x7", "--tiles", "64x128"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("the CPU backend has no product tiles"));
}
