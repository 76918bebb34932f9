// Embeddings: token rows plus position rows for the text tower, and the ViT input (image patches cut out as rows
// for the patch GEMM, then the class token prepended and positions added). These kernels only move data, one
// thread per output element, so each has a single version.
#include "common.cuh"

// out[r, :] = table[ids[r], :] + positions[r % seq, :]. Grid (rows, ceil(dim / blockDim.x)): rows on x, whose
// limit is 2^31 - 1.
extern "C" __global__ void embed_tokens(const uint32_t* __restrict__ ids, const bf16* __restrict__ table,
                                        const bf16* __restrict__ positions, bf16* __restrict__ out, int rows,
                                        int seq, int dim) {
    const int c = blockIdx.y * blockDim.x + threadIdx.x;
    const int64_t r = blockIdx.x;
    if (c >= dim || r >= rows) return;
    float v = to_f32(table[(int64_t)ids[r] * dim + c]);
    if (positions) v += to_f32(positions[(int64_t)(r % seq) * dim + c]);
    out[r * dim + c] = to_bf16(v);
}

// Pixels [batch, 3, size, size] (f32) to patch rows [batch * grid * grid, 3 * patch * patch] (bf16), each row in
// (channel, y, x) order, the order of the convolution weight [dim, 3, patch, patch] flattened.
extern "C" __global__ void patch_rows(const float* __restrict__ pixels, bf16* __restrict__ rows, int batch, int size,
                                      int patch) {
    const int grid = size / patch, width = 3 * patch * patch;
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (int64_t)batch * grid * grid * width) return;
    const int col = idx % width;
    const int64_t row = idx / width;
    const int b = row / (grid * grid), p = row % (grid * grid);
    const int channel = col / (patch * patch), ky = (col / patch) % patch, kx = col % patch;
    const int y = (p / grid) * patch + ky, x = (p % grid) * patch + kx;
    rows[idx] = to_bf16(pixels[(((int64_t)b * 3 + channel) * size + y) * size + x]);
}

// out[b, 0] = class_embedding + positions[0]; out[b, j] = projected[b, j - 1] + positions[j] for j = 1..=patches.
extern "C" __global__ void vision_tokens(const bf16* __restrict__ projected, const bf16* __restrict__ class_embedding,
                                         const bf16* __restrict__ positions, bf16* __restrict__ out, int batch,
                                         int patches, int dim) {
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (int64_t)batch * (patches + 1) * dim) return;
    const int c = idx % dim;
    const int64_t row = idx / dim;
    const int b = row / (patches + 1), j = row % (patches + 1);
    const float v = j == 0 ? to_f32(class_embedding[c]) : to_f32(projected[((int64_t)b * patches + j - 1) * dim + c]);
    out[idx] = to_bf16(v + to_f32(positions[(int64_t)j * dim + c]));
}

// out[j, :] = x[rows[j], :] for 2-byte (bf16) elements. Grid (n, ceil(cols / blockDim.x)).
extern "C" __global__ void gather_rows_bf16(const bf16* __restrict__ x, const uint32_t* __restrict__ rows,
                                            bf16* __restrict__ out, int n, int cols) {
    const int c = blockIdx.y * blockDim.x + threadIdx.x;
    const int64_t j = blockIdx.x;
    if (c < cols && j < n) out[j * cols + c] = x[(int64_t)rows[j] * cols + c];
}

// The same for 4-byte (f32) elements.
extern "C" __global__ void gather_rows_f32(const float* __restrict__ x, const uint32_t* __restrict__ rows,
                                           float* __restrict__ out, int n, int cols) {
    const int c = blockIdx.y * blockDim.x + threadIdx.x;
    const int64_t j = blockIdx.x;
    if (c < cols && j < n) out[j * cols + c] = x[(int64_t)rows[j] * cols + c];
}

// The LLM's token embeddings: out[j, :] = table[ids[j], :] * scale (1, or Gemma's sqrt(hidden) rounded to bf16).
// Grid (n, ceil(cols / blockDim.x)).
extern "C" __global__ void embed_rows(const bf16* __restrict__ table, const uint32_t* __restrict__ ids,
                                      bf16* __restrict__ out, int n, int cols, float scale) {
    const int c = blockIdx.y * blockDim.x + threadIdx.x;
    const int64_t j = blockIdx.x;
    if (c < cols && j < n) out[j * cols + c] = to_bf16(to_f32(table[(int64_t)ids[j] * cols + c]) * scale);
}

// f32 to bf16, rounding to nearest even.
extern "C" __global__ void f32_to_bf16(const float* __restrict__ x, bf16* __restrict__ y, int64_t n) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = to_bf16(x[i]);
}
