//! The driver's state: made once by `cuInit`, then shared by every call. One device, one (primary) context, and
//! tables of the handles handed out (streams, events, modules, functions, graphs, pinned host buffers).

use super::capture::Capture;
use super::config::Config;
use super::counters::Counters;
use super::error::{CUresult, Result};
use super::l2::L2;
use super::module::{FunctionState, LoadedModule};
use super::queue::Queues;
use super::work::Work;
use crate::memory::DeviceMemory;
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

/// The primary context's handle (never dereferenced by a caller).
pub const PRIMARY_CONTEXT: usize = 0x00c0_0000;
/// Stream id of the legacy default stream (`NULL`, `CU_STREAM_LEGACY`, `CU_STREAM_PER_THREAD`).
pub const DEFAULT_STREAM: usize = 0;
/// `CU_STREAM_LEGACY` and `CU_STREAM_PER_THREAD`: special handles that name the default stream.
const SPECIAL_STREAMS: [usize; 2] = [1, 2];
/// The first handle handed out; handles of every kind share one counter, so a handle of one kind passed as another
/// is `CUDA_ERROR_INVALID_HANDLE`.
const FIRST_HANDLE: usize = 0x0010_0000;

pub struct Driver {
    pub config: &'static Config,
    pub memory: DeviceMemory,
    pub tables: Mutex<Tables>,
    /// Held while queued work runs, so that work runs one piece at a time, in stream order (`queue`).
    pub device: Mutex<()>,
    /// The context's sticky error: set by a faulting kernel, returned by every later call on the context.
    pub sticky: Mutex<Option<CUresult>>,
    pub counters: Mutex<Counters>,
    /// The L2 model that turns each launch's footprint into estimated DRAM bytes, in the order launches run.
    pub l2: Mutex<L2>,
    /// Device memory set aside for local memory: the largest per-thread local size launched so far, for every
    /// thread the device can hold at once (`launch::reserve_local`).
    pub local_reserved: Mutex<u64>,
}

pub struct Stream {
    /// Created without `CU_STREAM_NON_BLOCKING`: synchronises with the legacy default stream.
    pub blocking: bool,
}

pub struct Event {
    pub timing: bool,
    /// When the last record ran.
    pub recorded: Option<Instant>,
    /// The stream and number of the last record, while it waits in the stream's queue.
    pub pending: Option<(usize, u64)>,
}

/// A pinned host buffer from `cuMemHostAlloc` / `cuMemAllocHost`.
pub struct Pinned {
    pub bytes: usize,
    pub layout: std::alloc::Layout,
}

#[derive(Default)]
pub struct Tables {
    next: usize,
    pub streams: HashMap<usize, Stream>,
    pub events: HashMap<usize, Event>,
    pub modules: HashMap<usize, Arc<LoadedModule>>,
    pub functions: HashMap<usize, FunctionState>,
    /// Captured graphs and their instantiations: the work they replay, in order.
    pub graphs: HashMap<usize, Arc<Vec<Work>>>,
    pub execs: HashMap<usize, Arc<Vec<Work>>>,
    /// Ongoing captures, by stream id.
    pub captures: HashMap<usize, Capture>,
    /// Work waiting on each stream.
    pub queues: Queues,
    /// Pinned host buffers by address.
    pub pinned: BTreeMap<usize, Pinned>,
    /// `cuDevicePrimaryCtxRetain` calls not yet released.
    pub primary_refs: u32,
}

impl Tables {
    pub fn new_handle(&mut self) -> usize {
        self.next = self.next.max(FIRST_HANDLE) + 0x10;
        self.next
    }

    /// The id of a stream handle: `DEFAULT_STREAM` for the default stream's handles.
    pub fn stream(&self, handle: *mut std::ffi::c_void) -> Result<usize> {
        let id = handle as usize;
        if id == DEFAULT_STREAM || SPECIAL_STREAMS.contains(&id) {
            Ok(DEFAULT_STREAM)
        } else if self.streams.contains_key(&id) {
            Ok(id)
        } else {
            Err(CUresult::INVALID_HANDLE)
        }
    }

    /// Whether `[ptr, ptr + bytes)` lies in one pinned host buffer.
    pub fn is_pinned(&self, ptr: usize, bytes: usize) -> bool {
        self.pinned.range(..=ptr).next_back().is_some_and(|(&base, p)| ptr + bytes <= base + p.bytes)
    }
}

static DRIVER: OnceLock<Driver> = OnceLock::new();

thread_local! {
    /// Whether the primary context is current on this thread.
    static CURRENT: Cell<bool> = const { Cell::new(false) };
}

/// Makes the driver (once): the configuration must be valid.
pub fn init() -> Result<&'static Driver> {
    let config = Config::get().map_err(|message| {
        eprintln!("glov-emu: {message}");
        CUresult::INVALID_VALUE
    })?;
    Ok(DRIVER.get_or_init(|| {
        super::counters::at_exit();
        Driver {
            config,
            memory: if config.options.poison {
                DeviceMemory::poisoned(config.memory_bytes)
            } else {
                DeviceMemory::new(config.memory_bytes)
            },
            tables: Mutex::new(Tables { queues: Queues::new(config.options.schedule_seed), ..Tables::default() }),
            device: Mutex::new(()),
            sticky: Mutex::new(None),
            counters: Mutex::new(Counters::default()),
            l2: Mutex::new(L2::new(config.capability.l2_bytes())),
            local_reserved: Mutex::new(0),
        }
    }))
}

/// The driver once `cuInit` has run.
pub fn driver() -> Result<&'static Driver> {
    DRIVER.get().ok_or(CUresult::NOT_INITIALIZED)
}

/// The driver, when `cuInit` has run, whether or not a context is current (for the exit hook).
pub fn initialized() -> Option<&'static Driver> {
    DRIVER.get()
}

pub fn set_current(current: bool) {
    CURRENT.with(|c| c.set(current));
}

pub fn is_current() -> bool {
    CURRENT.with(|c| c.get())
}

/// The driver with the context current on this thread and no sticky error: what every call that works in the
/// context needs.
pub fn live() -> Result<&'static Driver> {
    let d = driver()?;
    if !is_current() {
        return Err(CUresult::INVALID_CONTEXT);
    }
    if let Some(e) = *lock(&d.sticky) {
        return Err(e);
    }
    Ok(d)
}

/// A mutex's guard, even after a panic elsewhere poisoned it (every entry catches panics; the tables stay usable).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Driver {
    pub fn tables(&self) -> MutexGuard<'_, Tables> {
        lock(&self.tables)
    }

    /// Makes `e` the context's sticky error (the first one stays).
    pub fn set_sticky(&self, e: CUresult) {
        lock(&self.sticky).get_or_insert(e);
    }
}
