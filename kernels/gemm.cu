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
// few bytes of W in flight, so gridDim.z blocks share each tile, each over its own run of whole K tiles, and write
// f32 partial sums to `partial` ([z][M][N]); gemm_splitk_reduce adds them in order of z (the result does not
// depend on timing) and applies the epilogue. With gridDim.z = 1 the block applies the epilogue itself.
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

__device__ __forceinline__ uint32_t pair(const bf16* p) { return *reinterpret_cast<const uint32_t*>(p); }

// Rows first_row .. first_row + 64 of `src` ([rows, K]), columns k0 .. k0 + TILE_K, into a shared tile, zero past
// the edges: 8 values per load when K is a multiple of 8, one otherwise. In the 8-value case a quarter warp stores
// together (8 threads of 16 bytes): two rows of 4 chunks. Rows r and r + 1 of the padded tile (80 bytes apart)
// would share 4 banks, so the two rows a quarter warp stores are 4 apart (320 bytes, 16 banks), and their banks are
// disjoint: slots 0..7 of every 8 go to rows 0, 4, 1, 5, 2, 6, 3, 7.
__device__ __forceinline__ void load_tile(bf16 (*tile)[TILE_K + PAD], const bf16* __restrict__ src, int first_row,
                                          int rows, int k0, int K, int tid) {
    if (K % 8 == 0) {
        for (int i = tid; i < 64 * (TILE_K / 8); i += 128) {
            const int slot = i / (TILE_K / 8), c = (i % (TILE_K / 8)) * 8;
            const int r = (slot & ~7) | ((slot & 1) << 2) | ((slot >> 1) & 3);
            const int g = first_row + r, gk = k0 + c;
            uint4 v = make_uint4(0, 0, 0, 0);
            if (g < rows && gk < K) v = *reinterpret_cast<const uint4*>(src + (int64_t)g * K + gk);
            *reinterpret_cast<uint4*>(&tile[r][c]) = v;
        }
    } else {
        for (int i = tid; i < 64 * TILE_K; i += 128) {
            const int r = i / TILE_K, c = i % TILE_K;
            const int g = first_row + r, gk = k0 + c;
            tile[r][c] = (g < rows && gk < K) ? src[(int64_t)g * K + gk] : to_bf16(0.0f);
        }
    }
}

// Grid (ceil(M / 64), ceil(N / 64), splits of K), 128 threads; `partial` holds splits x M x N floats when
// splits > 1 (unused otherwise).
extern "C" __global__ void __launch_bounds__(128) gemm_mma(const bf16* __restrict__ x, const bf16* __restrict__ w,
                                                           const bf16* __restrict__ bias,
                                                           const bf16* __restrict__ residual, bf16* __restrict__ y,
                                                           int M, int N, int K, int act,
                                                           float* __restrict__ partial) {
    __shared__ __align__(16) bf16 xs[TILE_M][TILE_K + PAD];
    __shared__ __align__(16) bf16 ws[TILE_N][TILE_K + PAD];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int group = lane >> 2, quad = lane & 3;
    const int row0 = blockIdx.x * TILE_M, col0 = blockIdx.y * TILE_N;
    const int warp_m = (warp >> 1) * 32, warp_n = (warp & 1) * 32;
    float acc[2][4][4] = {};
    // This block's run of K: whole tiles, split evenly over gridDim.z (a run may be empty).
    const int k_tiles = (K + TILE_K - 1) / TILE_K;
    const int per_split = (k_tiles + gridDim.z - 1) / gridDim.z;
    const int k_begin = blockIdx.z * per_split * TILE_K;
    const int k_end = min(K, k_begin + per_split * TILE_K);

    for (int k0 = k_begin; k0 < k_end; k0 += TILE_K) {
        load_tile(xs, x, row0, M, k0, K, tid);
        load_tile(ws, w, col0, N, k0, K, tid);
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < TILE_K; kk += 16) {
            uint32_t a[2][4], b[4][2];
#pragma unroll
            for (int mi = 0; mi < 2; ++mi) {
                const int r = warp_m + mi * 16 + group;
                a[mi][0] = pair(&xs[r][kk + quad * 2]);
                a[mi][1] = pair(&xs[r + 8][kk + quad * 2]);
                a[mi][2] = pair(&xs[r][kk + quad * 2 + 8]);
                a[mi][3] = pair(&xs[r + 8][kk + quad * 2 + 8]);
            }
#pragma unroll
            for (int ni = 0; ni < 4; ++ni) {
                const int n = warp_n + ni * 8 + group;
                b[ni][0] = pair(&ws[n][kk + quad * 2]);
                b[ni][1] = pair(&ws[n][kk + quad * 2 + 8]);
            }
#pragma unroll
            for (int mi = 0; mi < 2; ++mi)
#pragma unroll
                for (int ni = 0; ni < 4; ++ni) mma_bf16(acc[mi][ni], a[mi], b[ni]);
        }
        __syncthreads();
    }

    // Accumulator layout of m16n8: values 0, 1 at row `group`, columns 2 quad and 2 quad + 1; values 2, 3 eight
    // rows below.
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni)
#pragma unroll
            for (int v = 0; v < 4; ++v) {
                const int m = row0 + warp_m + mi * 16 + group + (v >> 1) * 8;
                const int n = col0 + warp_n + ni * 8 + quad * 2 + (v & 1);
                if (m >= M || n >= N) continue;
                if (gridDim.z == 1)
                    epilogue(acc[mi][ni][v], bias, residual, y, m, n, N, act);
                else
                    partial[((int64_t)blockIdx.z * M + m) * N + n] = acc[mi][ni][v];
            }
}

// Sums the split-K partials of gemm_mma in order and applies the epilogue. One thread per output.
extern "C" __global__ void gemm_splitk_reduce(const float* __restrict__ partial, int splits,
                                              const bf16* __restrict__ bias, const bf16* __restrict__ residual,
                                              bf16* __restrict__ y, int M, int N, int act) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)M * N) return;
    float acc = 0.0f;
    for (int z = 0; z < splits; ++z) acc += partial[z * (int64_t)M * N + i];
    epilogue(acc, bias, residual, y, i / N, i % N, N, act);
}
