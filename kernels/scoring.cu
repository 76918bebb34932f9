// Zero-shot scoring: normalised image features [images, dim] against normalised class features
// [templates * classes, dim], both f32. Image i counts as correct at top-1 for a template when its label is the
// first index of the largest cosine (as the CPU backend's argmax), and at top-5 when fewer than 5 classes score
// strictly higher than its label. Only the counts leave the device: top1[t], top5[t], top1_per_class[t * classes
// + label]. Every similarity is computed by the same serial dot product, so a label compared with itself is
// never counted as beaten.
#include "common.cuh"

__device__ __forceinline__ float dot(const float* __restrict__ a, const float* __restrict__ b, int dim) {
    float s = 0.0f;
    for (int d = 0; d < dim; ++d) s += a[d] * b[d];
    return s;
}

__device__ __forceinline__ void count(int t, int classes, uint32_t label, int earlier_or_above, int above,
                                      uint32_t* top1, uint32_t* top5, uint32_t* top1_per_class) {
    if (earlier_or_above == 0) {
        atomicAdd(&top1[t], 1u);
        atomicAdd(&top1_per_class[(int64_t)t * classes + label], 1u);
    }
    if (above < 5) atomicAdd(&top5[t], 1u);
}

// One thread per (image, template). Grid (ceil(images / blockDim.x), templates).
extern "C" __global__ void score_plain(const float* __restrict__ images, const float* __restrict__ class_features,
                                       const uint32_t* __restrict__ labels, int n_images, int classes, int dim,
                                       uint32_t* top1, uint32_t* top5, uint32_t* top1_per_class) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x, t = blockIdx.y;
    if (i >= n_images) return;
    const float* image = images + (int64_t)i * dim;
    const float* features = class_features + (int64_t)t * classes * dim;
    const uint32_t label = labels[i];
    const float truth = dot(image, features + (int64_t)label * dim, dim);
    int earlier_or_above = 0, above = 0;
    for (int c = 0; c < classes; ++c) {
        const float s = dot(image, features + (int64_t)c * dim, dim);
        above += s > truth;
        earlier_or_above += (uint32_t)c < label ? s >= truth : s > truth;
    }
    count(t, classes, label, earlier_or_above, above, top1, top5, top1_per_class);
}

// One block per (image, template): the image's features sit in shared memory and the block's threads share the
// classes. Grid (images, templates), dynamic shared memory dim * 4 bytes.
extern "C" __global__ void score(const float* __restrict__ images, const float* __restrict__ class_features,
                                 const uint32_t* __restrict__ labels, int n_images, int classes, int dim,
                                 uint32_t* top1, uint32_t* top5, uint32_t* top1_per_class) {
    extern __shared__ float image[];
    __shared__ int counts[2];
    const int i = blockIdx.x, t = blockIdx.y;
    for (int d = threadIdx.x; d < dim; d += blockDim.x) image[d] = images[(int64_t)i * dim + d];
    if (threadIdx.x == 0) counts[0] = counts[1] = 0;
    __syncthreads();
    const float* features = class_features + (int64_t)t * classes * dim;
    const uint32_t label = labels[i];
    const float truth = dot(image, features + (int64_t)label * dim, dim);
    int earlier_or_above = 0, above = 0;
    for (int c = threadIdx.x; c < classes; c += blockDim.x) {
        const float s = dot(image, features + (int64_t)c * dim, dim);
        above += s > truth;
        earlier_or_above += (uint32_t)c < label ? s >= truth : s > truth;
    }
    atomicAdd(&counts[0], earlier_or_above);
    atomicAdd(&counts[1], above);
    __syncthreads();
    if (threadIdx.x == 0) count(t, classes, label, counts[0], counts[1], top1, top5, top1_per_class);
}

// The ensemble of templates: per class, the mean over templates of the normalised features [templates * classes,
// dim], written unnormalised to [classes, dim] (l2_normalize follows). One thread per (class, dimension).
extern "C" __global__ void average_templates(const float* __restrict__ features, float* __restrict__ out,
                                             int templates, int classes, int dim) {
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (int64_t)classes * dim) return;
    float s = 0.0f;
    for (int t = 0; t < templates; ++t) s += features[(int64_t)t * classes * dim + idx];
    out[idx] = s / templates;
}
