//! Executor tests: kernels assembled by hand (`kit`, independent of the PTX loader and the ALU), kernels written
//! as PTX text, and the project's own built kernels.

mod async_copy;
mod atomics;
mod basic;
mod collectives;
mod counters;
mod kernels;
mod kit;
mod mma;
mod spaces;
mod strict;
mod sync;

use crate::exec::counters::class_index;
use crate::ir::Class;

/// Index of `class` in the counters' per-class arrays.
fn class(class: Class) -> usize {
    class_index(class)
}
