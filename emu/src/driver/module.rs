//! Modules and functions. `cuModuleLoadData` takes PTX text only: it checks the `.version` against what the
//! emulated driver JIT-compiles and the `.target` against the emulated device, lowers the text (`ptx::load`), and
//! places the module's `.global` / `.const` variables in device memory with their initial bytes. A cubin or fatbin
//! is `CUDA_ERROR_NO_BINARY_FOR_GPU`: there is no GPU binary the emulator could run.

use super::config::{Capability, Config, max_ptx_isa};
use super::device::{MAX_THREADS_PER_BLOCK, SHARED_PER_BLOCK, shared_per_block_optin};
use super::entry;
use super::error::{CUresult, Result};
use super::state::{Driver, live};
use super::{CUfunction, CUmodule};
use crate::ir::{Function, Module, Space};
use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::Arc;

/// A loaded module: its lowered form and the device addresses of its variables (`globals[i]` for
/// `module.globals[i]`).
pub struct LoadedModule {
    pub module: Module,
    pub globals: Vec<u64>,
    /// The function handle of each kernel, in `module.kernels` order.
    pub functions: Vec<usize>,
}

/// A kernel's handle: its module and index, and the attributes set on it.
pub struct FunctionState {
    pub module: Arc<LoadedModule>,
    pub kernel: usize,
    /// `CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES`.
    pub max_dynamic_shared: u32,
    /// `CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT` (-1: no preference).
    pub carveout: i32,
}

impl FunctionState {
    pub fn function(&self) -> &Function {
        &self.module.module.kernels[self.kernel]
    }
}

/// The most threads a block of `f` may have: its `.reqntid` or `.maxntid`, else the device's limit.
pub fn max_threads(f: &Function) -> u32 {
    f.req_threads.or(f.max_threads).map_or(MAX_THREADS_PER_BLOCK, |[x, y, z]| x * y * z)
}

/// `.version` and `.target` of a PTX text (before any `.entry`), without parsing the rest.
fn header(text: &str) -> (Option<(u32, u32)>, Option<String>) {
    let (mut version, mut target) = (None, None);
    for line in text.lines() {
        let line = line.split("//").next().unwrap_or("").trim();
        if let Some(rest) = line.strip_prefix(".version") {
            version = rest.trim().split_once('.').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
        } else if let Some(rest) = line.strip_prefix(".target") {
            target = rest.split(',').next().map(|t| t.trim().to_string());
        } else if line.contains(".entry") || line.contains(".func") {
            break;
        }
    }
    (version, target)
}

/// Whether PTX for `target` (`sm_80`, `sm_90a`, ...) runs on `capability`: a newer target does not, and an
/// architecture-specific one (`a` suffix) runs only on its own architecture.
fn target_runs_on(target: &str, capability: Capability) -> Option<bool> {
    let rest = target.strip_prefix("sm_")?;
    let digits = rest.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let sm: u32 = digits.parse().ok()?;
    let device = capability.sm();
    Some(sm <= device && (!rest.ends_with('a') || sm == device))
}

/// Checks the PTX header against the emulated driver and device.
fn check_header(text: &str, config: &Config) -> Result {
    let (version, target) = header(text);
    let Some((major, minor)) = version else {
        eprintln!("glov-emu: the PTX has no .version directive");
        return Err(CUresult::INVALID_PTX);
    };
    let newest = max_ptx_isa(config.driver_version);
    if (major, minor) > newest {
        eprintln!(
            "glov-emu: PTX ISA {major}.{minor} is newer than driver {} supports (PTX ISA {}.{})",
            config.driver_version, newest.0, newest.1
        );
        return Err(CUresult::UNSUPPORTED_PTX_VERSION);
    }
    let Some(target) = target else {
        eprintln!("glov-emu: the PTX has no .target directive");
        return Err(CUresult::INVALID_PTX);
    };
    let (cc_major, cc_minor) = config.capability.major_minor();
    match target_runs_on(&target, config.capability) {
        Some(true) => Ok(()),
        Some(false) => {
            eprintln!(
                "glov-emu: PTX for {target} does not run on the emulated compute capability {cc_major}.{cc_minor}"
            );
            Err(CUresult::NO_BINARY_FOR_GPU)
        }
        None => {
            eprintln!("glov-emu: PTX .target {target} is not an sm_NN architecture");
            Err(CUresult::INVALID_PTX)
        }
    }
}

/// Whether the image starts like a binary (ELF cubin, or fatbin) rather than PTX text; reads no byte past a NUL.
///
/// # Safety
/// `image` points to a NUL-terminated text or a binary image of at least 4 bytes.
unsafe fn is_binary(image: *const u8) -> bool {
    const MAGICS: [[u8; 4]; 3] = [[0x7f, b'E', b'L', b'F'], [0x50, 0xed, 0x55, 0xba], [0xb1, 0x43, 0x62, 0x46]];
    MAGICS.iter().any(|magic| {
        // Byte by byte: none of the magics has a NUL, so a shorter text stops at its terminator.
        // SAFETY: each byte read is at most the one after the last non-NUL byte read.
        magic.iter().enumerate().all(|(i, &b)| unsafe { *image.add(i) } == b)
    })
}

/// Allocates and initialises the module's variables; frees them again on failure.
fn place_globals(d: &Driver, module: &Module) -> Result<Vec<u64>> {
    let mut addrs = Vec::with_capacity(module.globals.len());
    for g in &module.globals {
        let placed = d.memory.alloc(g.bytes.max(1)).and_then(|addr| {
            let mut bytes = g.init.clone();
            bytes.resize(g.bytes.max(1) as usize, 0);
            d.memory.write(addr, &bytes).map(|()| addr)
        });
        match placed {
            Ok(addr) => addrs.push(addr),
            Err(_) => {
                addrs.iter().for_each(|&a| drop(d.memory.free(a)));
                return Err(CUresult::OUT_OF_MEMORY);
            }
        }
    }
    Ok(addrs)
}

fn load(image: *const c_void) -> Result<usize> {
    let d = live()?;
    if image.is_null() {
        return Err(CUresult::INVALID_VALUE);
    }
    // SAFETY: the caller passes a NUL-terminated PTX text or a binary image.
    if unsafe { is_binary(image as *const u8) } {
        // As a real driver answers machine code of another architecture; said once, since a program that falls
        // back to its PTX tries one image per module.
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            eprintln!("glov-emu: cubin or fatbin images are refused (NO_BINARY_FOR_GPU): the emulator runs PTX text")
        });
        return Err(CUresult::NO_BINARY_FOR_GPU);
    }
    // SAFETY: not a binary, so a NUL-terminated text.
    let text = unsafe { CStr::from_ptr(image as *const c_char) }.to_str().map_err(|_| {
        eprintln!("glov-emu: the module image is neither UTF-8 PTX text nor a known binary");
        CUresult::INVALID_IMAGE
    })?;
    let replacement = d.config.ptx_override.as_deref().and_then(|dir| super::ptx_override::find(dir, text));
    let text = replacement.as_deref().unwrap_or(text);
    check_header(text, d.config)?;
    let module = crate::ptx::load(text).map_err(|e| {
        eprintln!("glov-emu: {e}");
        CUresult::INVALID_PTX
    })?;
    let globals = place_globals(d, &module)?;
    let mut t = d.tables();
    let handle = t.new_handle();
    let functions = module.kernels.iter().map(|_| t.new_handle()).collect();
    let loaded = Arc::new(LoadedModule { module, globals, functions });
    for (kernel, &f) in loaded.functions.iter().enumerate() {
        let max_dynamic_shared = SHARED_PER_BLOCK.saturating_sub(loaded.module.kernels[kernel].static_shared);
        let state = FunctionState { module: loaded.clone(), kernel, max_dynamic_shared, carveout: -1 };
        t.functions.insert(f, state);
    }
    t.modules.insert(handle, loaded);
    Ok(handle)
}

/// # Safety
/// `module` is null or points to room for one handle; `image` is a NUL-terminated PTX text or a binary image.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuModuleLoadData(module: *mut CUmodule, image: *const c_void) -> CUresult {
    entry("cuModuleLoadData", || {
        if module.is_null() {
            return Err(CUresult::INVALID_VALUE);
        }
        let handle = load(image)?;
        // SAFETY: checked non-null.
        unsafe { *module = handle as CUmodule };
        Ok(())
    })
}

/// Frees the module's variables; its function handles become invalid.
#[unsafe(no_mangle)]
pub extern "C" fn cuModuleUnload(hmod: CUmodule) -> CUresult {
    entry("cuModuleUnload", || {
        let d = live()?;
        let mut t = d.tables();
        let loaded = t.modules.remove(&(hmod as usize)).ok_or(CUresult::INVALID_HANDLE)?;
        for f in &loaded.functions {
            t.functions.remove(f);
        }
        for &addr in &loaded.globals {
            d.memory.free(addr).map_err(|_| CUresult::INVALID_VALUE)?;
        }
        Ok(())
    })
}

/// # Safety
/// `hfunc` is null or points to room for one handle; `name` is null or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuModuleGetFunction(hfunc: *mut CUfunction, hmod: CUmodule, name: *const c_char) -> CUresult {
    entry("cuModuleGetFunction", || {
        let d = live()?;
        if hfunc.is_null() || name.is_null() {
            return Err(CUresult::INVALID_VALUE);
        }
        // SAFETY: checked non-null; NUL-terminated by contract.
        let name = unsafe { CStr::from_ptr(name) }.to_str().map_err(|_| CUresult::NOT_FOUND)?;
        let t = d.tables();
        let loaded = t.modules.get(&(hmod as usize)).ok_or(CUresult::INVALID_HANDLE)?;
        let kernel = loaded.module.kernel(name).ok_or(CUresult::NOT_FOUND)?;
        // SAFETY: checked non-null.
        unsafe { *hfunc = loaded.functions[kernel] as CUfunction };
        Ok(())
    })
}

/// `CUfunction_attribute` values.
const MAX_THREADS: u32 = 0;
const SHARED_SIZE_BYTES: u32 = 1;
const CONST_SIZE_BYTES: u32 = 2;
const LOCAL_SIZE_BYTES: u32 = 3;
const NUM_REGS: u32 = 4;
const PTX_VERSION: u32 = 5;
const BINARY_VERSION: u32 = 6;
const CACHE_MODE_CA: u32 = 7;
const MAX_DYNAMIC_SHARED_SIZE_BYTES: u32 = 8;
const PREFERRED_SHARED_MEMORY_CARVEOUT: u32 = 9;
/// Cluster attributes (`CLUSTER_SIZE_MUST_BE_SET` to `CLUSTER_SCHEDULING_POLICY_PREFERENCE`): none is set.
const CLUSTER_ATTRIBUTES: std::ops::RangeInclusive<u32> = 10..=15;

fn function_attribute(d: &Driver, f: &FunctionState, attrib: u32) -> Result<i64> {
    let k = f.function();
    let m = &f.module.module;
    Ok(match attrib {
        MAX_THREADS => max_threads(k) as i64,
        SHARED_SIZE_BYTES => k.static_shared as i64,
        CONST_SIZE_BYTES => m.globals.iter().filter(|g| g.space == Space::Const).map(|g| g.bytes as i64).sum(),
        LOCAL_SIZE_BYTES => k.local_bytes as i64,
        NUM_REGS => k.nregs as i64,
        PTX_VERSION => (m.version.0 * 10 + m.version.1) as i64,
        BINARY_VERSION => d.config.capability.sm() as i64,
        CACHE_MODE_CA => 0,
        MAX_DYNAMIC_SHARED_SIZE_BYTES => f.max_dynamic_shared as i64,
        PREFERRED_SHARED_MEMORY_CARVEOUT => f.carveout as i64,
        a if CLUSTER_ATTRIBUTES.contains(&a) => 0,
        _ => return Err(CUresult::INVALID_VALUE),
    })
}

/// # Safety
/// `pi` is null or points to a writable `int`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuFuncGetAttribute(pi: *mut c_int, attrib: u32, hfunc: CUfunction) -> CUresult {
    entry("cuFuncGetAttribute", || {
        let d = live()?;
        if pi.is_null() {
            return Err(CUresult::INVALID_VALUE);
        }
        let t = d.tables();
        let f = t.functions.get(&(hfunc as usize)).ok_or(CUresult::INVALID_HANDLE)?;
        let value = function_attribute(d, f, attrib)?;
        // SAFETY: checked non-null.
        unsafe { *pi = value as c_int };
        Ok(())
    })
}

/// Sets `MAX_DYNAMIC_SHARED_SIZE_BYTES` (static plus dynamic up to the opt-in limit) or
/// `PREFERRED_SHARED_MEMORY_CARVEOUT` (-1 to 100); any other attribute is `CUDA_ERROR_INVALID_VALUE`.
#[unsafe(no_mangle)]
pub extern "C" fn cuFuncSetAttribute(hfunc: CUfunction, attrib: u32, value: c_int) -> CUresult {
    entry("cuFuncSetAttribute", || {
        let d = live()?;
        let mut t = d.tables();
        let f = t.functions.get_mut(&(hfunc as usize)).ok_or(CUresult::INVALID_HANDLE)?;
        match attrib {
            MAX_DYNAMIC_SHARED_SIZE_BYTES => {
                let optin = shared_per_block_optin(d.config.capability) as i64;
                if value < 0 || value as i64 + f.function().static_shared as i64 > optin {
                    return Err(CUresult::INVALID_VALUE);
                }
                f.max_dynamic_shared = value as u32;
            }
            PREFERRED_SHARED_MEMORY_CARVEOUT => {
                if !(-1..=100).contains(&value) {
                    return Err(CUresult::INVALID_VALUE);
                }
                f.carveout = value;
            }
            _ => return Err(CUresult::INVALID_VALUE),
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_run_on_their_architecture_and_newer() {
        assert_eq!(target_runs_on("sm_80", Capability::Hopper), Some(true));
        assert_eq!(target_runs_on("sm_90a", Capability::Hopper), Some(true));
        assert_eq!(target_runs_on("sm_90", Capability::Ampere), Some(false));
        assert_eq!(target_runs_on("sm_86", Capability::Ampere), Some(false));
        assert_eq!(target_runs_on("sm_80a", Capability::Hopper), Some(false), "architecture-specific");
        assert_eq!(target_runs_on("compute_80", Capability::Hopper), None);
    }

    #[test]
    fn the_header_is_read_past_comments() {
        let text = "//\n// Generated\n//\n.version 9.0\n.target sm_80, texmode_independent // note\n.entry k()\n";
        assert_eq!(header(text), (Some((9, 0)), Some("sm_80".to_string())));
    }
}
