// Multi-head attention over a packed QKV tensor [batch * seq, (heads + 2 kv_heads) * head_dim] (query heads, then
// key heads, then value heads; query head h reads key/value head h / (heads / kv_heads)), bf16 in and out, f32
// arithmetic, softmax(q k^T * scale + bias) v per head, optionally causal. The bias (MPNet's relative positions) is
// null or f32 [heads, seq, seq], the same for every sequence of the batch. Both versions use the online softmax (a
// running maximum and sum, rescaling the accumulator when the maximum grows), so no score matrix is ever stored.
#include "common.cuh"

#define ATT_MAX_DIM 256
#define ATT_PLAIN_DIMS (ATT_MAX_DIM / 32)

// Plain: one warp per (row, head), walking every visible key in order. Lane l owns the output dimensions l, l + 32,
// ... (at most ATT_PLAIN_DIMS of them, in registers: no per-thread array in local memory, which the driver would
// reserve for every resident thread), so a score is one warp sum. A row with no visible key gets zeros, not 0/0.
// Grid (ceil(batch * seq * heads / warps per block)).
extern "C" __global__ void attention_plain(const bf16* __restrict__ qkv, const float* __restrict__ bias,
                                           bf16* __restrict__ out, int batch, int seq, int heads, int kv_heads,
                                           int head_dim, int causal, float scale) {
    const int lane = threadIdx.x & 31;
    const int64_t pair = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (pair >= (int64_t)batch * seq * heads || head_dim > ATT_MAX_DIM) return;  // the same for the whole warp
    const int64_t row = pair / heads;
    const int h = pair % heads;
    const int b = row / seq, i = row % seq, kvh = h / (heads / kv_heads);
    const int64_t width = (int64_t)(heads + 2 * kv_heads) * head_dim;
    const bf16* q = qkv + row * width + h * head_dim;
    const int end = causal ? i + 1 : seq;
    const float* row_bias = bias ? bias + ((int64_t)h * seq + i) * seq : nullptr;
    float qd[ATT_PLAIN_DIMS], acc[ATT_PLAIN_DIMS];
#pragma unroll
    for (int t = 0; t < ATT_PLAIN_DIMS; ++t) {
        const int d = lane + 32 * t;
        qd[t] = d < head_dim ? to_f32(q[d]) : 0.0f;
        acc[t] = 0.0f;
    }
    float running_max = -INFINITY, sum = 0.0f;
    for (int j = 0; j < end; ++j) {
        const bf16* kv_row = qkv + ((int64_t)b * seq + j) * width;
        const bf16* k = kv_row + (heads + kvh) * head_dim;
        const bf16* v = kv_row + (heads + kv_heads + kvh) * head_dim;
        float partial = 0.0f;
#pragma unroll
        for (int t = 0; t < ATT_PLAIN_DIMS; ++t) {
            const int d = lane + 32 * t;
            if (d < head_dim) partial += qd[t] * to_f32(k[d]);
        }
        const float s = warp_sum(partial) * scale + (row_bias ? row_bias[j] : 0.0f);
        const float new_max = fmaxf(running_max, s);
        const float correction = expf(running_max - new_max), p = expf(s - new_max);
        sum = sum * correction + p;
#pragma unroll
        for (int t = 0; t < ATT_PLAIN_DIMS; ++t) {
            const int d = lane + 32 * t;
            if (d < head_dim) acc[t] = acc[t] * correction + p * to_f32(v[d]);
        }
        running_max = new_max;
    }
    bf16* o = out + row * heads * head_dim + h * head_dim;
#pragma unroll
    for (int t = 0; t < ATT_PLAIN_DIMS; ++t) {
        const int d = lane + 32 * t;
        if (d < head_dim) o[d] = to_bf16(sum > 0.0f ? acc[t] / sum : 0.0f);
    }
}

// Tiled: a block of 4 warps takes 16 query rows of one (batch, head), 4 rows per warp, and walks the keys in tiles
// of 32 that all its warps share through shared memory. A warp holds its rows' queries and accumulators spread
// over its lanes (lane l owns dimensions l, l + 32, ...), so each score is one warp-wide sum. head_dim <= 128.
// Grid (ceil(seq / 16), heads, batch), 128 threads.
#define ATT_ROWS 16
#define ATT_ROWS_PER_WARP 4
#define ATT_KEYS 32
#define ATT_TILE_DIM 128
#define ATT_PER_LANE (ATT_TILE_DIM / 32)

extern "C" __global__ void __launch_bounds__(128) attention(const bf16* __restrict__ qkv,
                                                            const float* __restrict__ bias, bf16* __restrict__ out,
                                                            int batch, int seq, int heads, int kv_heads,
                                                            int head_dim, int causal, float scale) {
    __shared__ float ks[ATT_KEYS][ATT_TILE_DIM + 1];
    __shared__ float vs[ATT_KEYS][ATT_TILE_DIM + 1];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int b = blockIdx.z, h = blockIdx.y, kvh = h / (heads / kv_heads);
    const int64_t width = (int64_t)(heads + 2 * kv_heads) * head_dim;
    const int first = blockIdx.x * ATT_ROWS;
    if (head_dim > ATT_TILE_DIM) return;

    float q[ATT_ROWS_PER_WARP][ATT_PER_LANE], acc[ATT_ROWS_PER_WARP][ATT_PER_LANE];
    float running_max[ATT_ROWS_PER_WARP], sum[ATT_ROWS_PER_WARP];
#pragma unroll
    for (int r = 0; r < ATT_ROWS_PER_WARP; ++r) {
        const int i = first + warp * ATT_ROWS_PER_WARP + r;
        running_max[r] = -INFINITY;
        sum[r] = 0.0f;
#pragma unroll
        for (int t = 0; t < ATT_PER_LANE; ++t) {
            const int d = lane + 32 * t;
            const bool inside = i < seq && d < head_dim;
            q[r][t] = inside ? scale * to_f32(qkv[((int64_t)b * seq + i) * width + h * head_dim + d]) : 0.0f;
            acc[r][t] = 0.0f;
        }
    }
    const int last_row = min(seq, first + ATT_ROWS) - 1;
    const int keys = causal ? last_row + 1 : seq;
    for (int j0 = 0; j0 < keys; j0 += ATT_KEYS) {
        __syncthreads();
        for (int idx = threadIdx.x; idx < ATT_KEYS * head_dim; idx += blockDim.x) {
            const int kj = idx / head_dim, d = idx % head_dim, j = j0 + kj;
            const bf16* kv_row = qkv + ((int64_t)b * seq + j) * width;
            ks[kj][d] = j < seq ? to_f32(kv_row[(heads + kvh) * head_dim + d]) : 0.0f;
            vs[kj][d] = j < seq ? to_f32(kv_row[(heads + kv_heads + kvh) * head_dim + d]) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int r = 0; r < ATT_ROWS_PER_WARP; ++r) {
            const int i = first + warp * ATT_ROWS_PER_WARP + r;
            if (i >= seq) continue;  // the same for the whole warp
            const int end = min(causal ? i + 1 : seq, j0 + ATT_KEYS);
            for (int j = j0; j < end; ++j) {
                const int kj = j - j0;
                float s = 0.0f;
#pragma unroll
                for (int t = 0; t < ATT_PER_LANE; ++t) {
                    const int d = lane + 32 * t;
                    if (d < head_dim) s += q[r][t] * ks[kj][d];
                }
                s = warp_sum(s);
                if (bias) s += bias[((int64_t)h * seq + i) * seq + j];
                const float new_max = fmaxf(running_max[r], s);
                const float correction = expf(running_max[r] - new_max), p = expf(s - new_max);
                sum[r] = sum[r] * correction + p;
#pragma unroll
                for (int t = 0; t < ATT_PER_LANE; ++t) {
                    const int d = lane + 32 * t;
                    acc[r][t] = acc[r][t] * correction + (d < head_dim ? p * vs[kj][d] : 0.0f);
                }
                running_max[r] = new_max;
            }
        }
    }
#pragma unroll
    for (int r = 0; r < ATT_ROWS_PER_WARP; ++r) {
        const int i = first + warp * ATT_ROWS_PER_WARP + r;
        if (i >= seq) continue;
        bf16* o = out + ((int64_t)b * seq + i) * heads * head_dim + h * head_dim;
#pragma unroll
        for (int t = 0; t < ATT_PER_LANE; ++t) {
            const int d = lane + 32 * t;
            if (d < head_dim) o[d] = to_bf16(sum[r] > 0.0f ? acc[r][t] / sum[r] : 0.0f);
        }
    }
}
