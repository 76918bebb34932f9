//! One block at a time on one host thread: its warps, shared memory and race shadow (reused from block to block),
//! and the schedule. A warp runs until none of its lanes can (all wait at a barrier or collective, or exited) or
//! its time slice ends; within a warp, the runnable lanes that share the lowest program counter run together
//! (converged code thus runs as one group, and diverged groups meet again where their paths join). When no lane of
//! the block can run, the barriers are resolved; if none completes, the block is deadlocked.
//!
//! With `options.schedule_seed`, warps run in a shuffled order and a random group of lanes goes first, so that code
//! relying on lockstep execution shows itself.

use super::barrier;
use super::block_state::{Barriers, BlockState, InFlight};
use super::context::Ctx;
use super::counters::Stats;
use super::fault::Fault;
use super::global_race::GlobalLog;
use super::racecheck::Shadow;
use super::warp::{Lanes, Warp};
use super::{async_copy, collectives, report, step};

/// Warp instructions a warp runs before the others get a turn (so a warp spinning on another's write yields).
const SLICE: u64 = 1 << 16;

pub struct Runner<'c, 'a> {
    ctx: &'c Ctx<'a>,
    warps: Vec<Warp<'c>>,
    pub bs: BlockState,
    rng: Option<SplitMix>,
    order: Vec<usize>,
}

impl<'c, 'a> Runner<'c, 'a> {
    pub fn new(ctx: &'c Ctx<'a>) -> Self {
        let warps = (0..ctx.warps).map(|_| Warp::new(ctx)).collect();
        Runner {
            ctx,
            warps,
            bs: BlockState {
                block: [0; 3],
                shared: vec![0; ctx.shared_bytes as usize],
                shared_written: vec![false; if ctx.options.initcheck { ctx.shared_bytes as usize } else { 0 }],
                race: Shadow::new(ctx.shared_bytes, ctx.options.racecheck),
                global_race: GlobalLog::new(ctx.options.racecheck),
                barriers: Barriers::default(),
                in_flight: InFlight::default(),
                stats: Stats::default(),
            },
            rng: ctx.options.schedule_seed.map(SplitMix),
            order: (0..ctx.warps as usize).collect(),
        }
    }

    /// Runs block `linear` (x fastest) to completion.
    pub fn run_block(&mut self, linear: u64) -> Result<(), Fault> {
        let ctx = self.ctx;
        let [gx, gy, _] = ctx.launch.grid.map(|d| d as u64);
        let block = [linear % gx, linear / gx % gy, linear / (gx * gy)].map(|d| d as u32);
        if let Some(rng) = &mut self.rng {
            rng.0 ^= linear.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
        for (i, w) in self.warps.iter_mut().enumerate() {
            w.reset(ctx, i as u32, block, linear);
        }
        self.bs.block = block;
        self.bs.shared.fill(0);
        self.bs.shared_written.fill(false);
        self.bs.race.new_block();
        self.bs.barriers.clear();
        self.bs.in_flight.reset();
        loop {
            if let Some(rng) = &mut self.rng {
                rng.shuffle(&mut self.order);
            }
            for &i in &self.order {
                if self.warps[i].runnable() != 0 {
                    run_warp(ctx, &mut self.bs, &mut self.warps[i], self.rng.as_mut())?;
                }
            }
            if self.warps.iter().all(|w| w.live() == 0) {
                async_copy::none_left(ctx, &self.bs, &self.warps)?;
                let peak = self.warps.iter().flat_map(|w| w.copy_peak).map(u64::from).sum();
                self.bs.stats.async_peak_bytes = self.bs.stats.async_peak_bytes.max(peak);
                return self.bs.global_race.close_epoch().map_err(|race| report::global_race(ctx, &self.bs, &race));
            }
            if self.warps.iter().any(|w| w.runnable() != 0) {
                continue;
            }
            // A collective whose lanes exited while others waited can never complete: say so.
            for w in &mut self.warps {
                collectives::try_complete(ctx, &mut self.bs, w)?;
            }
            if !barrier::resolve(ctx, &mut self.bs, &mut self.warps)? {
                return Err(report::deadlock(ctx, &self.bs, &self.warps));
            }
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.bs.stats
    }
}

/// Runs groups of `w`'s lanes until none can run or the warp's slice ends.
fn run_warp<'c>(
    ctx: &'c Ctx<'_>,
    bs: &mut BlockState,
    w: &mut Warp<'c>,
    mut rng: Option<&mut SplitMix>,
) -> Result<(), Fault> {
    let slice_end = w.issued + SLICE;
    loop {
        let runnable = w.runnable();
        if runnable == 0 || w.issued >= slice_end {
            return Ok(());
        }
        let (group, pc, stop_pc) = match rng.as_deref_mut() {
            None => lowest_group(w, runnable),
            Some(rng) => random_group(w, runnable, rng),
        };
        let at_starts = rng.is_some() && group != runnable;
        step::run_group(ctx, bs, w, group, pc, stop_pc, at_starts, slice_end)?;
    }
}

/// The runnable lanes at the lowest program counter, that counter, and the lowest counter of the other runnable
/// lanes (the group stops there, to be joined by them).
fn lowest_group(w: &Warp<'_>, runnable: u32) -> (u32, u32, u32) {
    let mut pc = u32::MAX;
    for l in Lanes(runnable) {
        pc = pc.min(w.pc[l]);
    }
    let mut group = 0;
    let mut next = u32::MAX;
    for l in Lanes(runnable) {
        let p = w.pc[l];
        if p == pc {
            group |= 1 << l;
        } else {
            next = next.min(p);
        }
    }
    (group, pc, next)
}

/// The lanes at a randomly chosen runnable program counter; the group stops at branches and block starts instead
/// of at the other lanes' counter.
fn random_group(w: &Warp<'_>, runnable: u32, rng: &mut SplitMix) -> (u32, u32, u32) {
    let pick = Lanes(runnable).nth(rng.below(runnable.count_ones() as u64) as usize).unwrap_or(0);
    let pc = w.pc[pick];
    let group = Lanes(runnable).filter(|&l| w.pc[l] == pc).fold(0, |m, l| m | 1 << l);
    (group, pc, u32::MAX)
}

/// SplitMix64: the schedule's random numbers, deterministic per seed.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n as u128) >> 64) as u64
    }

    fn shuffle(&mut self, v: &mut [usize]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}
