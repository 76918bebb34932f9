//! What one launch counted (and, merged, what all launches of a kernel counted): the emulator's profiler.

/// Counters of one or more launches of a kernel.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub launches: u64,
}

impl Stats {
    pub fn merge(&mut self, other: &Stats) {
        self.launches += other.launches;
    }

    /// One JSON object (without the kernel's name).
    pub fn to_json(&self) -> String {
        format!("{{\"launches\": {}}}", self.launches)
    }
}
