//! What one launch counted (and, merged, what all launches of a kernel counted): the emulator's profiler.
//!
//! Instructions are counted per warp issue (`warp_insts`) and per lane that executed (`thread_insts`, guards
//! applied), by `ir::Class`. Global memory counts requests (warp-level load or store instructions), the bytes the
//! lanes asked for and the distinct 32-byte sectors each request touched (coalescing); shared memory counts
//! requests, the hardware's phases and the wavefronts they took (bank conflicts are the extra wavefronts). A launch
//! also brings its footprint (the distinct sectors it read and wrote), from which the driver's L2 model estimates
//! the DRAM bytes (`dram_read_bytes`, `dram_write_bytes`); the footprint itself is not kept once counted.

use super::footprint::Footprint;
use crate::ir::Class;

/// The classes in `warp_insts` / `thread_insts` order.
pub const CLASSES: [Class; 6] =
    [Class::Memory, Class::Arith, Class::SpecialFn, Class::Tensor, Class::Collective, Class::Control];
const CLASS_NAMES: [&str; 6] = ["memory", "arith", "special_fn", "tensor", "collective", "control"];

/// Counters of one or more launches of a kernel.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub launches: u64,
    pub blocks: u64,
    /// Threads per block of the last launch merged.
    pub threads_per_block: u64,
    /// Issued warp instructions by class (`CLASSES` order).
    pub warp_insts: [u64; 6],
    /// Executed thread instructions by class.
    pub thread_insts: [u64; 6],
    pub global_load_requests: u64,
    pub global_store_requests: u64,
    pub global_load_bytes: u64,
    pub global_store_bytes: u64,
    /// Distinct 32-byte sectors, summed over requests.
    pub global_load_sectors: u64,
    pub global_store_sectors: u64,
    pub shared_load_requests: u64,
    pub shared_store_requests: u64,
    /// Phases of shared requests (one per request for 4-byte accesses, two for 8, four for 16).
    pub shared_phases: u64,
    /// Wavefronts the phases took: `phases` without bank conflicts.
    pub shared_wavefronts: u64,
    pub local_bytes: u64,
    /// Warp-level atomic instructions, and the lanes that performed one.
    pub atomic_requests: u64,
    pub atomics: u64,
    /// Bytes `cp.async` read from global memory, and what one block can keep in flight: the sum over its threads
    /// of the most source bytes each had issued and not yet waited for at once (the largest over the blocks). The
    /// sum does not depend on the order the emulator runs the warps in; on a GPU the threads of a pipelined loop
    /// reach their peaks together.
    pub async_bytes: u64,
    pub async_peak_bytes: u64,
    /// DRAM bytes the L2 model estimates: sectors read that the L2 did not hold, and sectors written (each written
    /// back once per launch).
    pub dram_read_bytes: u64,
    pub dram_write_bytes: u64,
    /// Host seconds the launches took.
    pub seconds: f64,
    /// The sectors of the launch (empty once the driver has counted them).
    pub footprint: Footprint,
}

/// Index of `class` in `CLASSES`.
#[inline(always)]
pub fn class_index(class: Class) -> usize {
    match class {
        Class::Memory => 0,
        Class::Arith => 1,
        Class::SpecialFn => 2,
        Class::Tensor => 3,
        Class::Collective => 4,
        Class::Control => 5,
    }
}

impl Stats {
    pub fn merge(&mut self, other: &Stats) {
        self.launches += other.launches;
        self.blocks += other.blocks;
        if other.threads_per_block != 0 {
            self.threads_per_block = other.threads_per_block;
        }
        for i in 0..6 {
            self.warp_insts[i] += other.warp_insts[i];
            self.thread_insts[i] += other.thread_insts[i];
        }
        self.global_load_requests += other.global_load_requests;
        self.global_store_requests += other.global_store_requests;
        self.global_load_bytes += other.global_load_bytes;
        self.global_store_bytes += other.global_store_bytes;
        self.global_load_sectors += other.global_load_sectors;
        self.global_store_sectors += other.global_store_sectors;
        self.shared_load_requests += other.shared_load_requests;
        self.shared_store_requests += other.shared_store_requests;
        self.shared_phases += other.shared_phases;
        self.shared_wavefronts += other.shared_wavefronts;
        self.local_bytes += other.local_bytes;
        self.atomic_requests += other.atomic_requests;
        self.atomics += other.atomics;
        self.async_bytes += other.async_bytes;
        self.async_peak_bytes = self.async_peak_bytes.max(other.async_peak_bytes);
        self.dram_read_bytes += other.dram_read_bytes;
        self.dram_write_bytes += other.dram_write_bytes;
        self.seconds += other.seconds;
        self.footprint.union(&other.footprint);
    }

    /// Counts one issue of an instruction of `class` executed by the lanes of `active`.
    #[inline(always)]
    pub fn issue(&mut self, class: Class, active: u32) {
        let i = class_index(class);
        self.warp_insts[i] += 1;
        self.thread_insts[i] += active.count_ones() as u64;
    }

    pub fn total_thread_insts(&self) -> u64 {
        self.thread_insts.iter().sum()
    }

    /// Shared-memory bank conflicts: wavefronts beyond one per phase.
    pub fn bank_conflicts(&self) -> u64 {
        self.shared_wavefronts - self.shared_phases
    }

    /// One JSON object (without the kernel's name).
    pub fn to_json(&self) -> String {
        let by_class = |v: &[u64; 6]| {
            let fields: Vec<String> = CLASS_NAMES.iter().zip(v).map(|(n, c)| format!("\"{n}\": {c}")).collect();
            format!("{{{}}}", fields.join(", "))
        };
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let sectors = self.global_load_sectors + self.global_store_sectors;
        let requests = self.global_load_requests + self.global_store_requests;
        let bytes = self.global_load_bytes + self.global_store_bytes;
        let total = self.total_thread_insts();
        format!(
            concat!(
                "{{\"launches\": {}, \"blocks\": {}, \"threads_per_block\": {}, \"seconds\": {:.6}, ",
                "\"thread_insts_per_second\": {:.0}, \"warp_insts\": {}, \"thread_insts\": {}, ",
                "\"global\": {{\"load_requests\": {}, \"store_requests\": {}, \"load_bytes\": {}, \"store_bytes\": {}, ",
                "\"load_sectors\": {}, \"store_sectors\": {}, \"sectors_per_request\": {:.3}, \"efficiency\": {:.3}}}, ",
                "\"shared\": {{\"load_requests\": {}, \"store_requests\": {}, \"phases\": {}, \"wavefronts\": {}, ",
                "\"bank_conflicts\": {}}}, \"dram\": {{\"read_bytes\": {}, \"write_bytes\": {}}}, ",
                "\"local_bytes\": {}, \"atomic_requests\": {}, \"atomics\": {}, ",
                "\"async_copy\": {{\"read_bytes\": {}, \"in_flight_per_block\": {}}}}}"
            ),
            self.launches,
            self.blocks,
            self.threads_per_block,
            self.seconds,
            total as f64 / self.seconds.max(1e-9),
            by_class(&self.warp_insts),
            by_class(&self.thread_insts),
            self.global_load_requests,
            self.global_store_requests,
            self.global_load_bytes,
            self.global_store_bytes,
            self.global_load_sectors,
            self.global_store_sectors,
            ratio(sectors, requests),
            ratio(bytes, sectors * 32),
            self.shared_load_requests,
            self.shared_store_requests,
            self.shared_phases,
            self.shared_wavefronts,
            self.bank_conflicts(),
            self.dram_read_bytes,
            self.dram_write_bytes,
            self.local_bytes,
            self.atomic_requests,
            self.atomics,
            self.async_bytes,
            self.async_peak_bytes,
        )
    }
}
