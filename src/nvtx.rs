//! NVTX ranges for profilers (Nsight Systems): every tracing span at info level becomes a range on its thread, so
//! an nsys timeline shows the phases (image features, vision and text towers, scoring, each GLOV step).
//!
//! This speaks NVTX 3's injection protocol directly, with no NVIDIA library at build time: when a profiler runs
//! the program it sets `NVTX_INJECTION64_PATH` to its injection library; on first use we load it and call its
//! `InitializeInjectionNvtx2` with our export-table getter; it asks for the function tables of the NVTX modules
//! and writes its handlers into their slots. We call the `RangePushA` / `RangePop` slots of the core module.
//! Without a profiler nothing is loaded and a range costs one relaxed atomic load.

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicPtr, Ordering};
use tracing::span::Id;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

type FunctionPointer = *mut c_void;
type FunctionTable = *mut *mut AtomicPtr<c_void>;
type GetExportTable = unsafe extern "C" fn(u32) -> *const c_void;
type InitializeInjection = unsafe extern "C" fn(GetExportTable) -> c_int;

/// Export-table ids and callback ids of NVTX 3 (`nvToolsExtDetail/nvtxTypes.h`).
const ETID_CALLBACKS: u32 = 1;
const ETID_VERSIONINFO: u32 = 3;
const MODULE_CORE: c_int = 1;
/// The modules an injection may ask for (core, CUDA, OpenCL, CUDA runtime, core2, sync).
const MODULES: usize = 7;
const CBID_RANGE_PUSH_A: usize = 9;
const CBID_RANGE_POP: usize = 11;
/// Slots per module: more than any module defines, so an injection's size checks pass; unknown slots stay unused.
const SLOTS: usize = 64;

/// The function-pointer slots an injection fills, per module, and the tables of their addresses.
struct Slots {
    slots: Vec<Vec<AtomicPtr<c_void>>>,
    tables: Vec<Vec<*mut AtomicPtr<c_void>>>,
}

// SAFETY: the tables only hold addresses of the atomics in `slots`, which live (unmoved) as long as the process.
unsafe impl Send for Slots {}
unsafe impl Sync for Slots {}

fn slots() -> &'static Slots {
    static SLOTS_: OnceLock<Slots> = OnceLock::new();
    SLOTS_.get_or_init(|| {
        let slots: Vec<Vec<AtomicPtr<c_void>>> =
            (0..MODULES).map(|_| (0..SLOTS).map(|_| AtomicPtr::new(std::ptr::null_mut())).collect()).collect();
        let tables =
            slots.iter().map(|m| m.iter().map(|s| s as *const _ as *mut AtomicPtr<c_void>).collect()).collect();
        Slots { slots, tables }
    })
}

#[repr(C)]
struct CallbacksTable {
    struct_size: usize,
    get_module_function_table: unsafe extern "C" fn(c_int, *mut FunctionTable, *mut c_uint) -> c_int,
}

#[repr(C)]
struct VersionInfoTable {
    struct_size: usize,
    version: u32,
    reserved0: u32,
    set_injection_nvtx_version: unsafe extern "C" fn(u32),
}

unsafe extern "C" fn get_module_function_table(module: c_int, table: *mut FunctionTable, size: *mut c_uint) -> c_int {
    let s = slots();
    let Some(tables) = usize::try_from(module).ok().filter(|&m| m > 0 && m < MODULES).map(|m| &s.tables[m]) else {
        return 0;
    };
    if table.is_null() || size.is_null() {
        return 0;
    }
    // SAFETY: the injection passes valid out-pointers; the table lives as long as the process.
    unsafe {
        *table = tables.as_ptr() as FunctionTable;
        *size = SLOTS as c_uint;
    }
    1
}

unsafe extern "C" fn set_injection_nvtx_version(_: u32) {}

static CALLBACKS: CallbacksTable =
    CallbacksTable { struct_size: std::mem::size_of::<CallbacksTable>(), get_module_function_table };
static VERSION_INFO: VersionInfoTable = VersionInfoTable {
    struct_size: std::mem::size_of::<VersionInfoTable>(),
    version: 3,
    reserved0: 0,
    set_injection_nvtx_version,
};

unsafe extern "C" fn get_export_table(id: u32) -> *const c_void {
    match id {
        ETID_CALLBACKS => &CALLBACKS as *const CallbacksTable as *const c_void,
        ETID_VERSIONINFO => &VERSION_INFO as *const VersionInfoTable as *const c_void,
        _ => std::ptr::null(),
    }
}

/// Hands our tables to an injection's initialiser; true when it accepted them.
fn attach(initialize: InitializeInjection) -> bool {
    slots();
    // SAFETY: the initialiser follows the NVTX injection protocol; our getter and tables are valid forever.
    unsafe { initialize(get_export_table) != 0 }
}

/// Loads the profiler's injection library named by `NVTX_INJECTION64_PATH`, once.
fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| {
        let Some(path) = std::env::var_os("NVTX_INJECTION64_PATH") else { return false };
        let Ok(path) = CString::new(path.as_encoded_bytes()) else { return false };
        // SAFETY: dlopen/dlsym with valid C strings; the library stays loaded for the process.
        let init = unsafe {
            let handle = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL);
            if handle.is_null() {
                return false;
            }
            libc::dlsym(handle, c"InitializeInjectionNvtx2".as_ptr())
        };
        if init.is_null() {
            return false;
        }
        // SAFETY: the symbol is the injection's initialiser, of this signature.
        attach(unsafe { std::mem::transmute::<*mut c_void, InitializeInjection>(init) })
    })
}

fn core_slot(id: usize) -> FunctionPointer {
    slots().slots[MODULE_CORE as usize][id].load(Ordering::Relaxed)
}

/// Opens a range named `name` on this thread.
pub fn push(name: &CStr) {
    let f = core_slot(CBID_RANGE_PUSH_A);
    if !f.is_null() {
        // SAFETY: an injection wrote an `int (*)(const char*)` handler into this slot.
        unsafe {
            std::mem::transmute::<FunctionPointer, unsafe extern "C" fn(*const c_char) -> c_int>(f)(name.as_ptr())
        };
    }
}

/// Closes this thread's innermost range.
pub fn pop() {
    let f = core_slot(CBID_RANGE_POP);
    if !f.is_null() {
        // SAFETY: an injection wrote an `int (*)(void)` handler into this slot.
        unsafe { std::mem::transmute::<FunctionPointer, unsafe extern "C" fn() -> c_int>(f)() };
    }
}

/// The tracing layer: a range from each span's enter to its exit, named after the span.
pub struct NvtxLayer;

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for NvtxLayer {
    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if enabled()
            && let Some(span) = ctx.span(id)
            && let Ok(name) = CString::new(span.name())
        {
            push(&name);
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if enabled() && ctx.span(id).is_some_and(|s| !s.name().contains('\0')) {
            pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

    unsafe extern "C" fn record_push(name: *const c_char) -> c_int {
        // SAFETY: push passes a valid C string.
        let name = unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned();
        EVENTS.lock().unwrap().push(format!("push {name}"));
        0
    }

    unsafe extern "C" fn record_pop() -> c_int {
        EVENTS.lock().unwrap().push("pop".into());
        0
    }

    /// A stand-in for a profiler's injection library, doing what one does: fetch the callbacks table, ask for the
    /// core module's function table, write handlers into the push and pop slots.
    unsafe extern "C" fn fake_injection(get: GetExportTable) -> c_int {
        // SAFETY: the protocol as an injection library follows it.
        unsafe {
            let callbacks = get(ETID_CALLBACKS) as *const CallbacksTable;
            let (mut table, mut size): (FunctionTable, c_uint) = (std::ptr::null_mut(), 0);
            if callbacks.is_null() || ((*callbacks).get_module_function_table)(1, &mut table, &mut size) == 0 {
                return 0;
            }
            if ((*callbacks).get_module_function_table)(99, &mut table.clone(), &mut size.clone()) != 0 {
                return 0;
            }
            assert!(size as usize > CBID_RANGE_POP);
            (**table.add(CBID_RANGE_PUSH_A)).store(record_push as *mut c_void, Ordering::SeqCst);
            (**table.add(CBID_RANGE_POP)).store(record_pop as *mut c_void, Ordering::SeqCst);
            let version = get(ETID_VERSIONINFO) as *const VersionInfoTable;
            assert_eq!((*version).version, 3);
            assert!(get(2).is_null());
        }
        1
    }

    #[test]
    fn an_injection_receives_the_slots_and_ranges_reach_it() {
        push(c"before");
        assert!(EVENTS.lock().unwrap().is_empty(), "no injection: ranges are no-ops");
        assert!(attach(fake_injection));
        push(c"outer");
        push(c"inner");
        pop();
        pop();
        assert_eq!(*EVENTS.lock().unwrap(), ["push outer", "push inner", "pop", "pop"]);
    }
}
