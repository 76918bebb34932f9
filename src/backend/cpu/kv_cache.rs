//! The CPU KV cache: for every layer, one key and one value buffer per stream (group prefixes and sequence parts),
//! allocated once at their full capacity.

use super::attention::{Visible, attend_row};
use crate::backend::{CachedRow, HeadShape, KvLayout, Scoring, Stream};
use anyhow::{Result, ensure};
use rayon::prelude::*;

struct Buffers {
    keys: Vec<f32>,
    values: Vec<f32>,
    /// Rows written so far (the highest written slot + 1).
    filled: usize,
}

impl Buffers {
    fn new(capacity: usize, width: usize) -> Self {
        Self { keys: vec![0.0; capacity * width], values: vec![0.0; capacity * width], filled: 0 }
    }
}

pub struct CpuKvCache {
    layout: KvLayout,
    /// `[layer][group]`.
    prefixes: Vec<Vec<Buffers>>,
    /// `[layer][sequence]`.
    sequences: Vec<Vec<Buffers>>,
}

impl CpuKvCache {
    pub fn new(layout: &KvLayout) -> Self {
        let width = layout.kv_heads * layout.head_dim;
        let prefixes =
            (0..layout.layers).map(|_| layout.prefixes.iter().map(|&c| Buffers::new(c, width)).collect()).collect();
        let sequences = (0..layout.layers)
            .map(|_| layout.sequences.iter().map(|&(_, c)| Buffers::new(c, width)).collect())
            .collect();
        Self { layout: layout.clone(), prefixes, sequences }
    }

    pub fn layout(&self) -> &KvLayout {
        &self.layout
    }

    /// Writes each row's key and value (of packed QKV rows) to its stream's slot.
    pub fn store(&mut self, qkv: &[f32], layer: usize, rows: &[CachedRow], heads: HeadShape) -> Result<()> {
        let slots = self.check(qkv, layer, rows, heads)?;
        let (width, kv_width, qkv_width) = (heads.heads * heads.head_dim, heads.kv_width(), heads.qkv_width());
        for ((row, &slot), values) in rows.iter().zip(&slots).zip(qkv.chunks_exact(qkv_width)) {
            let buffers = match row.stream {
                Stream::Prefix(g) => &mut self.prefixes[layer][g],
                Stream::Sequence(s) => &mut self.sequences[layer][s],
            };
            buffers.keys[slot * kv_width..(slot + 1) * kv_width].copy_from_slice(&values[width..width + kv_width]);
            buffers.values[slot * kv_width..(slot + 1) * kv_width].copy_from_slice(&values[width + kv_width..]);
            buffers.filled = buffers.filled.max(slot + 1);
        }
        Ok(())
    }

    /// The rows' slots, once `qkv` is checked to hold their packed QKV rows of `layer`.
    fn check(&self, qkv: &[f32], layer: usize, rows: &[CachedRow], heads: HeadShape) -> Result<Vec<usize>> {
        self.layout.check_attention(layer, heads)?;
        let qkv_width = heads.qkv_width();
        ensure!(
            qkv.len() == rows.len() * qkv_width,
            "cached attention: {} values for {} rows of {qkv_width}",
            qkv.len(),
            rows.len()
        );
        rows.iter().map(|r| self.layout.slot(r)).collect()
    }

    /// Attends each row (its key and value already stored) to every cached position it sees.
    pub fn attend(
        &self,
        qkv: &[f32],
        layer: usize,
        rows: &[CachedRow],
        heads: HeadShape,
        scoring: Scoring,
    ) -> Result<Vec<f32>> {
        let slots = self.check(qkv, layer, rows, heads)?;
        let (width, kv_width, qkv_width) = (heads.heads * heads.head_dim, heads.kv_width(), heads.qkv_width());
        let mut out = vec![0.0f32; rows.len() * width];
        let cache = self;
        out.par_chunks_mut(width).zip(rows.par_iter().zip(slots.par_iter())).enumerate().try_for_each(
            |(i, (out_row, (row, &slot)))| {
                let visible = match row.stream {
                    Stream::Prefix(g) => {
                        let b = &cache.prefixes[layer][g];
                        Visible {
                            keys: [&b.keys[..(slot + 1) * kv_width], &[]],
                            values: [&b.values[..(slot + 1) * kv_width], &[]],
                            bias: None,
                        }
                    }
                    Stream::Sequence(s) => {
                        let group = cache.layout.sequences[s].0;
                        let (p, own) = (&cache.prefixes[layer][group], &cache.sequences[layer][s]);
                        let prefix_len = cache.layout.prefixes[group];
                        ensure!(
                            p.filled == prefix_len,
                            "sequence {s} reads the prefix of group {group} before it is complete"
                        );
                        Visible {
                            keys: [&p.keys[..prefix_len * kv_width], &own.keys[..(slot + 1) * kv_width]],
                            values: [&p.values[..prefix_len * kv_width], &own.values[..(slot + 1) * kv_width]],
                            bias: None,
                        }
                    }
                };
                attend_row(&qkv[i * qkv_width..i * qkv_width + width], &visible, heads, scoring, out_row);
                Ok(())
            },
        )?;
        Ok(out)
    }
}
