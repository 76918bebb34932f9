//! Warp collectives written as PTX: `shfl.sync` in every mode with clamps and segment masks as the PTX ISA's
//! pseudo-code defines them (expected values worked out by hand below), `vote.sync`, `match.sync`, and the
//! synccheck faults of masks naming exited, absent or non-member lanes.

use super::kit::*;
use crate::exec::FaultKind;

/// One warp: lane l offers `l * 10 + 1` to `shfl.sync.<mode>.b32 d|p, v, b, c, mask` and stores `d` and `p` to
/// `out[2 l]`, `out[2 l + 1]`. Lanes at or past `exit_from` exit first.
fn shuffle(mode: &str, b: u32, c: u32, mask: u32, exit_from: u32) -> crate::ir::Module {
    ptx(&format!(
        "
.visible .entry shuffle(.param .u64 out)
{{
\t.reg .pred %p<3>;
\t.reg .b32 %r<8>;
\t.reg .b64 %rd<4>;
\tmov.u32 %r1, %tid.x;
\tsetp.ge.u32 %p2, %r1, {exit_from};
\t@%p2 exit;
\tmad.lo.u32 %r2, %r1, 10, 1;
\tshfl.sync.{mode}.b32 %r3|%p1, %r2, {b}, {c}, {mask};
\tselp.u32 %r4, 1, 0, %p1;
\tld.param.u64 %rd1, [out];
\tmul.wide.u32 %rd2, %r1, 8;
\tadd.s64 %rd3, %rd1, %rd2;
\tst.global.v2.u32 [%rd3], {{%r3, %r4}};
\tret;
}}
"
    ))
}

/// Runs `shuffle` and returns, per lane, (the lane whose value it got, the predicate).
fn run_shuffle(mode: &str, b: u32, c: u32) -> Vec<(u32, u32)> {
    let d = Device::new();
    let out = d.alloc(32 * 8, false);
    d.launch(&shuffle(mode, b, c, 0xFFFF_FFFF, 32), [1, 1, 1], [32, 1, 1], &[out], &options())
        .unwrap_or_else(|f| panic!("{}", f.report));
    d.read_u32(out, 64).chunks(2).map(|v| ((v[0] - 1) / 10, v[1])).collect()
}

/// `per_segment` repeated over the warp, each segment's lanes offset by its first lane.
fn segments(per_segment: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let n = per_segment.len() as u32;
    (0..32).map(|l| per_segment[(l % n) as usize]).enumerate().map(|(l, (s, p))| (l as u32 / n * n + s, p)).collect()
}

#[test]
fn shfl_down_up_bfly_and_idx_over_the_whole_warp() {
    // down 3, clamp 31: lanes 0-28 read l + 3; 29-31 would leave the warp and keep their own value.
    let down: Vec<(u32, u32)> = (0..32).map(|l| if l <= 28 { (l + 3, 1) } else { (l, 0) }).collect();
    assert_eq!(run_shuffle("down", 3, 0x1f), down);
    // up 2, c = 0: lanes 2-31 read l - 2; 0 and 1 keep theirs.
    let up: Vec<(u32, u32)> = (0..32).map(|l| if l >= 2 { (l - 2, 1) } else { (l, 0) }).collect();
    assert_eq!(run_shuffle("up", 2, 0), up);
    let bfly: Vec<(u32, u32)> = (0..32).map(|l| (l ^ 5, 1)).collect();
    assert_eq!(run_shuffle("bfly", 5, 0x1f), bfly);
    assert_eq!(run_shuffle("idx", 7, 0x1f), vec![(7, 1); 32]);
    // b is read modulo 32: idx 39 is lane 7.
    assert_eq!(run_shuffle("idx", 39, 0x1f), vec![(7, 1); 32]);
}

#[test]
fn shfl_in_segments_of_eight() {
    // Width 8 (c = 0x181f): idx 2 reads the third lane of each segment.
    assert_eq!(run_shuffle("idx", 2, 0x181f), segments(&[(2, 1); 8]));
    // down 3 stays inside the segment: its last three lanes keep their own values.
    let down = [(3, 1), (4, 1), (5, 1), (6, 1), (7, 1), (5, 0), (6, 0), (7, 0)];
    assert_eq!(run_shuffle("down", 3, 0x181f), segments(&down));
    // up 1 with c = 0x1800 (no clamp): the segment's first lane keeps its value.
    let up = [(0, 0), (0, 1), (1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 1)];
    assert_eq!(run_shuffle("up", 1, 0x1800), segments(&up));
    // bfly 4 in segments of 16 (c = 0x101f): every lane finds its partner.
    let bfly: Vec<(u32, u32)> = (0..32).map(|l| (l ^ 4, 1)).collect();
    assert_eq!(run_shuffle("bfly", 4, 0x101f), bfly);
}

#[test]
fn shfl_with_a_non_contiguous_segment_mask() {
    // c = 0x0c1f: mask bits 2-3, clamp 31. idx 1: j = (l & 0b1100) | 1, and max = (l & 0b1100) | 0b10011 >= j.
    let expected: Vec<(u32, u32)> = [1, 1, 1, 1, 5, 5, 5, 5, 9, 9, 9, 9, 13, 13, 13, 13]
        .iter()
        .chain(&[1, 1, 1, 1, 5, 5, 5, 5, 9, 9, 9, 9, 13, 13, 13, 13])
        .map(|&s| (s, 1))
        .collect();
    assert_eq!(run_shuffle("idx", 1, 0x0c1f), expected);
    // down 3: in range while l + 3 <= (l & 0b1100) | 0b10011. Lanes 17-19 (max 19), 21-23 (max 23), 25-27
    // (max 27) and 29-31 (max 31) are out of range; lanes 0-15 all have max >= 19.
    let out_of_range = [17, 18, 19, 21, 22, 23, 25, 26, 27, 29, 30, 31];
    let down: Vec<(u32, u32)> = (0..32).map(|l| if out_of_range.contains(&l) { (l, 0) } else { (l + 3, 1) }).collect();
    assert_eq!(run_shuffle("down", 3, 0x0c1f), down);
}

#[test]
fn a_shfl_naming_an_exited_lane_is_a_synccheck_error() {
    // Lanes 20-31 exit; the others shuffle with a full mask.
    let d = Device::new();
    let out = d.alloc(32 * 8, false);
    expect_fault(
        d.launch(&shuffle("idx", 5, 0x1f, 0xFFFF_FFFF, 20), [1, 1, 1], [32, 1, 1], &[out], &options()),
        FaultKind::Sync,
        &["member mask 0xffffffff names lanes 20-31 that have exited", "shfl.sync.idx.b32", "lanes 20-31: exited"],
    );
}

#[test]
fn a_shfl_reading_a_lane_outside_its_mask_is_a_synccheck_error() {
    // Lanes 0-15 shuffle with mask 0xffff and read lane 20.
    let d = Device::new();
    let out = d.alloc(32 * 8, false);
    expect_fault(
        d.launch(&shuffle("idx", 20, 0x1f, 0xFFFF, 16), [1, 1, 1], [32, 1, 1], &[out], &options()),
        FaultKind::Sync,
        &["lane 0's shfl reads lane 20, which is not in the member mask 0x0000ffff"],
    );
    // The same mask reading lane 3 is fine.
    d.launch(&shuffle("idx", 3, 0x1f, 0xFFFF, 16), [1, 1, 1], [32, 1, 1], &[out], &options()).unwrap();
    assert_eq!(d.read_u32(out, 32)[..4], [31, 1, 31, 1]);
}

#[test]
fn a_mask_naming_lanes_that_do_not_exist_is_a_synccheck_error() {
    let d = Device::new();
    let out = d.alloc(32 * 8, false);
    expect_fault(
        d.launch(&shuffle("idx", 0, 0x1f, 0xFFFF_FFFF, 32), [1, 1, 1], [16, 1, 1], &[out], &options()),
        FaultKind::Sync,
        &["names lanes 16-31 that do not exist (the warp has lanes 0-15)"],
    );
}

/// `out[6 l ..]`: ballot of l % 3 == 0, all / any / uni of l < 32, l == 7, l < 16 (as 0 or 1), match.any of
/// l / 4, and match.all of l / 16 with its predicate and of a constant.
const VOTES: &str = "
.visible .entry votes(.param .u64 out)
{
\t.reg .pred %p<12>;
\t.reg .b32 %r<24>;
\t.reg .b64 %rd<4>;
\tmov.u32 %r1, %tid.x;
\trem.u32 %r2, %r1, 3;
\tsetp.eq.u32 %p1, %r2, 0;
\tvote.sync.ballot.b32 %r3, %p1, -1;
\tsetp.lt.u32 %p2, %r1, 32;
\tvote.sync.all.pred %p3, %p2, -1;
\tsetp.eq.u32 %p4, %r1, 7;
\tvote.sync.any.pred %p5, %p4, -1;
\tsetp.lt.u32 %p6, %r1, 16;
\tvote.sync.uni.pred %p7, %p6, -1;
\tselp.u32 %r4, 1, 0, %p3;
\tselp.u32 %r5, 1, 0, %p5;
\tselp.u32 %r6, 1, 0, %p7;
\tshr.u32 %r7, %r1, 2;
\tmatch.any.sync.b32 %r8, %r7, -1;
\tshr.u32 %r9, %r1, 4;
\tmatch.all.sync.b32 %r10|%p8, %r9, -1;
\tselp.u32 %r11, 1, 0, %p8;
\tmatch.all.sync.b32 %r12|%p9, 7, -1;
\tselp.u32 %r13, 1, 0, %p9;
\tld.param.u64 %rd1, [out];
\tmul.wide.u32 %rd2, %r1, 36;
\tadd.s64 %rd3, %rd1, %rd2;
\tst.global.u32 [%rd3], %r3;
\tst.global.u32 [%rd3+4], %r4;
\tst.global.u32 [%rd3+8], %r5;
\tst.global.u32 [%rd3+12], %r6;
\tst.global.u32 [%rd3+16], %r8;
\tst.global.u32 [%rd3+20], %r10;
\tst.global.u32 [%rd3+24], %r11;
\tst.global.u32 [%rd3+28], %r12;
\tst.global.u32 [%rd3+32], %r13;
\tret;
}
";

#[test]
fn vote_and_match_values() {
    let d = Device::new();
    let out = d.alloc(32 * 36, false);
    d.launch(&ptx(VOTES), [1, 1, 1], [32, 1, 1], &[out], &options()).unwrap_or_else(|f| panic!("{}", f.report));
    let got = d.read_u32(out, 32 * 9);
    for l in 0..32usize {
        let v = &got[l * 9..l * 9 + 9];
        // Lanes 0, 3, ..., 30: 0b0100_1001_0010_0100_1001_0010_0100_1001.
        assert_eq!(v[0], 0x4924_9249, "ballot, lane {l}");
        assert_eq!(v[1..4], [1, 1, 0], "all, any, uni, lane {l}");
        assert_eq!(v[4], 0xF << (l / 4 * 4), "match.any, lane {l}");
        assert_eq!(v[5..7], [0, 0], "match.all of differing values, lane {l}");
        assert_eq!(v[7..9], [0xFFFF_FFFF, 1], "match.all of one value, lane {l}");
    }
}

/// Odd lanes take a branch and vote with their mask 0xaaaaaaaa; the even lanes store 0.
pub(super) const ODD_BALLOT: &str = "
.visible .entry odd_ballot(.param .u64 out)
{
\t.reg .pred %p<4>;
\t.reg .b32 %r<8>;
\t.reg .b64 %rd<4>;
\tmov.u32 %r1, %tid.x;
\tand.b32 %r2, %r1, 1;
\tsetp.eq.u32 %p1, %r2, 1;
\tmov.u32 %r3, 0;
\t@!%p1 bra $L__join;
\tsetp.lt.u32 %p2, %r1, 20;
\tvote.sync.ballot.b32 %r3, %p2, -1431655766;
$L__join:
\tld.param.u64 %rd1, [out];
\tmul.wide.u32 %rd2, %r1, 4;
\tadd.s64 %rd3, %rd1, %rd2;
\tst.global.u32 [%rd3], %r3;
\tret;
}
";

#[test]
fn a_ballot_in_divergent_code_counts_its_own_lanes() {
    let d = Device::new();
    let out = d.alloc(32 * 4, false);
    d.launch(&ptx(ODD_BALLOT), [1, 1, 1], [32, 1, 1], &[out], &options()).unwrap_or_else(|f| panic!("{}", f.report));
    // Odd lanes below 20: 1, 3, ..., 19.
    let expected: Vec<u32> = (0..32).map(|l| if l % 2 == 1 { 0x000A_AAAA } else { 0 }).collect();
    assert_eq!(d.read_u32(out, 32), expected);
}
