//! The exported CUDA driver API (`cu*` functions) that cudarc loads from `libcuda.so`.
