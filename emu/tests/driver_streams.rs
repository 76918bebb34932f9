//! Streams run late, as on a GPU: work queued on a stream runs only when something waits for it, in stream order,
//! and a download into pinned memory holds NaN bytes until then. The tests share one driver and run in parallel:
//! none synchronises the whole context, which would run the others' queued work.

mod common;

use common::{ok, setup};
use glov_emu::driver::CUresult;
use glov_emu::driver::mem::*;
use glov_emu::driver::stream::*;
use std::ffi::c_void;
use std::ptr::null_mut;

fn stream(flags: u32) -> *mut c_void {
    let mut s = null_mut();
    ok(unsafe { cuStreamCreate(&mut s, flags) });
    s
}

fn alloc(bytes: usize) -> u64 {
    let mut p = 0;
    ok(unsafe { cuMemAlloc_v2(&mut p, bytes) });
    p
}

fn pinned(bytes: usize) -> &'static mut [u8] {
    let mut p: *mut c_void = null_mut();
    ok(unsafe { cuMemAllocHost_v2(&mut p, bytes) });
    unsafe { std::slice::from_raw_parts_mut(p as *mut u8, bytes) }
}

/// A synchronous download: on the legacy stream, which does not wait for non-blocking streams.
fn download(src: u64, bytes: usize) -> Vec<u8> {
    let mut out = vec![0u8; bytes];
    ok(unsafe { cuMemcpyDtoH_v2(out.as_mut_ptr() as *mut c_void, src, bytes) });
    out
}

#[test]
fn queued_work_runs_when_a_query_says_not_ready_and_is_done_by_the_next() {
    setup();
    let (s, a) = (stream(1), alloc(16));
    ok(cuMemsetD8_v2(a, 0, 16));
    ok(cuMemsetD8Async(a, 7, 16, s));
    let out = pinned(16);
    out.fill(1);
    ok(unsafe { cuMemcpyDtoHAsync_v2(out.as_mut_ptr() as *mut c_void, a, 16, s) });
    assert_eq!(out, &[0xFF; 16], "a pinned destination holds NaN bytes until its copy runs");
    assert_eq!(download(a, 16), vec![0; 16], "the non-blocking stream's fill has not run");
    assert_eq!(cuStreamQuery(s), CUresult::NOT_READY);
    ok(cuStreamQuery(s));
    assert_eq!(out, &[7; 16]);
    ok(unsafe { cuMemFreeHost(out.as_mut_ptr() as *mut c_void) });
}

#[test]
fn an_event_synchronisation_runs_only_the_work_before_its_record() {
    setup();
    let (s, a) = (stream(1), alloc(4));
    let mut e = null_mut();
    ok(unsafe { cuEventCreate(&mut e, 2) });
    ok(cuMemsetD8Async(a, 1, 4, s));
    ok(cuEventRecord(e, s));
    ok(cuMemsetD8Async(a, 2, 4, s));
    ok(cuEventSynchronize(e));
    ok(cuEventQuery(e));
    assert_eq!(download(a, 4), vec![1; 4]);
    ok(cuStreamSynchronize(s));
    assert_eq!(download(a, 4), vec![2; 4]);
    ok(cuEventRecord(e, s));
    assert_eq!(cuEventQuery(e), CUresult::NOT_READY, "a record waiting in the queue");
    ok(cuEventQuery(e));
    ok(cuEventDestroy_v2(e));
}

#[test]
fn the_legacy_stream_waits_for_blocking_streams_and_not_for_non_blocking_ones() {
    setup();
    let (blocking, non_blocking, a, b) = (stream(0), stream(1), alloc(4), alloc(4));
    ok(cuMemsetD8_v2(b, 0, 4));
    ok(cuMemsetD8Async(a, 3, 4, blocking));
    ok(cuMemsetD8Async(b, 4, 4, non_blocking));
    assert_eq!(download(a, 4), vec![3; 4]);
    assert_eq!(download(b, 4), vec![0; 4]);
    ok(cuStreamSynchronize(non_blocking));
    assert_eq!(download(b, 4), vec![4; 4]);
}

#[test]
fn a_download_into_pageable_memory_returns_once_it_has_run() {
    setup();
    let (s, a) = (stream(1), alloc(8));
    ok(cuMemsetD8Async(a, 9, 8, s));
    let mut out = vec![0u8; 8];
    ok(unsafe { cuMemcpyDtoHAsync_v2(out.as_mut_ptr() as *mut c_void, a, 8, s) });
    assert_eq!(out, vec![9; 8]);
}

#[test]
fn freeing_pinned_memory_a_queued_copy_still_uses_is_refused() {
    setup();
    let (s, a) = (stream(1), alloc(8));
    let src = pinned(8);
    src.fill(5);
    ok(unsafe { cuMemcpyHtoDAsync_v2(a, src.as_ptr() as *const c_void, 8, s) });
    assert_eq!(unsafe { cuMemFreeHost(src.as_mut_ptr() as *mut c_void) }, CUresult::INVALID_VALUE);
    ok(cuStreamSynchronize(s));
    ok(unsafe { cuMemFreeHost(src.as_mut_ptr() as *mut c_void) });
    assert_eq!(download(a, 8), vec![5; 8]);
}
