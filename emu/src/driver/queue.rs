//! Stream queues: work enqueued on a stream waits in its stream's queue and runs later, in stream order, as on a
//! GPU. Only a call that waits for it (a synchronisation, an event wait, a synchronous copy, a query that says
//! done) guarantees it has run. When it runs is the configured `Timing`: late (only when waited for, the default),
//! eager (when enqueued) or seeded (chosen at each enqueue).
//!
//! The legacy default stream orders with the blocking streams: its work waits for theirs enqueued before it, and
//! theirs waits for its. Every queued piece of work carries a number from one counter, so "enqueued before" is a
//! comparison.
//!
//! A copy from pinned host memory reads that memory when it runs; the host must not write it until then. The
//! emulator takes a fingerprint of the bytes at enqueue and compares it when the copy runs: a difference is the
//! streamcheck report (the host reused a staging buffer without waiting for the copy).

use super::config::Timing;
use super::error::{CUresult, Result};
use super::state::{DEFAULT_STREAM, Driver, Tables, lock};
use super::work::{Work, run};
use std::collections::{HashMap, VecDeque};

/// One piece of queued work.
pub struct Queued {
    pub seq: u64,
    pub work: Work,
    /// The host ranges it will read from pinned memory, with their fingerprints at enqueue.
    pinned_sources: Vec<Fingerprint>,
}

struct Fingerprint {
    addr: usize,
    bytes: usize,
    hash: u64,
}

impl Fingerprint {
    fn take(addr: usize, bytes: usize) -> Self {
        Self { addr, bytes, hash: hash_host(addr, bytes) }
    }

    fn unchanged(&self) -> bool {
        hash_host(self.addr, self.bytes) == self.hash
    }
}

/// A 64-bit hash of host bytes, a word at a time (a check of change, not of tampering).
fn hash_host(addr: usize, bytes: usize) -> u64 {
    // SAFETY: the caller of the copy vouched for `bytes` readable bytes at `addr` until the copy has run.
    let data = unsafe { std::slice::from_raw_parts(addr as *const u8, bytes) };
    let mut h = 0x9e37_79b9_7f4a_7c15u64 ^ bytes as u64;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        h = (h ^ u64::from_le_bytes(w.try_into().expect("8 bytes")))
            .wrapping_mul(0xff51_afd7_ed55_8ccd)
            .rotate_left(29);
    }
    for &b in words.remainder() {
        h = (h ^ b as u64).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    }
    h
}

/// The work waiting on every stream.
#[derive(Default)]
pub struct Queues {
    next_seq: u64,
    waiting: HashMap<usize, VecDeque<Queued>>,
    /// The seeded timing's generator state (splitmix64).
    rng: u64,
}

impl Queues {
    pub fn new(seed: Option<u64>) -> Self {
        Self { rng: seed.unwrap_or(0), ..Self::default() }
    }

    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Whether stream `stream` has work waiting.
    pub fn busy(&self, stream: usize) -> bool {
        self.waiting.get(&stream).is_some_and(|q| !q.is_empty())
    }

    /// Whether any waiting work reads or writes host memory in `[addr, addr + bytes)`.
    pub fn uses_host(&self, addr: usize, bytes: usize) -> bool {
        let overlaps = |a: usize, n: u64| a < addr + bytes && addr < a + n as usize;
        self.waiting.values().flatten().any(|q| match &q.work {
            &Work::CopyHtoD { src, bytes, .. } => overlaps(src, bytes),
            &Work::CopyDtoH { dst, bytes, .. } => overlaps(dst, bytes),
            Work::Graph(nodes) => nodes.iter().any(|n| match *n {
                Work::CopyHtoD { src, bytes, .. } => overlaps(src, bytes),
                Work::CopyDtoH { dst, bytes, .. } => overlaps(dst, bytes),
                _ => false,
            }),
            _ => false,
        })
    }

    /// Drops all waiting work: after a fault the context is lost, and none of it runs.
    fn clear(&mut self) {
        self.waiting.clear();
    }
}

/// Puts `work` at the back of stream `stream`'s queue; returns its number. Under `Timing::Eager` no fingerprint
/// is taken (it runs before the call returns).
pub fn push(t: &mut Tables, timing: Timing, stream: usize, work: Work) -> u64 {
    let q = &mut t.queues;
    q.next_seq += 1;
    let seq = q.next_seq;
    let mut pinned_sources = Vec::new();
    if timing != Timing::Eager {
        let mut note = |w: &Work| {
            if let &Work::CopyHtoD { src, bytes, .. } = w {
                pinned_sources.push(Fingerprint::take(src, bytes as usize));
            }
        };
        match &work {
            Work::Graph(nodes) => nodes.iter().for_each(&mut note),
            w => note(w),
        }
    }
    q.waiting.entry(stream).or_default().push_back(Queued { seq, work, pinned_sources });
    seq
}

/// After work numbered `seq` was pushed on `stream`: runs what the timing says should run now.
pub fn after_push(d: &Driver, stream: usize, seq: u64) -> Result {
    match d.config.timing {
        Timing::Late => Ok(()),
        Timing::Eager => run_until(d, stream, seq),
        Timing::Seeded => {
            let (now, other) = {
                let mut t = d.tables();
                let q = &mut t.queues;
                let now = q.next_random().is_multiple_of(3);
                // Now and then, some of another stream's work too (a prefix of its queue).
                let other = if q.next_random().is_multiple_of(4) {
                    let busy: Vec<(usize, u64, u64)> =
                        q.waiting.iter().filter_map(|(&s, w)| Some((s, w.front()?.seq, w.back()?.seq))).collect();
                    match busy.len() {
                        0 => None,
                        n => {
                            let (s, first, last) = busy[(q.next_random() % n as u64) as usize];
                            Some((s, first + q.next_random() % (last - first + 1)))
                        }
                    }
                } else {
                    None
                };
                (now, other)
            };
            if let Some((s, upto)) = other {
                run_until(d, s, upto)?;
            }
            if now { run_until(d, stream, seq) } else { Ok(()) }
        }
    }
}

/// Under the seeded timing, whether a query of waiting work should run it now (else it keeps waiting); under the
/// others, yes (a query that says "not ready" and then runs the work makes the next query say done).
pub fn query_runs(d: &Driver) -> bool {
    d.config.timing != Timing::Seeded || d.tables().queues.next_random().is_multiple_of(2)
}

/// Runs stream `stream`'s work numbered up to `upto` (and, first, what it waits for).
pub fn run_until(d: &Driver, stream: usize, upto: u64) -> Result {
    let _device = lock(&d.device);
    drain(d, stream, upto)
}

/// Runs all of stream `stream`'s waiting work.
pub fn run_stream(d: &Driver, stream: usize) -> Result {
    run_until(d, stream, u64::MAX)
}

/// Runs every stream's waiting work.
pub fn run_all(d: &Driver) -> Result {
    let _device = lock(&d.device);
    loop {
        let next = d.tables().queues.waiting.iter().find(|(_, q)| !q.is_empty()).map(|(&s, _)| s);
        match next {
            Some(stream) => drain(d, stream, u64::MAX)?,
            None => return Ok(()),
        }
    }
}

/// The streams whose work enqueued before `seq` work on `stream` waits for: the blocking streams, for the legacy
/// default stream; the legacy default stream, for a blocking stream.
fn predecessors(t: &Tables, stream: usize) -> Vec<usize> {
    if stream == DEFAULT_STREAM {
        t.streams.iter().filter(|(_, s)| s.blocking).map(|(&id, _)| id).collect()
    } else if t.streams.get(&stream).is_some_and(|s| s.blocking) {
        vec![DEFAULT_STREAM]
    } else {
        Vec::new()
    }
}

/// The body of `run_until`, with the device held. Each recursive call runs work numbered lower than the work that
/// waits for it, so the recursion ends.
fn drain(d: &Driver, stream: usize, upto: u64) -> Result {
    loop {
        let item = {
            let mut t = d.tables();
            let Some(seq) = t.queues.waiting.get(&stream).and_then(|q| q.front()).map(|q| q.seq) else {
                return Ok(());
            };
            if seq > upto {
                return Ok(());
            }
            let earlier: Vec<usize> = predecessors(&t, stream)
                .into_iter()
                .filter(|s| t.queues.waiting.get(s).and_then(|q| q.front()).is_some_and(|q| q.seq < seq))
                .collect();
            if earlier.is_empty() {
                t.queues.waiting.get_mut(&stream).and_then(VecDeque::pop_front).expect("the front just seen")
            } else {
                drop(t);
                for s in earlier {
                    drain(d, s, seq - 1)?;
                }
                continue;
            }
        };
        if let Err(e) = run_queued(d, &item) {
            d.set_sticky(e);
            d.tables().queues.clear();
            return Err(e);
        }
    }
}

fn run_queued(d: &Driver, item: &Queued) -> Result {
    if let Some(changed) = item.pinned_sources.iter().find(|f| !f.unchanged()) {
        eprintln!(
            "glov-emu: streamcheck: the pinned host memory a queued copy reads ({} bytes at {:#x}) was written after \
             the copy was enqueued and before it ran: the host reused it without waiting for the copy (for its event, \
             or a synchronisation of its stream)",
            changed.bytes, changed.addr
        );
        return Err(CUresult::LAUNCH_FAILED);
    }
    run(d, &item.work, item.seq)
}
