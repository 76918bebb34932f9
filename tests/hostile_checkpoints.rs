//! Hostile checkpoints: the files of `scripts/make_hostile_checkpoints.py` under
//! tests/fixtures/hostile/checkpoints/, and two GGUF files too big to commit that are written here (arrays nested
//! 150 000 deep; a 48 MiB metadata array). Each must end in a clear error (exit status 1, the file and the field
//! or tensor named) within seconds, under an address-space limit, before anything is allocated from its sizes.

mod common;

use common::{Bounded, assert_clear_error, fixtures, run_bounded};

const MEMORY_MIB: u64 = 1024;
const SECONDS: u64 = 20;

fn hostile(name: &str) -> String {
    fixtures().join("hostile").join("checkpoints").join(name).display().to_string()
}

fn run(args: &[&str]) -> Bounded {
    let cwd = tempfile::tempdir().unwrap();
    run_bounded(cwd.path(), args, MEMORY_MIB, SECONDS)
}

/// Runs `glov-cuda args` and checks that it fails clearly, naming `file` and every one of `names`.
fn refused(args: &[&str], file: &str, names: &[&str]) {
    let names: Vec<&str> = std::iter::once(file).chain(names.iter().copied()).collect();
    assert_clear_error(&run(args), &names);
}

fn probe_llm(file: &str, names: &[&str]) {
    refused(&["probe", "llm", "--model", &hostile(file), "--prompt", "hi"], file, names);
}

#[test]
fn gguf_tensor_sizes_are_checked_for_overflow() {
    // 2^62 f32 values are 2^64 bytes, which wrap to 0 unless the product is checked.
    refused(&["inspect", &hostile("huge-elements.gguf")], "huge-elements.gguf", &["tensor huge", "too many values"]);
    refused(
        &["inspect", &hostile("huge-dimensions.gguf")],
        "huge-dimensions.gguf",
        &["tensor huge", "too many values"],
    );
}

#[test]
fn gguf_metadata_sizes_are_bounded_and_match_the_tensors() {
    probe_llm("zero-heads.gguf", &["metadata llama.attention.head_count is 0"]);
    probe_llm("heads-not-dividing.gguf", &["tensor blk.0.attn_q.weight", "llama.attention.head_count 3"]);
    probe_llm("kv-heads-not-dividing.gguf", &["metadata llama.attention.head_count_kv"]);
    probe_llm("block-count-mismatch.gguf", &["metadata llama.block_count is 3", "blk.2"]);
    probe_llm("absurd-layers.gguf", &["metadata llama.block_count is 1000000000000"]);
    probe_llm("gemma3-absurd-layers.gguf", &["metadata gemma3.block_count is 1000000000000"]);
    probe_llm("absurd-width.gguf", &["metadata llama.embedding_length is 1099511627776"]);
}

#[test]
fn gguf_metadata_arrays_are_bounded() {
    refused(&["inspect", &hostile("nested-arrays.gguf")], "nested-arrays.gguf", &["metadata test.nested", "nests"]);
    refused(&["inspect", &hostile("huge-array-count.gguf")], "huge-array-count.gguf", &["metadata test.huge"]);
    refused(&["inspect", &hostile("huge-string-count.gguf")], "huge-string-count.gguf", &["metadata test.strings"]);
}

/// A GGUF file with no tensors and one metadata entry `key` of value type `value_type`, stored as `value`.
fn gguf_with(key: &str, value_type: u32, value: &[u8]) -> Vec<u8> {
    let mut bytes = b"GGUF".to_vec();
    bytes.extend(3u32.to_le_bytes());
    bytes.extend(0u64.to_le_bytes());
    bytes.extend(1u64.to_le_bytes());
    bytes.extend((key.len() as u64).to_le_bytes());
    bytes.extend(key.as_bytes());
    bytes.extend(value_type.to_le_bytes());
    bytes.extend(value);
    bytes
}

const ARRAY: u32 = 9;

#[test]
fn deeply_nested_arrays_end_in_an_error_not_a_stack_overflow() {
    let depth = 150_000;
    let mut value = Vec::with_capacity(12 * depth + 4);
    for _ in 1..depth {
        value.extend(ARRAY.to_le_bytes());
        value.extend(1u64.to_le_bytes());
    }
    value.extend(4u32.to_le_bytes());
    value.extend(1u64.to_le_bytes());
    value.extend(7u32.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nested.gguf");
    std::fs::write(&file, gguf_with("test.nested", ARRAY, &value)).unwrap();
    refused(&["inspect", file.to_str().unwrap()], "nested.gguf", &["metadata test.nested", "nests arrays"]);
}

#[test]
fn metadata_arrays_take_memory_proportional_to_the_file() {
    // 48 Mi one-byte items: a value of a 32-byte enum each would need 1.5 GiB, past the limit.
    let items: u64 = 48 << 20;
    let mut value = 0u32.to_le_bytes().to_vec();
    value.extend(items.to_le_bytes());
    value.resize(value.len() + items as usize, 1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bytes.gguf");
    std::fs::write(&file, gguf_with("test.bytes", ARRAY, &value)).unwrap();
    let run = run(&["inspect", file.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&run.output.stdout);
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    assert!(run.output.status.success(), "{:?}:\n{stderr}", run.output.status);
    assert!(stdout.contains(&format!("[{items} items]")), "{stdout}");
}

#[test]
fn config_json_sizes_are_bounded_and_match_the_tensors() {
    let config = ["config.json"];
    for (dir, names) in [
        ("config-zero-heads", &["num_attention_heads is 0"][..]),
        ("config-heads-not-dividing", &["tensor model.layers.0.self_attn.k_proj.weight", "num_key_value_heads 3"]),
        ("config-layers-mismatch", &["num_hidden_layers is 3", "model.layers.2"]),
        ("config-absurd-layers", &["num_hidden_layers is 1000000000000"]),
        ("config-absurd-vocab", &["vocab_size is 1099511627776"]),
    ] {
        probe_llm(dir, &[&config[..], names].concat());
    }
    for (dir, names) in [
        ("clip-layers-mismatch", &["text_config.num_hidden_layers is 2", "text_model.encoder.layers.1"][..]),
        ("clip-absurd-image", &["vision_config.image_size is 1099511627776"]),
    ] {
        refused(&["probe", "clip", "--model", &hostile(dir), "--text", "hi"], dir, &[&config[..], names].concat());
    }
}

#[test]
fn safetensors_shapes_are_checked_for_overflow() {
    let names = ["model.safetensors", "tensor w", "too many values"];
    refused(&["inspect", &hostile("safetensors-zero-dim")], "safetensors-zero-dim", &names);
}

#[test]
fn shard_names_stay_inside_the_model_directory() {
    for (dir, shard) in [("shard-parent", "../outside.safetensors"), ("shard-absolute", "/etc/passwd")] {
        let names = ["model.safetensors.index.json", shard, "not a file name inside the model directory"];
        refused(&["inspect", &hostile(dir)], dir, &names);
    }
}
