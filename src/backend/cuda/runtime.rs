//! The CUDA runtime of the backend: the driver (checked before the first driver call), one context and one stream
//! on the chosen device, the embedded kernel modules loaded once, the arena (`device_arena`), and kernel launches
//! that name the kernel in their errors. Built on cudarc's thin driver layer (`cudarc::driver::result`): device
//! memory is raw addresses of arena blocks, so tensors are plain (address, shape) values.

use super::debug_alloc::{self, DriverBlocks};
use super::device_arena::{Arena, DeviceBlock, ParkedBlocks, mib};
use super::kernels::{self, MIN_DRIVER, MODULES};
use super::ops::GemmTiles;
use super::staging::Staging;
use crate::backend::runtime_options::GpuMemory;
use anyhow::{Context, Result, bail};
use cudarc::driver::{result, sys};
use std::collections::HashMap;
use std::ffi::{CString, c_void};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

pub struct Gpu {
    pub ordinal: usize,
    pub name: String,
    /// Compute capability (major, minor).
    pub capability: (i32, i32),
    pub total_memory: usize,
    /// Streaming multiprocessors (SMs).
    pub multiprocessors: usize,
    /// What the kernels were loaded from: `sm_90 machine code`, or `PTX compiled at load` where no machine code
    /// for this card is embedded.
    pub kernel_image: String,
    stream: sys::CUstream,
    functions: HashMap<&'static str, sys::CUfunction>,
    /// The dynamic shared memory each kernel has been allowed beyond the default 48 KiB (`launch` raises it).
    shared_allowed: Mutex<HashMap<sys::CUfunction, u32>>,
    /// The most shared memory a block may use once its kernel opts in.
    shared_optin: usize,
    arena: Arena,
    staging: Staging,
    /// The counters by which `gemm_mma`'s blocks find the last of a tile's K splits and of a row tile's column
    /// tiles (zero between launches: the last block resets each).
    tile_counters: DeviceBlock,
    /// Which tile shape the tensor-core products run in ([`GemmTiles`] as a number; `Auto` until set).
    gemm_tiles: AtomicU8,
}

/// How many tile counters `gemm_mma` has (a product that needs more runs without split K or fused norm).
const TILE_COUNTERS: usize = 1 << 15;

/// The dynamic shared memory a kernel may use without opting in to more.
const DEFAULT_SHARED: usize = 48 << 10;

// SAFETY: the context is made current on every thread that calls into the driver (`bind`); the stream and function
// handles are plain driver handles, valid for the context's lifetime, and the arena is behind a mutex.
unsafe impl Send for Gpu {}
unsafe impl Sync for Gpu {}

/// Device work recorded once and replayed (a CUDA graph), with the arena blocks its work writes.
pub struct Graph {
    exec: Option<sys::CUgraphExec>,
    /// Held for its drop, which returns the blocks to the arena after `exec` is destroyed (fields are dropped after
    /// `Drop::drop`).
    _parked: ParkedBlocks,
}

// SAFETY: a graph handle may be launched and destroyed from any thread of the process (the context is current on
// the threads that use the backend).
unsafe impl Send for Graph {}

impl Drop for Graph {
    fn drop(&mut self) {
        if let Some(exec) = self.exec {
            // SAFETY: an instantiated graph, destroyed once; the driver waits for its running launches.
            unsafe { result::graph::exec_destroy(exec).ok() };
        }
    }
}

fn check(what: &str, r: std::result::Result<(), result::DriverError>) -> Result<()> {
    r.map_err(|e| anyhow::anyhow!("{what}: {e:?}"))
}

impl Gpu {
    /// Opens device `ordinal` with an arena of `arena` (`None`: 90% of the memory free at start).
    pub fn open(ordinal: usize, arena: Option<GpuMemory>) -> Result<Self> {
        let device = format!("cuda:{ordinal}");
        let debug_alloc = debug_alloc::from_env()?;
        if !kernels::built_with_kernels() {
            bail!(
                "--device {device}: this glov-cuda was built without CUDA kernels: run `bash scripts/setup-cuda.sh`, then rebuild (`cargo build --release`)"
            );
        }
        if let Err(e) = super::driver_library() {
            bail!(
                "--device {device}: no NVIDIA driver on this machine (libcuda.so.1 cannot be loaded: {e}); the CUDA \
                 backend needs an NVIDIA GPU (compute capability 8.0 or newer) with a CUDA 12.2 (R535) or newer driver"
            );
        }
        check("cuInit", result::init())
            .with_context(|| format!("--device {device}: the NVIDIA driver did not start"))?;
        let mut version = 0;
        // SAFETY: the driver is initialised; the out-pointer is valid.
        check("cuDriverGetVersion", unsafe { sys::cuDriverGetVersion(&mut version) }.result())?;
        if version < MIN_DRIVER {
            bail!(
                "--device {device}: the NVIDIA driver supports CUDA {}.{}, too old for this glov-cuda's kernels (PTX ISA \
                 {}.{}): they need a driver for CUDA {}.{} or newer (R535 or newer); `nvidia-smi` shows the driver",
                version / 1000,
                version % 1000 / 10,
                kernels::PTX_ISA.0,
                kernels::PTX_ISA.1,
                MIN_DRIVER / 1000,
                MIN_DRIVER % 1000 / 10
            );
        }
        let count = result::device::get_count().map_err(|e| anyhow::anyhow!("cuDeviceGetCount: {e:?}"))?;
        if ordinal >= count as usize {
            bail!("--device {device}: this machine has {count} CUDA device(s) (cuda:0 to cuda:{})", count.max(1) - 1);
        }
        let dev = result::device::get(ordinal as i32).map_err(|e| anyhow::anyhow!("cuDeviceGet: {e:?}"))?;
        let name = result::device::get_name(dev).unwrap_or_else(|_| "unknown GPU".into());
        // SAFETY: `dev` is a valid device handle.
        let capability = unsafe {
            (
                result::device::get_attribute(
                    dev,
                    sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                )
                .unwrap_or(0),
                result::device::get_attribute(
                    dev,
                    sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                )
                .unwrap_or(0),
            )
        };
        // SAFETY: `dev` is a valid device handle.
        let multiprocessors = unsafe {
            result::device::get_attribute(dev, sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
        }
        .unwrap_or(1)
        .max(1) as usize;
        if capability.0 < 8 {
            bail!(
                "--device {device}: {name} has compute capability {}.{}; glov-cuda's kernels need 8.0 or newer \
                 (Ampere, Ada, Hopper)",
                capability.0,
                capability.1
            );
        }
        // SAFETY: `dev` is valid; the primary context is retained for the process's life and made current here.
        let total_memory = unsafe {
            let ctx =
                result::primary_ctx::retain(dev).map_err(|e| anyhow::anyhow!("cuDevicePrimaryCtxRetain: {e:?}"))?;
            check("cuCtxSetCurrent", result::ctx::set_current(ctx))?;
            result::device::total_mem(dev).unwrap_or(0)
        };
        let stream = result::stream::create(result::stream::StreamKind::NonBlocking)
            .map_err(|e| anyhow::anyhow!("cuStreamCreate: {e:?}"))?;
        let (functions, kernel_image) = load_kernels(capability)?;
        // SAFETY: `dev` is a valid device handle.
        let shared_optin = unsafe {
            result::device::get_attribute(
                dev,
                sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
            )
        }
        .unwrap_or(DEFAULT_SHARED as i32) as usize;
        let local = LocalMemory::of(dev, &functions, multiprocessors)?;
        let (free, _) = result::mem_get_info().map_err(|e| anyhow::anyhow!("cuMemGetInfo: {e:?}"))?;
        let usable = free.saturating_sub(local.bytes);
        let bytes = match arena {
            Some(arena) => usize::try_from(arena.bytes(total_memory as u64)).unwrap_or(usize::MAX),
            None => (free / 10 * 9).min(usable),
        };
        if bytes == 0 {
            bail!(
                "--gpu-memory {}: an arena of 0 bytes on {name} (the driver reports {} in all)",
                arena.map_or("-".into(), |a| a.to_string()),
                mib(total_memory)
            );
        }
        if bytes > usable {
            bail!(
                "--gpu-memory: an arena of {} does not fit on {name}: {} is free, and the kernels' local memory takes {} \
                 of it at their first launch ({} bytes for each of the {} threads the GPU holds at once); use \
                 --gpu-memory {:.2}GiB or less",
                mib(bytes),
                mib(free),
                mib(local.bytes),
                local.per_thread,
                local.threads,
                (usable as f64 / (1u64 << 30) as f64 * 100.0).floor() / 100.0
            );
        }
        let arena = if debug_alloc {
            tracing::info!(
                "{}=1: every arena block is a driver allocation of its own, unpoisoned",
                debug_alloc::VARIABLE
            );
            Arena::per_block(bytes, Box::new(DriverBlocks::new(stream)))
        } else {
            // SAFETY: the context is current; the allocation lives as long as the process (the arena is never freed).
            let base = unsafe { result::malloc_sync(bytes) }
                .map_err(|e| anyhow::anyhow!("allocating the device arena of {}: {e:?}", mib(bytes)))?;
            // Poison the arena (0xFF bytes are NaN in f32 and bf16), so that an output a kernel fails to write shows.
            // SAFETY: the range is the allocation just made.
            check("poisoning the arena", unsafe { result::memset_d8_async(base, 0xFF, bytes, stream) })?;
            Arena::carved(base, bytes)
        };
        tracing::info!(%name, capability = ?capability, arena = %mib(bytes), "CUDA device opened");
        let tile_counters = arena.alloc(TILE_COUNTERS * 4, "product tile counters")?;
        let gpu = Self {
            ordinal,
            name,
            capability,
            total_memory,
            multiprocessors,
            kernel_image,
            stream,
            functions,
            shared_allowed: Mutex::new(HashMap::new()),
            shared_optin,
            arena,
            staging: Staging::new(),
            tile_counters,
            gemm_tiles: AtomicU8::new(GemmTiles::Auto as u8),
        };
        gpu.fill_u32(&gpu.tile_counters, 0, TILE_COUNTERS)?;
        Ok(gpu)
    }

    /// The address of `gemm_mma`'s tile counters.
    pub fn tile_counters(&self) -> u64 {
        self.tile_counters.ptr
    }

    pub fn tile_counter_capacity(&self) -> usize {
        TILE_COUNTERS
    }

    /// The tile shape the tensor-core products run in from now on: chosen per product (`Auto`), or one forced
    /// (selftest forces 128 x 128 tiles on its products, whose shapes are too small to take them; `bench gemm`
    /// compares them all).
    pub fn set_gemm_tiles(&self, tiles: GemmTiles) {
        self.gemm_tiles.store(tiles as u8, Ordering::Relaxed);
    }

    pub fn gemm_tiles(&self) -> GemmTiles {
        GemmTiles::from_u8(self.gemm_tiles.load(Ordering::Relaxed))
    }

    pub fn arena(&self) -> &Arena {
        &self.arena
    }

    /// Launches kernel `name` on the stream. `args` are pointers to the kernel's parameters, in order.
    ///
    /// # Safety
    /// `args` must match the kernel's parameter list in number, order and types, and every device address among
    /// them must be valid for what the kernel reads and writes at this grid.
    pub unsafe fn launch(
        &self,
        name: &str,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        shared_bytes: u32,
        args: &mut [*mut c_void],
    ) -> Result<()> {
        let Some(&function) = self.functions.get(name) else { bail!("kernel {name} is not in this binary") };
        if grid.0 == 0 || grid.1 == 0 || grid.2 == 0 {
            return Ok(()); // an empty tensor: nothing to compute
        }
        if shared_bytes > 0 {
            self.allow_shared(name, function, shared_bytes)?;
        }
        // SAFETY: the caller guarantees the arguments; the function and stream belong to the current context.
        check(&format!("launching {name} (grid {grid:?}, block {block:?})"), unsafe {
            result::launch_kernel(function, grid, block, shared_bytes, self.stream, args)
        })
    }

    /// Lets `function` launch with `bytes` of dynamic shared memory: opts in where its static and dynamic shared
    /// memory together are more than a kernel gets without (checked once per function and size).
    fn allow_shared(&self, name: &str, function: sys::CUfunction, bytes: u32) -> Result<()> {
        let mut allowed = self.shared_allowed.lock().expect("the shared-memory lock");
        if allowed.get(&function).is_some_and(|&b| b >= bytes) {
            return Ok(());
        }
        // SAFETY: a function of this context.
        let static_bytes = unsafe {
            result::function::get_function_attribute(
                function,
                sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES,
            )
        }
        .map_err(|e| anyhow::anyhow!("reading {name}'s shared memory: {e:?}"))? as usize;
        if static_bytes + bytes as usize > self.shared_optin {
            bail!(
                "kernel {name} needs {} bytes of shared memory per block ({bytes} dynamic), more than {}'s {} bytes",
                static_bytes + bytes as usize,
                self.name,
                self.shared_optin
            );
        }
        if static_bytes + bytes as usize > DEFAULT_SHARED {
            // SAFETY: a function of this context; the value is within the device's opt-in limit (checked).
            check(&format!("allowing {name} {bytes} bytes of dynamic shared memory"), unsafe {
                result::function::set_function_attribute(
                    function,
                    sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    bytes as i32,
                )
            })?;
        }
        allowed.insert(function, bytes);
        Ok(())
    }

    /// Host to device, ordered on the stream, staged through pinned memory (`staging`): the host returns once
    /// `src` may be dropped, usually before the copy has run.
    pub fn upload<T: Copy>(&self, dst: &DeviceBlock, src: &[T]) -> Result<()> {
        let bytes = std::mem::size_of_val(src);
        assert!(bytes <= dst.bytes, "upload larger than its block");
        // While a graph records (the arena parks the blocks it frees), a recorded copy would read its staged source
        // again at every replay.
        if self.arena.is_parking() {
            bail!("an upload while a CUDA graph is recorded: the recorded work must read only device memory");
        }
        // SAFETY: any `Copy` value's bytes may be read as bytes.
        let raw = unsafe { std::slice::from_raw_parts(src.as_ptr() as *const u8, bytes) };
        self.staging.upload(dst.ptr, raw, self.stream)
    }

    /// Records the work `f` enqueues on the stream as a CUDA graph instead of running it. Blocks freed while
    /// recording stay reserved for the graph (the replays write them again), with their driver allocations in the
    /// debug mode, until the graph is dropped; the tensors `f` returns are written by every replay too, so the caller
    /// keeps them at least as long as the graph. On an error the recording is abandoned and the stream is usable
    /// again.
    pub fn record<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<(Graph, T)> {
        self.arena.start_parking();
        // SAFETY: the stream belongs to the current context; thread-local mode forbids only this thread's unsafe
        // calls (synchronisation, pageable copies, allocations) while recording, and the work recorded never runs
        // them (the debug mode's allocations switch this thread to relaxed mode for the call: `debug_alloc`).
        let begun = check("starting a CUDA graph recording", unsafe {
            result::stream::begin_capture(self.stream, sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
        });
        let out = begun.and_then(|()| f());
        // SAFETY: ends the recording begun above (an error if it never began, which is ignored then).
        let graph = unsafe { result::stream::end_capture(self.stream) };
        let mut recorded = Graph { exec: None, _parked: self.arena.stop_parking() };
        let (out, graph) = match (out, graph) {
            (Ok(out), Ok(graph)) => (out, graph),
            (Err(e), graph) => {
                if let Ok(g) = graph {
                    // SAFETY: a graph the recording just produced, not instantiated.
                    unsafe { result::graph::destroy(g).ok() };
                }
                return Err(e.context("recording the decode step as a CUDA graph (--no-cuda-graphs runs without)"));
            }
            (Ok(_), Err(e)) => bail!("ending the CUDA graph recording: {e:?} (--no-cuda-graphs runs without)"),
        };
        // SAFETY: `graph` is the valid graph just recorded; it is destroyed once instantiated.
        let exec = unsafe {
            let exec = result::graph::instantiate(graph, sys::CUgraphInstantiate_flags(0));
            result::graph::destroy(graph).ok();
            exec
        }
        .map_err(|e| anyhow::anyhow!("instantiating the recorded CUDA graph: {e:?} (--no-cuda-graphs runs without)"))?;
        recorded.exec = Some(exec);
        Ok((recorded, out))
    }

    /// Runs a recorded graph on the stream.
    pub fn replay(&self, graph: &Graph) -> Result<()> {
        let Some(exec) = graph.exec else { bail!("replaying a CUDA graph that was not instantiated") };
        // SAFETY: an instantiated graph of this context, launched on its stream.
        check("replaying a CUDA graph", unsafe { result::graph::launch(exec, self.stream) })
    }

    /// Sets the first `count` u32 values of a block to `value`, ordered on the stream.
    pub fn fill_u32(&self, dst: &DeviceBlock, value: u32, count: usize) -> Result<()> {
        assert!(count * 4 <= dst.bytes, "fill larger than its block");
        // SAFETY: the block holds at least `count` u32 values; the fill is ordered on the stream like the kernels.
        check("filling device memory", unsafe { sys::cuMemsetD32Async(dst.ptr, value, count, self.stream).result() })
    }

    /// Device to device, ordered on the stream.
    pub fn copy(&self, src: &DeviceBlock, dst: &DeviceBlock, bytes: usize) -> Result<()> {
        assert!(bytes <= src.bytes && bytes <= dst.bytes, "copy larger than its blocks");
        // SAFETY: both blocks hold at least `bytes`; the copy is ordered on the stream like the kernels.
        check("copy on the device", unsafe { result::memcpy_dtod_async(dst.ptr, src.ptr, bytes, self.stream) })
    }

    /// Device to host; waits for the stream.
    pub fn download<T: Copy>(&self, src: &DeviceBlock, dst: &mut [T]) -> Result<()> {
        assert!(std::mem::size_of_val(dst) <= src.bytes, "download larger than its block");
        // SAFETY: the block holds at least the bytes copied; the stream is synchronised before `dst` is read.
        check("copy from the device", unsafe { result::memcpy_dtoh_async(dst, src.ptr, self.stream) })?;
        self.synchronize()
    }

    /// Waits for all work on the stream; a kernel fault surfaces here.
    pub fn synchronize(&self) -> Result<()> {
        // SAFETY: the stream belongs to the current context.
        check("waiting for the GPU", unsafe { result::stream::synchronize(self.stream) })
    }
}

/// The local memory the driver sets aside at the first launch of the kernel with the most of it: that much per
/// thread, for every thread the GPU can hold at once. It comes out of the memory the arena could take.
struct LocalMemory {
    per_thread: usize,
    threads: usize,
    bytes: usize,
}

impl LocalMemory {
    fn of(dev: sys::CUdevice, functions: &HashMap<&'static str, sys::CUfunction>, sms: usize) -> Result<Self> {
        let mut per_thread = 0;
        for (name, &function) in functions {
            // SAFETY: a function of the current context.
            let bytes = unsafe {
                result::function::get_function_attribute(
                    function,
                    sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES,
                )
            }
            .map_err(|e| anyhow::anyhow!("reading {name}'s local memory: {e:?}"))?;
            per_thread = per_thread.max(bytes.max(0) as usize);
        }
        // SAFETY: `dev` is a valid device handle.
        let per_sm = unsafe {
            result::device::get_attribute(
                dev,
                sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR,
            )
        }
        .unwrap_or(2048)
        .max(1) as usize;
        let threads = per_sm * sms;
        Ok(Self { per_thread, threads, bytes: per_thread * threads })
    }
}

/// Loads every embedded module, from the machine code for this card where there is one and from the PTX
/// otherwise (or where the driver refuses the machine code as not for this GPU), and looks up every entry. Also
/// says which of the two the kernels came from.
fn load_kernels(capability: (i32, i32)) -> Result<(HashMap<&'static str, sys::CUfunction>, String)> {
    let mut functions = HashMap::new();
    let mut images = Vec::new();
    for module in MODULES {
        let _span = tracing::debug_span!("loading kernels", module = module.name).entered();
        // SAFETY: a cubin image, alive during the call (the driver copies it).
        let from_cubin = module.cubin_for(capability).and_then(|cubin| {
            match unsafe { result::module::load_data(cubin.image.as_ptr() as *const c_void) } {
                Ok(handle) => Some((handle, format!("sm_{} machine code", cubin.arch))),
                Err(e) => {
                    tracing::debug!("the driver refused the sm_{} machine code ({e:?}): compiling the PTX", cubin.arch);
                    None
                }
            }
        });
        let (handle, image) = match from_cubin {
            Some(loaded) => loaded,
            None => {
                let ptx = CString::new(module.ptx).expect("PTX has no NUL");
                // SAFETY: a NUL-terminated PTX text, alive during the call (the driver copies it).
                let handle = unsafe { result::module::load_data(ptx.as_ptr() as *const c_void) }
                    .map_err(|e| anyhow::anyhow!("loading the {} kernels from PTX: {e:?}", module.name))?;
                (handle, "PTX compiled at load".to_string())
            }
        };
        images.push(image);
        for &entry in module.entries {
            let name = CString::new(entry).expect("entry names have no NUL");
            // SAFETY: `handle` is a loaded module.
            let function = unsafe { result::module::get_function(handle, name) }
                .map_err(|e| anyhow::anyhow!("finding kernel {entry} in {}: {e:?}", module.name))?;
            functions.insert(entry, function);
        }
    }
    images.sort();
    images.dedup();
    Ok((functions, images.join(" and ")))
}
