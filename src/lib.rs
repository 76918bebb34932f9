//! glov-cuda: GLOV (LLM-guided prompt-template optimisation for CLIP) on a GPU-native engine.
//!
//! Layers, bottom to top: `checkpoint` (HF model directories), `backend` (coarse tensor operations with a CPU
//! reference and a CUDA implementation), `models` (CLIP and Llama-family LLMs), the engine services (`tokenizer`,
//! `chat`, `preprocess`, `dataset`, `scoring`, `generation`, `describe`), the parity harness of the kernels and models
//! (`selftest`), `glov`, the scale-out above single runs (`sweep`, `report`) and the `cli`.

pub mod atomic_file;
pub mod backend;
pub mod chat;
pub mod checkpoint;
pub mod cli;
pub mod dataset;
pub mod describe;
pub mod generation;
pub mod glov;
pub mod models;
pub mod no_follow;
pub mod nvtx;
pub mod preprocess;
pub mod random_normal;
pub mod report;
pub mod sampling;
pub mod scoring;
pub mod selftest;
pub mod sweep;
pub mod tokenizer;
