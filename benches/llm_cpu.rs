//! CPU throughput of a randomly initialised Llama-shaped LLM of about 100M parameters (bf16 weights): prefill
//! tokens/s for one 256-token prompt, and decode tokens/s at batch 1 and 10 sharing a 256-token prefix. Also prints
//! the KV-cache size the engine computes for a Llama-3-8B-shaped batch of 40 sequences of 1,024 tokens.
//!
//! `cargo bench --bench llm_cpu`. One JSON line per measurement.

use glov_cuda::backend::KvLayout;
use glov_cuda::backend::cpu::CpuBackend;
use glov_cuda::checkpoint::DType;
use glov_cuda::generation::generate::{GenerateOptions, Request, Streams, generate};
use glov_cuda::generation::prompt_logits::last_logits;
use glov_cuda::generation::sampling::SamplingParams;
use glov_cuda::models::llm::{Llm, parameter_count, random_weights, shape_config};
use std::time::Instant;

const PROMPT: usize = 256;
const NEW_TOKENS: usize = 16;

fn main() {
    let backend = CpuBackend::new();
    let config = shape_config("small-100m").unwrap();
    let params = parameter_count(&config);
    let llm = Llm::from_store(&backend, &random_weights(&config, DType::BF16, 1), config.clone()).unwrap();
    let prompt: Vec<u32> = (0..PROMPT as u32).map(|i| (i * 7919) % config.vocab_size as u32).collect();
    let threads = rayon::current_num_threads();

    last_logits(&backend, &llm, &prompt[..16], None).unwrap();
    let start = Instant::now();
    last_logits(&backend, &llm, &prompt, None).unwrap();
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{{\"bench\": \"llm_small_100m_prefill\", \"parameters\": {params}, \"tokens\": {PROMPT}, \"seconds\": {seconds:.3}, \"tokens_per_s\": {:.1}, \"threads\": {threads}}}",
        PROMPT as f64 / seconds
    );

    for batch in [1, 10] {
        let options = GenerateOptions {
            max_new_tokens: NEW_TOKENS,
            sampling: SamplingParams::default(),
            seed: 1,
            stop_tokens: vec![],
            steer: None,
            streams: Streams::Batch,
        };
        let request = Request { prompt: prompt.clone(), n: batch, steer: None };
        // Prefill alone, then prefill plus decode: the difference is the decode time.
        let prefill_only = GenerateOptions { max_new_tokens: 1, ..options.clone() };
        let start = Instant::now();
        generate(&backend, &llm, std::slice::from_ref(&request), &prefill_only).unwrap();
        let prefill = start.elapsed().as_secs_f64();
        let start = Instant::now();
        generate(&backend, &llm, std::slice::from_ref(&request), &options).unwrap();
        let decode = start.elapsed().as_secs_f64() - prefill;
        let tokens = batch * (NEW_TOKENS - 1);
        println!(
            "{{\"bench\": \"llm_small_100m_decode\", \"batch\": {batch}, \"prefix\": {PROMPT}, \"new_tokens\": {NEW_TOKENS}, \"seconds\": {decode:.3}, \"tokens_per_s\": {:.1}, \"threads\": {threads}}}",
            tokens as f64 / decode
        );
    }

    let big = shape_config("llama3-8b").unwrap();
    let independent = KvLayout {
        layers: big.num_layers,
        kv_heads: big.num_kv_heads,
        head_dim: big.head_dim,
        prefixes: vec![0; 40],
        sequences: (0..40).map(|g| (g, 1024)).collect(),
    };
    let shared = KvLayout { prefixes: vec![1000], sequences: vec![(0, 24); 40], ..independent.clone() };
    println!(
        "{{\"kv_cache\": \"llama3-8b, 40 sequences x 1024 tokens\", \"bf16_bytes\": {}, \"f32_bytes\": {}, \"bf16_bytes_sharing_a_1000_token_prefix\": {}}}",
        independent.bytes(2),
        independent.bytes(4),
        shared.bytes(2)
    );
}
