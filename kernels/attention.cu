// Multi-head attention over a packed QKV tensor [batch * seq, (heads + 2 kv_heads) * head_dim] (query heads, then
// key heads, then value heads; query head h reads key/value head h / (heads / kv_heads)), bf16 in and out, f32
// arithmetic, softmax(q k^T * scale + bias) v per head, optionally causal. The bias (MPNet's relative positions) is
// null or f32 [heads, seq, seq], the same for every sequence of the batch. Both versions use the online softmax (a
// running maximum and sum, rescaling the accumulator when the maximum grows), so no score matrix is ever stored.
#include "tensor_core.cuh"

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

// Tensor cores, FlashAttention-2 style, for head sizes of 64 and 128: a block of 4 warps takes 64 query rows of
// one (batch, head), 16 rows per warp, and walks the keys in tiles that stream through two shared-memory stages
// with cp.async (64 keys of 64 dimensions, or 32 of 128: 8 KB each of K and V). For each tile a warp computes its
// 16 x KEYS scores S = Q K^T on mma.sync (K's rows are the "col" operand as they lie), applies the scale, the bias
// and the masks, folds them into each row's running maximum and sum (the online softmax, exact per tile: the
// accumulator is rescaled when the maximum grows), and adds P V on mma.sync: the scores' accumulator registers are
// already P's A fragments once rounded to bf16, and V's fragments come from ldmatrix.trans. A row's values live in
// the 4 lanes of a quad, so a row maximum or sum is two shuffles.
//
// Tiles in shared memory: row r (a key) of D bf16 is D / 8 chunks of 16 bytes, chunk c stored at c ^ (r % 8), so
// that the 8 rows an ldmatrix phase reads, and the 8 chunks a quarter warp's copies write, fall on 8 different
// bank groups. Keys past the sequence are zeros (the copies read nothing there) and masked.
// Grid (ceil(seq / 64), heads, batch), 128 threads.
#define ATT_MMA_ROWS 64
#define ATT_MMA_TILE_BYTES 8192

template <int D>
struct MmaTile {
    static constexpr int keys = D == 64 ? 64 : 32;
    static constexpr int chunks = D / 8;  // 16-byte chunks per row
    static_assert(keys * D * 2 == ATT_MMA_TILE_BYTES, "a tile of K or V is 8 KB");
};

__device__ __forceinline__ int att_swizzled(int r, int chunk, int chunks) {
    return (r * chunks + (chunk ^ (r & 7))) * 16;
}

template <int D>
__device__ __forceinline__ void attention_mma_body(unsigned char* stages, const bf16* __restrict__ qkv,
                                                   const float* __restrict__ bias, bf16* __restrict__ out, int seq,
                                                   int heads, int kv_heads, int causal, float scale) {
    using T = MmaTile<D>;
    constexpr int KEYS = T::keys, CHUNKS = T::chunks, SLICES = KEYS / 8, DIM_CHUNKS = D / 16, DIM_SLICES = D / 8;
    // Stage s holds K's tile at stages + 2 s * 8 KB, V's 8 KB after it.
    auto tile_of = [&](int stage, int v) { return shared_address(stages + (2 * stage + v) * ATT_MMA_TILE_BYTES); };
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, group = lane >> 2, quad = lane & 3;
    const int b = blockIdx.z, h = blockIdx.y, kvh = h / (heads / kv_heads);
    const int64_t width = (int64_t)(heads + 2 * kv_heads) * D;
    const int first = blockIdx.x * ATT_MMA_ROWS;
    const int row_lo = first + warp * 16 + group, row_hi = row_lo + 8;  // this lane's two query rows
    const bf16* base = qkv + (int64_t)b * seq * width;

    // Q's A fragments for the warp's 16 rows, straight from global memory (read once per block).
    uint32_t q[DIM_CHUNKS][4];
#pragma unroll
    for (int kc = 0; kc < DIM_CHUNKS; ++kc) {
        const int d = kc * 16 + quad * 2;
        const bf16* lo = base + (int64_t)row_lo * width + h * D + d;
        const bf16* hi = base + (int64_t)row_hi * width + h * D + d;
        q[kc][0] = row_lo < seq ? *reinterpret_cast<const uint32_t*>(lo) : 0u;
        q[kc][1] = row_hi < seq ? *reinterpret_cast<const uint32_t*>(hi) : 0u;
        q[kc][2] = row_lo < seq ? *reinterpret_cast<const uint32_t*>(lo + 8) : 0u;
        q[kc][3] = row_hi < seq ? *reinterpret_cast<const uint32_t*>(hi + 8) : 0u;
    }

    const int last_row = min(seq, first + ATT_MMA_ROWS) - 1;
    const int keys = causal ? last_row + 1 : seq;
    const int tiles = (keys + KEYS - 1) / KEYS;
    auto load_tile = [&](int t) {
        for (int i = tid; i < KEYS * CHUNKS; i += 128) {
            const int r = i / CHUNKS, c = i % CHUNKS, j = t * KEYS + r;
            const bool inside = j < seq;
            const bf16* row = base + (int64_t)(inside ? j : 0) * width;
            const uint32_t at = att_swizzled(r, c, CHUNKS);
            copy_async_16(tile_of(t & 1, 0) + at, row + (heads + kvh) * D + c * 8, inside);
            copy_async_16(tile_of(t & 1, 1) + at, row + (heads + kv_heads + kvh) * D + c * 8, inside);
        }
    };

    float o[DIM_SLICES][4] = {};
    float running_max[2] = {-INFINITY, -INFINITY}, sum[2] = {0.0f, 0.0f};  // rows row_lo, row_hi
    load_tile(0);
    copies_commit();
    for (int t = 0; t < tiles; ++t) {
        if (t + 1 < tiles) load_tile(t + 1);
        copies_commit();
        copies_wait<1>();
        __syncthreads();
        const uint32_t ks = tile_of(t & 1, 0), vs = tile_of(t & 1, 1);

        // S = Q K^T: key slice n's b0, b1 are rows n * 8 + (0..7) of K at dimensions 16 kc + (0..7), (8..15).
        float s[SLICES][4] = {};
#pragma unroll
        for (int kc = 0; kc < DIM_CHUNKS; ++kc)
#pragma unroll
            for (int nj = 0; nj < SLICES / 2; ++nj) {
                uint32_t f[4];
                const int r = nj * 16 + (lane & 7) + (lane >> 4) * 8;
                ldmatrix_x4(f, ks + att_swizzled(r, kc * 2 + ((lane >> 3) & 1), CHUNKS));
                const uint32_t b0[2] = {f[0], f[1]}, b1[2] = {f[2], f[3]};
                mma_bf16(s[2 * nj], q[kc], b0);
                mma_bf16(s[2 * nj + 1], q[kc], b1);
            }

        // Scale, bias, masks; the rows' new maxima over this tile (values 0, 1 of a slice are row_lo's, 2, 3
        // row_hi's, at keys n * 8 + 2 quad and + 1).
        float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int n = 0; n < SLICES; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int i = e < 2 ? row_lo : row_hi, j = t * KEYS + n * 8 + quad * 2 + (e & 1);
                float v = s[n][e] * scale;
                if (bias && i < seq && j < seq) v += bias[((int64_t)h * seq + i) * seq + j];
                if (j >= seq || (causal && j > i)) v = -INFINITY;
                s[n][e] = v;
                tile_max[e >> 1] = fmaxf(tile_max[e >> 1], v);
            }
        float correction[2], shift[2];
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
            tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
            const float new_max = fmaxf(running_max[r], tile_max[r]);
            // A row that has seen no visible key yet keeps a maximum of -inf: shift by 0, not by -inf.
            shift[r] = new_max == -INFINITY ? 0.0f : new_max;
            correction[r] = expf(running_max[r] - shift[r]);
            running_max[r] = new_max;
            sum[r] *= correction[r];
        }
#pragma unroll
        for (int n = 0; n < DIM_SLICES; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) o[n][e] *= correction[e >> 1];

        // P V: P's A fragment for keys 16 kc2 .. 16 kc2 + 15 is slices 2 kc2 and 2 kc2 + 1 of S, as bf16 pairs.
#pragma unroll
        for (int kc2 = 0; kc2 < SLICES / 2; ++kc2) {
            uint32_t p[4];
#pragma unroll
            for (int half = 0; half < 2; ++half) {
                float* sl = s[2 * kc2 + half];
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    sl[e] = expf(sl[e] - shift[e >> 1]);
                    sum[e >> 1] += sl[e];
                }
                p[2 * half] = pack_bf16(sl[0], sl[1]);
                p[2 * half + 1] = pack_bf16(sl[2], sl[3]);
            }
            // V's B fragments for dimension slices 2 nj, 2 nj + 1: keys 16 kc2 + (0..7), (8..15), transposed.
#pragma unroll
            for (int nj = 0; nj < DIM_SLICES / 2; ++nj) {
                uint32_t f[4];
                const int r = kc2 * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
                ldmatrix_x4_trans(f, vs + att_swizzled(r, nj * 2 + (lane >> 4), CHUNKS));
                const uint32_t b0[2] = {f[0], f[1]}, b1[2] = {f[2], f[3]};
                mma_bf16(o[2 * nj], p, b0);
                mma_bf16(o[2 * nj + 1], p, b1);
            }
        }
        // Every warp is done with this stage before the next iteration's copies overwrite it.
        __syncthreads();
    }
    copies_wait<0>();

#pragma unroll
    for (int r = 0; r < 2; ++r) {
        sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], 1);
        sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], 2);
    }
    // The warp's 16 output rows go through shared memory (the stages are free: every warp has passed the loop's
    // last barrier), swizzled as the tiles are, so that the stores to global memory are whole 16-byte chunks.
    unsigned char* mine = stages + warp * 16 * D * 2;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const float inv = sum[r] > 0.0f ? 1.0f / sum[r] : 0.0f;
#pragma unroll
        for (int n = 0; n < DIM_SLICES; ++n)
            *reinterpret_cast<uint32_t*>(mine + att_swizzled(group + 8 * r, n, CHUNKS) + quad * 4) =
                pack_bf16(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
    }
    __syncwarp();
    for (int idx = lane; idx < 16 * CHUNKS; idx += 32) {
        const int r = idx / CHUNKS, c = idx % CHUNKS, i = first + warp * 16 + r;
        if (i < seq)
            *reinterpret_cast<uint4*>(out + ((int64_t)b * seq + i) * heads * D + h * D + c * 8) =
                *reinterpret_cast<const uint4*>(mine + att_swizzled(r, c, CHUNKS));
    }
}

extern "C" __global__ void __launch_bounds__(128)
    attention_mma(const bf16* __restrict__ qkv, const float* __restrict__ bias, bf16* __restrict__ out, int batch,
                  int seq, int heads, int kv_heads, int head_dim, int causal, float scale) {
    __shared__ __align__(128) unsigned char stages[2 * 2 * ATT_MMA_TILE_BYTES];
    if (head_dim == 64) attention_mma_body<64>(stages, qkv, bias, out, seq, heads, kv_heads, causal, scale);
    if (head_dim == 128) attention_mma_body<128>(stages, qkv, bias, out, seq, heads, kv_heads, causal, scale);
}
