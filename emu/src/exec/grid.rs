//! A launch: checks the geometry, then runs the grid's blocks on `options.threads` host threads, each taking the
//! next block index from a shared counter, and merges what they counted. The first fault stops every thread.

use super::block::Runner;
use super::context::{Ctx, Launch, Options};
use super::counters::Stats;
use super::fault::{Fault, FaultKind};
use super::slots;
use crate::ir::{Function, Module};
use crate::memory::{DeviceMemory, View};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Most threads a block may have, and shared memory a block may use (an sm_80 multiprocessor's opt-in limit).
const MAX_BLOCK_THREADS: u32 = 1024;
const MAX_SHARED_BYTES: u32 = 227 << 10;

/// Identifies launches for `%gridid`.
static GRID_IDS: AtomicU64 = AtomicU64::new(1);

pub fn run(
    module: &Module,
    kernel: usize,
    globals: &[u64],
    launch: &Launch<'_>,
    memory: &DeviceMemory,
    options: &Options,
) -> Result<Stats, Fault> {
    let start = Instant::now();
    let func = module.kernels.get(kernel).ok_or_else(|| undefined(format!("no kernel {kernel} in the module")))?;
    let block_threads = check_geometry(func, launch)?;
    let shared_bytes = func.static_shared.max(func.dynamic_shared_offset + launch.dynamic_shared);
    if shared_bytes > MAX_SHARED_BYTES {
        return Err(undefined(format!(
            "{}: {shared_bytes} bytes of shared memory per block (at most {MAX_SHARED_BYTES})",
            func.name
        )));
    }
    if globals.len() < module.globals.len() {
        return Err(undefined(format!("{} module variables but {} addresses", module.globals.len(), globals.len())));
    }
    let view = View::new(memory.snapshot());
    let param_allocations = func
        .params
        .iter()
        .filter(|p| p.size == 8)
        .filter_map(|p| {
            let bytes = launch.params.get(p.offset as usize..p.offset as usize + 8)?;
            let value = u64::from_le_bytes(bytes.try_into().ok()?);
            let a = view.find(value, 1)?;
            Some((p.offset, a.base, a.bytes))
        })
        .collect();
    let ctx = Ctx {
        func,
        slots: slots::slots(func),
        globals,
        launch,
        view,
        options,
        block_threads,
        warps: block_threads.div_ceil(32),
        shared_bytes,
        grid_id: GRID_IDS.fetch_add(1, Ordering::Relaxed),
        start,
        param_allocations,
    };
    let blocks = launch.grid.iter().map(|&d| d as u64).product::<u64>();
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let first_fault: Mutex<Option<(u64, Fault)>> = Mutex::new(None);
    let total = Mutex::new(Stats::default());
    let threads = options.threads.max(1).min(blocks.max(1) as usize);
    // Each worker takes the next block until none is left or a block faulted.
    let work = || {
        let mut runner = Runner::new(&ctx);
        while !stop.load(Ordering::Relaxed) {
            let b = next.fetch_add(1, Ordering::Relaxed);
            if b >= blocks {
                break;
            }
            if let Err(fault) = runner.run_block(b) {
                stop.store(true, Ordering::Relaxed);
                let mut first = first_fault.lock().unwrap_or_else(|e| e.into_inner());
                // The lowest block's fault is reported (blocks start in order and run to their end or fault), so
                // that one host thread and many agree.
                if first.as_ref().is_none_or(|(fb, _)| b < *fb) {
                    *first = Some((b, fault));
                }
                break;
            }
        }
        total.lock().unwrap_or_else(|e| e.into_inner()).merge(runner.stats());
    };
    // The calling thread is one of the workers.
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(work);
        }
        work();
    });
    if let Some((_, fault)) = first_fault.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(fault);
    }
    let mut stats = total.into_inner().unwrap_or_else(|e| e.into_inner());
    stats.launches = 1;
    stats.blocks = blocks;
    stats.threads_per_block = block_threads as u64;
    stats.seconds = start.elapsed().as_secs_f64();
    Ok(stats)
}

/// The block's thread count, once the block and grid dimensions are valid for the kernel.
fn check_geometry(func: &Function, launch: &Launch<'_>) -> Result<u32, Fault> {
    let name = &func.name;
    if launch.block.contains(&0) || launch.grid.contains(&0) {
        return Err(undefined(format!("{name}: empty grid {:?} or block {:?}", launch.grid, launch.block)));
    }
    let threads = launch.block.iter().map(|&d| d as u64).product::<u64>();
    if threads > MAX_BLOCK_THREADS as u64 || launch.block[2] > 64 || launch.grid[1] > 65535 || launch.grid[2] > 65535 {
        return Err(undefined(format!(
            "{name}: block {:?} or grid {:?} beyond the device's limits",
            launch.block, launch.grid
        )));
    }
    if let Some(req) = func.req_threads
        && req != launch.block
    {
        return Err(undefined(format!("{name}: .reqntid {req:?} but the block is {:?}", launch.block)));
    }
    if let Some(max) = func.max_threads
        && threads > max.iter().map(|&d| d.max(1) as u64).product::<u64>()
    {
        return Err(undefined(format!("{name}: .maxntid {max:?} but the block is {:?}", launch.block)));
    }
    if (launch.params.len() as u64) < func.param_bytes as u64 {
        return Err(undefined(format!(
            "{name}: {} bytes of parameters given, the kernel takes {}",
            launch.params.len(),
            func.param_bytes
        )));
    }
    Ok(threads as u32)
}

fn undefined(report: String) -> Fault {
    Fault { kind: FaultKind::Undefined, report }
}
