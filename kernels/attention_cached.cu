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
//
// so a row attends to visible keys 0 .. a_len + b_len, key k living in slot a_start + k for k < a_len and in
// b_start + k - a_len after that. Sequences of a group read its prefix in place: nothing is copied. Key k holds
// position k, so a sliding-window layer (window > 0) lets a row see only its last `window` keys, k >= length -
// window (HF's kv_idx > q_idx - window); window 0 is full causal attention.
#include "common.cuh"

#define ROW_FIELDS 6

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

#define PLAIN_DIMS (256 / 32)

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
                                int heads, int kv_heads, float scale, int split_len, int window) {
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
    const Visible vis = visible_of(records, r);
    // Splits cover keys 0 .. capacity; a window only trims their start (a split left of it stays empty).
    const int64_t split_start = (int64_t)blockIdx.z * split_len;
    const int64_t begin = max(split_start, vis.first(window)), end = min(vis.length(), split_start + split_len);

    float q[GROUP][DPL], acc[GROUP][DPL], m[GROUP], l[GROUP];
#pragma unroll
    for (int g = 0; g < GROUP; ++g) {
        m[g] = -INFINITY;
        l[g] = 0.0f;
#pragma unroll
        for (int d = 0; d < DPL; ++d) {
            acc[g][d] = 0.0f;
            q[g][d] = g < n_heads ? to_f32(qkv[r * width + (int64_t)(first_head + g) * HD + lane * DPL + d]) * scale
                                  : 0.0f;
        }
    }
    for (int64_t k = begin + warp; k < end; k += WARPS) {
        const int64_t base = vis.slot(k) * kv_width + (int64_t)kv * HD + lane * DPL;
        float kd[DPL], vd[DPL];
#pragma unroll
        for (int d = 0; d < DPL; ++d) {
            kd[d] = to_f32(keys[base + d]);
            vd[d] = to_f32(values[base + d]);
        }
#pragma unroll
        for (int g = 0; g < GROUP; ++g) {
            float s = 0.0f;
#pragma unroll
            for (int d = 0; d < DPL; ++d) s += q[g][d] * kd[d];
            s = warp_sum(s);
            const float m_new = fmaxf(m[g], s);
            const float correction = expf(m[g] - m_new), p = expf(s - m_new);
            l[g] = l[g] * correction + p;
#pragma unroll
            for (int d = 0; d < DPL; ++d) acc[g][d] = acc[g][d] * correction + p * vd[d];
            m[g] = m_new;
        }
    }
    // Merge the warps: each publishes its state, then every thread merges some (head, dimension) pairs.
#pragma unroll
    for (int g = 0; g < GROUP; ++g) {
        if (lane == 0) {
            merge_ml[warp][g][0] = m[g];
            merge_ml[warp][g][1] = l[g];
        }
#pragma unroll
        for (int d = 0; d < DPL; ++d) merge_acc[warp][g][lane * DPL + d] = acc[g][d];
    }
    __syncthreads();
    const int splits = gridDim.z;
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
                        float scale, int split_len, int window) {
    attention_split<2>(qkv, records, keys, values, out, partial_ml, partial_acc, heads, kv_heads, scale,
                         split_len, window);
}

extern "C" __global__ void __launch_bounds__(32 * WARPS)
    attention_cached_128(const bf16* __restrict__ qkv, const uint32_t* __restrict__ records,
                        const bf16* __restrict__ keys, const bf16* __restrict__ values, bf16* __restrict__ out,
                        float* __restrict__ partial_ml, float* __restrict__ partial_acc, int heads, int kv_heads,
                        float scale, int split_len, int window) {
    attention_split<4>(qkv, records, keys, values, out, partial_ml, partial_acc, heads, kv_heads, scale,
                         split_len, window);
}

extern "C" __global__ void __launch_bounds__(32 * WARPS)
    attention_cached_256(const bf16* __restrict__ qkv, const uint32_t* __restrict__ records,
                        const bf16* __restrict__ keys, const bf16* __restrict__ values, bf16* __restrict__ out,
                        float* __restrict__ partial_ml, float* __restrict__ partial_acc, int heads, int kv_heads,
                        float scale, int split_len, int window) {
    attention_split<8>(qkv, records, keys, values, out, partial_ml, partial_acc, heads, kv_heads, scale,
                         split_len, window);
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
