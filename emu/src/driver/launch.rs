//! `cuLaunchKernel`: the launch is checked as the driver checks it (block and grid limits, the kernel's
//! `.maxntid` / `.reqntid`, shared memory against 48 KiB or the opt-in limit the function was given), its parameter
//! buffer is built from the kernel's `ir::Param` list, and the kernel runs (or is recorded, in a capture). As a real
//! driver does, the first launch of a kernel with more local memory per thread than any before sets device memory
//! aside for it, for every thread the device can hold at once; when that memory is not free the launch fails with
//! `CUDA_ERROR_OUT_OF_MEMORY`.

use super::device::{MAX_BLOCK_DIM, MAX_GRID_DIM, MAX_THREADS_PER_BLOCK, MAX_THREADS_PER_SM, shared_per_block_optin};
use super::entry;
use super::error::{CUresult, Result};
use super::module::{FunctionState, max_threads};
use super::state::{Driver, live, lock};
use super::work::{KernelWork, Work, submit};
use super::{CUfunction, CUstream};
use std::ffi::c_void;

/// Checks the geometry and shared memory of a launch of `f`.
fn check(f: &FunctionState, optin: u32, grid: [u32; 3], block: [u32; 3], dynamic_shared: u32) -> Result {
    let k = f.function();
    let threads = block.iter().map(|&b| b as u64).product::<u64>();
    let in_limits = |dims: [u32; 3], limits: [u32; 3]| dims.iter().zip(limits).all(|(&d, l)| d >= 1 && d <= l);
    if !in_limits(block, MAX_BLOCK_DIM) || threads > MAX_THREADS_PER_BLOCK as u64 || !in_limits(grid, MAX_GRID_DIM) {
        return Err(CUresult::INVALID_VALUE);
    }
    if threads > max_threads(k) as u64 || k.req_threads.is_some_and(|req| req != block) {
        return Err(CUresult::INVALID_VALUE);
    }
    let shared = k.static_shared as u64 + dynamic_shared as u64;
    if dynamic_shared > f.max_dynamic_shared || shared > optin as u64 {
        return Err(CUresult::INVALID_VALUE);
    }
    Ok(())
}

/// Sets aside the local memory of `f` (its per-thread local bytes for every resident thread) when it needs more
/// than is set aside already.
fn reserve_local(d: &Driver, f: &FunctionState) -> Result {
    let per_thread = f.function().local_bytes as u64;
    let needed = per_thread * MAX_THREADS_PER_SM as u64 * d.config.options.sm_count as u64;
    let mut reserved = lock(&d.local_reserved);
    if needed <= *reserved {
        return Ok(());
    }
    match d.memory.alloc(needed - *reserved) {
        Ok(_) => {
            *reserved = needed;
            Ok(())
        }
        Err(_) => {
            eprintln!(
                "glov-emu: launching {}: its {per_thread} bytes of local memory per thread need {needed} bytes for \
                 the {} threads the device holds at once, and only {} bytes are free (CUDA_ERROR_OUT_OF_MEMORY)",
                f.function().name,
                MAX_THREADS_PER_SM * d.config.options.sm_count,
                d.memory.capacity() - d.memory.used()
            );
            Err(CUresult::OUT_OF_MEMORY)
        }
    }
}

/// The parameter buffer: `kernel_params[i]` points to parameter `i`'s bytes.
///
/// # Safety
/// `kernel_params` holds one pointer per parameter, each to at least the parameter's size in bytes.
unsafe fn param_buffer(f: &FunctionState, kernel_params: *mut *mut c_void) -> Result<Vec<u8>> {
    let k = f.function();
    let mut buffer = vec![0u8; k.param_bytes as usize];
    if k.params.is_empty() {
        return Ok(buffer);
    }
    if kernel_params.is_null() {
        return Err(CUresult::INVALID_VALUE);
    }
    for (i, p) in k.params.iter().enumerate() {
        // SAFETY: one pointer per parameter, by contract.
        let src = unsafe { *kernel_params.add(i) } as *const u8;
        if src.is_null() {
            return Err(CUresult::INVALID_VALUE);
        }
        let dst = &mut buffer[p.offset as usize..(p.offset + p.size) as usize];
        // SAFETY: `src` holds the parameter's `size` bytes, by contract.
        dst.copy_from_slice(unsafe { std::slice::from_raw_parts(src, p.size as usize) });
    }
    Ok(buffer)
}

/// # Safety
/// `kernel_params` holds one pointer per kernel parameter, each to the parameter's bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuLaunchKernel(
    f: CUfunction,
    grid_dim_x: u32,
    grid_dim_y: u32,
    grid_dim_z: u32,
    block_dim_x: u32,
    block_dim_y: u32,
    block_dim_z: u32,
    shared_mem_bytes: u32,
    h_stream: CUstream,
    kernel_params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> CUresult {
    entry("cuLaunchKernel", || {
        let d = live()?;
        let grid = [grid_dim_x, grid_dim_y, grid_dim_z];
        let block = [block_dim_x, block_dim_y, block_dim_z];
        let (stream, work) = {
            let t = d.tables();
            let function = t.functions.get(&(f as usize)).ok_or(CUresult::INVALID_HANDLE)?;
            let stream = t.stream(h_stream)?;
            if !extra.is_null() {
                eprintln!("glov-emu: cuLaunchKernel: `extra` parameter buffers are not supported; use kernelParams");
                return Err(CUresult::INVALID_VALUE);
            }
            check(function, shared_per_block_optin(d.config.capability), grid, block, shared_mem_bytes)?;
            reserve_local(d, function)?;
            // SAFETY: the caller's contract.
            let params = unsafe { param_buffer(function, kernel_params) }?;
            let work = KernelWork {
                module: function.module.clone(),
                kernel: function.kernel,
                grid,
                block,
                dynamic_shared: shared_mem_bytes,
                params,
            };
            (stream, work)
        };
        submit(d, stream, Work::Kernel(work)).map(drop)
    })
}
