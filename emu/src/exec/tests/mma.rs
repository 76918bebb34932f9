//! `mma.sync.aligned.m16n8k16` against a plain triple loop: the test packs A, B and C into each lane's
//! registers by the PTX ISA's fragment layouts (groupID g = lane >> 2, threadID_in_group t = lane % 4) and
//! unpacks D the same way.

use super::kit::*;
use crate::exec::FaultKind;

fn kernel(ty: &str) -> crate::ir::Module {
    ptx(&format!(
        "
.visible .entry mma_one(.param .u64 frag, .param .u64 out)
{{
\t.reg .b32 %r<8>;
\t.reg .f32 %f<9>;
\t.reg .b64 %rd<8>;
\tmov.u32 %r0, %tid.x;
\tld.param.u64 %rd1, [frag];
\tmul.wide.u32 %rd2, %r0, 40;
\tadd.s64 %rd3, %rd1, %rd2;
\tld.global.u32 %r1, [%rd3];
\tld.global.u32 %r2, [%rd3+4];
\tld.global.u32 %r3, [%rd3+8];
\tld.global.u32 %r4, [%rd3+12];
\tld.global.u32 %r5, [%rd3+16];
\tld.global.u32 %r6, [%rd3+20];
\tld.global.f32 %f1, [%rd3+24];
\tld.global.f32 %f2, [%rd3+28];
\tld.global.f32 %f3, [%rd3+32];
\tld.global.f32 %f4, [%rd3+36];
\tmma.sync.aligned.m16n8k16.row.col.f32.{ty}.{ty}.f32 {{%f5, %f6, %f7, %f8}}, {{%r1, %r2, %r3, %r4}}, {{%r5, %r6}}, {{%f1, %f2, %f3, %f4}};
\tld.param.u64 %rd4, [out];
\tmul.wide.u32 %rd5, %r0, 16;
\tadd.s64 %rd6, %rd4, %rd5;
\tst.global.v4.f32 [%rd6], {{%f5, %f6, %f7, %f8}};
\tret;
}}
"
    ))
}

/// Values k / 16 for k in -40..40 (exact in bf16 and f16), from a simple generator.
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((s >> 16) % 80) as f32 / 16.0 - 2.5
        })
        .collect()
}

fn bf16_bits(v: f32) -> u32 {
    v.to_bits() >> 16
}

/// f16 bits of a normal (or zero) value exact in f16.
fn f16_bits(v: f32) -> u32 {
    if v == 0.0 {
        return 0;
    }
    let b = v.to_bits();
    let exp = ((b >> 23) & 0xFF) as i32 - 127 + 15;
    ((b >> 16) & 0x8000) | ((exp as u32) << 10) | ((b >> 13) & 0x3FF)
}

fn check(ty: &str, bits: fn(f32) -> u32) {
    let (a, b) = (values(16 * 16, 1), values(16 * 8, 2));
    let c: Vec<f32> = values(16 * 8, 3).iter().map(|v| v * 3.3).collect();
    let (am, bm, cm) =
        (|r: usize, k: usize| a[r * 16 + k], |k: usize, n: usize| b[k * 8 + n], |r: usize, n: usize| c[r * 8 + n]);
    let pair = |lo: f32, hi: f32| bits(lo) | bits(hi) << 16;
    let mut frag = Vec::new();
    for lane in 0..32 {
        let (g, t) = (lane >> 2, lane % 4);
        frag.extend([
            pair(am(g, 2 * t), am(g, 2 * t + 1)),
            pair(am(g + 8, 2 * t), am(g + 8, 2 * t + 1)),
            pair(am(g, 2 * t + 8), am(g, 2 * t + 9)),
            pair(am(g + 8, 2 * t + 8), am(g + 8, 2 * t + 9)),
            pair(bm(2 * t, g), bm(2 * t + 1, g)),
            pair(bm(2 * t + 8, g), bm(2 * t + 9, g)),
            cm(g, 2 * t).to_bits(),
            cm(g, 2 * t + 1).to_bits(),
            cm(g + 8, 2 * t).to_bits(),
            cm(g + 8, 2 * t + 1).to_bits(),
        ]);
    }
    let d = Device::new();
    let frag_at = d.alloc(frag.len() as u64 * 4, false);
    d.memory.write(frag_at, &frag.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let out = d.alloc(32 * 16, false);
    let stats = d
        .launch(&kernel(ty), [1, 1, 1], [32, 1, 1], &[frag_at, out], &options())
        .unwrap_or_else(|f| panic!("{}", f.report));
    assert_eq!(stats.warp_insts[super::class(crate::ir::Class::Tensor)], 1);
    let got: Vec<f32> = d.read_u32(out, 128).into_iter().map(f32::from_bits).collect();
    for lane in 0..32 {
        let (g, t) = (lane >> 2, lane % 4);
        for (i, (r, n)) in [(g, 2 * t), (g, 2 * t + 1), (g + 8, 2 * t), (g + 8, 2 * t + 1)].into_iter().enumerate() {
            let mut dot = 0f32;
            for k in 0..16 {
                dot += am(r, k) * bm(k, n);
            }
            assert_eq!(got[lane * 4 + i], cm(r, n) + dot, "{ty}: D[{r}][{n}] from lane {lane}");
        }
    }
}

#[test]
fn mma_bf16_matches_a_triple_loop() {
    check("bf16", bf16_bits);
}

#[test]
fn mma_f16_matches_a_triple_loop() {
    check("f16", f16_bits);
}

#[test]
fn mma_by_part_of_a_warp_is_a_synccheck_error() {
    let d = Device::new();
    let frag = d.alloc(32 * 40, true);
    let out = d.alloc(32 * 16, false);
    expect_fault(
        d.launch(&kernel("bf16"), [1, 1, 1], [24, 1, 1], &[frag, out], &options()),
        FaultKind::Sync,
        &["names lanes 24-31 that do not exist", "mma.sync.aligned.m16n8k16"],
    );
}
