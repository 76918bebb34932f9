//! Executor tests on kernels assembled by hand (`kit`), independent of the PTX loader and the ALU.

mod basic;
mod kernels;
mod kit;
mod sync;

use crate::exec::counters::class_index;
use crate::ir::Class;

/// Index of `class` in the counters' per-class arrays.
fn class(class: Class) -> usize {
    class_index(class)
}
