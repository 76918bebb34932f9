//! Upper bounds on the sizes a model's config states (in `config.json` or GGUF metadata), and checks of a config
//! against the tensors present, made before anything is allocated from the config.
//!
//! Each bound is far above every released model of the supported architectures (the largest, Llama 3.1 405B, has
//! 126 blocks of width 16384 with 128 heads of 128 and an MLP of 53248; Gemma 3 has a vocabulary of 262144; Qwen
//! 2.5 has contexts of 1M) and small enough that every product of them that a model forms (a weight's values, a
//! row of the KV cache, the positions of an image) fits in 64 bits many times over.

use anyhow::{Result, bail, ensure};

/// Blocks (layers) of a model or tower.
pub const MAX_LAYERS: usize = 1024;
/// Hidden size (width), and projection size.
pub const MAX_HIDDEN: usize = 1 << 16;
/// Attention heads, and key/value heads.
pub const MAX_HEADS: usize = 1024;
/// Values per attention head.
pub const MAX_HEAD_DIM: usize = 4096;
/// Intermediate size of the MLP.
pub const MAX_INTERMEDIATE: usize = 1 << 20;
/// Tokens in the vocabulary.
pub const MAX_VOCAB: usize = 1 << 24;
/// Positions of the context, and sliding attention windows.
pub const MAX_POSITIONS: usize = 1 << 26;
/// Side of a square input image, in pixels.
pub const MAX_IMAGE_SIZE: usize = 1 << 14;

/// `value` when it is within `1..=max`; an error naming `field` (its file and key) otherwise.
pub fn size(field: &str, value: usize, max: usize) -> Result<usize> {
    ensure!((1..=max).contains(&value), "{field} is {value}, outside the supported range 1 to {max}");
    Ok(value)
}

/// Checks that the tensors among `names` that start with `prefix` followed by a block number (`blk.3.…`,
/// `model.layers.3.…`) are of blocks `0..count` exactly, every one of them present; `field` names where `count`
/// came from (its file and key).
pub fn check_blocks<'a>(
    names: impl IntoIterator<Item = &'a str>,
    prefix: &str,
    count: usize,
    field: &str,
) -> Result<()> {
    let mut present = vec![false; count];
    for name in names {
        let Some(rest) = name.strip_prefix(prefix) else { continue };
        let number = rest.split('.').next().unwrap_or_default();
        match number.parse::<usize>().ok().and_then(|block| present.get_mut(block)) {
            Some(seen) => *seen = true,
            None => bail!(
                "tensor {name} is not of one of the {count} blocks that {field} states ({prefix}0 to {prefix}{})",
                count.saturating_sub(1)
            ),
        }
    }
    if let Some(missing) = present.iter().position(|&seen| !seen) {
        bail!("{field} is {count}, but the weights have no tensor of block {missing} ({prefix}{missing}.*)");
    }
    Ok(())
}

/// Checks that tensor `name` has the `expected` shape that `fields` (the keys and values of the config `file` that
/// make it) give.
pub fn check_shape(file: &str, name: &str, shape: &[usize], expected: &[usize], fields: &str) -> Result<()> {
    ensure!(shape == expected, "{file}: tensor {name} has shape {shape:?}, but {fields} make it {expected:?}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_must_be_exactly_those_stated() {
        let names = ["blk.0.attn_q.weight", "blk.1.attn_q.weight", "blk.1.ffn_up.weight", "token_embd.weight"];
        check_blocks(names, "blk.", 2, "m.gguf: metadata llama.block_count").unwrap();
        let err = check_blocks(names, "blk.", 3, "m.gguf: metadata llama.block_count").unwrap_err().to_string();
        assert!(err.contains("m.gguf: metadata llama.block_count is 3") && err.contains("block 2 (blk.2.*)"), "{err}");
        let err = check_blocks(names, "blk.", 1, "config.json: num_hidden_layers").unwrap_err().to_string();
        assert!(err.contains("tensor blk.1.attn_q.weight") && err.contains("config.json: num_hidden_layers"), "{err}");
        let err = check_blocks(["blk.x.attn_q.weight"], "blk.", 1, "f").unwrap_err().to_string();
        assert!(err.contains("tensor blk.x.attn_q.weight is not of one of the 1 blocks"), "{err}");
    }

    #[test]
    fn sizes_are_bounded_on_both_sides() {
        assert_eq!(size("f", 3, 4).unwrap(), 3);
        for bad in [0, 5] {
            let err = size("config.json: num_attention_heads", bad, 4).unwrap_err().to_string();
            assert!(err.contains(&format!("config.json: num_attention_heads is {bad}, outside")), "{err}");
        }
    }
}
