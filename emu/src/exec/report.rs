//! Fault texts: where (kernel, block, thread, PTX line and instruction) and what (address and nearest allocation,
//! racing threads, or every warp's position in a deadlock).

use super::block_state::BlockState;
use super::context::Ctx;
use super::fault::{Fault, FaultKind};
use super::global_race::GlobalRace;
use super::warp::{Lanes, Wait, Warp};
use crate::ir::{Inst, Op, Space, Ty};

/// A fault of `kind` at lane `lane` of `w`, at instruction `pc` when known.
pub fn fault(
    ctx: &Ctx<'_>,
    bs: &BlockState,
    w: &Warp<'_>,
    lane: usize,
    pc: Option<u32>,
    kind: FaultKind,
    detail: String,
) -> Fault {
    let place = match pc {
        Some(pc) => format!(", {}", at(ctx, pc)),
        None => String::new(),
    };
    let report = format!(
        "{}: {detail}\n  in kernel `{}`, block {}, thread {}{place}",
        check_name(kind),
        ctx.func.name,
        xyz(bs.block),
        xyz(thread_xyz(ctx, w.thread(lane))),
    );
    Fault { kind, report }
}

/// The lowest lane of `active`, or of `group` when none is active: the lane a report names.
pub fn first(active: u32, group: u32) -> usize {
    if active != 0 { active.trailing_zeros() as usize } else { group.trailing_zeros() as usize }
}

/// "PTX line N `ld.global.u32`" for instruction `pc`.
pub fn at(ctx: &Ctx<'_>, pc: u32) -> String {
    match ctx.func.insts.get(pc as usize) {
        Some(inst) => format!("PTX line {} `{}`", inst.line, inst_name(inst)),
        None => format!("program counter {pc}"),
    }
}

fn check_name(kind: FaultKind) -> &'static str {
    match kind {
        FaultKind::IllegalAddress | FaultKind::Misaligned => "memcheck",
        FaultKind::Race => "racecheck",
        FaultKind::Sync => "synccheck",
        FaultKind::Uninitialized => "initcheck",
        FaultKind::Undefined => "undefined behaviour",
    }
}

/// A thread's index in its block, from its linear index.
pub fn thread_xyz(ctx: &Ctx<'_>, t: u32) -> [u32; 3] {
    let [bx, by, _] = ctx.launch.block;
    [t % bx, t / bx % by, t / (bx * by)]
}

pub fn xyz(v: [u32; 3]) -> String {
    format!("({}, {}, {})", v[0], v[1], v[2])
}

/// Two global accesses of one block that race (found when their epoch ended).
pub fn global_race(ctx: &Ctx<'_>, bs: &BlockState, race: &GlobalRace) -> Fault {
    let kind = |write: bool| if write { "write" } else { "read" };
    let (earlier, later) = (&race.earlier, &race.later);
    let addr = later.address();
    let place = match ctx.view.find(addr, 1) {
        Some(a) => format!("offset {} in the allocation at {:#x} of {} bytes", addr - a.base, a.base, a.bytes),
        None => "outside every allocation".into(),
    };
    Fault {
        kind: FaultKind::Race,
        report: format!(
            "racecheck: {} of global byte {addr:#x} ({place}) by thread {} at {} races with a {} by thread {} at {}, \
             with no barrier (or, within a warp, no __syncwarp) between them\n  in kernel `{}`, block {}",
            kind(later.write),
            xyz(thread_xyz(ctx, later.thread)),
            at(ctx, later.pc),
            kind(earlier.write),
            xyz(thread_xyz(ctx, earlier.thread)),
            at(ctx, earlier.pc),
            ctx.func.name,
            xyz(bs.block),
        ),
    }
}

/// The nearest live allocation to a global address, for memcheck reports.
pub fn nearest(ctx: &Ctx<'_>, addr: u64, len: u64) -> String {
    match ctx.view.nearest(addr) {
        None => "no allocation is live".into(),
        Some((base, size, d)) if d < 0 => {
            format!("{} bytes before the allocation at {base:#x} of {size} bytes", -d)
        }
        Some((base, size, _)) if addr >= base && addr < base + size => format!(
            "the access runs {} bytes past the end of the allocation at {base:#x} of {size} bytes (offset {})",
            (addr + len) - (base + size),
            addr - base
        ),
        Some((base, size, d)) => format!("{d} bytes past the end of the allocation at {base:#x} of {size} bytes"),
    }
}

/// The instruction as PTX spells its opcode (without operands).
pub fn inst_name(inst: &Inst) -> String {
    let vec = |n: usize| if n > 1 { format!(".v{n}") } else { String::new() };
    match &inst.op {
        Op::Alu { name, .. } => name.to_string(),
        Op::Mov { .. } => "mov".into(),
        Op::Pack { elem_bits, srcs, .. } => format!("mov.b{} (pack)", elem_bits * srcs.len() as u32),
        Op::Unpack { elem_bits, dsts, .. } => format!("mov.b{} (unpack)", elem_bits * dsts.len() as u32),
        Op::Setp { .. } => "setp".into(),
        Op::Selp { .. } => "selp".into(),
        Op::Cvta { space, to_generic, bits, .. } => {
            format!("cvta{}.{}.u{bits}", if *to_generic { "" } else { ".to" }, space_name(*space))
        }
        Op::Ld { space, ty, dsts, .. } => format!("ld{}{}.{}", space_suffix(*space), vec(dsts.len()), ty_name(*ty)),
        Op::St { space, ty, srcs, .. } => format!("st{}{}.{}", space_suffix(*space), vec(srcs.len()), ty_name(*ty)),
        Op::Atom { space, op, ty, dst, .. } => format!(
            "{}{}.{}.{}",
            if dst.is_some() { "atom" } else { "red" },
            space_suffix(*space),
            format!("{op:?}").to_lowercase(),
            ty_name(*ty)
        ),
        Op::Bra { .. } => "bra".into(),
        Op::Bar { wait, .. } => if *wait { "bar.sync" } else { "bar.arrive" }.into(),
        Op::WarpSync { .. } => "bar.warp.sync".into(),
        Op::Shfl { mode, .. } => format!("shfl.sync.{}.b32", format!("{mode:?}").to_lowercase()),
        Op::Vote { mode, .. } => format!("vote.sync.{}", format!("{mode:?}").to_lowercase()),
        Op::Match { all, bits, .. } => format!("match.{}.sync.b{bits}", if *all { "all" } else { "any" }),
        Op::Mma { bf16, .. } => {
            let t = if *bf16 { "bf16" } else { "f16" };
            format!("mma.sync.aligned.m16n8k16.row.col.f32.{t}.{t}.f32")
        }
        Op::Ldmatrix { dsts, trans, generic, .. } => format!(
            "ldmatrix.sync.aligned.m8n8.x{}{}{}.b16",
            dsts.len(),
            if *trans { ".trans" } else { "" },
            if *generic { "" } else { ".shared" }
        ),
        Op::CpAsync { size, .. } => format!("cp.async.shared.global ({size} bytes)"),
        Op::CpAsyncCommit => "cp.async.commit_group".into(),
        Op::CpAsyncWait { all: true, .. } => "cp.async.wait_all".into(),
        Op::CpAsyncWait { n, .. } => format!("cp.async.wait_group {n}"),
        Op::Call { .. } => "call".into(),
        Op::Ret => "ret".into(),
        Op::Exit => "exit".into(),
        Op::Fence => "membar".into(),
    }
}

pub fn space_name(space: Space) -> &'static str {
    match space {
        Space::Global => "global",
        Space::Shared => "shared",
        Space::Local => "local",
        Space::Param => "param",
        Space::Const => "const",
        Space::Generic => "generic",
    }
}

/// ".global" etc.; nothing for a generic access, as PTX writes it.
fn space_suffix(space: Space) -> String {
    match space {
        Space::Generic => String::new(),
        _ => format!(".{}", space_name(space)),
    }
}

pub fn ty_name(ty: Ty) -> String {
    format!("{ty:?}").to_lowercase()
}

/// Lanes as ranges: "0-15, 17".
pub fn lanes(mask: u32) -> String {
    let mut parts = Vec::new();
    let mut l = 0;
    while l < 32 {
        if mask & (1 << l) == 0 {
            l += 1;
            continue;
        }
        let start = l;
        while l < 32 && mask & (1 << l) != 0 {
            l += 1;
        }
        parts.push(if l - 1 == start { format!("{start}") } else { format!("{start}-{}", l - 1) });
    }
    if parts.is_empty() { "none".into() } else { parts.join(", ") }
}

/// Where every warp's lanes are and what they wait for, one line per group of lanes.
pub fn positions(ctx: &Ctx<'_>, warps: &[Warp<'_>]) -> String {
    let mut out = String::new();
    for w in warps {
        if w.live() == 0 {
            out += &format!("\n  warp {}: all lanes exited", w.index);
            continue;
        }
        if w.exited != 0 {
            out += &format!("\n  warp {} lanes {}: exited", w.index, lanes(w.exited));
        }
        let mut left = w.live();
        while left != 0 {
            let l = left.trailing_zeros() as usize;
            let same = Lanes(left).filter(|&k| w.pc[k] == w.pc[l] && w.wait[k] == w.wait[l]).fold(0, |m, k| m | 1 << k);
            left &= !same;
            let what = match w.wait[l] {
                Wait::None => "runnable".to_string(),
                Wait::Barrier { id, count: None } => format!("waiting at barrier {id} for all threads of the block"),
                Wait::Barrier { id, count: Some(c) } => format!("waiting at barrier {id} for {c} threads"),
                Wait::Collective => "waiting for the lanes its member mask names".to_string(),
            };
            out += &format!("\n  warp {} lanes {}: at {}, {what}", w.index, lanes(same), at(ctx, w.pc[l]));
        }
    }
    out
}

/// No lane of the block can run and no barrier can complete.
pub fn deadlock(ctx: &Ctx<'_>, bs: &BlockState, warps: &[Warp<'_>]) -> Fault {
    Fault {
        kind: FaultKind::Sync,
        report: format!(
            "synccheck: deadlock: no thread of the block can go on and no barrier or collective can complete\n  \
             in kernel `{}`, block {}; where each warp is:{}",
            ctx.func.name,
            xyz(bs.block),
            positions(ctx, warps)
        ),
    }
}
