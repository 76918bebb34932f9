//! The exported driver calls, called in-process as cudarc calls them: device queries, memory, events, capture
//! rules and graph replay. (Kernel launches: `driver_launch.rs`; a faulting kernel, which poisons the context:
//! `driver_fault.rs`.)

mod common;

use common::{ok, setup};
use glov_emu::driver::CUresult;
use glov_emu::driver::capture::*;
use glov_emu::driver::context::*;
use glov_emu::driver::device::*;
use glov_emu::driver::error::*;
use glov_emu::driver::mem::*;
use glov_emu::driver::stream::*;
use std::ffi::{CStr, c_void};
use std::ptr::null_mut;

/// `CUstreamCaptureMode` and `CUstreamCaptureStatus`.
const THREAD_LOCAL: u32 = 1;
const STATUS_INVALIDATED: u32 = 2;

fn stream() -> *mut c_void {
    let mut s = null_mut();
    ok(unsafe { cuStreamCreate(&mut s, 1) });
    s
}

fn alloc(bytes: usize) -> u64 {
    let mut p = 0;
    ok(unsafe { cuMemAlloc_v2(&mut p, bytes) });
    p
}

fn download(src: u64, bytes: usize) -> Vec<u8> {
    let mut out = vec![0u8; bytes];
    ok(unsafe { cuMemcpyDtoH_v2(out.as_mut_ptr() as *mut c_void, src, bytes) });
    out
}

#[test]
fn the_device_poses_as_an_h100() {
    setup();
    let mut version = 0;
    ok(unsafe { cuDriverGetVersion(&mut version) });
    assert_eq!(version, 13000);
    let (mut count, mut dev) = (0, -1);
    ok(unsafe { cuDeviceGetCount(&mut count) });
    ok(unsafe { cuDeviceGet(&mut dev, 0) });
    assert_eq!((count, dev), (1, 0));
    assert_eq!(unsafe { cuDeviceGet(&mut dev, 1) }, CUresult::INVALID_DEVICE);
    let attribute = |attrib: u32| {
        let mut v = 0;
        ok(unsafe { cuDeviceGetAttribute(&mut v, attrib, 0) });
        v
    };
    assert_eq!((attribute(75), attribute(76)), (9, 0));
    assert_eq!(attribute(16), 132);
    assert_eq!(attribute(1), 1024);
    assert_eq!(attribute(8), 48 << 10);
    assert_eq!(attribute(97), 227 << 10);
    assert_eq!(attribute(10), 32);
    assert_eq!(attribute(38), 50 << 20);
    let mut v = 0;
    assert_eq!(unsafe { cuDeviceGetAttribute(&mut v, 9999, 0) }, CUresult::INVALID_VALUE);
    assert_eq!(unsafe { cuDeviceGetAttribute(null_mut(), 75, 0) }, CUresult::INVALID_VALUE);
    let mut name = [0i8; 128];
    ok(unsafe { cuDeviceGetName(name.as_mut_ptr(), name.len() as i32, 0) });
    let name = unsafe { CStr::from_ptr(name.as_ptr()) }.to_str().unwrap().to_string();
    assert!(name.contains("glov-emu") && name.contains("9.0"), "{name}");
    let mut short = [1i8; 4];
    ok(unsafe { cuDeviceGetName(short.as_mut_ptr(), 4, 0) });
    assert_eq!(short[3], 0);
    let mut total = 0;
    ok(unsafe { cuDeviceTotalMem_v2(&mut total, 0) });
    assert_eq!(total, 4 << 30);
}

#[test]
fn error_names_and_strings() {
    let mut s = std::ptr::null();
    ok(unsafe { cuGetErrorName(CUresult::ILLEGAL_ADDRESS, &mut s) });
    assert_eq!(unsafe { CStr::from_ptr(s) }.to_str().unwrap(), "CUDA_ERROR_ILLEGAL_ADDRESS");
    ok(unsafe { cuGetErrorString(CUresult::STREAM_CAPTURE_UNSUPPORTED, &mut s) });
    assert_eq!(unsafe { CStr::from_ptr(s) }.to_str().unwrap(), "operation not permitted when stream is capturing");
    assert_eq!(unsafe { cuGetErrorName(CUresult(12345), &mut s) }, CUresult::INVALID_VALUE);
    assert_eq!(unsafe { cuGetErrorName(CUresult::SUCCESS, null_mut()) }, CUresult::INVALID_VALUE);
}

#[test]
fn a_thread_without_the_context_is_refused() {
    setup();
    std::thread::spawn(|| {
        let mut p = 0;
        assert_eq!(unsafe { cuMemAlloc_v2(&mut p, 16) }, CUresult::INVALID_CONTEXT);
        let mut ctx = null_mut();
        ok(unsafe { cuCtxGetCurrent(&mut ctx) });
        assert!(ctx.is_null());
    })
    .join()
    .unwrap();
}

#[test]
fn copies_and_fills_round_trip() {
    setup();
    let s = stream();
    let (a, b) = (alloc(1000), alloc(1000));
    let data: Vec<u8> = (0..1000).map(|i| (i * 7) as u8).collect();
    ok(unsafe { cuMemcpyHtoD_v2(a, data.as_ptr() as *const c_void, 1000) });
    assert_eq!(download(a, 1000), data);
    ok(cuMemcpyDtoDAsync_v2(b, a, 1000, s));
    let mut back = vec![0u8; 1000];
    ok(unsafe { cuMemcpyDtoHAsync_v2(back.as_mut_ptr() as *mut c_void, b, 1000, s) });
    ok(cuStreamSynchronize(s));
    assert_eq!(back, data);
    ok(cuMemsetD8_v2(a, 0xAB, 10));
    ok(cuMemsetD16Async(a + 10, 0x1234, 3, s));
    ok(cuMemsetD32Async(a + 16, 0xDEADBEEF, 2, s));
    ok(cuStreamSynchronize(s));
    let got = download(a, 30);
    assert_eq!(&got[..10], &[0xAB; 10]);
    assert_eq!(&got[10..16], &[0x34, 0x12, 0x34, 0x12, 0x34, 0x12]);
    assert_eq!(&got[16..24], &[0xEF, 0xBE, 0xAD, 0xDE, 0xEF, 0xBE, 0xAD, 0xDE]);
    assert_eq!(got[24], data[24]);
    assert_eq!(cuMemsetD32_v2(a + 2, 0, 1), CUresult::INVALID_VALUE, "a misaligned 32-bit fill");
    // Overlapping copy inside one allocation moves like memmove.
    ok(unsafe { cuMemcpyHtoD_v2(a, data.as_ptr() as *const c_void, 1000) });
    ok(cuMemcpyDtoD_v2(a + 1, a, 999));
    assert_eq!(&download(a, 1000)[1..], &data[..999]);
    ok(cuMemFree_v2(a));
    ok(cuMemFree_v2(b));
    assert_eq!(cuMemFree_v2(a), CUresult::INVALID_VALUE, "a second free");
    ok(cuStreamDestroy_v2(s));
    assert_eq!(cuStreamDestroy_v2(s), CUresult::INVALID_HANDLE);
}

#[test]
fn copies_outside_an_allocation_are_invalid() {
    setup();
    let a = alloc(256);
    let mut host = vec![0u8; 512];
    assert_eq!(unsafe { cuMemcpyDtoH_v2(host.as_mut_ptr() as *mut c_void, a, 257) }, CUresult::INVALID_VALUE);
    assert_eq!(unsafe { cuMemcpyHtoD_v2(a + 200, host.as_ptr() as *const c_void, 100) }, CUresult::INVALID_VALUE);
    assert_eq!(unsafe { cuMemcpyHtoD_v2(a, null_mut(), 16) }, CUresult::INVALID_VALUE);
    assert_eq!(cuMemsetD8_v2(a + 256, 0, 1), CUresult::INVALID_VALUE);
    assert_eq!(unsafe { cuMemAlloc_v2(null_mut(), 16) }, CUresult::INVALID_VALUE);
    let mut p = 0;
    assert_eq!(unsafe { cuMemAlloc_v2(&mut p, 64 << 30) }, CUresult::OUT_OF_MEMORY);
    ok(cuMemFree_v2(a));
}

#[test]
fn memory_info_follows_allocations() {
    setup();
    let info = || {
        let (mut free, mut total) = (0, 0);
        ok(unsafe { cuMemGetInfo_v2(&mut free, &mut total) });
        (free, total)
    };
    let (_, total) = info();
    assert_eq!(total, 4 << 30);
    let a = alloc(64 << 20);
    assert!(info().0 <= total - (64 << 20));
    ok(cuMemFree_v2(a));
}

#[test]
fn events_time_host_work() {
    setup();
    let s = stream();
    let (mut start, mut end, mut untimed) = (null_mut(), null_mut(), null_mut());
    ok(unsafe { cuEventCreate(&mut start, 0) });
    ok(unsafe { cuEventCreate(&mut end, 0) });
    ok(unsafe { cuEventCreate(&mut untimed, 2) });
    let mut ms = 0.0f32;
    assert_eq!(unsafe { cuEventElapsedTime_v2(&mut ms, start, end) }, CUresult::INVALID_HANDLE, "never recorded");
    ok(cuEventRecord(start, s));
    ok(cuEventSynchronize(start));
    std::thread::sleep(std::time::Duration::from_millis(20));
    ok(cuEventRecord(end, s));
    ok(cuEventSynchronize(end));
    ok(cuEventQuery(end));
    ok(unsafe { cuEventElapsedTime_v2(&mut ms, start, end) });
    assert!((20.0..2000.0).contains(&ms), "{ms} ms");
    ok(unsafe { cuEventElapsedTime(&mut ms, start, end) });
    ok(cuEventRecord(untimed, s));
    assert_eq!(unsafe { cuEventElapsedTime_v2(&mut ms, start, untimed) }, CUresult::INVALID_HANDLE);
    for e in [start, end, untimed] {
        ok(cuEventDestroy_v2(e));
    }
    assert_eq!(cuEventRecord(start, s), CUresult::INVALID_HANDLE);
}

#[test]
fn a_synchronising_call_during_capture_fails_and_invalidates_it() {
    setup();
    let s = stream();
    let dst = alloc(16);
    let host = [0u8; 16];
    let forbidden: [&dyn Fn() -> CUresult; 5] = [
        &|| cuStreamSynchronize(s),
        &|| cuCtxSynchronize(),
        &|| {
            let mut p = 0;
            unsafe { cuMemAlloc_v2(&mut p, 16) }
        },
        &|| unsafe { cuMemcpyHtoD_v2(dst, host.as_ptr() as *const c_void, 16) },
        // An asynchronous copy from pageable memory on the capturing stream.
        &|| unsafe { cuMemcpyHtoDAsync_v2(dst, host.as_ptr() as *const c_void, 16, s) },
    ];
    for call in forbidden {
        ok(unsafe { cuStreamBeginCapture_v2(s, THREAD_LOCAL) });
        assert_eq!(call(), CUresult::STREAM_CAPTURE_UNSUPPORTED);
        let mut status = 0;
        ok(unsafe { cuStreamIsCapturing(s, &mut status) });
        assert_eq!(status, STATUS_INVALIDATED);
        assert_eq!(cuMemsetD8Async(dst, 0, 1, s), CUresult::STREAM_CAPTURE_INVALIDATED);
        let mut graph = null_mut();
        assert_eq!(unsafe { cuStreamEndCapture(s, &mut graph) }, CUresult::STREAM_CAPTURE_INVALIDATED);
        assert!(graph.is_null());
    }
    // The stream is usable again once the capture ended.
    ok(cuStreamSynchronize(s));
    ok(cuMemFree_v2(dst));
}

#[test]
fn another_thread_may_synchronise_during_a_thread_local_capture() {
    setup();
    let s = stream();
    ok(unsafe { cuStreamBeginCapture_v2(s, THREAD_LOCAL) });
    std::thread::spawn(|| {
        setup();
        ok(cuCtxSynchronize());
    })
    .join()
    .unwrap();
    let mut graph = null_mut();
    ok(unsafe { cuStreamEndCapture(s, &mut graph) });
    ok(cuGraphDestroy(graph));
}

#[test]
fn a_graph_replays_fills_and_copies_in_order() {
    setup();
    let s = stream();
    let (a, b) = (alloc(64), alloc(64));
    ok(cuMemsetD8_v2(a, 0, 64));
    ok(cuMemsetD8_v2(b, 0, 64));
    let mut pinned: *mut c_void = null_mut();
    ok(unsafe { cuMemHostAlloc(&mut pinned, 64, 0) });
    let mut out: *mut c_void = null_mut();
    ok(unsafe { cuMemAllocHost_v2(&mut out, 64) });
    let pinned_bytes = unsafe { std::slice::from_raw_parts_mut(pinned as *mut u8, 64) };
    pinned_bytes.fill(5);

    ok(unsafe { cuStreamBeginCapture_v2(s, THREAD_LOCAL) });
    ok(cuMemsetD32Async(a, 0x01010101, 16, s));
    ok(unsafe { cuMemcpyHtoDAsync_v2(a + 32, pinned, 32, s) });
    ok(cuMemcpyDtoDAsync_v2(b, a, 64, s));
    ok(unsafe { cuMemcpyDtoHAsync_v2(out, b, 64, s) });
    let mut graph = null_mut();
    ok(unsafe { cuStreamEndCapture(s, &mut graph) });
    assert_eq!(download(a, 64), vec![0; 64], "recorded, not run");

    let mut exec = null_mut();
    ok(unsafe { cuGraphInstantiateWithFlags(&mut exec, graph, 0) });
    ok(cuGraphDestroy(graph));
    ok(unsafe { cuGraphLaunch(exec, s) });
    ok(cuStreamSynchronize(s));
    let expected: Vec<u8> = [[1u8; 32], [5u8; 32]].concat();
    assert_eq!(download(b, 64), expected);
    assert_eq!(unsafe { std::slice::from_raw_parts(out as *const u8, 64) }, &expected[..]);
    // A replay reads the pinned source as it is then.
    pinned_bytes.fill(9);
    ok(unsafe { cuGraphLaunch(exec, s) });
    ok(cuStreamSynchronize(s));
    assert_eq!(&download(b, 64)[32..], &[9u8; 32]);
    ok(cuGraphExecDestroy(exec));
    assert_eq!(unsafe { cuGraphLaunch(exec, s) }, CUresult::INVALID_HANDLE);
    ok(unsafe { cuMemFreeHost(pinned) });
    ok(unsafe { cuMemFreeHost(out) });
    assert_eq!(unsafe { cuMemFreeHost(out) }, CUresult::INVALID_VALUE);
}

#[test]
fn modules_the_device_cannot_run_are_refused() {
    use glov_emu::driver::module::cuModuleLoadData;
    setup();
    let load = |image: &[u8]| {
        let mut module = null_mut();
        unsafe { cuModuleLoadData(&mut module, image.as_ptr() as *const c_void) }
    };
    let elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0";
    assert_eq!(load(elf), CUresult::NO_BINARY_FOR_GPU, "a cubin");
    let newer_isa = b".version 9.1\n.target sm_80\n.address_size 64\n\0";
    assert_eq!(load(newer_isa), CUresult::UNSUPPORTED_PTX_VERSION);
    let newer_target = b".version 9.0\n.target sm_100\n.address_size 64\n\0";
    assert_eq!(load(newer_target), CUresult::NO_BINARY_FOR_GPU);
    let other_arch = b".version 8.0\n.target sm_86a\n.address_size 64\n\0";
    assert_eq!(load(other_arch), CUresult::NO_BINARY_FOR_GPU);
    assert_eq!(load(b"\0"), CUresult::INVALID_PTX, "no .version");
    let unsupported =
        b".version 8.0\n.target sm_80\n.address_size 64\n.visible .entry k()\n{\n    frobnicate.b32 1;\n}\n\0";
    assert_eq!(load(unsupported), CUresult::INVALID_PTX, "an instruction the loader does not know");
    let mut module = null_mut();
    assert_eq!(unsafe { cuModuleLoadData(&mut module, std::ptr::null()) }, CUresult::INVALID_VALUE);
}

#[test]
fn a_relaxed_thread_may_allocate_during_its_capture() {
    setup();
    let s = stream();
    ok(unsafe { cuStreamBeginCapture_v2(s, THREAD_LOCAL) });
    let mut mode = 2;
    ok(unsafe { cuThreadExchangeStreamCaptureMode(&mut mode) });
    assert_eq!(mode, 0, "threads start in global mode");
    let p = alloc(64);
    ok(cuMemsetD8Async(p, 7, 64, s));
    let mut previous = mode;
    ok(unsafe { cuThreadExchangeStreamCaptureMode(&mut previous) });
    assert_eq!(previous, 2);
    assert_eq!(cuCtxSynchronize(), CUresult::STREAM_CAPTURE_UNSUPPORTED, "global again");
    let mut graph = null_mut();
    assert_eq!(unsafe { cuStreamEndCapture(s, &mut graph) }, CUresult::STREAM_CAPTURE_INVALIDATED);
    let mut bad = 3;
    assert_eq!(unsafe { cuThreadExchangeStreamCaptureMode(&mut bad) }, CUresult::INVALID_VALUE);
    ok(cuMemFree_v2(p));
}
