// Linear layers: Y = act(X W^T + bias) + residual, X [M, K], W [N, K] (PyTorch's layout), Y and residual [M, N],
// all bf16 in memory with f32 accumulation. Two versions: a plain one, one thread per output, obviously right;
// and the tensor-core one (mma.sync m16n8k16), checked against it and against the CPU backend by `selftest`.
#include "common.cuh"

__device__ __forceinline__ void epilogue(float acc, const bf16* bias, const bf16* residual, bf16* y, int64_t m,
                                         int n, int N, int act) {
    if (bias) acc += to_f32(bias[n]);
    acc = activate(acc, act);
    if (residual) acc += to_f32(residual[m * N + n]);
    y[m * N + n] = to_bf16(acc);
}

// Grid (M, ceil(N / blockDim.x)): thread n of row m computes one output (rows on x, whose limit is 2^31 - 1).
extern "C" __global__ void gemm_plain(const bf16* __restrict__ x, const bf16* __restrict__ w,
                                      const bf16* __restrict__ bias, const bf16* __restrict__ residual,
                                      bf16* __restrict__ y, int M, int N, int K, int act) {
    const int n = blockIdx.y * blockDim.x + threadIdx.x;
    const int64_t m = blockIdx.x;
    if (n >= N || m >= M) return;
    const bf16* xr = x + m * K;
    const bf16* wr = w + (int64_t)n * K;
    float acc = 0.0f;
    for (int k = 0; k < K; ++k) acc += to_f32(xr[k]) * to_f32(wr[k]);
    epilogue(acc, bias, residual, y, m, n, N, act);
}

// The tensor-core version. A block of 4 warps computes a 64 x 64 tile of Y, stepping through K 32 at a time: the
// tiles of X and W go to shared memory (zero-filled past the matrix edges, so any M, N, K works), and each warp
// multiplies a 32 x 32 sub-tile as 2 x 4 mma.sync m16n8k16 products per 16-wide slice of K. W's rows are its
// columns of the product, which is the "col" operand layout mma expects, so both tiles are stored row by row.
// Rows of the shared tiles are padded by 8 elements (16 bytes) so that the fragment loads of a warp hit 32
// different banks. When K is a multiple of 8 every row starts on 16 bytes and the tiles are loaded 8 values per
// load.
//
// Split K: with few output tiles (decoding, where M is the batch) the grid alone would leave most SMs idle and
// few bytes of W in flight, so gridDim.z blocks share each tile, each over its own run of whole K tiles. Each writes
// its f32 partial tile to `partial` ([z][tile][64 x 64]) and counts itself in the tile's counter; the block that
// arrives last adds the partials in order of z (the result does not depend on timing or on which block is last),
// resets the counter for the next launch and applies the epilogue. No second launch reduces.
//
// The epilogue works from the block's 64 x 64 f32 tile staged in shared memory, so that its stores are coalesced
// rows and the columns it pairs may come from anywhere in the tile. Which 64 columns of W a tile holds, and what
// its epilogue makes of them, is the mode:
//   GEMM_PLAIN    columns 64 t .. 64 t + 64; Y = act(acc + bias) + residual.
//   GEMM_SILU, GEMM_GELU_TANH   the gated MLP: W is [gate (f); up (f)] and the tile holds gate columns 32 t ..
//                 32 t + 32 and the same up columns; Y [M, f] = act(gate) * up, each rounded to bf16 first as the
//                 product's stored output would be (what silu_mul and gelu_tanh_mul read).
//   GEMM_ROPE     the QKV projection: the tile holds 32 rotary pairs (i, i + head_dim / 2) of one head; Y [M, N]
//                 is the rotated QKV (rope.cu's rotation, each value rounded to bf16 first), and the key and value
//                 heads also go to the cache at the row's slot (kv_store's write), per the rows' records.
// With `normed` set (plain mode), the block that completes a row tile's last column tile (a second counter) also
// writes the RMS norm of its rows of Y (rms_norm's arithmetic, gains `gain_offset + norm_gain`), so that a residual
// add and the norm after it cost no launch. `counters` (zero before the launch, zero after it) holds a counter per
// tile when K is split, then one per row tile when the rows are normed.
#define TILE_M 64
#define TILE_N 64
#define TILE_K 32
#define PAD 8

__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ uint32_t pair_of(const bf16* p) { return *reinterpret_cast<const uint32_t*>(p); }

// Rows of `src` ([rows, K]), columns k0 .. k0 + TILE_K, into a shared tile, zero past the edges: tile rows 0..31
// from src rows lo.., which end at lo_end, rows 32..63 from hi.. (ending at hi_end; hi = lo + 32 and both ends the
// matrix's for a plain tile). 8 values per load when K is a multiple of 8, one otherwise. In the 8-value case a
// quarter warp stores together (8 threads of 16 bytes): two rows of 4 chunks. Rows r and r + 1 of the padded tile
// (80 bytes apart) would share 4 banks, so the two rows a quarter warp stores are 4 apart (320 bytes, 16 banks),
// and their banks are disjoint: slots 0..7 of every 8 go to rows 0, 4, 1, 5, 2, 6, 3, 7.
__device__ __forceinline__ void load_tile(bf16 (*tile)[TILE_K + PAD], const bf16* __restrict__ src, int lo, int hi,
                                          int lo_end, int hi_end, int k0, int K, int tid) {
    if (K % 8 == 0) {
        for (int i = tid; i < 64 * (TILE_K / 8); i += 128) {
            const int slot = i / (TILE_K / 8), c = (i % (TILE_K / 8)) * 8;
            const int r = (slot & ~7) | ((slot & 1) << 2) | ((slot >> 1) & 3);
            const int g = r < 32 ? lo + r : hi + r - 32, gk = k0 + c;
            uint4 v = make_uint4(0, 0, 0, 0);
            if (g < (r < 32 ? lo_end : hi_end) && gk < K)
                v = *reinterpret_cast<const uint4*>(src + (int64_t)g * K + gk);
            *reinterpret_cast<uint4*>(&tile[r][c]) = v;
        }
    } else {
        for (int i = tid; i < 64 * TILE_K; i += 128) {
            const int r = i / TILE_K, c = i % TILE_K;
            const int g = r < 32 ? lo + r : hi + r - 32, gk = k0 + c;
            tile[r][c] = (g < (r < 32 ? lo_end : hi_end) && gk < K) ? src[(int64_t)g * K + gk] : to_bf16(0.0f);
        }
    }
}

#define GEMM_PLAIN 0
#define GEMM_SILU 1
#define GEMM_GELU_TANH 2
#define GEMM_ROPE 3
#define OUT_STRIDE (TILE_N + 8)  // a row stride of 8 banks (mod 32): the float2 stores of a half warp hit 32 banks

// The first W row of each half of column tile `t` (rows 0..31 from lo, 32..63 from hi) and where each half ends.
struct Columns {
    int lo, hi, lo_end, hi_end;
};

__device__ __forceinline__ Columns columns_of(int mode, int t, int N, int pair) {
    if (mode == GEMM_SILU || mode == GEMM_GELU_TANH) return Columns{32 * t, pair + 32 * t, pair, N};
    if (mode == GEMM_ROPE) {
        const int half = pair, per_head = half / 32;
        const int lo = (t / per_head) * 2 * half + (t % per_head) * 32;
        return Columns{lo, lo + half, N, N};
    }
    return Columns{64 * t, 64 * t + 32, N, N};
}

// Counts this block into `*counter` once all its threads' global writes are visible; true in every thread of the
// block that arrived last (which also resets the counter). The last block's later loads of other blocks' data
// bypass L1 (__ldcg), which does not see their writes.
__device__ __forceinline__ bool arrived_last(uint32_t* counter, uint32_t expected) {
    __shared__ int last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        last = atomicAdd(counter, 1u) == expected - 1;
        if (last) atomicExch(counter, 0u);
    }
    __syncthreads();
    const bool is_last = last;
    if (is_last) __threadfence();
    return is_last;
}

// Grid (ceil(M / 64), column tiles, splits of K), 128 threads. Column tiles: ceil(N / 64) plain, ceil(f / 32) gated
// (N = 2 f), N / 64 rope (head_dim / 2 a multiple of 32). `partial` holds splits x tiles x 64 x 64 floats when
// splits > 1. Rope mode: `pair` is head_dim / 2, `records` the rows' cache records (`record_width` u32 each: the
// position, then the slot), `keys` and `values` the layer's cache ([slots, kv_heads * head_dim]).
extern "C" __global__ void __launch_bounds__(128)
    gemm_mma(const bf16* __restrict__ x, const bf16* __restrict__ w, const bf16* __restrict__ bias,
             const bf16* __restrict__ residual, bf16* __restrict__ y, int M, int N, int K, int act,
             float* __restrict__ partial, uint32_t* __restrict__ counters, int mode, int pair,
             const uint32_t* __restrict__ records, int record_width, const float* __restrict__ inv_freq,
             bf16* __restrict__ keys, bf16* __restrict__ values, int heads, int kv_heads,
             const bf16* __restrict__ norm_gain, bf16* __restrict__ normed, float eps, float gain_offset) {
    __shared__ __align__(16) bf16 xs[TILE_M][TILE_K + PAD];
    __shared__ __align__(16) bf16 ws[TILE_N][TILE_K + PAD];
    __shared__ __align__(16) float out[TILE_M][OUT_STRIDE];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int group = lane >> 2, quad = lane & 3;
    const int row0 = blockIdx.x * TILE_M;
    const Columns cols = columns_of(mode, blockIdx.y, N, pair);
    const int warp_m = (warp >> 1) * 32, warp_n = (warp & 1) * 32;
    float acc[2][4][4] = {};
    // This block's run of K: whole tiles, split evenly over gridDim.z (a run may be empty).
    const int k_tiles = (K + TILE_K - 1) / TILE_K;
    const int per_split = (k_tiles + gridDim.z - 1) / gridDim.z;
    const int k_begin = blockIdx.z * per_split * TILE_K;
    const int k_end = min(K, k_begin + per_split * TILE_K);

    for (int k0 = k_begin; k0 < k_end; k0 += TILE_K) {
        load_tile(xs, x, row0, row0 + 32, M, M, k0, K, tid);
        load_tile(ws, w, cols.lo, cols.hi, cols.lo_end, cols.hi_end, k0, K, tid);
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < TILE_K; kk += 16) {
            uint32_t a[2][4], b[4][2];
#pragma unroll
            for (int mi = 0; mi < 2; ++mi) {
                const int r = warp_m + mi * 16 + group;
                a[mi][0] = pair_of(&xs[r][kk + quad * 2]);
                a[mi][1] = pair_of(&xs[r + 8][kk + quad * 2]);
                a[mi][2] = pair_of(&xs[r][kk + quad * 2 + 8]);
                a[mi][3] = pair_of(&xs[r + 8][kk + quad * 2 + 8]);
            }
#pragma unroll
            for (int ni = 0; ni < 4; ++ni) {
                const int n = warp_n + ni * 8 + group;
                b[ni][0] = pair_of(&ws[n][kk + quad * 2]);
                b[ni][1] = pair_of(&ws[n][kk + quad * 2 + 8]);
            }
#pragma unroll
            for (int mi = 0; mi < 2; ++mi)
#pragma unroll
                for (int ni = 0; ni < 4; ++ni) mma_bf16(acc[mi][ni], a[mi], b[ni]);
        }
        __syncthreads();
    }

    // Accumulator layout of m16n8: values 0, 1 at row `group`, columns 2 quad and 2 quad + 1; values 2, 3 eight
    // rows below. Staged as float2 pairs.
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int r = warp_m + mi * 16 + group + h * 8, c = warp_n + ni * 8 + quad * 2;
                *reinterpret_cast<float2*>(&out[r][c]) = make_float2(acc[mi][ni][2 * h], acc[mi][ni][2 * h + 1]);
            }
    __syncthreads();

    if (gridDim.z > 1) {
        const int64_t tile = (int64_t)blockIdx.x * gridDim.y + blockIdx.y;
        float* mine = partial + ((int64_t)blockIdx.z * gridDim.x * gridDim.y + tile) * TILE_M * TILE_N;
        // Rows past M (a decode batch of fewer than 64) are neither written nor read back.
        const int rows = min(TILE_M, M - row0);
        for (int i = tid; i < rows * TILE_N / 4; i += 128) {
            const int r = i / (TILE_N / 4), c = (i % (TILE_N / 4)) * 4;
            *reinterpret_cast<float4*>(mine + r * TILE_N + c) = *reinterpret_cast<const float4*>(&out[r][c]);
        }
        if (!arrived_last(counters + tile, gridDim.z)) return;
        for (int i = tid; i < rows * TILE_N / 4; i += 128) {
            const int r = i / (TILE_N / 4), c = (i % (TILE_N / 4)) * 4;
            float4 sum = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            for (int z = 0; z < (int)gridDim.z; ++z) {
                const float4 p = __ldcg(reinterpret_cast<const float4*>(
                    partial + ((int64_t)z * gridDim.x * gridDim.y + tile) * TILE_M * TILE_N + r * TILE_N + c));
                sum.x += p.x;
                sum.y += p.y;
                sum.z += p.z;
                sum.w += p.w;
            }
            *reinterpret_cast<float4*>(&out[r][c]) = sum;
        }
        __syncthreads();
    }

    if (mode == GEMM_PLAIN) {
        for (int i = tid; i < TILE_M * TILE_N; i += 128) {
            const int r = i / TILE_N, c = i % TILE_N;
            const int m = row0 + r, n = c < 32 ? cols.lo + c : cols.hi + c - 32;
            if (m < M && n < N) epilogue(out[r][c], bias, residual, y, m, n, N, act);
        }
    } else if (mode == GEMM_SILU || mode == GEMM_GELU_TANH) {
        for (int i = tid; i < TILE_M * 32; i += 128) {
            const int r = i / 32, j = i % 32;
            const int m = row0 + r;
            if (m >= M || cols.lo + j >= pair) continue;
            float g = out[r][j], u = out[r][32 + j];
            if (bias) {
                g += to_f32(bias[cols.lo + j]);
                u += to_f32(bias[cols.hi + j]);
            }
            g = to_f32(to_bf16(g));
            u = to_f32(to_bf16(u));
            const float a = mode == GEMM_SILU ? g / (1.0f + expf(-g)) : activate(g, ACT_GELU_TANH);
            y[(int64_t)m * pair + cols.lo + j] = to_bf16(a * u);
        }
    } else {
        const int half = pair, head_dim = 2 * half, per_head = half / 32;
        const int head = blockIdx.y / per_head, kv_width = kv_heads * head_dim;
        for (int i = tid; i < TILE_M * 32; i += 128) {
            const int r = i / 32, j = i % 32;
            const int m = row0 + r;
            if (m >= M) continue;
            float a = out[r][j], b = out[r][32 + j];
            if (bias) {
                a += to_f32(bias[cols.lo + j]);
                b += to_f32(bias[cols.hi + j]);
            }
            a = to_f32(to_bf16(a));
            b = to_f32(to_bf16(b));
            const int i_pair = (blockIdx.y % per_head) * 32 + j;
            const uint32_t* rec = records + (int64_t)m * record_width;
            if (head < heads + kv_heads) {  // a query or key head turns; a value head is copied
                const float angle = (float)rec[0] * inv_freq[i_pair];
                double sin_d, cos_d;
                sincos((double)angle, &sin_d, &cos_d);
                const float cos_a = (float)cos_d, sin_a = (float)sin_d;
                const float ra = a * cos_a - b * sin_a, rb = b * cos_a + a * sin_a;
                a = ra;
                b = rb;
            }
            const bf16 lo = to_bf16(a), hi = to_bf16(b);
            y[(int64_t)m * N + cols.lo + j] = lo;
            y[(int64_t)m * N + cols.hi + j] = hi;
            if (head >= heads) {
                bf16* cache = head < heads + kv_heads ? keys : values;
                const int at = (head - heads) % kv_heads * head_dim + i_pair;
                const int64_t slot = rec[1];
                cache[slot * kv_width + at] = lo;
                cache[slot * kv_width + at + half] = hi;
            }
        }
    }

    // The row tiles' counters follow the tiles' (which only split K uses).
    const int64_t row_counters = gridDim.z > 1 ? (int64_t)gridDim.x * gridDim.y : 0;
    if (!normed || !arrived_last(counters + row_counters + blockIdx.x, gridDim.y)) return;
    // The RMS norm of this row tile's rows of Y, a warp per row, every column tile of them now written.
    for (int r = warp; r < TILE_M && row0 + r < M; r += 4) {
        const bf16* yr = y + (int64_t)(row0 + r) * N;
        float sq = 0.0f;
        for (int c = lane; c < N; c += 32) {
            const float v = to_f32(__ldcg(yr + c));
            sq += v * v;
        }
        const float inv = rsqrtf(warp_sum(sq) / N + eps);
        for (int c = lane; c < N; c += 32) {
            const float v = to_f32(__ldcg(yr + c));
            normed[(int64_t)(row0 + r) * N + c] = to_bf16(v * inv * (gain_offset + to_f32(norm_gain[c])));
        }
    }
}
