// Causal attention through the KV cache, for prefill and decoding alike.
//
// The cache of one layer is two buffers, keys and values, of [tokens, kv_heads * head_dim] bf16, where `tokens`
// counts every stream's capacity: each prompt group's shared prefix and each sequence's private part have a fixed
// range of token slots. A forward call describes its rows with records of ROW_FIELDS u32 (built on the host):
//
//   position   the row's position in its sequence (read by rope.cu)
//   slot       the token slot its key and value are written to
//   a_start, a_len   the first run of visible slots (the group's prefix, or the prefix stream up to the row)
//   b_start, b_len   the second run (a sequence's own part up to the row; empty for prefix rows)
//   shared     keys 0 .. shared of the row (its group's whole prefix; 0: none) are attended by attention_prefix_*
//              with the other rows of its tile, and skipped by the per-row kernels when told of the cascade
//
// so a row attends to visible keys 0 .. a_len + b_len, key k living in slot a_start + k for k < a_len and in
// b_start + k - a_len after that. Sequences of a group read its prefix in place: nothing is copied. Key k holds
// position k, so a sliding-window layer (window > 0) lets a row see only its last `window` keys, k >= length -
// window (HF's kv_idx > q_idx - window); window 0 is full causal attention.
#include "common.cuh"

#define ROW_FIELDS 7

struct Visible {
    int64_t a_start, a_len, b_start, b_len;
    __device__ __forceinline__ int64_t length() const { return a_len + b_len; }
    __device__ __forceinline__ int64_t slot(int64_t k) const { return k < a_len ? a_start + k : b_start + k - a_len; }
    __device__ __forceinline__ int64_t first(int window) const {
        return window > 0 && length() > window ? length() - window : 0;
    }
};

__device__ __forceinline__ Visible visible_of(const uint32_t* __restrict__ records, int64_t r) {
    const uint32_t* rec = records + r * ROW_FIELDS;
    return Visible{rec[2], rec[3], rec[4], rec[5]};
}

// The same for a whole warp (every lane with the same r): four lanes load a field each and pass it to all, so
// the record costs the warp one 16-byte request instead of one per lane.
__device__ __forceinline__ Visible visible_of_warp(const uint32_t* __restrict__ records, int64_t r) {
    const int lane = threadIdx.x & 31;
    const uint32_t field = lane < 4 ? records[r * ROW_FIELDS + 2 + lane] : 0;
    return Visible{__shfl_sync(0xffffffffu, field, 0), __shfl_sync(0xffffffffu, field, 1),
                   __shfl_sync(0xffffffffu, field, 2), __shfl_sync(0xffffffffu, field, 3)};
}

// Writes each row's key and value heads (already rotated) to its slot. Grid (rows, ceil(kv_width / blockDim.x)).
extern "C" __global__ void kv_store(const bf16* __restrict__ qkv, const uint32_t* __restrict__ records,
                                    bf16* __restrict__ keys, bf16* __restrict__ values, int rows, int heads,
                                    int kv_heads, int head_dim) {
    const int kv_width = kv_heads * head_dim, width = (heads + 2 * kv_heads) * head_dim;
    const int c = blockIdx.y * blockDim.x + threadIdx.x;
    const int64_t r = blockIdx.x;
    if (c >= kv_width || r >= rows) return;
    const int64_t slot = records[r * ROW_FIELDS + 1];
    keys[slot * kv_width + c] = qkv[r * width + heads * head_dim + c];
    values[slot * kv_width + c] = qkv[r * width + heads * head_dim + kv_width + c];
}

// A lane's DPL consecutive values of a row (DPL = head_dim / 32) in one 4-, 8- or 16-byte access, so that a warp's
// access to a row is one request over whole sectors (or shared-memory wavefronts) instead of DPL strided ones.
template <int DPL>
__device__ __forceinline__ void load_bf16s(const bf16* __restrict__ p, float (&out)[DPL]) {
    uint32_t w[DPL / 2];
    if constexpr (DPL == 2) {
        w[0] = *reinterpret_cast<const uint32_t*>(p);
    } else if constexpr (DPL == 4) {
        const uint2 v = *reinterpret_cast<const uint2*>(p);
        w[0] = v.x;
        w[1] = v.y;
    } else {
        static_assert(DPL == 8, "head sizes 64, 128, 256");
        const uint4 v = *reinterpret_cast<const uint4*>(p);
        w[0] = v.x;
        w[1] = v.y;
        w[2] = v.z;
        w[3] = v.w;
    }
#pragma unroll
    for (int i = 0; i < DPL / 2; ++i) {  // a bf16 is the high half of an f32
        out[2 * i] = __uint_as_float(w[i] << 16);
        out[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
}

template <int DPL>
__device__ __forceinline__ void store_f32s(float* __restrict__ p, const float (&v)[DPL]) {
#pragma unroll
    for (int i = 0; i < DPL; i += 2) *reinterpret_cast<float2*>(p + i) = make_float2(v[i], v[i + 1]);
}

#define PLAIN_DIMS (256 / 32)

// One key of the online softmax for a lane's DPL dimensions of a (row, query head) vector (q already scaled):
// the score is one warp sum; the running maximum, sum and accumulator are rescaled when the maximum grows.
template <int DPL>
__device__ __forceinline__ void attend_key(const float (&q)[DPL], const float (&kd)[DPL], const float (&vd)[DPL],
                                           float& m, float& l, float (&acc)[DPL]) {
    float s = 0.0f;
#pragma unroll
    for (int d = 0; d < DPL; ++d) s += q[d] * kd[d];
    s = warp_sum(s);
    const float m_new = fmaxf(m, s);
    const float correction = expf(m - m_new), p = expf(s - m_new);
    l = l * correction + p;
#pragma unroll
    for (int d = 0; d < DPL; ++d) acc[d] = acc[d] * correction + p * vd[d];
    m = m_new;
}

// Plain: one warp per (row, query head), walking the visible keys in order with an online softmax (running
// maximum, running sum, rescaled accumulator), all in f32. Lane l owns the output dimensions l, l + 32, ... in
// registers (no per-thread array in local memory, which the driver would reserve for every resident thread), so a
// score is one warp sum. A row with no visible key gets zeros, not 0/0. head_dim <= 256.
extern "C" __global__ void attention_cached_plain(const bf16* __restrict__ qkv, const uint32_t* __restrict__ records,
                                                  const bf16* __restrict__ keys, const bf16* __restrict__ values,
                                                  bf16* __restrict__ out, int rows, int heads, int kv_heads,
                                                  int head_dim, float scale, int window) {
    const int lane = threadIdx.x & 31;
    const int64_t idx = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (idx >= (int64_t)rows * heads || head_dim > 32 * PLAIN_DIMS) return;  // the same for the whole warp
    const int64_t r = idx / heads;
    const int h = idx % heads;
    const int kv = h / (heads / kv_heads);
    const int kv_width = kv_heads * head_dim, width = (heads + 2 * kv_heads) * head_dim;
    const bf16* q = qkv + r * width + h * head_dim;
    const Visible vis = visible_of(records, r);
    float qd[PLAIN_DIMS], acc[PLAIN_DIMS];
#pragma unroll
    for (int t = 0; t < PLAIN_DIMS; ++t) {
        const int d = lane + 32 * t;
        qd[t] = d < head_dim ? to_f32(q[d]) : 0.0f;
        acc[t] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int64_t k = vis.first(window); k < vis.length(); ++k) {
        const int64_t base = vis.slot(k) * kv_width + kv * head_dim;
        float partial = 0.0f;
#pragma unroll
        for (int t = 0; t < PLAIN_DIMS; ++t) {
            const int d = lane + 32 * t;
            if (d < head_dim) partial += qd[t] * to_f32(keys[base + d]);
        }
        const float s = warp_sum(partial) * scale;
        const float m_new = fmaxf(m, s);
        const float correction = expf(m - m_new), p = expf(s - m_new);
        l = l * correction + p;
#pragma unroll
        for (int t = 0; t < PLAIN_DIMS; ++t) {
            const int d = lane + 32 * t;
            if (d < head_dim) acc[t] = acc[t] * correction + p * to_f32(values[base + d]);
        }
        m = m_new;
    }
#pragma unroll
    for (int t = 0; t < PLAIN_DIMS; ++t) {
        const int d = lane + 32 * t;
        if (d < head_dim) out[r * heads * head_dim + h * head_dim + d] = to_bf16(l > 0.0f ? acc[t] / l : 0.0f);
    }
}

// Fast ("flash decoding"): one block per (row, key/value head, group of up to GROUP query heads, split of the
// visible keys). The query heads of a group share one key/value head, so each key and value row is loaded once
// for all of them. Each of the block's WARPS warps takes every WARPS-th key of the split and keeps its own online
// softmax per head; a lane holds DPL = head_dim / 32 consecutive dimensions, so a key row is one coalesced load
// and a score is one warp reduction. The warps' states are merged in shared memory at the end. With one split the
// block writes the output; with several it writes its (max, sum, accumulator) partials and attention_combine
// merges the splits. Long contexts thus spread over many blocks, and a decode step at small batch still fills the
// GPU.
#define GROUP 4
#define WARPS 4

template <int DPL>
__device__ void attention_split(const bf16* __restrict__ qkv, const uint32_t* __restrict__ records,
                                const bf16* __restrict__ keys, const bf16* __restrict__ values,
                                bf16* __restrict__ out, float* __restrict__ partial_ml, float* __restrict__ partial_acc,
                                int heads, int kv_heads, float scale, int split_len, int window, int cascade,
                                int partials) {
    constexpr int HD = 32 * DPL;
    __shared__ float merge_ml[WARPS][GROUP][2];
    __shared__ float merge_acc[WARPS][GROUP][HD];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t r = blockIdx.x;
    const int group_size = heads / kv_heads, groups_per_kv = (group_size + GROUP - 1) / GROUP;
    const int kv = blockIdx.y / groups_per_kv;
    const int first_head = kv * group_size + (blockIdx.y % groups_per_kv) * GROUP;
    const int n_heads = min(GROUP, kv * group_size + group_size - first_head);
    const int kv_width = kv_heads * HD, width = (heads + 2 * kv_heads) * HD;
    const Visible vis = visible_of_warp(records, r);
    // Splits cover keys 0 .. capacity; a window only trims their start (a split left of it stays empty).
    const int64_t split_start = (int64_t)blockIdx.z * split_len;
    // Under a cascade the keys before the row's `shared` are attention_prefix_*'s (a split wholly inside them
    // writes an empty partial).
    const int64_t skip = cascade ? records[r * ROW_FIELDS + 6] : 0;
    const int64_t begin = max(max(split_start, skip), vis.first(window));
    const int64_t end = min(vis.length(), split_start + split_len);

    float q[GROUP][DPL], acc[GROUP][DPL], m[GROUP], l[GROUP];
#pragma unroll
    for (int g = 0; g < GROUP; ++g) {
        m[g] = -INFINITY;
        l[g] = 0.0f;
        if (g < n_heads) load_bf16s<DPL>(qkv + r * width + (int64_t)(first_head + g) * HD + lane * DPL, q[g]);
#pragma unroll
        for (int d = 0; d < DPL; ++d) {
            acc[g][d] = 0.0f;
            q[g][d] = g < n_heads ? q[g][d] * scale : 0.0f;
        }
    }
    for (int64_t k = begin + warp; k < end; k += WARPS) {
        const int64_t base = vis.slot(k) * kv_width + (int64_t)kv * HD + lane * DPL;
        float kd[DPL], vd[DPL];
        load_bf16s<DPL>(keys + base, kd);
        load_bf16s<DPL>(values + base, vd);
#pragma unroll
        for (int g = 0; g < GROUP; ++g) attend_key<DPL>(q[g], kd, vd, m[g], l[g], acc[g]);
    }
    // Merge the warps: each publishes its state, then every thread merges some (head, dimension) pairs.
#pragma unroll
    for (int g = 0; g < GROUP; ++g) {
        if (lane == 0) {
            merge_ml[warp][g][0] = m[g];
            merge_ml[warp][g][1] = l[g];
        }
        store_f32s<DPL>(&merge_acc[warp][g][lane * DPL], acc[g]);
    }
    __syncthreads();
    const int splits = partials;
    for (int i = threadIdx.x; i < n_heads * HD; i += blockDim.x) {
        const int g = i / HD, d = i % HD;
        float m_all = -INFINITY;
        for (int w = 0; w < WARPS; ++w) m_all = fmaxf(m_all, merge_ml[w][g][0]);
        float l_all = 0.0f, a_all = 0.0f;
        if (m_all != -INFINITY) {
            for (int w = 0; w < WARPS; ++w) {
                const float f = expf(merge_ml[w][g][0] - m_all);
                l_all += merge_ml[w][g][1] * f;
                a_all += merge_acc[w][g][d] * f;
            }
        }
        const int h = first_head + g;
        // A row outside the cascade has nothing in the cascade's slots (after this kernel's gridDim.z).
        if (cascade && skip == 0 && blockIdx.z == 0 && d == 0) {
            for (int z = gridDim.z; z < splits; ++z) {
                partial_ml[2 * ((r * heads + h) * splits + z)] = -INFINITY;
                partial_ml[2 * ((r * heads + h) * splits + z) + 1] = 0.0f;
            }
        }
        if (splits == 1) {
            out[(r * heads + h) * HD + d] = to_bf16(l_all > 0.0f ? a_all / l_all : 0.0f);
        } else {
            const int64_t p = (r * heads + h) * splits + blockIdx.z;
            partial_acc[p * HD + d] = a_all;
            if (d == 0) {
                partial_ml[2 * p] = m_all;
                partial_ml[2 * p + 1] = l_all;
            }
        }
    }
}

// One entry per supported head size.
extern "C" __global__ void __launch_bounds__(32 * WARPS)
    attention_cached_64(const bf16* __restrict__ qkv, const uint32_t* __restrict__ records,
                        const bf16* __restrict__ keys, const bf16* __restrict__ values, bf16* __restrict__ out,
                        float* __restrict__ partial_ml, float* __restrict__ partial_acc, int heads, int kv_heads,
                        float scale, int split_len, int window, int cascade, int partials) {
    attention_split<2>(qkv, records, keys, values, out, partial_ml, partial_acc, heads, kv_heads, scale,
                         split_len, window, cascade, partials);
}

extern "C" __global__ void __launch_bounds__(32 * WARPS)
    attention_cached_128(const bf16* __restrict__ qkv, const uint32_t* __restrict__ records,
                        const bf16* __restrict__ keys, const bf16* __restrict__ values, bf16* __restrict__ out,
                        float* __restrict__ partial_ml, float* __restrict__ partial_acc, int heads, int kv_heads,
                        float scale, int split_len, int window, int cascade, int partials) {
    attention_split<4>(qkv, records, keys, values, out, partial_ml, partial_acc, heads, kv_heads, scale,
                         split_len, window, cascade, partials);
}

extern "C" __global__ void __launch_bounds__(32 * WARPS)
    attention_cached_256(const bf16* __restrict__ qkv, const uint32_t* __restrict__ records,
                        const bf16* __restrict__ keys, const bf16* __restrict__ values, bf16* __restrict__ out,
                        float* __restrict__ partial_ml, float* __restrict__ partial_acc, int heads, int kv_heads,
                        float scale, int split_len, int window, int cascade, int partials) {
    attention_split<8>(qkv, records, keys, values, out, partial_ml, partial_acc, heads, kv_heads, scale,
                         split_len, window, cascade, partials);
}

// Cascade ("shared prefix") attention: the rows of a tile (up to a few consecutive rows of one prompt group, e.g.
// the decode rows of its sequences) read the group's prefix in place, so each of their query vectors would load the
// same keys and values. Here a block takes the tile's (row, query head) vectors of one key/value head and one split
// of the prefix, stages the split's keys and values in shared memory a chunk at a time (16-byte loads, each key
// row once per block), and every warp runs the online softmax of its own vectors over the chunk. It writes the
// split's partials after those of attention_cached_* (slots first_split + z of `partials` per row and head); those
// kernels, told of the cascade, skip the shared keys, and attention_combine merges all. The prefix is then read
// once per tile and kv head instead of once per row and query-head group. A tile is TILE_FIELDS u32: first row,
// rows, the prefix's first slot, shared keys. Grid (tiles, kv_heads * passes, splits of the longest shared run; a
// tile with a shorter one writes empty partials past it); a pass covers PREFIX_WARPS warps of QV = 16 / DPL vector
// slots, a warp whole rows where a row's query heads fit its slots.
//
// Direct mode (`out` set; one split covering every prefix): when every row of the call is in a tile (a GLOV decode
// step: each sequence of a group beside its siblings), each warp then attends its vectors to their rows' own keys,
// read in place, and writes the finished rows to `out`. A decode step's attention is then this one launch, and it
// reads each prefix once per tile and key/value head, each sequence's own keys once per key/value head (once per
// warp holding some of its heads, where they do not fit one warp), and writes no partials.
#define TILE_FIELDS 4
#define PREFIX_WARPS 8
#define NO_KEY 0x7fffffffffffffffLL
#define PREFIX_CHUNK 32

template <int DPL>
__device__ void attention_prefix(const bf16* __restrict__ qkv, const uint32_t* __restrict__ records,
                                 const uint32_t* __restrict__ tiles, const bf16* __restrict__ keys,
                                 const bf16* __restrict__ values, float* __restrict__ partial_ml,
                                 float* __restrict__ partial_acc, int heads, int kv_heads, float scale,
                                 int split_len, int window, int partials, int first_split, bf16* __restrict__ out) {
    constexpr int HD = 32 * DPL, QV = 16 / DPL, PIECES = HD / 8;
    __shared__ __align__(16) bf16 k_chunk[PREFIX_CHUNK][HD];
    __shared__ __align__(16) bf16 v_chunk[PREFIX_CHUNK][HD];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    // The tile's fields, loaded by four lanes of each warp and passed to all (one 16-byte request per warp).
    const uint32_t field = lane < TILE_FIELDS ? tiles[(int64_t)blockIdx.x * TILE_FIELDS + lane] : 0;
    const int64_t first_row = __shfl_sync(0xffffffffu, field, 0), a_start = __shfl_sync(0xffffffffu, field, 2);
    const int64_t shared = __shfl_sync(0xffffffffu, field, 3);
    const int n_rows = __shfl_sync(0xffffffffu, field, 1);
    const int64_t split_start = (int64_t)blockIdx.z * split_len, split_end = min(shared, split_start + split_len);
    const int per_kv = heads / kv_heads, passes = gridDim.y / kv_heads;
    const int kv = blockIdx.y / passes, pass = blockIdx.y % passes;
    // Whole rows per warp when a row's heads fit its QV vector slots (QV / per_kv rows, spare slots idle), so that
    // the direct mode loads a row's own keys once for all its heads; otherwise QV consecutive (row, head) vectors.
    const int rows_per_warp = QV / per_kv;
    if (rows_per_warp > 0 ? pass * PREFIX_WARPS * rows_per_warp >= n_rows
                          : pass * PREFIX_WARPS * QV >= n_rows * per_kv)
        return;  // a small tile needs fewer passes
    const int kv_width = kv_heads * HD, width = (heads + 2 * kv_heads) * HD;
    const int warp_of_tile = pass * PREFIX_WARPS + warp;

    // This warp's vectors: slot j holds tile row `row[j]`'s query head `head[j]`; a valid slot's `from` is the first
    // key its row sees (its sliding window), an idle slot's never. Valid slots come first, and a row's slots are
    // consecutive.
    float q[QV][DPL], acc[QV][DPL], m[QV], l[QV];
    int64_t from[QV], row[QV];
    int head[QV];
    int64_t row_first = 0;
#pragma unroll
    for (int j = 0; j < QV; ++j) {
        int tile_row, h;
        bool valid;
        if (rows_per_warp > 0) {
            tile_row = warp_of_tile * rows_per_warp + j / per_kv;
            h = j % per_kv;
            valid = j / per_kv < rows_per_warp && tile_row < n_rows;
        } else {
            const int v = warp_of_tile * QV + j;
            tile_row = v / per_kv;
            h = v % per_kv;
            valid = tile_row < n_rows;
        }
        row[j] = first_row + (valid ? tile_row : 0);
        head[j] = kv * per_kv + (valid ? h : 0);
        if (valid && (j == 0 || row[j] != row[j - 1]))  // uniform in the warp
            row_first = visible_of_warp(records, row[j]).first(window);
        from[j] = valid ? row_first : NO_KEY;
        m[j] = -INFINITY;
        l[j] = 0.0f;
        if (valid) load_bf16s<DPL>(qkv + row[j] * width + (int64_t)head[j] * HD + lane * DPL, q[j]);
#pragma unroll
        for (int d = 0; d < DPL; ++d) {
            acc[j][d] = 0.0f;
            q[j][d] = valid ? q[j][d] * scale : 0.0f;
        }
    }
    for (int64_t c0 = split_start; c0 < split_end; c0 += PREFIX_CHUNK) {
        const int n = (int)min((int64_t)PREFIX_CHUNK, split_end - c0);
        __syncthreads();  // every warp is done with the previous chunk
        for (int i = threadIdx.x; i < n * PIECES; i += blockDim.x) {
            const int c = i / PIECES, piece = i % PIECES;
            const int64_t at = (a_start + c0 + c) * kv_width + (int64_t)kv * HD + piece * 8;
            *reinterpret_cast<uint4*>(&k_chunk[c][piece * 8]) = *reinterpret_cast<const uint4*>(keys + at);
            *reinterpret_cast<uint4*>(&v_chunk[c][piece * 8]) = *reinterpret_cast<const uint4*>(values + at);
        }
        __syncthreads();
        for (int c = 0; c < n; ++c) {
            float kd[DPL], vd[DPL];
            load_bf16s<DPL>(&k_chunk[c][lane * DPL], kd);
            load_bf16s<DPL>(&v_chunk[c][lane * DPL], vd);
#pragma unroll
            for (int j = 0; j < QV; ++j)
                if (c0 + c >= from[j]) attend_key<DPL>(q[j], kd, vd, m[j], l[j], acc[j]);  // uniform in the warp
        }
    }
    if (out) {
        // Direct: each warp goes on with its rows' own keys after the prefix (a decode row's few), read in place once
        // per row for all the row's slots, and writes the finished rows; no partials, no per-row kernel, no combine.
#pragma unroll
        for (int j0 = 0; j0 < QV; ++j0) {
            if (from[j0] == NO_KEY || (j0 > 0 && row[j0 - 1] == row[j0])) continue;  // not a row's first slot
            const Visible vis = visible_of_warp(records, row[j0]);
            for (int64_t k = max(shared, from[j0]); k < vis.length(); ++k) {
                const int64_t base = vis.slot(k) * kv_width + (int64_t)kv * HD + lane * DPL;
                float kd[DPL], vd[DPL];
                load_bf16s<DPL>(keys + base, kd);
                load_bf16s<DPL>(values + base, vd);
#pragma unroll
                for (int j = j0; j < QV; ++j)
                    if (from[j] != NO_KEY && row[j] == row[j0]) attend_key<DPL>(q[j], kd, vd, m[j], l[j], acc[j]);
            }
#pragma unroll
            for (int j = j0; j < QV; ++j) {
                if (from[j] == NO_KEY || row[j] != row[j0]) continue;
                bf16* o = out + (row[j] * heads + head[j]) * HD + lane * DPL;
#pragma unroll
                for (int d = 0; d < DPL; ++d) o[d] = to_bf16(l[j] > 0.0f ? acc[j][d] / l[j] : 0.0f);
            }
        }
        return;
    }
#pragma unroll
    for (int j = 0; j < QV; ++j) {
        if (from[j] == NO_KEY) continue;
        const int64_t p = (row[j] * heads + head[j]) * partials + first_split + blockIdx.z;
        store_f32s<DPL>(partial_acc + p * HD + lane * DPL, acc[j]);
        if (lane == 0) {
            partial_ml[2 * p] = m[j];
            partial_ml[2 * p + 1] = l[j];
        }
    }
}

// One entry per supported head size.
extern "C" __global__ void __launch_bounds__(32 * PREFIX_WARPS)
    attention_prefix_64(const bf16* __restrict__ qkv, const uint32_t* __restrict__ records,
                        const uint32_t* __restrict__ tiles, const bf16* __restrict__ keys,
                        const bf16* __restrict__ values, float* __restrict__ partial_ml,
                        float* __restrict__ partial_acc, int heads, int kv_heads, float scale, int split_len,
                        int window, int partials, int first_split, bf16* __restrict__ out) {
    attention_prefix<2>(qkv, records, tiles, keys, values, partial_ml, partial_acc, heads, kv_heads, scale,
                          split_len, window, partials, first_split, out);
}

extern "C" __global__ void __launch_bounds__(32 * PREFIX_WARPS)
    attention_prefix_128(const bf16* __restrict__ qkv, const uint32_t* __restrict__ records,
                        const uint32_t* __restrict__ tiles, const bf16* __restrict__ keys,
                        const bf16* __restrict__ values, float* __restrict__ partial_ml,
                        float* __restrict__ partial_acc, int heads, int kv_heads, float scale, int split_len,
                        int window, int partials, int first_split, bf16* __restrict__ out) {
    attention_prefix<4>(qkv, records, tiles, keys, values, partial_ml, partial_acc, heads, kv_heads, scale,
                          split_len, window, partials, first_split, out);
}

extern "C" __global__ void __launch_bounds__(32 * PREFIX_WARPS)
    attention_prefix_256(const bf16* __restrict__ qkv, const uint32_t* __restrict__ records,
                        const uint32_t* __restrict__ tiles, const bf16* __restrict__ keys,
                        const bf16* __restrict__ values, float* __restrict__ partial_ml,
                        float* __restrict__ partial_acc, int heads, int kv_heads, float scale, int split_len,
                        int window, int partials, int first_split, bf16* __restrict__ out) {
    attention_prefix<8>(qkv, records, tiles, keys, values, partial_ml, partial_acc, heads, kv_heads, scale,
                          split_len, window, partials, first_split, out);
}

// Merges the splits of attention_cached_*: out = sum_z e^(m_z - M) acc_z / sum_z e^(m_z - M) l_z, with M the
// largest m_z. Empty splits (m = -inf, l = 0) weigh nothing; a row whose splits are all empty gets zeros. Grid
// (rows, heads), head_dim threads.
extern "C" __global__ void attention_combine(const float* __restrict__ partial_ml,
                                             const float* __restrict__ partial_acc, bf16* __restrict__ out,
                                             int heads, int head_dim, int splits) {
    const int64_t rh = (int64_t)blockIdx.x * heads + blockIdx.y;
    const int d = threadIdx.x;
    if (d >= head_dim) return;
    float m_all = -INFINITY;
    for (int z = 0; z < splits; ++z) m_all = fmaxf(m_all, partial_ml[2 * (rh * splits + z)]);
    float l_all = 0.0f, a_all = 0.0f;
    for (int z = 0; z < splits; ++z) {
        const int64_t p = rh * splits + z;
        const float m = partial_ml[2 * p];
        if (m == -INFINITY) continue;
        const float f = expf(m - m_all);
        l_all += partial_ml[2 * p + 1] * f;
        a_all += partial_acc[p * head_dim + d] * f;
    }
    out[rh * head_dim + d] = to_bf16(l_all > 0.0f ? a_all / l_all : 0.0f);  // no visible key: zeros
}
