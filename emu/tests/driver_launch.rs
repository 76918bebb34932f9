//! Kernel launches through the exported calls: a PTX vector add loaded, launched, captured into a graph and
//! replayed; a module variable placed with its initial value; and the launch checks of the real driver.

mod common;

use common::{VADD_PTX as PTX, ok, setup};
use glov_emu::driver::CUresult;
use glov_emu::driver::capture::*;
use glov_emu::driver::launch::cuLaunchKernel;
use glov_emu::driver::mem::*;
use glov_emu::driver::module::*;
use glov_emu::driver::stream::*;
use std::ffi::{CString, c_void};
use std::ptr::null_mut;

const N: usize = 1000;

struct Fixture {
    stream: *mut c_void,
    vadd: *mut c_void,
    a: u64,
    b: u64,
    out: u64,
}

fn function(module: *mut c_void, name: &str) -> (CUresult, *mut c_void) {
    let mut f = null_mut();
    let name = CString::new(name).unwrap();
    let r = unsafe { cuModuleGetFunction(&mut f, module, name.as_ptr()) };
    (r, f)
}

fn load() -> *mut c_void {
    let text = CString::new(PTX).unwrap();
    let mut module = null_mut();
    ok(unsafe { cuModuleLoadData(&mut module, text.as_ptr() as *const c_void) });
    module
}

fn upload(dst: u64, values: &[f32]) {
    ok(unsafe { cuMemcpyHtoD_v2(dst, values.as_ptr() as *const c_void, size_of_val(values)) });
}

fn download(src: u64) -> Vec<f32> {
    let mut out = vec![0f32; N];
    ok(unsafe { cuMemcpyDtoH_v2(out.as_mut_ptr() as *mut c_void, src, N * 4) });
    out
}

fn fixture() -> Fixture {
    setup();
    let module = load();
    let (r, vadd) = function(module, "vadd");
    ok(r);
    let mut stream = null_mut();
    ok(unsafe { cuStreamCreate(&mut stream, 1) });
    let mut buffers = [0u64; 3];
    for b in &mut buffers {
        ok(unsafe { cuMemAlloc_v2(b, N * 4) });
    }
    let [a, b, out] = buffers;
    upload(a, &(0..N).map(|i| i as f32).collect::<Vec<_>>());
    upload(b, &vec![0.5; N]);
    Fixture { stream, vadd, a, b, out }
}

impl Fixture {
    fn launch(&self, grid: [u32; 3], block: [u32; 3], shared: u32) -> CUresult {
        let (mut a, mut b, mut out, mut n) = (self.a, self.b, self.out, N as u32);
        let mut params = [
            &mut a as *mut u64 as *mut c_void,
            &mut b as *mut u64 as *mut c_void,
            &mut out as *mut u64 as *mut c_void,
            &mut n as *mut u32 as *mut c_void,
        ];
        unsafe {
            cuLaunchKernel(
                self.vadd,
                grid[0],
                grid[1],
                grid[2],
                block[0],
                block[1],
                block[2],
                shared,
                self.stream,
                params.as_mut_ptr(),
                null_mut(),
            )
        }
    }
}

#[test]
fn a_vector_add_runs_and_replays_from_a_graph() {
    let f = fixture();
    ok(f.launch([4, 1, 1], [256, 1, 1], 0));
    ok(cuStreamSynchronize(f.stream));
    assert_eq!(download(f.out), (0..N).map(|i| i as f32 + 0.5).collect::<Vec<_>>());

    ok(cuMemsetD32_v2(f.out, 0, N));
    ok(unsafe { cuStreamBeginCapture_v2(f.stream, 1) });
    ok(f.launch([4, 1, 1], [256, 1, 1], 0));
    let mut graph = null_mut();
    ok(unsafe { cuStreamEndCapture(f.stream, &mut graph) });
    assert_eq!(download(f.out), vec![0.0; N], "recorded, not run");
    let mut exec = null_mut();
    ok(unsafe { cuGraphInstantiateWithFlags(&mut exec, graph, 0) });
    upload(f.b, &vec![2.0; N]);
    ok(unsafe { cuGraphLaunch(exec, f.stream) });
    ok(cuStreamSynchronize(f.stream));
    assert_eq!(download(f.out), (0..N).map(|i| i as f32 + 2.0).collect::<Vec<_>>());
    ok(cuGraphExecDestroy(exec));
    ok(cuGraphDestroy(graph));
}

#[test]
fn a_module_variable_starts_with_its_initial_value() {
    let f = fixture();
    let (r, read_counter) = function(load(), "read_counter");
    ok(r);
    let mut out = f.out;
    let mut params = [&mut out as *mut u64 as *mut c_void];
    ok(unsafe { cuLaunchKernel(read_counter, 1, 1, 1, 1, 1, 1, 0, f.stream, params.as_mut_ptr(), null_mut()) });
    ok(cuStreamSynchronize(f.stream));
    let mut value = 0u32;
    ok(unsafe { cuMemcpyDtoH_v2(&mut value as *mut u32 as *mut c_void, f.out, 4) });
    assert_eq!(value, 7);
}

#[test]
fn launches_the_driver_would_refuse_are_refused() {
    let f = fixture();
    assert_eq!(f.launch([1, 1, 1], [1025, 1, 1], 0), CUresult::INVALID_VALUE, "1025 threads");
    assert_eq!(f.launch([1, 1, 1], [512, 1, 1], 0), CUresult::INVALID_VALUE, "over .maxntid 256");
    assert_eq!(f.launch([1, 1, 1], [1, 1, 65], 0), CUresult::INVALID_VALUE, "block.z 65");
    assert_eq!(f.launch([1, 65536, 1], [256, 1, 1], 0), CUresult::INVALID_VALUE, "grid.y 65536");
    assert_eq!(f.launch([0, 1, 1], [256, 1, 1], 0), CUresult::INVALID_VALUE, "an empty grid");
    assert_eq!(f.launch([4, 1, 1], [256, 1, 1], (48 << 10) + 1), CUresult::INVALID_VALUE, "over 48 KiB");
    let mut limit = 0;
    ok(unsafe { cuFuncGetAttribute(&mut limit, 8, f.vadd) });
    assert_eq!(limit, 48 << 10);
    assert_eq!(cuFuncSetAttribute(f.vadd, 8, (227 << 10) + 1), CUresult::INVALID_VALUE, "over the opt-in limit");
    ok(cuFuncSetAttribute(f.vadd, 8, 100 << 10));
    ok(f.launch([4, 1, 1], [256, 1, 1], 100 << 10));
    assert_eq!(f.launch([4, 1, 1], [256, 1, 1], (100 << 10) + 1), CUresult::INVALID_VALUE);
    let mut threads = 0;
    ok(unsafe { cuFuncGetAttribute(&mut threads, 0, f.vadd) });
    assert_eq!(threads, 256);
    let mut regs = 0;
    ok(unsafe { cuFuncGetAttribute(&mut regs, 4, f.vadd) });
    assert!(regs > 0);
    let module = load();
    assert_eq!(function(module, "no_such_kernel").0, CUresult::NOT_FOUND);
    ok(cuModuleUnload(module));
    assert_eq!(function(module, "vadd").0, CUresult::INVALID_HANDLE, "an unloaded module");
    assert_eq!(function(null_mut(), "vadd").0, CUresult::INVALID_HANDLE);
}
