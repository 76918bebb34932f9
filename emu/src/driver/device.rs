//! The one device (ordinal 0): initialisation, version, count, name, memory size and attributes. Attributes are
//! those of an H100 SXM (9.0) or an A100 SXM (8.0), with the multiprocessor count and memory size configured.

use super::CUdevice;
use super::config::{Capability, Config};
use super::entry;
use super::error::{CUresult, Result};
use super::state::{self, driver};
use std::ffi::{c_char, c_int, c_uint};

/// Shared memory a block may use without opting in.
pub const SHARED_PER_BLOCK: u32 = 48 << 10;
/// The most threads in a block, and per dimension.
pub const MAX_THREADS_PER_BLOCK: u32 = 1024;
/// Threads resident on one multiprocessor at most (Ampere and Hopper).
pub const MAX_THREADS_PER_SM: u32 = 2048;
pub const MAX_BLOCK_DIM: [u32; 3] = [1024, 1024, 64];
pub const MAX_GRID_DIM: [u32; 3] = [i32::MAX as u32, 65535, 65535];

/// Shared memory a block may use once it opts in (`CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES`).
pub fn shared_per_block_optin(c: Capability) -> u32 {
    match c {
        Capability::Hopper => 227 << 10,
        Capability::Ampere => 163 << 10,
    }
}

fn check_device(dev: CUdevice) -> Result {
    if dev == 0 { Ok(()) } else { Err(CUresult::INVALID_DEVICE) }
}

/// The answer of `cuDeviceGetAttribute` for attribute number `attrib`, or `None` for one the emulator does not know.
pub fn attribute(config: &Config, attrib: u32) -> Option<i64> {
    let hopper = config.capability == Capability::Hopper;
    let pick = |h: i64, a: i64| if hopper { h } else { a };
    let (major, minor) = config.capability.major_minor();
    Some(match attrib {
        1 => MAX_THREADS_PER_BLOCK as i64,
        2..=4 => MAX_BLOCK_DIM[attrib as usize - 2] as i64,
        5..=7 => MAX_GRID_DIM[attrib as usize - 5] as i64,
        8 => SHARED_PER_BLOCK as i64,
        9 => 65536,                       // constant memory
        10 => 32,                         // warp size
        11 => i32::MAX as i64,            // max pitch
        12 => 65536,                      // registers per block
        13 => pick(1_980_000, 1_410_000), // clock rate, kHz
        14 => 512,                        // texture alignment
        15 => 1,                          // GPU overlap
        16 => config.options.sm_count as i64,
        17 | 18 => 0, // kernel timeout, integrated
        19 => 1,      // can map host memory
        20 => 0,      // compute mode: default
        21 => 131072, // 1D texture width
        22 | 23 => [131072, 65536][attrib as usize - 22],
        24..=26 => 16384,
        27..=29 => [32768, 32768, 2048][attrib as usize - 27],
        30 => 512,                        // surface alignment
        31 | 32 => 1,                     // concurrent kernels, ECC
        33 => 1,                          // PCI bus
        34 | 35 => 0,                     // PCI device, TCC
        36 => pick(2_619_000, 1_215_000), // memory clock, kHz
        37 => 5120,                       // memory bus width, bits
        38 => pick(50 << 20, 40 << 20),   // L2 bytes
        39 => MAX_THREADS_PER_SM as i64,  // threads per multiprocessor
        40 => 3,                          // copy engines
        41 => 1,                          // unified addressing
        42 | 43 => [32768, 2048][attrib as usize - 42],
        44 => 1,
        45 | 46 => 32768,
        47..=49 => [8192, 8192, 32768][attrib as usize - 47],
        50 => 0,  // PCI domain
        51 => 32, // texture pitch alignment
        52 | 53 => 32768,
        54 => 2046,
        55 => 32768,
        56 | 57 => [131072, 65536][attrib as usize - 56],
        58..=60 => 16384,
        61 | 62 => [32768, 2048][attrib as usize - 61],
        63..=65 => [32768, 32768, 2048][attrib as usize - 63],
        66 | 67 => 32768,
        68 => 2046,
        69 => 268_435_456,
        70..=72 => [131072, 65000, 2_097_120][attrib as usize - 70],
        73 | 74 => 32768,
        75 => major as i64,
        76 => minor as i64,
        77 => 32768,
        78..=80 => 1,                 // stream priorities, global and local L1
        81 => pick(233_472, 167_936), // shared memory per multiprocessor
        82 => 65536,                  // registers per multiprocessor
        83 => 1,                      // managed memory
        84 | 85 => 0,                 // multi-GPU board
        86 => 0,                      // host native atomics
        87 => 2,                      // single to double performance ratio
        88 => 0,                      // pageable memory access
        89 | 90 => 1,                 // concurrent managed access, preemption
        91 => 0,
        92..=94 => 0, // stream memory operations (v1)
        95 => 1,      // cooperative launch
        96 => 0,
        97 => shared_per_block_optin(config.capability) as i64,
        98 => 0,
        99 => 1, // host register
        100 | 101 => 0,
        102 | 103 => 1, // virtual memory management, POSIX handles
        104 | 105 => 0,
        106 => 32,                           // blocks per multiprocessor
        107 => 1,                            // generic compression
        108 => pick(32_505_856, 31_457_280), // persisting L2
        109 => 134_213_632,                  // access policy window
        110 => 1,
        111 => 1024,       // shared memory reserved per block
        112..=115 => 1,    // sparse arrays, read-only host register, timeline semaphores, memory pools
        116..=118 => 0,    // GPUDirect RDMA
        119 => 1,          // memory pool handle types: POSIX file descriptor
        120 => pick(1, 0), // cluster launch
        121 => 1,
        122 | 123 => 1,    // stream memory operations
        124 => 0,          // DMA-BUF
        125 => 1,          // IPC events
        126 => pick(4, 1), // memory synchronisation domains
        127 => pick(1, 0), // tensor maps
        128 | 129 => 0,
        130 => 0,       // NUMA configuration: none
        131 => -1,      // NUMA id
        132 | 133 => 0, // multicast, MPS
        134 => -1,      // host NUMA id
        _ => return None,
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn cuInit(flags: c_uint) -> CUresult {
    entry("cuInit", || {
        if flags != 0 {
            return Err(CUresult::INVALID_VALUE);
        }
        state::init().map(drop)
    })
}

/// # Safety
/// `driver_version` is null or points to a writable `int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDriverGetVersion(driver_version: *mut c_int) -> CUresult {
    entry("cuDriverGetVersion", || {
        if driver_version.is_null() {
            return Err(CUresult::INVALID_VALUE);
        }
        let config = Config::get().map_err(|message| {
            eprintln!("glov-emu: {message}");
            CUresult::INVALID_VALUE
        })?;
        // SAFETY: checked non-null.
        unsafe { *driver_version = config.driver_version };
        Ok(())
    })
}

/// # Safety
/// `count` is null or points to a writable `int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetCount(count: *mut c_int) -> CUresult {
    entry("cuDeviceGetCount", || {
        driver()?;
        if count.is_null() {
            return Err(CUresult::INVALID_VALUE);
        }
        // SAFETY: checked non-null.
        unsafe { *count = 1 };
        Ok(())
    })
}

/// # Safety
/// `device` is null or points to a writable `CUdevice`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGet(device: *mut CUdevice, ordinal: c_int) -> CUresult {
    entry("cuDeviceGet", || {
        driver()?;
        if device.is_null() {
            return Err(CUresult::INVALID_VALUE);
        }
        check_device(ordinal)?;
        // SAFETY: checked non-null.
        unsafe { *device = 0 };
        Ok(())
    })
}

/// # Safety
/// `pi` is null or points to a writable `int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetAttribute(pi: *mut c_int, attrib: u32, dev: CUdevice) -> CUresult {
    entry("cuDeviceGetAttribute", || {
        let d = driver()?;
        if pi.is_null() {
            return Err(CUresult::INVALID_VALUE);
        }
        check_device(dev)?;
        let value = attribute(d.config, attrib).ok_or(CUresult::INVALID_VALUE)?;
        // SAFETY: checked non-null.
        unsafe { *pi = value as c_int };
        Ok(())
    })
}

/// The device's name: says it is the emulator, with the capability it poses as.
pub fn name(config: &Config) -> String {
    let (major, minor) = config.capability.major_minor();
    let like = match config.capability {
        Capability::Hopper => "H100",
        Capability::Ampere => "A100",
    };
    format!("glov-emu CPU emulator (compute capability {major}.{minor}, {like}-like)")
}

/// # Safety
/// `out` is null or points to `len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetName(out: *mut c_char, len: c_int, dev: CUdevice) -> CUresult {
    entry("cuDeviceGetName", || {
        let d = driver()?;
        if out.is_null() || len <= 0 {
            return Err(CUresult::INVALID_VALUE);
        }
        check_device(dev)?;
        let name = name(d.config);
        let n = name.len().min(len as usize - 1);
        // SAFETY: `out` holds `len` bytes; `n + 1 <= len`.
        unsafe {
            std::ptr::copy_nonoverlapping(name.as_ptr(), out as *mut u8, n);
            *out.add(n) = 0;
        }
        Ok(())
    })
}

/// # Safety
/// `bytes` is null or points to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceTotalMem_v2(bytes: *mut usize, dev: CUdevice) -> CUresult {
    entry("cuDeviceTotalMem_v2", || {
        let d = driver()?;
        if bytes.is_null() {
            return Err(CUresult::INVALID_VALUE);
        }
        check_device(dev)?;
        // SAFETY: checked non-null.
        unsafe { *bytes = d.memory.capacity() as usize };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_a100_answers_as_one() {
        let config = Config::from_vars(|name| (name == "GLOV_EMU_CC").then(|| "8.0".to_string())).unwrap();
        assert_eq!(attribute(&config, 75), Some(8));
        assert_eq!(attribute(&config, 16), Some(108));
        assert_eq!(attribute(&config, 97), Some(163 << 10));
        assert_eq!(attribute(&config, 38), Some(40 << 20));
        assert_eq!(attribute(&config, 1000), None);
        assert!(name(&config).contains("8.0"));
    }
}
