//! `cuLaunchKernel`: the launch is checked as the driver checks it (block and grid limits, the kernel's
//! `.maxntid` / `.reqntid`, shared memory against 48 KiB or the opt-in limit the function was given), its parameter
//! buffer is built from the kernel's `ir::Param` list, and the kernel runs (or is recorded, in a capture).

use super::device::{MAX_BLOCK_DIM, MAX_GRID_DIM, MAX_THREADS_PER_BLOCK, shared_per_block_optin};
use super::entry;
use super::error::{CUresult, Result};
use super::module::{FunctionState, max_threads};
use super::state::live;
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
        submit(d, stream, Work::Kernel(work))
    })
}
