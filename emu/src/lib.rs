//! glov-emu: a stand-in CUDA driver (`libcuda.so`) that executes the PTX of the kernels it is given on the CPU,
//! as the PTX ISA defines each instruction, with checks a GPU does not make (memcheck, racecheck, synccheck,
//! initcheck) and counters that stand in for a profiler.
//!
//! Layers, bottom to top:
//! - `ir`: the compact, pre-resolved form a PTX module is lowered to once, at module load;
//! - `ptx`: the PTX text parser and the lowering to `ir`;
//! - `alu`: the per-lane semantics of arithmetic, comparison and conversion instructions, resolved once per
//!   instruction to a function pointer;
//! - `memory`: device memory (allocations with guard gaps and initialisation shadow) and the generic address windows;
//! - `exec`: warps, blocks and grids: per-lane program counters, barriers, warp collectives, tensor-core `mma`,
//!   atomics, the checks and the counters;
//! - `driver`: the exported `cu*` functions cudarc calls: contexts, streams, events, graphs, modules, launches.

pub mod alu;
pub mod driver;
pub mod exec;
pub mod ir;
pub mod memory;
pub mod ptx;

#[cfg(test)]
mod project_kernels;
