// Linear layers: Y = act(X W^T + bias) + residual, X [M, K], W [N, K] (PyTorch's layout), Y and residual [M, N],
// all bf16 in memory with f32 accumulation. Two versions: a plain one, one thread per output, obviously right;
// and the tensor-core one (mma.sync m16n8k16), checked against it and against the CPU backend by `selftest`.
#include "tensor_core.cuh"

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

// The tensor-core version, in four tile shapes (one template, `GemmTiles`, TM rows of Y by TN columns):
//   gemm_mma          64 x 64, 4 warps: the products of prefill and scoring with too few large tiles to fill
//                     the card;
//   gemm_mma_64x256   64 x 256, 8 warps: decoding (at most 64 rows, the batch): each block reads the batch's rows
//                     of X for 256 columns, so X is re-read a quarter as often as with 64; one block per SM (201
//                     registers), four stages of 20 KiB;
//   gemm_mma_64x128   64 x 128, 8 warps: between the two, two blocks per SM (chosen only when forced, to be
//                     compared with 64 x 256 on a GPU: `bench gemm --tiles 64x128,64x256`);
//   gemm_mma_128x128  128 x 128, 8 warps: products with at least one such tile per SM (prefill, scoring at real
//                     sizes): per value of Y, half the bytes of X and W read from L2 and 0.375 ldmatrix per mma
//                     instead of 0.5.
// A block steps through K 32 at a time: the tiles of X and W stream into shared memory through a ring of STAGES
// buffers with cp.async, STAGES - 1 tiles ahead of the one being multiplied, so that while the warps multiply one
// tile the next ones are in flight (zero filled past the matrix edges, so any M, N, K works). Each warp multiplies
// a sub-tile (32 x 32; 32 x 64 in the 64 x 256 shape, 64 x 32 in the 128 x 128 one) as MI x NI mma.sync m16n8k16
// products per 16-wide slice of K, its fragments gathered by ldmatrix. W's rows are its columns of the product, which is the "col" operand
// layout mma expects, so both tiles are stored row by row.
//
// A tile row (32 values of K) is 64 bytes, four 16-byte chunks. Stored plainly, the 8 rows one ldmatrix phase reads
// at the same chunk would fall on 2 groups of 4 banks (a 4-way conflict); so chunk q of row r is stored at
// q ^ ((r / 2) % 4). Eight consecutive rows then cover all 8 bank groups, for ldmatrix's reads and for the copies'
// writes (a quarter warp writes two whole rows) alike. When K is not a multiple of 8 the rows of X and W are not 16-byte aligned:
// those tiles are stored value by value, synchronously, into the same layout.
//
// Split K: with few output tiles (decoding, where M is the batch) the grid alone would leave most SMs idle and
// few bytes of W in flight, so gridDim.z blocks share each tile, each over its own run of whole K tiles. Each writes
// its f32 partial tile to `partial` ([z][tile][TM x TN]) and counts itself in the tile's counter; the block that
// arrives last adds the partials in order of z (the result does not depend on timing or on which block is last),
// resets the counter for the next launch and applies the epilogue. No second launch reduces.
//
// Blocks run in order of their linear index, and the block with index i takes tile tile_of_block(i): consecutive
// blocks sweep every column tile of a band of GROUP_M row tiles, so the band's rows of X are read from DRAM once
// and then from L2 by each column tile, however large X is.
//
// The epilogue works from the block's f32 tile staged in shared memory (over the stage buffers), so that its
// stores are coalesced rows and the columns it pairs may come from anywhere in the tile. Which TN columns of W a
// tile holds (two halves of H = TN / 2), and what its epilogue makes of them, is the mode:
//   GEMM_PLAIN    columns TN t .. TN t + TN; Y = act(acc + bias) + residual.
//   GEMM_SILU, GEMM_GELU_TANH   the gated MLP: W is [gate (f); up (f)] and the tile holds gate columns H t ..
//                 H t + H and the same up columns; Y [M, f] = act(gate) * up, each rounded to bf16 first as the
//                 product's stored output would be (what silu_mul and gelu_tanh_mul read).
//   GEMM_ROPE     the QKV projection: the tile holds H rotary pairs (i, i + head_dim / 2), in order of head then
//                 i (part of a head's, or several heads'); Y [M, N] is the rotated QKV (rope.cu's rotation, each
//                 value rounded to bf16 first), and the key and value heads also go to the cache at the row's slot
//                 (kv_store's write), per the rows' records.
// With `normed` set (plain mode), the block that completes a row tile's last column tile (a second counter) also
// writes the RMS norm of its rows of Y (rms_norm's arithmetic, gains `gain_offset + norm_gain`), so that a residual
// add and the norm after it cost no launch. `counters` (zero before the launch, zero after it) holds a counter per
// tile when K is split, then one per row tile when the rows are normed.
#define TILE_K 32
#define GROUP_M 8

// A tile shape: TM rows of X and TN rows of W (columns of Y) per tile, WARPS_M x WARPS_N warps, each multiplying
// MI 16-row by NI 8-column mma tiles; the mode's two halves of W's rows are H = TN / 2 each.
template <int TM_, int TN_, int WARPS_M_, int WARPS_N_, int STAGES_>
struct GemmTiles {
    static constexpr int TM = TM_, TN = TN_, H = TN_ / 2;
    static constexpr int WARPS_M = WARPS_M_, WARPS_N = WARPS_N_, WARPS = WARPS_M_ * WARPS_N_;
    static constexpr int THREADS = 32 * WARPS;
    static constexpr int MI = TM / WARPS_M / 16, NI = TN / WARPS_N / 8;
    static constexpr int STAGES = STAGES_;
    static constexpr int X_BYTES = TM * TILE_K * 2, W_BYTES = TN * TILE_K * 2;
    static constexpr int STAGE_BYTES = X_BYTES + W_BYTES;  // X's tile, then W's
    static constexpr int OUT_STRIDE = TN + 8;              // a row stride of 8 banks (mod 32): see the staged output
    static constexpr int STAGED_BYTES = STAGES * STAGE_BYTES, OUT_BYTES = TM * OUT_STRIDE * 4;
    static constexpr int SHARED = STAGED_BYTES > OUT_BYTES ? STAGED_BYTES : OUT_BYTES;
    static_assert(MI >= 1 && NI % 2 == 0, "whole ldmatrix.x4 fragments");
};
using Tiles64 = GemmTiles<64, 64, 2, 2, 4>;
using Tiles64x128 = GemmTiles<64, 128, 2, 4, 4>;
using Tiles64x256 = GemmTiles<64, 256, 2, 4, 4>;
using Tiles128 = GemmTiles<128, 128, 2, 4, 4>;

// The byte offset of value (r, c) in a tile of 32 columns: chunk c / 8 of row r swizzled by the row's pair.
__device__ __forceinline__ int swizzled(int r, int c) {
    return r * (TILE_K * 2) + ((((c >> 3) ^ (r >> 1)) & 3) << 4) + (c & 7) * 2;
}

// Which rows of an operand a tile holds, in two halves of ROWS / 2 (`Rows`): row i of the lower half is src row
// lo + i, of the upper half hi + i, inside while below lo_end and hi_end (hi = lo + ROWS / 2 and both ends the
// matrix's for a plain tile). In the rope mode (`half` set) lo and hi count rotary pairs instead, pair P being
// rows (P / half) 2 half + P % half and that plus half of W (the two values of its head's pair P % half): a tile
// holds the first and second values of pairs lo.., as many heads' runs as it takes.
struct Rows {
    int lo, hi, lo_end, hi_end, half;
};

// The src row of row i of a tile half, -1 past the half's end.
__device__ __forceinline__ int64_t source_row(const Rows& rows, int i, bool upper) {
    const int j = (upper ? rows.hi : rows.lo) + i;
    if (j >= (upper ? rows.hi_end : rows.lo_end)) return -1;
    if (rows.half == 0) return j;
    return (int64_t)(j / rows.half) * 2 * rows.half + j % rows.half + (upper ? rows.half : 0);
}

// A tile of an operand holds ROWS rows of `src` ([rows, K]) and 32 of its columns from k0, zero past the edges.
//
// With K a multiple of 8 the tiles are copied in flight, thread t copying chunk t % 4 of tile row t / 4 and, where
// the tile has more rows than a quarter of the threads, of row t / 4 + THREADS / 4 (a quarter warp writes two whole
// rows: all 8 bank groups). What does not change from tile to tile (the rows, whether they exist, where they go)
// is worked out once, here.
template <int ROWS, int THREADS>
struct TileStream {
    static constexpr int COPIES = ROWS * 4 / THREADS;  // 16-byte chunks a thread copies per tile
    static_assert(COPIES * THREADS == ROWS * 4 && COPIES >= 1, "whole chunks for every thread");
    const bf16* row[COPIES];  // the source of each chunk at k0 = 0 (the matrix's start when the row is outside it)
    bool inside[COPIES];
    uint32_t dst;  // where the first chunk goes in the tile; the second goes THREADS / 4 rows further (the swizzle
    int c;         // repeats every 8 rows), a constant offset
};

template <int ROWS, int THREADS>
__device__ __forceinline__ TileStream<ROWS, THREADS> tile_stream(const bf16* __restrict__ src, const Rows& rows,
                                                                 int K, int tid) {
    TileStream<ROWS, THREADS> s;
    s.c = (tid & 3) * 8;
#pragma unroll
    for (int i = 0; i < s.COPIES; ++i) {
        // With two chunks a thread's first row is in the tile's lower half and its second in the upper one.
        const int r = (tid >> 2) + i * (THREADS / 4);
        const bool upper = s.COPIES == 2 ? i == 1 : r >= ROWS / 2;
        const int64_t g = source_row(rows, upper ? r - ROWS / 2 : r, upper);
        s.inside[i] = g >= 0;
        s.row[i] = s.inside[i] ? src + g * K + s.c : src;
    }
    s.dst = (uint32_t)swizzled(tid >> 2, s.c);
    return s;
}

template <int ROWS, int THREADS>
__device__ __forceinline__ void stream_tile(const TileStream<ROWS, THREADS>& s, uint32_t tile, int k0, int K) {
    const bool k_inside = k0 + s.c < K;
#pragma unroll
    for (int i = 0; i < s.COPIES; ++i) {
        const bool inside = s.inside[i] && k_inside;
        copy_async_16(tile + s.dst + i * (THREADS / 4) * TILE_K * 2, inside ? s.row[i] + k0 : s.row[i], inside);
    }
}

// Otherwise the rows are not 16-byte aligned, and the tile is stored value by value, at once.
template <int ROWS, int THREADS>
__device__ __forceinline__ void store_tile(unsigned char* tile, const bf16* __restrict__ src, const Rows& rows,
                                           int k0, int K, int tid) {
    for (int i = tid; i < ROWS * TILE_K; i += THREADS) {
        const int r = i / TILE_K, c = i % TILE_K;
        const bool upper = r >= ROWS / 2;
        const int64_t g = source_row(rows, upper ? r - ROWS / 2 : r, upper);
        const int gk = k0 + c;
        const bool inside = g >= 0 && gk < K;
        *reinterpret_cast<bf16*>(tile + swizzled(r, c)) = inside ? src[g * K + gk] : to_bf16(0.0f);
    }
}

#define GEMM_PLAIN 0
#define GEMM_SILU 1
#define GEMM_GELU_TANH 2
#define GEMM_ROPE 3

// The rows of W in column tile `t` (H of each half): TN t.. plain; gate rows H t.. and the same up rows (from
// pair = f) gated; rotary pairs H t.. of the N / 2 in the rope mode (pair = head_dim / 2).
template <class S>
__device__ __forceinline__ Rows columns_of(int mode, int t, int N, int pair) {
    constexpr int H = S::H;
    if (mode == GEMM_SILU || mode == GEMM_GELU_TANH) return Rows{H * t, pair + H * t, pair, N, 0};
    if (mode == GEMM_ROPE) return Rows{H * t, H * t, N / 2, N / 2, pair};
    return Rows{S::TN * t, S::TN * t + H, N, N, 0};
}

// The output tile of this block (row tile m, column tile n; grid x and y count them): linear block indices sweep
// the column tiles of a band of GROUP_M row tiles, row tile fastest, before the next band.
struct Tile {
    int m, n;
};

__device__ __forceinline__ Tile tile_of_block() {
    const int64_t tiles_m = gridDim.x, tiles_n = gridDim.y;
    const int64_t id = (int64_t)blockIdx.y * tiles_m + blockIdx.x;
    const int64_t band = id / (GROUP_M * tiles_n), first = band * GROUP_M;
    const int64_t rows = min((int64_t)GROUP_M, tiles_m - first), in_band = id - band * GROUP_M * tiles_n;
    return Tile{(int)(first + in_band % rows), (int)(in_band / rows)};
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

// The parameters of the four kernels: grid (ceil(M / TM), column tiles, splits of K), THREADS threads. Column
// tiles: ceil(N / TN) plain, ceil(f / H) gated (N = 2 f), ceil(N / 2 / H) rope. `partial`
// holds splits x tiles x TM x TN floats when splits > 1. Rope mode: `pair` is head_dim / 2, `records` the rows'
// cache records (`record_width` u32 each: the position, then the slot), `keys` and `values` the layer's cache
// ([slots, kv_heads * head_dim]).
#define GEMM_PARAMETERS                                                                                              \
    const bf16 *__restrict__ x, const bf16 *__restrict__ w, const bf16 *__restrict__ bias,                          \
        const bf16 *__restrict__ residual, bf16 *__restrict__ y, int M, int N, int K, int act,                      \
        float *__restrict__ partial, uint32_t *__restrict__ counters, int mode, int pair,                           \
        const uint32_t *__restrict__ records, int record_width, const float *__restrict__ inv_freq,                 \
        bf16 *__restrict__ keys, bf16 *__restrict__ values, int heads, int kv_heads,                                \
        const bf16 *__restrict__ norm_gain, bf16 *__restrict__ normed, float eps, float gain_offset
#define GEMM_ARGUMENTS                                                                                               \
    x, w, bias, residual, y, M, N, K, act, partial, counters, mode, pair, records, record_width, inv_freq, keys,     \
        values, heads, kv_heads, norm_gain, normed, eps, gain_offset

// The body of the four kernels, in tile shape S, over S::SHARED bytes of shared memory at `smem`.
template <class S>
__device__ __forceinline__ void gemm_tiles(unsigned char* smem, GEMM_PARAMETERS) {
    constexpr int TM = S::TM, TN = S::TN, H = S::H, STAGES = S::STAGES, THREADS = S::THREADS;
    constexpr int X_BYTES = S::X_BYTES, STAGE_BYTES = S::STAGE_BYTES, OUT_STRIDE = S::OUT_STRIDE;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int group = lane >> 2, quad = lane & 3;
    const Tile tile = tile_of_block();
    const int row0 = tile.m * TM;
    const Rows cols = columns_of<S>(mode, tile.n, N, pair);
    const int warp_m = (warp / S::WARPS_N) * (TM / S::WARPS_M), warp_n = (warp % S::WARPS_N) * (TN / S::WARPS_N);
    float acc[S::MI][S::NI][4] = {};
    // This block's run of K: whole tiles, split evenly over gridDim.z (a run may be empty).
    const int k_tiles = (K + TILE_K - 1) / TILE_K;
    const int per_split = (k_tiles + gridDim.z - 1) / gridDim.z;
    const int t_begin = blockIdx.z * per_split;
    const int t_count = max(0, min(k_tiles, t_begin + per_split) - t_begin);
    const bool aligned_rows = K % 8 == 0;
    const Rows x_rows{row0, row0 + TM / 2, M, M, 0};
    const auto x_stream = tile_stream<TM, THREADS>(x, x_rows, K, tid);
    const auto w_stream = tile_stream<TN, THREADS>(w, cols, K, tid);
    auto load_stage = [&](int t) {
        unsigned char* stage = smem + (t % STAGES) * STAGE_BYTES;
        const int k0 = (t_begin + t) * TILE_K;
        if (aligned_rows) {
            stream_tile(x_stream, shared_address(stage), k0, K);
            stream_tile(w_stream, shared_address(stage + X_BYTES), k0, K);
        } else {
            store_tile<TM, THREADS>(stage, x, x_rows, k0, K, tid);
            store_tile<TN, THREADS>(stage + X_BYTES, w, cols, k0, K, tid);
        }
    };

    // Where this lane's rows for ldmatrix start in a stage, in the first 16-wide slice of K. A: matrices (rows
    // 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15) of the warp's first 16-row slice,
    // mma's a0..a3. B: (n 0-7, k 0-7), (n 0-7, k 8-15), then the same for n 8-15: b0, b1 of two 8-column slices.
    // The swizzle repeats every 8 rows, so the next 16 rows' offsets are these plus 16 rows of bytes (an
    // immediate in the ldmatrix, not a register each).
    const uint32_t a_offset = swizzled(warp_m + (lane & 15), (lane >> 4) * 8);
    const uint32_t b_offset = swizzled(warp_n + (lane & 7) + (lane >> 4) * 8, ((lane >> 3) & 1) * 8);
    constexpr uint32_t ROWS_16 = 16 * TILE_K * 2;

    // Every thread commits one group per tile (empty past the run), so that waiting for all but the newest
    // STAGES - 2 groups means: this thread's copies of tile t have landed.
    for (int t = 0; t < STAGES - 1; ++t) {
        if (t < t_count) load_stage(t);
        copies_commit();
    }
    for (int t = 0; t < t_count; ++t) {
        copies_wait<STAGES - 2>();
        // Tile t is now in shared memory for every warp, and every warp is done with tile t - 1, whose buffer
        // the next copies overwrite.
        __syncthreads();
        if (t + STAGES - 1 < t_count) load_stage(t + STAGES - 1);
        copies_commit();
        const uint32_t xs = shared_address(smem + (t % STAGES) * STAGE_BYTES), ws = xs + X_BYTES;
#pragma unroll
        for (int kk = 0; kk < TILE_K; kk += 16) {
            // The second 16-wide slice of K is chunks 2 and 3: the first slice's offsets with chunk bit 1 set.
            const uint32_t slice = kk == 0 ? 0 : 32;
            uint32_t a[S::MI][4], b[S::NI][2];
#pragma unroll
            for (int mi = 0; mi < S::MI; ++mi) ldmatrix_x4(a[mi], xs + (a_offset ^ slice) + mi * ROWS_16);
#pragma unroll
            for (int nj = 0; nj < S::NI / 2; ++nj) {
                uint32_t q[4];
                ldmatrix_x4(q, ws + (b_offset ^ slice) + nj * ROWS_16);
                b[2 * nj][0] = q[0];
                b[2 * nj][1] = q[1];
                b[2 * nj + 1][0] = q[2];
                b[2 * nj + 1][1] = q[3];
            }
#pragma unroll
            for (int mi = 0; mi < S::MI; ++mi)
#pragma unroll
                for (int ni = 0; ni < S::NI; ++ni) mma_bf16(acc[mi][ni], a[mi], b[ni]);
        }
    }
    // The groups still open are empty; wait for them all, and for every warp's last reads of the stages, which
    // the staged output overwrites.
    copies_wait<0>();
    __syncthreads();

    // Accumulator layout of m16n8: values 0, 1 at row `group`, columns 2 quad and 2 quad + 1; values 2, 3 eight
    // rows below. Staged as float2 pairs: with a row stride of 8 banks, the stores of a half warp hit 32 banks.
    float(*out)[OUT_STRIDE] = reinterpret_cast<float(*)[OUT_STRIDE]>(smem);
#pragma unroll
    for (int mi = 0; mi < S::MI; ++mi)
#pragma unroll
        for (int ni = 0; ni < S::NI; ++ni)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int r = warp_m + mi * 16 + group + h * 8, c = warp_n + ni * 8 + quad * 2;
                *reinterpret_cast<float2*>(&out[r][c]) = make_float2(acc[mi][ni][2 * h], acc[mi][ni][2 * h + 1]);
            }
    __syncthreads();

    if (gridDim.z > 1) {
        const int64_t index = (int64_t)tile.m * gridDim.y + tile.n;
        float* mine = partial + ((int64_t)blockIdx.z * gridDim.x * gridDim.y + index) * TM * TN;
        // Rows past M (a decode batch of fewer than TM) are neither written nor read back.
        const int rows = min(TM, M - row0);
        for (int i = tid; i < rows * TN / 4; i += THREADS) {
            const int r = i / (TN / 4), c = (i % (TN / 4)) * 4;
            *reinterpret_cast<float4*>(mine + r * TN + c) = *reinterpret_cast<const float4*>(&out[r][c]);
        }
        if (!arrived_last(counters + index, gridDim.z)) return;
        for (int i = tid; i < rows * TN / 4; i += THREADS) {
            const int r = i / (TN / 4), c = (i % (TN / 4)) * 4;
            float4 sum = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            for (int z = 0; z < (int)gridDim.z; ++z) {
                const float4 p = __ldcg(reinterpret_cast<const float4*>(
                    partial + ((int64_t)z * gridDim.x * gridDim.y + index) * TM * TN + r * TN + c));
                sum.x += p.x;
                sum.y += p.y;
                sum.z += p.z;
                sum.w += p.w;
            }
            *reinterpret_cast<float4*>(&out[r][c]) = sum;
        }
        __syncthreads();
    }

    if (mode == GEMM_PLAIN && N % 8 == 0) {
        // 8 columns per thread (the tile's columns are contiguous in plain mode): the bias and the residual
        // loaded and Y stored 16 bytes at a time. A quarter warp reads 64 columns of one row; of a thread's two
        // float4 reads of the staged tile, threads 4..7 of each 8 take the second first, so that the 8 reads fall
        // on 8 different bank groups.
        for (int i = tid; i < TM * TN / 8; i += THREADS) {
            const int r = i / (TN / 8), c = (i % (TN / 8)) * 8;
            const int64_t m = row0 + r;
            const int n = cols.lo + c;
            if (m >= M || n >= N) continue;
            const int swap = (c >> 5) & 1;
            const float4 a = *reinterpret_cast<const float4*>(&out[r][c + 4 * swap]);
            const float4 b = *reinterpret_cast<const float4*>(&out[r][c + 4 - 4 * swap]);
            const float4 lo = swap ? b : a, hi = swap ? a : b;
            float v[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
            if (bias) {
                const uint4 raw = *reinterpret_cast<const uint4*>(bias + n);
                const bf16* e = reinterpret_cast<const bf16*>(&raw);
#pragma unroll
                for (int k = 0; k < 8; ++k) v[k] += to_f32(e[k]);
            }
            if (act != ACT_NONE)
#pragma unroll
                for (int k = 0; k < 8; ++k) v[k] = activate(v[k], act);
            if (residual) {
                const uint4 raw = *reinterpret_cast<const uint4*>(residual + m * N + n);
                const bf16* e = reinterpret_cast<const bf16*>(&raw);
#pragma unroll
                for (int k = 0; k < 8; ++k) v[k] += to_f32(e[k]);
            }
            const uint4 packed = make_uint4(pack_bf16(v[0], v[1]), pack_bf16(v[2], v[3]), pack_bf16(v[4], v[5]),
                                            pack_bf16(v[6], v[7]));
            *reinterpret_cast<uint4*>(y + m * N + n) = packed;
        }
    } else if (mode == GEMM_PLAIN) {
        for (int i = tid; i < TM * TN; i += THREADS) {
            const int r = i / TN, c = i % TN;
            const int m = row0 + r, n = c < H ? cols.lo + c : cols.hi + c - H;
            if (m < M && n < N) epilogue(out[r][c], bias, residual, y, m, n, N, act);
        }
    } else if (mode == GEMM_SILU || mode == GEMM_GELU_TANH) {
        for (int i = tid; i < TM * H; i += THREADS) {
            const int r = i / H, j = i % H;
            const int m = row0 + r;
            if (m >= M || cols.lo + j >= pair) continue;
            float g = out[r][j], u = out[r][H + j];
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
        const int half = pair, head_dim = 2 * half, kv_width = kv_heads * head_dim;
        for (int i = tid; i < TM * H; i += THREADS) {
            const int r = i / H, j = i % H;
            const int m = row0 + r, p = cols.lo + j;
            if (m >= M || p >= cols.lo_end) continue;
            // Pair p is values i_pair and i_pair + half of its head.
            const int head = p / half, i_pair = p % half;
            const int lo_col = head * head_dim + i_pair, hi_col = lo_col + half;
            float a = out[r][j], b = out[r][H + j];
            if (bias) {
                a += to_f32(bias[lo_col]);
                b += to_f32(bias[hi_col]);
            }
            a = to_f32(to_bf16(a));
            b = to_f32(to_bf16(b));
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
            y[(int64_t)m * N + lo_col] = lo;
            y[(int64_t)m * N + hi_col] = hi;
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
    if (!normed || !arrived_last(counters + row_counters + tile.m, gridDim.y)) return;
    // The RMS norm of this row tile's rows of Y, a warp per row, every column tile of them now written.
    for (int r = warp; r < TM && row0 + r < M; r += S::WARPS) {
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

extern "C" __global__ void __launch_bounds__(Tiles64::THREADS) gemm_mma(GEMM_PARAMETERS) {
    __shared__ __align__(128) unsigned char smem[Tiles64::SHARED];
    gemm_tiles<Tiles64>(smem, GEMM_ARGUMENTS);
}

// Two blocks per SM: 128 registers a thread at most. Its 48 KiB of shared memory are dynamic, as the static limit
// leaves no room beside them for arrived_last's flag (the launch opts in).
extern "C" __global__ void __launch_bounds__(Tiles64x128::THREADS, 2) gemm_mma_64x128(GEMM_PARAMETERS) {
    extern __shared__ __align__(128) unsigned char gemm_dynamic_shared[];
    gemm_tiles<Tiles64x128>(gemm_dynamic_shared, GEMM_ARGUMENTS);
}

// One block per SM: its 64 accumulators and 16 B fragments a thread fit 128 registers only by spilling. 80 KiB of
// dynamic shared memory (the launch opts in), 4 stages of which keep up to 60 KiB of copies in flight.
extern "C" __global__ void __launch_bounds__(Tiles64x256::THREADS, 1) gemm_mma_64x256(GEMM_PARAMETERS) {
    extern __shared__ __align__(128) unsigned char gemm_dynamic_shared[];
    gemm_tiles<Tiles64x256>(gemm_dynamic_shared, GEMM_ARGUMENTS);
}

// Two blocks per SM: 128 registers a thread at most; its 68 KiB of shared memory are dynamic (the launch opts in).
extern "C" __global__ void __launch_bounds__(Tiles128::THREADS, 2) gemm_mma_128x128(GEMM_PARAMETERS) {
    extern __shared__ __align__(128) unsigned char gemm_dynamic_shared[];
    gemm_tiles<Tiles128>(gemm_dynamic_shared, GEMM_ARGUMENTS);
}
