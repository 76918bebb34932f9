//! The KV cache on the device and cached attention. One arena block holds every layer's keys and values; in each
//! layer every stream (a prompt group's shared prefix, a sequence's private part) owns a fixed range of token
//! slots, so sequences read their group's prefix in place. A forward call's rows become records (see
//! `kernels/attention_cached.cu`) uploaded once and read by every layer's rope, store and attention kernels.

use super::device_arena::DeviceBlock;
use super::ops::{DTensor, DType, Epilogue, Mode, RopeStore, Variant, arg, blocks, gemm_mma};
use super::runtime::Gpu;
use crate::backend::{CachedRow, HeadShape, KvLayout, Scoring, Stream};
use anyhow::{Result, ensure};

/// u32 fields of a row record: position, slot, a_start, a_len, b_start, b_len, shared.
pub const ROW_FIELDS: usize = 7;

/// Keys per split of the fast attention: a row that sees more keys is spread over several blocks.
const SPLIT_KEYS: usize = 256;

/// Rows of one prompt group per cascade tile: the group's prefix is read once per tile, key/value head and pass
/// (see `prefix_passes`). Passes a tile's rows do not need end at once, so a tile of a small group costs what its
/// rows need: ten rows of three query heads per key/value head at head size 64 read the prefix once, where tiles of
/// 8 rows read it twice.
const TILE_ROWS: usize = 32;

/// The shortest prefix worth a cascade's launch and partials.
const MIN_SHARED_KEYS: usize = 64;

/// u32 fields of a cascade tile: first row, rows, the prefix's first slot, shared keys.
const TILE_FIELDS: usize = 4;

/// Passes of attention_prefix over a tile of `rows` rows: its 8 warps have 16 / (head_dim / 32) vector slots each
/// and take whole rows where a row's query heads per key/value head fit a warp's slots, else consecutive vectors.
fn prefix_passes(rows: usize, heads: HeadShape) -> usize {
    let slots = 16 / (heads.head_dim / 32);
    let per_kv = heads.heads / heads.kv_heads;
    match slots / per_kv {
        0 => (rows * per_kv).div_ceil(8 * slots),
        rows_per_warp => rows.div_ceil(8 * rows_per_warp),
    }
}

/// Most bytes of split partials at once: longer calls run in chunks of rows.
const PARTIALS_BYTES: usize = 256 << 20;

/// Whether the cascade's tiles hold every one of `rows` rows.
fn covers_all(tiles: &[u32], rows: usize) -> bool {
    rows > 0 && tiles.chunks_exact(TILE_FIELDS).map(|t| t[1] as usize).sum::<usize>() == rows
}

/// One layer's attention_prefix_* launch over a call's cascade tiles.
struct Prefix<'a> {
    qkv: &'a DTensor,
    rows: &'a CudaRows,
    tiles: &'a DTensor,
    keys: u64,
    values: u64,
    heads: HeadShape,
    scale: f32,
    window: i32,
}

/// Where attention_prefix_* puts its results: split partials (slots `first_split + z` of `partials` per row and
/// head, splits of `split_len` keys), or the finished rows (its direct mode: one split over every prefix).
enum PrefixOutput {
    Partials { ml: u64, acc: u64, partials: i32, first_split: i32, split_len: i32 },
    Rows(u64),
}

impl Prefix<'_> {
    fn launch(&self, gpu: &Gpu, output: PrefixOutput) -> Result<()> {
        let heads = self.heads;
        let (h, kv) = (heads.heads as i32, heads.kv_heads as i32);
        let passes = prefix_passes(TILE_ROWS, heads);
        let (ml, acc, partials, first_split, split_len, out, splits) = match output {
            PrefixOutput::Partials { ml, acc, partials, first_split, split_len } => {
                (ml, acc, partials, first_split, split_len, 0u64, self.rows.shared_splits)
            }
            PrefixOutput::Rows(out) => (0, 0, 1, 0, i32::MAX, out, 1),
        };
        let mut args = [
            arg(&self.qkv.block.ptr),
            arg(&self.rows.records.block.ptr),
            arg(&self.tiles.block.ptr),
            arg(&self.keys),
            arg(&self.values),
            arg(&ml),
            arg(&acc),
            arg(&h),
            arg(&kv),
            arg(&self.scale),
            arg(&split_len),
            arg(&self.window),
            arg(&partials),
            arg(&first_split),
            arg(&out),
        ];
        let grid = (self.rows.tile_count as u32, (heads.kv_heads * passes) as u32, splits as u32);
        // SAFETY: the arguments match attention_prefix_<head_dim>; the tiles name rows of this call (all of them,
        // each once, in the direct mode) and prefix slots that were checked with the records. Partials: the buffers
        // hold rows x heads x partials, the shared splits after the rows' own; rows: out holds rows x heads x
        // head_dim.
        unsafe { gpu.launch(&format!("attention_prefix_{}", heads.head_dim), grid, (256, 1, 1), 0, &mut args) }
    }
}

pub struct CudaKvCache {
    layout: KvLayout,
    /// `[layer][keys, values][tokens][kv_heads * head_dim]` bf16.
    block: DeviceBlock,
    /// Token slots per layer.
    tokens: usize,
    prefix_start: Vec<usize>,
    sequence_start: Vec<usize>,
    /// Per layer and group: prefix positions written so far (the highest + 1).
    prefix_filled: Vec<Vec<usize>>,
}

/// The rows of one forward call, checked against the cache layout.
pub struct CudaRows {
    rows: Vec<CachedRow>,
    /// `[rows, ROW_FIELDS]` u32.
    pub records: DTensor,
    /// The most keys any row's stream can ever see (its capacity, not its current length): it fixes the number of
    /// attention splits, so that work recorded for one decode step stays valid for all later ones.
    max_visible: usize,
    /// The cascade's tiles (`[tiles, TILE_FIELDS]` u32) and the most splits of a tile's prefix; none when no two
    /// consecutive rows share a prefix of MIN_SHARED_KEYS or more.
    tiles: Option<DTensor>,
    tile_count: usize,
    shared_splits: usize,
    /// Every row is in a tile: the fast attention is attention_prefix_* alone, in its direct mode.
    direct: bool,
}

impl CudaRows {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

impl CudaKvCache {
    pub fn new(gpu: &Gpu, layout: &KvLayout) -> Result<Self> {
        ensure!(
            layout.sequences.iter().all(|&(g, _)| g < layout.prefixes.len()),
            "KV layout names a group it does not have"
        );
        let mut next = 0;
        let mut starts = |capacities: &mut dyn Iterator<Item = usize>| -> Vec<usize> {
            capacities
                .map(|c| {
                    let start = next;
                    next += c;
                    start
                })
                .collect()
        };
        let prefix_start = starts(&mut layout.prefixes.iter().copied());
        let sequence_start = starts(&mut layout.sequences.iter().map(|s| s.1));
        let tokens = next;
        ensure!(tokens < u32::MAX as usize, "a KV cache of {tokens} token slots is too large");
        let bytes = layout.bytes(2).max(1);
        let block = gpu.arena().alloc(bytes, "the KV cache")?;
        tracing::info!(bytes, tokens, layers = layout.layers, "KV cache allocated on the device");
        Ok(Self {
            layout: layout.clone(),
            block,
            tokens,
            prefix_start,
            sequence_start,
            prefix_filled: vec![vec![0; layout.prefixes.len()]; layout.layers],
        })
    }

    pub fn bytes(&self) -> usize {
        self.block.bytes
    }

    fn kv_width(&self) -> usize {
        self.layout.kv_heads * self.layout.head_dim
    }

    /// Device addresses of a layer's key and value buffers.
    fn layer(&self, layer: usize) -> (u64, u64) {
        let per = (self.tokens * self.kv_width() * 2) as u64;
        let keys = self.block.ptr + 2 * layer as u64 * per;
        (keys, keys + per)
    }

    /// The record of one row, checked against the layout (the same checks and messages as the CPU cache).
    fn record(&self, row: &CachedRow) -> Result<[u32; ROW_FIELDS]> {
        let (p, slot) = (row.position, self.layout.slot(row)?);
        let fields = match row.stream {
            Stream::Prefix(g) => {
                let start = self.prefix_start[g];
                [p, start + slot, start, p + 1, 0, 0, 0]
            }
            Stream::Sequence(s) => {
                let group = self.layout.sequences[s].0;
                let own = self.sequence_start[s];
                [p, own + slot, self.prefix_start[group], self.layout.prefixes[group], own, slot + 1, 0]
            }
        };
        Ok(fields.map(|v| v as u32))
    }

    /// The cascade of `rows`: each run of at least two consecutive rows of one group's sequences whose prefix
    /// holds MIN_SHARED_KEYS or more shares it (their records' `shared`), in tiles of up to TILE_ROWS rows. Returns
    /// the tiles and the most splits of a shared prefix.
    fn cascade(&self, rows: &[CachedRow], records: &mut [u32]) -> (Vec<u32>, usize) {
        let group_of = |row: &CachedRow| match row.stream {
            Stream::Sequence(s) => Some(self.layout.sequences[s].0),
            Stream::Prefix(_) => None,
        };
        let (mut tiles, mut most) = (Vec::new(), 0);
        let mut start = 0;
        while start < rows.len() {
            let group = group_of(&rows[start]);
            let mut end = start + 1;
            while group.is_some() && end < rows.len() && group_of(&rows[end]) == group {
                end += 1;
            }
            let shared = group.map_or(0, |g| self.layout.prefixes[g]);
            if let Some(g) = group
                && end - start >= 2
                && shared >= MIN_SHARED_KEYS
            {
                for r in start..end {
                    records[r * ROW_FIELDS + 6] = shared as u32;
                }
                for first in (start..end).step_by(TILE_ROWS) {
                    let n = TILE_ROWS.min(end - first);
                    tiles.extend([first, n, self.prefix_start[g], shared].map(|v| v as u32));
                }
                most = most.max(shared.div_ceil(SPLIT_KEYS));
            }
            start = end;
        }
        (tiles, most)
    }

    /// The records of `rows` and the most keys their streams can hold.
    fn records(&self, rows: &[CachedRow]) -> Result<(Vec<u32>, usize)> {
        let mut records = Vec::with_capacity(rows.len() * ROW_FIELDS);
        let mut max_visible = 0;
        for row in rows {
            records.extend(self.record(row)?);
            let capacity = match row.stream {
                Stream::Prefix(g) => self.layout.prefixes[g],
                Stream::Sequence(s) => {
                    let (group, own) = self.layout.sequences[s];
                    self.layout.prefixes[group] + own
                }
            };
            max_visible = max_visible.max(capacity);
        }
        Ok((records, max_visible))
    }

    pub fn rows(&self, gpu: &Gpu, rows: &[CachedRow]) -> Result<CudaRows> {
        let (mut records, max_visible) = self.records(rows)?;
        let (tiles, shared_splits) = self.cascade(rows, &mut records);
        let records = DTensor::upload_u32(gpu, &records, "KV cache row records")?;
        let tile_count = tiles.len() / TILE_FIELDS;
        let direct = covers_all(&tiles, rows.len());
        let tiles = if tiles.is_empty() {
            None
        } else {
            Some(DTensor::upload_u32(gpu, &tiles, "shared-prefix attention tiles")?)
        };
        Ok(CudaRows { rows: rows.to_vec(), records, max_visible, tiles, tile_count, shared_splits, direct })
    }

    /// New rows written over `prepared`'s records on the device (as many rows, streams of no larger capacity,
    /// shared prefixes in the same tiles).
    pub fn update_rows(&self, gpu: &Gpu, prepared: &mut CudaRows, rows: &[CachedRow]) -> Result<()> {
        ensure!(rows.len() == prepared.len(), "update_rows: {} rows in place of {}", rows.len(), prepared.len());
        let (mut records, max_visible) = self.records(rows)?;
        ensure!(
            max_visible <= prepared.max_visible,
            "update_rows: the new rows can see {max_visible} keys, more than the {} prepared for",
            prepared.max_visible
        );
        let (tiles, shared_splits) = self.cascade(rows, &mut records);
        ensure!(
            tiles.len() / TILE_FIELDS == prepared.tile_count
                && shared_splits <= prepared.shared_splits
                && covers_all(&tiles, rows.len()) == prepared.direct,
            "update_rows: the new rows share prefixes in other tiles than the prepared ones"
        );
        gpu.upload(&prepared.records.block, &records)?;
        if let Some(prepared_tiles) = &prepared.tiles {
            gpu.upload(&prepared_tiles.block, &tiles)?;
        }
        prepared.rows = rows.to_vec();
        Ok(())
    }

    /// Checks a call's packed QKV rows (or the product that makes them) against the cache and its rows.
    fn check_rows(
        &self,
        what: &str,
        qkv: (usize, usize),
        layer: usize,
        rows: &CudaRows,
        heads: HeadShape,
    ) -> Result<()> {
        self.layout.check_attention(layer, heads)?;
        ensure!(
            qkv == (rows.len(), heads.qkv_width()),
            "{what}: qkv is [{}, {}], expected [{}, {}]",
            qkv.0,
            qkv.1,
            rows.len(),
            heads.qkv_width()
        );
        Ok(())
    }

    /// Writes the rows' keys and values (already rotated) to their slots of `layer`.
    pub fn store(&mut self, gpu: &Gpu, qkv: &DTensor, layer: usize, rows: &CudaRows, heads: HeadShape) -> Result<()> {
        qkv.expect("cached keys and values", DType::Bf16)?;
        self.check_rows("KV store", (qkv.rows, qkv.cols), layer, rows, heads)?;
        self.note_writes(layer, &rows.rows)?;
        let (keys, values) = self.layer(layer);
        let (n, h, kv, d) = (rows.len() as i32, heads.heads as i32, heads.kv_heads as i32, heads.head_dim as i32);
        let mut store_args = [
            arg(&qkv.block.ptr),
            arg(&rows.records.block.ptr),
            arg(&keys),
            arg(&values),
            arg(&n),
            arg(&h),
            arg(&kv),
            arg(&d),
        ];
        // SAFETY: the arguments match kv_store; every record's slot was checked to lie in this layer's buffers.
        unsafe {
            gpu.launch(
                "kv_store",
                (rows.len() as u32, blocks(self.kv_width(), 128), 1),
                (128, 1, 1),
                0,
                &mut store_args,
            )
        }
    }

    /// The QKV projection `x W^T + bias` rotated by rope, its keys and values written to `layer`'s slots of the
    /// rows: the product's epilogue does all of it in one launch (`gemm_mma`'s rope mode). Returns the rotated QKV
    /// rows. Even head sizes up to 256 (`fuses_rope`).
    #[allow(clippy::too_many_arguments)]
    pub fn linear_rope_store(
        &mut self,
        gpu: &Gpu,
        x: &DTensor,
        w: &DTensor,
        bias: Option<&DTensor>,
        layer: usize,
        rows: &CudaRows,
        heads: HeadShape,
        inv_freq: &DTensor,
    ) -> Result<DTensor> {
        ensure!(
            Self::fuses_rope(heads),
            "the fused QKV product needs an even head size of at most 256, not {}",
            heads.head_dim
        );
        for (name, t) in [("x", Some(x)), ("QKV weight", Some(w)), ("QKV bias", bias)] {
            if let Some(t) = t {
                t.expect(name, DType::Bf16)?;
            }
        }
        inv_freq.expect("rope frequencies", DType::F32)?;
        ensure!(
            x.cols == w.cols,
            "QKV product: x is [{}, {}] but the weight is [{}, {}]",
            x.rows,
            x.cols,
            w.rows,
            w.cols
        );
        if let Some(b) = bias {
            ensure!(
                b.rows * b.cols == w.rows,
                "QKV product: bias of {} values for {} outputs",
                b.rows * b.cols,
                w.rows
            );
        }
        ensure!(
            inv_freq.rows * inv_freq.cols * 2 == heads.head_dim,
            "rope: {} frequencies for head size {}",
            inv_freq.rows * inv_freq.cols,
            heads.head_dim
        );
        self.check_rows("QKV product", (x.rows, w.rows), layer, rows, heads)?;
        self.note_writes(layer, &rows.rows)?;
        let (keys, values) = self.layer(layer);
        let qkv = DTensor::new(gpu, x.rows, w.rows, DType::Bf16, "rotated QKV")?;
        let rope = RopeStore { records: rows.records.block.ptr, inv_freq, keys, values, heads };
        let epilogue = Epilogue { bias, rope: Some(rope), ..Epilogue::default() };
        gemm_mma(gpu, x, w, &epilogue, Mode::Rope, &qkv)?;
        Ok(qkv)
    }

    /// Whether `linear_rope_store` takes these heads: rotary pairs need an even head size, and the cached
    /// attention after it takes at most 256.
    pub fn fuses_rope(heads: HeadShape) -> bool {
        heads.head_dim.is_multiple_of(2) && (2..=256).contains(&heads.head_dim)
    }

    /// Attends each row to every key it sees (its own already stored).
    pub fn attention(
        &mut self,
        gpu: &Gpu,
        qkv: &DTensor,
        layer: usize,
        rows: &CudaRows,
        heads: HeadShape,
        scoring: Scoring,
        variant: Variant,
    ) -> Result<DTensor> {
        qkv.expect("cached attention input", DType::Bf16)?;
        self.check_rows("cached attention", (qkv.rows, qkv.cols), layer, rows, heads)?;
        ensure!(heads.head_dim <= 256, "cached attention supports head sizes up to 256, not {}", heads.head_dim);
        let (keys, values) = self.layer(layer);
        let (n, h, kv, d) = (rows.len() as i32, heads.heads as i32, heads.kv_heads as i32, heads.head_dim as i32);
        let out = DTensor::new(gpu, rows.len(), heads.heads * heads.head_dim, DType::Bf16, "attention output")?;
        let scale = scoring.scale;
        // 0: no window. A window of at least the row's capacity is none either.
        let window = scoring.window.map_or(0, |w| w.min(i32::MAX as usize) as i32);
        let fast = match heads.head_dim {
            64 | 128 | 256 if variant == Variant::Fast => Some(format!("attention_cached_{}", heads.head_dim)),
            _ => None,
        };
        if let (Some(tiles), true, Some(_)) = (&rows.tiles, rows.direct, &fast) {
            let on = Prefix { qkv, rows, tiles, keys, values, heads, scale, window };
            on.launch(gpu, PrefixOutput::Rows(out.block.ptr))?;
            return Ok(out);
        }
        let Some(kernel) = fast else {
            let mut args = [
                arg(&qkv.block.ptr),
                arg(&rows.records.block.ptr),
                arg(&keys),
                arg(&values),
                arg(&out.block.ptr),
                arg(&n),
                arg(&h),
                arg(&kv),
                arg(&d),
                arg(&scale),
                arg(&window),
            ];
            // SAFETY: the arguments match attention_cached_plain; the records' visible runs were checked.
            unsafe {
                gpu.launch(
                    "attention_cached_plain",
                    (blocks(rows.len() * heads.heads, 4), 1, 1),
                    (128, 1, 1),
                    0,
                    &mut args,
                )?
            };
            return Ok(out);
        };
        let splits = rows.max_visible.div_ceil(SPLIT_KEYS).max(1);
        let groups = (heads.heads / heads.kv_heads).div_ceil(4);
        // The split partials grow with rows x splits (a long prefill); they are made for a chunk of rows that fits
        // PARTIALS_BYTES and reused chunk after chunk. A cascade's partials follow the rows' own in each row's
        // slots; it needs all rows in one chunk.
        let chunk_of = |partials: usize| {
            let per_row = heads.heads * partials * (heads.head_dim + 2) * 4;
            if partials > 1 { (PARTIALS_BYTES / per_row).clamp(1, rows.len().max(1)) } else { rows.len().max(1) }
        };
        let cascade = rows.tiles.as_ref().filter(|_| chunk_of(splits + rows.shared_splits) >= rows.len());
        let partials = splits + cascade.map_or(0, |_| rows.shared_splits);
        let chunk = chunk_of(partials);
        let cascade_flag = i32::from(cascade.is_some());
        let partials_i = partials as i32;
        let buffers = if partials > 1 {
            let pairs = chunk * heads.heads * partials;
            Some((
                DTensor::new(gpu, pairs, 2, DType::F32, "attention split maxima and sums")?,
                DTensor::new(gpu, pairs, heads.head_dim, DType::F32, "attention split accumulators")?,
            ))
        } else {
            None
        };
        let (ml, acc) = buffers.as_ref().map_or((0, 0), |(ml, acc)| (ml.block.ptr, acc.block.ptr));
        let split_len = SPLIT_KEYS as i32;
        let (qkv_row, record_row, out_row) =
            ((heads.qkv_width() * 2) as u64, (ROW_FIELDS * 4) as u64, (heads.heads * heads.head_dim * 2) as u64);
        for first in (0..rows.len()).step_by(chunk) {
            let count = chunk.min(rows.len() - first);
            let at = first as u64;
            let (qkv_at, records_at, out_at) =
                (qkv.block.ptr + at * qkv_row, rows.records.block.ptr + at * record_row, out.block.ptr + at * out_row);
            let mut args = [
                arg(&qkv_at),
                arg(&records_at),
                arg(&keys),
                arg(&values),
                arg(&out_at),
                arg(&ml),
                arg(&acc),
                arg(&h),
                arg(&kv),
                arg(&scale),
                arg(&split_len),
                arg(&window),
                arg(&cascade_flag),
                arg(&partials_i),
            ];
            let grid = (count as u32, (heads.kv_heads * groups) as u32, splits as u32);
            // SAFETY: the arguments match attention_cached_<head_dim>; rows first..first + count of qkv, records
            // and out start at the addresses passed; the partial buffers hold count x heads x partials.
            unsafe { gpu.launch(&kernel, grid, (128, 1, 1), 0, &mut args)? };
            if let Some(tiles) = cascade {
                let on = Prefix { qkv, rows, tiles, keys, values, heads, scale, window };
                let first_split = splits as i32;
                on.launch(gpu, PrefixOutput::Partials { ml, acc, partials: partials_i, first_split, split_len })?;
            }
            if partials > 1 {
                let mut args = [arg(&ml), arg(&acc), arg(&out_at), arg(&h), arg(&d), arg(&partials_i)];
                // SAFETY: the arguments match attention_combine, over the partials just written for these rows.
                unsafe {
                    gpu.launch(
                        "attention_combine",
                        (count as u32, heads.heads as u32, 1),
                        (heads.head_dim as u32, 1, 1),
                        0,
                        &mut args,
                    )?
                };
            }
        }
        Ok(out)
    }

    /// Records the prefix positions these rows write, and refuses a sequence row that would read a prefix not yet
    /// complete in this layer (as the CPU cache does).
    fn note_writes(&mut self, layer: usize, rows: &[CachedRow]) -> Result<()> {
        for row in rows {
            if let Stream::Prefix(g) = row.stream {
                let filled = &mut self.prefix_filled[layer][g];
                *filled = (*filled).max(row.position + 1);
            }
        }
        for row in rows {
            if let Stream::Sequence(s) = row.stream {
                let group = self.layout.sequences[s].0;
                ensure!(
                    self.prefix_filled[layer][group] == self.layout.prefixes[group],
                    "sequence {s} reads the prefix of group {group} before it is complete"
                );
            }
        }
        Ok(())
    }
}
