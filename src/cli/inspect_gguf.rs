//! `glov-cuda inspect` on a GGUF file: architecture, tensor types and counts, parameter count, size, the metadata
//! that describes the model and its tokenizer, and the HF config built from it.

use crate::checkpoint::gguf::{GgufFile, hf};
use anyhow::Result;
use std::collections::BTreeMap;

/// Arrays longer than this are shown as their length.
const MAX_ARRAY_ITEMS: usize = 16;

#[derive(Default, serde::Serialize)]
struct TypeCount {
    tensors: usize,
    values: u64,
    bytes: u64,
}

/// Sums counts that a hostile file can make overflow (tensors may share their data): saturating, as a count shown.
fn add(total: &mut u64, count: usize) {
    *total = total.saturating_add(count as u64);
}

pub fn run(file: &GgufFile, json: bool) -> Result<()> {
    let mut types: BTreeMap<String, TypeCount> = BTreeMap::new();
    for t in &file.tensors {
        let count = types.entry(t.type_name()).or_default();
        count.tensors += 1;
        add(&mut count.values, t.numel());
        add(&mut count.bytes, t.range.len());
    }
    let mut parameters = 0;
    file.tensors.iter().for_each(|t| add(&mut parameters, t.numel()));
    let architecture = file.metadata.opt_str("general.architecture")?.unwrap_or("unknown").to_string();
    // The tokenizer's vocabulary, scores, merges and token types are long arrays: shown as lengths.
    let metadata: BTreeMap<&String, serde_json::Value> =
        file.metadata.entries().map(|(k, v)| (k, v.to_json(MAX_ARRAY_ITEMS))).collect();
    let config = hf::load(file).map(|c| c.config).map_err(|e| format!("{e:#}"));
    if json {
        let out = serde_json::json!({
            "file": file.path.display().to_string(),
            "bytes": file.file_size(),
            "gguf_version": file.version,
            "architecture": architecture,
            "parameters": parameters,
            "tensors": file.tensors.len(),
            "tensor_types": types,
            "metadata": metadata,
            "config": config.as_ref().ok(),
            "config_error": config.as_ref().err(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "model:         {} (GGUF v{}, {})",
        file.path.display(),
        file.version,
        super::inspect::human_bytes(file.file_size() as u64)
    );
    println!("architecture:  {architecture}");
    println!("parameters:    {} ({:.1} M) in {} tensors", parameters, parameters as f64 / 1e6, file.tensors.len());
    println!("tensor types:");
    for (name, c) in &types {
        println!(
            "  {name:<8} {:>5} tensors {:>12} values {:>12}",
            c.tensors,
            c.values,
            super::inspect::human_bytes(c.bytes)
        );
    }
    match &config {
        Ok(config) => println!("config:        {config}"),
        Err(e) => println!("config:        none ({e})"),
    }
    println!("metadata:");
    for (key, value) in &metadata {
        println!("  {key:<45} {value}");
    }
    Ok(())
}
