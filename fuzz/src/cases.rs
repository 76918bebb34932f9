//! The body of every fuzz target: what glov-cuda does with one input a stranger may have written. The fuzz
//! targets (fuzz_targets/) run these under libFuzzer; the engine's tests (tests/fuzz_regressions.rs) include this
//! file and run every input a fuzzer once found (tests/fixtures/fuzz/TARGET/) through the same body.
//!
//! A body returns whatever the input gives (an error is a fine outcome); a panic, a hang or unbounded memory is
//! what the fuzzer looks for.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use glov_cuda::chat::{ChatTemplate, Message};
use glov_cuda::checkpoint::gguf::GgufFile;
use glov_cuda::checkpoint::{Checkpoint, WeightStore};
use glov_cuda::dataset::Split;
use glov_cuda::glov::settings::ConfigFile;
use glov_cuda::models::clip::ClipConfig;
use glov_cuda::models::llm::LlmConfig;
use glov_cuda::sweep::plan::Plan;
use glov_cuda::tokenizer::LlmTokenizer;

/// A target's body: what glov-cuda does with one input.
pub type Body = fn(&[u8]);

/// Every target by name, as the fuzz binaries and the regression folders are named.
pub const TARGETS: &[(&str, Body)] = &[
    ("gguf", gguf),
    ("gguf_tokenizer", gguf_tokenizer),
    ("tokenizer_json", tokenizer_json),
    ("safetensors", safetensors),
    ("safetensors_index", safetensors_index),
    ("config_json", config_json),
    ("split_file", split_file),
    ("optimize_config", optimize_config),
    ("sweep_plan", sweep_plan),
    ("chat_template", chat_template),
];

/// This process's scratch folder (in the system's temporary folder), made once, for the readers that take a path.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("glov-cuda-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the scratch folder");
        dir
    })
}

/// Writes `bytes` to `name` in the scratch folder and returns its path.
fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    std::fs::write(&path, bytes).expect("writing a scratch file");
    path
}

/// A text with a category slot, punctuation, digits, non-ASCII letters and a newline, to encode and decode.
const SAMPLE: &str = "a photo of a <category>, 12 ünïcode\n";

/// Encodes and decodes [`SAMPLE`] with a tokenizer that loaded.
fn round_trip(tokenizer: &LlmTokenizer) {
    if let Ok(ids) = tokenizer.encode_plain(SAMPLE) {
        let _ = tokenizer.decode(&ids);
    }
}

/// A GGUF file as a model: header, metadata, tensor infos, the HF config built from the metadata, the config's
/// check against the tensors, and the dequantization of every tensor.
pub fn gguf(bytes: &[u8]) {
    let path = file("model.gguf", bytes);
    let Ok(checkpoint) = Checkpoint::open(path.to_str().expect("a UTF-8 scratch path")) else { return };
    for tensor in checkpoint.weights.tensors() {
        std::hint::black_box(tensor.to_f32());
    }
    if let Ok(config) = LlmConfig::from_json(&checkpoint.config) {
        let _ = config.check_weights(&checkpoint.weights);
    }
}

/// A GGUF file's metadata as a tokenizer (SentencePiece or byte-level BPE), and a round of encoding and decoding.
pub fn gguf_tokenizer(bytes: &[u8]) {
    let path = file("tokenizer.gguf", bytes);
    let Ok(file) = GgufFile::open(&path) else { return };
    if let Ok((tokenizer, _)) = LlmTokenizer::from_gguf(&file.metadata) {
        round_trip(&tokenizer);
    }
}

/// A `tokenizer.json` file, and a round of encoding and decoding.
pub fn tokenizer_json(bytes: &[u8]) {
    if let Ok(tokenizer) = LlmTokenizer::from_bytes(bytes, "tokenizer.json") {
        round_trip(&tokenizer);
    }
}

/// A `model.safetensors` file, and the conversion of every tensor.
pub fn safetensors(bytes: &[u8]) {
    let dir = scratch().join("safetensors");
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    std::fs::write(dir.join("model.safetensors"), bytes).expect("writing a scratch file");
    let Ok(store) = WeightStore::open(&dir) else { return };
    for tensor in store.tensors() {
        std::hint::black_box(tensor.to_f32());
    }
}

/// A shard holding one f32 tensor `w` of shape [2].
fn shard() -> Vec<u8> {
    let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0, 0, 128, 63, 0, 0, 0, 64]);
    bytes
}

/// A `model.safetensors.index.json` beside one valid shard, and the conversion of every tensor it names.
pub fn safetensors_index(bytes: &[u8]) {
    let dir = scratch().join("sharded");
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    std::fs::write(dir.join("model-00001-of-00001.safetensors"), shard()).expect("writing a scratch file");
    std::fs::write(dir.join("model.safetensors.index.json"), bytes).expect("writing a scratch file");
    let Ok(store) = WeightStore::open(&dir) else { return };
    for tensor in store.tensors() {
        std::hint::black_box(tensor.to_f32());
    }
}

/// A `config.json` as every supported language model and as CLIP, with the rotary frequencies of a language model.
pub fn config_json(bytes: &[u8]) {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(bytes) else { return };
    if let Ok(config) = LlmConfig::from_json(&json) {
        std::hint::black_box(config.inv_freq());
        std::hint::black_box(config.local_inv_freq());
    }
    let _ = ClipConfig::from_json(&json);
}

/// A CoOp split file, read for each split against an image root with one class folder.
pub fn split_file(bytes: &[u8]) {
    let root = scratch().join("images");
    std::fs::create_dir_all(root.join("cat")).expect("a scratch folder");
    let path = file("split.json", bytes);
    for split in [Split::Train, Split::Val, Split::Test] {
        let _ = glov_cuda::dataset::split_file::load(&root, &path, split);
    }
}

/// An `optimize --config` file, and its settings resolved.
pub fn optimize_config(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    if let Ok(config) = ConfigFile::parse(text) {
        let _ = config.settings.resolve();
    }
}

/// A sweep plan, and its cells.
pub fn sweep_plan(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let dir = scratch().join("sweep");
    if let Ok(plan) = Plan::parse(text, &dir.join("plan.toml")) {
        let _ = plan.cells(&dir);
    }
}

/// A model's chat template, compiled and rendered with and without the generation prompt.
pub fn chat_template(bytes: &[u8]) {
    let Ok(source) = std::str::from_utf8(bytes) else { return };
    let tokens = vec![("bos_token".to_string(), "<s>".to_string()), ("eos_token".to_string(), "</s>".to_string())];
    let Ok(template) = ChatTemplate::compile("chat_template", source, tokens) else { return };
    let template = template.with_fixed_now(0);
    let messages = [Message::system("You find prompt templates."), Message::user("Propose one.")];
    for generation_prompt in [false, true] {
        let _ = template.render(&messages, generation_prompt);
    }
}
