//! The memory-traffic measures of one warp-level request: distinct 32-byte sectors of a global request
//! (coalescing), and the wavefronts a shared request takes over 32 banks of 4 bytes.

use super::warp::LANES;

/// The sectors one global request touches (an aligned access of at most 16 bytes lies in one sector).
pub struct Sectors {
    ids: [u64; LANES],
    n: usize,
}

impl Sectors {
    pub fn new() -> Self {
        Sectors { ids: [0; LANES], n: 0 }
    }

    #[inline(always)]
    pub fn add(&mut self, addr: u64) {
        self.ids[self.n] = addr >> 5;
        self.n += 1;
    }

    pub fn lanes(&self) -> u64 {
        self.n as u64
    }

    /// Distinct sectors among those added: afterwards the ids added are these, in order.
    pub fn distinct(&mut self) -> u64 {
        let ids = &mut self.ids[..self.n];
        if !ids.is_sorted() {
            ids.sort_unstable();
        }
        let mut count = 0;
        for i in 0..self.n {
            if i == 0 || self.ids[i] != self.ids[count - 1] {
                self.ids[count] = self.ids[i];
                count += 1;
            }
        }
        self.n = count;
        count as u64
    }

    /// The ids added (distinct after [`Sectors::distinct`]).
    pub fn ids(&self) -> &[u64] {
        &self.ids[..self.n]
    }
}

/// Phases and wavefronts of a shared request of `width` bytes per lane by the lanes of `lanes`, lane `l` at byte
/// offset `offs[l]`. The hardware serves 4-byte (and narrower) accesses of a warp in one phase, 8-byte ones in
/// two (a half-warp each) and 16-byte ones in four (a quarter-warp each); a phase takes as many wavefronts as the
/// most distinct 4-byte words any one bank must deliver (lanes reading the same word share it).
pub fn wavefronts(offs: &[u32; LANES], lanes: u32, width: u32) -> (u64, u64) {
    let per_phase = match width {
        16 => 8,
        8 => 16,
        _ => 32,
    };
    let mut phases = 0;
    let mut total = 0;
    for start in (0..LANES).step_by(per_phase) {
        let in_phase = lanes & (((1u64 << per_phase) - 1) << start) as u32;
        if in_phase == 0 {
            continue;
        }
        let mut words = [0u32; LANES];
        let mut n = 0;
        for l in super::warp::Lanes(in_phase) {
            let first = offs[l] / 4;
            let last = (offs[l] + width.max(1) - 1) / 4;
            for w in first..=last {
                words[n] = w;
                n += 1;
            }
        }
        phases += 1;
        total += most_per_bank(&mut words[..n]);
    }
    (phases, total)
}

/// The most distinct words any one bank holds among `words`.
fn most_per_bank(words: &mut [u32]) -> u64 {
    // Without conflicts (the common case) each bank sees one word at most: no sort needed.
    let mut seen = [u32::MAX; 32];
    let mut conflict = false;
    for &w in words.iter() {
        let bank = &mut seen[(w % 32) as usize];
        conflict |= *bank != u32::MAX && *bank != w;
        *bank = w;
    }
    if !conflict {
        return 1;
    }
    words.sort_unstable();
    let mut per_bank = [0u64; 32];
    let mut last = None;
    for &w in words.iter() {
        if last != Some(w) {
            per_bank[(w % 32) as usize] += 1;
            last = Some(w);
        }
    }
    per_bank.into_iter().max().unwrap_or(1)
}
