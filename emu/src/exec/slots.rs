//! Register slots: nvcc's PTX names a fresh register for almost every value (an unrolled kernel declares tens of
//! thousands), so a warp's file of one row per PTX register would be megabytes, zeroed per block and touched
//! sparsely. Registers whose live ranges do not overlap share a slot instead: liveness over the control-flow graph
//! (a guarded write keeps the old value, so it reads the register too; `call` flows into the callee and `ret` to
//! every return point), each register's range taken as the span of instructions where it is live or written, and
//! the spans packed by linear scan. The packing depends only on the instructions' registers, guards and control
//! flow; it is computed once per distinct kernel and cached under a fingerprint of exactly those.

use crate::ir::{AddrBase, Function, Inst, Op, Operand, Reg};
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

/// Kernels whose packing is kept (the cache is emptied when it would grow past this).
const CACHED: usize = 512;

/// The slot of every register.
pub struct Slots {
    /// `row[r]`: the register file offset of register `r`'s row (its slot times 32).
    pub row: Vec<u32>,
    pub count: u32,
}

/// The packing for `func`, from the cache when a kernel with the same registers and control flow was seen.
///
/// A kernel is first looked up by where its instructions live (a module stays loaded across its launches) and a
/// sample of its instructions; only a miss hashes every instruction (a reloaded module finds its packing again).
pub fn slots(func: &Function) -> Arc<Slots> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let place = (func.insts.as_ptr() as usize, func.insts.len(), func.nregs, sample(func));
    if let Some(s) = cache.lock().unwrap_or_else(|e| e.into_inner()).by_place.get(&place) {
        return s.clone();
    }
    let key = fingerprint(func);
    let found = cache.lock().unwrap_or_else(|e| e.into_inner()).by_content.get(&key).cloned();
    let s = found.unwrap_or_else(|| Arc::new(pack(func)));
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    if c.by_content.len() >= CACHED || c.by_place.len() >= CACHED {
        *c = Cache::default();
    }
    c.by_content.insert(key, s.clone());
    c.by_place.insert(place, s.clone());
    s
}

#[derive(Default)]
struct Cache {
    by_content: HashMap<u64, Arc<Slots>>,
    by_place: HashMap<(usize, usize, u32, u64), Arc<Slots>>,
}

/// Hash of the registers and control flow of 64 instructions spread over the kernel.
fn sample(func: &Function) -> u64 {
    let n = func.insts.len();
    let mut h = Fx(n as u64);
    let (mut uses, mut defs) = (Vec::new(), Vec::new());
    for i in 0..n.min(64) {
        let inst = &func.insts[i * n / n.min(64)];
        registers(inst, &mut uses, &mut defs);
        h.add(&uses, &defs, inst);
    }
    h.0
}

/// Hash of everything the packing depends on.
fn fingerprint(func: &Function) -> u64 {
    let mut h = Fx(((func.nregs as u64) << 32) | func.insts.len() as u64);
    let (mut uses, mut defs) = (Vec::new(), Vec::new());
    for inst in &func.insts {
        registers(inst, &mut uses, &mut defs);
        h.add(&uses, &defs, inst);
    }
    h.0
}

/// A fast multiply-rotate hash (a cache key, not a defence against chosen inputs).
struct Fx(u64);

impl Fx {
    fn word(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517C_C1B7_2722_0A95);
    }

    fn add(&mut self, uses: &[Reg], defs: &[Reg], inst: &Inst) {
        let (kind, target) = successors_key(&inst.op);
        self.word(((kind as u64) << 32) | target as u64);
        self.word(uses.len() as u64);
        uses.iter().for_each(|&r| self.word(r as u64));
        defs.iter().for_each(|&r| self.word(r as u64 | 1 << 40));
    }
}

fn successors_key(op: &Op) -> (u8, u32) {
    match op {
        Op::Bra { target } => (1, *target),
        Op::Call { target } => (2, *target),
        Op::Ret => (3, 0),
        Op::Exit => (4, 0),
        _ => (0, 0),
    }
}

/// The registers `inst` reads (`uses`, including its guard, and the destinations of a guarded instruction, which
/// keep their value where the guard is false) and writes (`defs`).
pub fn registers(inst: &Inst, uses: &mut Vec<Reg>, defs: &mut Vec<Reg>) {
    uses.clear();
    defs.clear();
    let mut read = |o: &Operand| {
        if let Operand::Reg(r) | Operand::NotPred(r) = o {
            uses.push(*r);
        }
    };
    let addr = |a: &crate::ir::Address| match a.base {
        AddrBase::Reg(r) => Some(r),
        _ => None,
    };
    match &inst.op {
        Op::Mov { dst, src } => {
            read(src);
            defs.push(*dst);
        }
        Op::Pack { dst, srcs, .. } => {
            srcs.iter().for_each(&mut read);
            defs.push(*dst);
        }
        Op::Unpack { dsts, src, .. } => {
            read(src);
            defs.extend(dsts.iter().flatten());
        }
        Op::Alu { dst, srcs, nsrc, .. } => {
            srcs[..*nsrc as usize].iter().for_each(&mut read);
            defs.push(*dst);
        }
        Op::Setp { dst, dst_not, a, b, combine, .. } => {
            read(a);
            read(b);
            if let Some((_, c)) = combine {
                read(c);
            }
            defs.push(*dst);
            defs.extend(dst_not);
        }
        Op::Selp { dst, a, b, pred } => {
            [a, b, pred].into_iter().for_each(&mut read);
            defs.push(*dst);
        }
        Op::Cvta { dst, src, .. } => {
            read(src);
            defs.push(*dst);
        }
        Op::Ld { dsts, addr: a, .. } => {
            uses.extend(addr(a));
            defs.extend(dsts.iter().flatten());
        }
        Op::St { srcs, addr: a, .. } => {
            srcs.iter().for_each(&mut read);
            uses.extend(addr(a));
        }
        Op::Atom { dst, addr: at, a, b, .. } => {
            read(a);
            b.iter().for_each(&mut read);
            uses.extend(addr(at));
            defs.extend(dst);
        }
        Op::Bar { id, count, .. } => {
            read(id);
            count.iter().for_each(&mut read);
        }
        Op::WarpSync { mask } => read(mask),
        Op::Shfl { dst, dst_pred, a, b, c, mask, .. } => {
            [a, b, c, mask].into_iter().for_each(&mut read);
            defs.push(*dst);
            defs.extend(dst_pred);
        }
        Op::Vote { dst, pred, mask, .. } => {
            read(pred);
            read(mask);
            defs.push(*dst);
        }
        Op::Match { dst, dst_pred, a, mask, .. } => {
            read(a);
            read(mask);
            defs.push(*dst);
            defs.extend(dst_pred);
        }
        Op::Mma { d, a, b, c, .. } => {
            c.iter().for_each(&mut read);
            uses.extend(a.iter().chain(b));
            defs.extend(d);
        }
        Op::Ldmatrix { dsts, addr: a, .. } => {
            uses.extend(addr(a));
            defs.extend(dsts);
        }
        Op::CpAsync { dst, src, src_size, .. } => {
            src_size.iter().for_each(&mut read);
            uses.extend(addr(dst));
            uses.extend(addr(src));
        }
        Op::Bra { .. }
        | Op::Call { .. }
        | Op::Ret
        | Op::Exit
        | Op::Fence
        | Op::CpAsyncCommit
        | Op::CpAsyncWait { .. } => {}
    }
    if let Some((p, _)) = inst.guard {
        uses.push(p);
        uses.extend_from_slice(defs);
    }
}

/// A set of registers.
#[derive(Clone, PartialEq)]
struct Set(Vec<u64>);

impl Set {
    fn new(n: usize) -> Self {
        Set(vec![0; n.div_ceil(64)])
    }
    fn insert(&mut self, r: Reg) {
        self.0[r as usize / 64] |= 1 << (r % 64);
    }
    fn remove(&mut self, r: Reg) {
        self.0[r as usize / 64] &= !(1 << (r % 64));
    }
    fn union(&mut self, other: &Set) {
        self.0.iter_mut().zip(&other.0).for_each(|(a, b)| *a |= b);
    }
    fn each(&self, mut f: impl FnMut(Reg)) {
        for (i, &word) in self.0.iter().enumerate() {
            let mut w = word;
            while w != 0 {
                f(i as u32 * 64 + w.trailing_zeros());
                w &= w - 1;
            }
        }
    }
}

/// Slots for `func`'s registers by liveness and linear scan.
fn pack(func: &Function) -> Slots {
    let n = func.insts.len();
    let nregs = func.nregs as usize;
    let returns: Vec<u32> = func
        .insts
        .iter()
        .enumerate()
        .filter(|(_, i)| matches!(i.op, Op::Call { .. }))
        .map(|(pc, _)| pc as u32 + 1)
        .collect();
    // Basic blocks: leaders at 0, branch and call targets, and after every control transfer.
    let mut leader = vec![false; n + 1];
    leader[0] = true;
    for (pc, inst) in func.insts.iter().enumerate() {
        match inst.op {
            Op::Bra { target } | Op::Call { target } => {
                leader[(target as usize).min(n)] = true;
                leader[pc + 1] = true;
            }
            Op::Ret | Op::Exit => leader[pc + 1] = true,
            _ => {}
        }
    }
    let starts: Vec<usize> = (0..n).filter(|&pc| leader[pc]).collect();
    let mut block_of = vec![0usize; n + 1];
    for (b, &s) in starts.iter().enumerate() {
        let end = starts.get(b + 1).copied().unwrap_or(n);
        block_of[s..end].fill(b);
    }
    let end_of = |b: usize| starts.get(b + 1).copied().unwrap_or(n);
    let successors = |b: usize| -> Vec<usize> {
        let last = end_of(b) - 1;
        let inst = &func.insts[last];
        let mut s = Vec::new();
        let mut next = |pc: usize| {
            if pc < n {
                s.push(block_of[pc]);
            }
        };
        match inst.op {
            Op::Bra { target } => {
                next(target as usize);
                if inst.guard.is_some() {
                    next(last + 1);
                }
            }
            Op::Call { target } => {
                next(target as usize);
                if inst.guard.is_some() {
                    next(last + 1);
                }
            }
            Op::Ret => {
                returns.iter().for_each(|&r| next(r as usize));
                if inst.guard.is_some() {
                    next(last + 1);
                }
            }
            Op::Exit if inst.guard.is_none() => {}
            _ => next(last + 1),
        }
        s
    };
    let succ: Vec<Vec<usize>> = (0..starts.len()).map(successors).collect();
    // Per block: registers read before written (gen) and written (kill).
    let (mut uses, mut defs) = (Vec::new(), Vec::new());
    let mut gen_ = vec![Set::new(nregs); starts.len()];
    let mut kill = vec![Set::new(nregs); starts.len()];
    for b in 0..starts.len() {
        for pc in (starts[b]..end_of(b)).rev() {
            registers(&func.insts[pc], &mut uses, &mut defs);
            for &d in &defs {
                gen_[b].remove(d);
                kill[b].insert(d);
            }
            for &u in &uses {
                gen_[b].insert(u);
            }
        }
    }
    // live_in = gen ∪ (live_out − kill), to a fixed point.
    let mut live_in = gen_.clone();
    let mut live_out = vec![Set::new(nregs); starts.len()];
    let mut changed = true;
    while changed {
        changed = false;
        for b in (0..starts.len()).rev() {
            let mut out = Set::new(nregs);
            for &s in &succ[b] {
                out.union(&live_in[s]);
            }
            let mut inn = out.clone();
            inn.0.iter_mut().zip(&kill[b].0).zip(&gen_[b].0).for_each(|((i, k), g)| *i = (*i & !k) | g);
            live_out[b] = out;
            if inn != live_in[b] {
                live_in[b] = inn;
                changed = true;
            }
        }
    }
    // Spans: the instructions where each register is live or written.
    let mut first = vec![u32::MAX; nregs];
    let mut last = vec![0u32; nregs];
    let mut touch = |r: Reg, pc: usize| {
        first[r as usize] = first[r as usize].min(pc as u32);
        last[r as usize] = last[r as usize].max(pc as u32);
    };
    for b in 0..starts.len() {
        let mut live = live_out[b].clone();
        for pc in (starts[b]..end_of(b)).rev() {
            registers(&func.insts[pc], &mut uses, &mut defs);
            live.each(|r| touch(r, pc));
            for &d in &defs {
                touch(d, pc);
                live.remove(d);
            }
            for &u in &uses {
                touch(u, pc);
                live.insert(u);
            }
        }
    }
    // Linear scan over the spans, by start.
    let mut order: Vec<usize> = (0..nregs).filter(|&r| first[r] != u32::MAX).collect();
    order.sort_by_key(|&r| first[r]);
    let mut row = vec![0u32; nregs];
    let mut ending: BinaryHeap<std::cmp::Reverse<(u32, u32)>> = BinaryHeap::new();
    let mut free: Vec<u32> = Vec::new();
    let mut count = 0u32;
    for r in order {
        while let Some(std::cmp::Reverse((end, slot))) = ending.peek().copied()
            && end < first[r]
        {
            ending.pop();
            free.push(slot);
        }
        let slot = free.pop().unwrap_or_else(|| {
            count += 1;
            count - 1
        });
        row[r] = slot * 32;
        ending.push(std::cmp::Reverse((last[r], slot)));
    }
    Slots { row, count }
}
