//! The L2 model's estimate of DRAM bytes, through the exported calls and the launch log: a vector add whose
//! buffers fit in the posed H100's 50 MiB L2 reads them from DRAM once; one whose buffers do not is read again.
//! One test in this file: the driver reads `GLOV_EMU_LAUNCH_LOG` once, at `cuInit`.

mod common;

use common::{VADD_PTX, ok, setup};
use glov_emu::driver::launch::cuLaunchKernel;
use glov_emu::driver::mem::*;
use glov_emu::driver::module::*;
use glov_emu::driver::stream::cuStreamSynchronize;
use std::ffi::{CString, c_void};
use std::ptr::null_mut;

fn vadd() -> *mut c_void {
    let text = CString::new(VADD_PTX).unwrap();
    let mut module = null_mut();
    ok(unsafe { cuModuleLoadData(&mut module, text.as_ptr() as *const c_void) });
    let mut f = null_mut();
    let name = CString::new("vadd").unwrap();
    ok(unsafe { cuModuleGetFunction(&mut f, module, name.as_ptr()) });
    f
}

/// Three buffers of `n` floats, written (so that initcheck is content).
fn buffers(n: usize) -> [u64; 3] {
    let mut out = [0u64; 3];
    for b in &mut out {
        ok(unsafe { cuMemAlloc_v2(b, n * 4) });
        ok(cuMemsetD32_v2(*b, 0, n));
    }
    out
}

fn launch(f: *mut c_void, [a, b, out]: [u64; 3], n: usize) {
    let (mut a, mut b, mut out, mut n32) = (a, b, out, n as u32);
    let mut params = [
        &mut a as *mut u64 as *mut c_void,
        &mut b as *mut u64 as *mut c_void,
        &mut out as *mut u64 as *mut c_void,
        &mut n32 as *mut u32 as *mut c_void,
    ];
    let grid = n.div_ceil(256) as u32;
    ok(unsafe { cuLaunchKernel(f, grid, 1, 1, 256, 1, 1, 0, null_mut(), params.as_mut_ptr(), null_mut()) });
    ok(cuStreamSynchronize(null_mut()));
}

#[test]
fn dram_bytes_follow_what_the_l2_holds() {
    let log = std::env::temp_dir().join(format!("glov-emu-l2-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&log);
    // SAFETY: set before any thread of this test process reads the environment (the driver reads it at cuInit).
    unsafe { std::env::set_var("GLOV_EMU_LAUNCH_LOG", &log) };
    setup();
    let f = vadd();
    const MIB: usize = 1 << 20;
    // 1 MiB per buffer (262,144 floats): 3 MiB in all, far below 50 MiB.
    let small = buffers(MIB / 4);
    launch(f, small, MIB / 4);
    launch(f, small, MIB / 4);
    // 20 MiB per buffer: 60 MiB in all, more than the L2.
    let large = buffers(20 * MIB / 4);
    launch(f, large, 20 * MIB / 4);
    launch(f, large, 20 * MIB / 4);
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let dram = |i: usize| {
        let d = &lines[i]["stats"]["dram"];
        (d["read_bytes"].as_u64().unwrap(), d["write_bytes"].as_u64().unwrap())
    };
    let requested = |i: usize| lines[i]["stats"]["global"]["load_bytes"].as_u64().unwrap();
    assert_eq!(lines.len(), 4);
    let m = MIB as u64;
    // Cold: both inputs come from DRAM; the output is written back.
    assert_eq!((requested(0), dram(0)), (2 * m, (2 * m, m)));
    // Again: everything is resident.
    assert_eq!(dram(1), (0, m));
    // 60 MiB: cold again; the small buffers stay resident (LRU) but are not read.
    assert_eq!(dram(2), (40 * m, 20 * m));
    // The second pass over 60 MiB: after the first, 63 MiB were used and 13 evicted, the small buffers' 3 (least
    // recently used) and then, within the launch, the lowest 10 MiB: the first half of `a` (allocated first). The
    // second pass reads exactly that half again.
    let (read, write) = dram(3);
    assert_eq!(write, 20 * m);
    assert_eq!(read, 10 * m, "the second pass reads part of its inputs again");
}
