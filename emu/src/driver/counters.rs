//! What the kernels counted, per kernel name, written at process exit: the JSON counters file
//! (`GLOV_EMU_COUNTERS`, written to a temporary file and renamed, so a reader never sees half of it) and the
//! one-line summary (`GLOV_EMU_SUMMARY=1`).

use super::config::Config;
use super::state::{initialized, lock};
use crate::exec::Stats;
use std::collections::BTreeMap;

/// Each kernel's counters, merged over its launches.
#[derive(Default)]
pub struct Counters {
    kernels: BTreeMap<String, Stats>,
    /// Asynchronous copies from pageable host memory to the device. Legal (the driver stages the source before the
    /// call returns), but slower than from pinned memory and impossible to capture in a graph: an engine that
    /// stages its uploads through pinned memory makes none.
    pub pageable_async_uploads: u64,
    /// Graphs launched (`cuGraphLaunch`, counted when the graph runs) and the nodes they ran.
    pub graph_launches: u64,
    pub graph_nodes: u64,
}

/// What all launches of all kernels counted.
struct Totals {
    launches: u64,
    thread_insts: u64,
    seconds: f64,
    requested_bytes: u64,
    dram_bytes: u64,
}

impl Totals {
    fn rate(&self) -> f64 {
        if self.seconds > 0.0 { self.thread_insts as f64 / self.seconds } else { 0.0 }
    }
}

impl Counters {
    pub fn graph_launch(&mut self, nodes: usize) {
        self.graph_launches += 1;
        self.graph_nodes += nodes as u64;
    }

    pub fn add(&mut self, kernel: &str, stats: &Stats) {
        self.kernels.entry(kernel.to_string()).or_default().merge(stats);
    }

    fn totals(&self) -> Totals {
        let mut t = Totals { launches: 0, thread_insts: 0, seconds: 0.0, requested_bytes: 0, dram_bytes: 0 };
        for stats in self.kernels.values() {
            t.launches += stats.launches;
            t.thread_insts += stats.total_thread_insts();
            t.seconds += stats.seconds;
            t.requested_bytes += stats.global_load_bytes + stats.global_store_bytes;
            t.dram_bytes += stats.dram_read_bytes + stats.dram_write_bytes;
        }
        t
    }

    /// The counters file: the device, each kernel's counters, and the totals.
    pub fn to_json(&self, config: &Config) -> String {
        let (major, minor) = config.capability.major_minor();
        let checks: Vec<String> = config.check_names().iter().map(|c| format!("\"{c}\"")).collect();
        let device = format!(
            "{{\"name\": {}, \"compute_capability\": \"{major}.{minor}\", \"multiprocessors\": {}, \
             \"memory_bytes\": {}, \"l2_bytes\": {}, \"driver_version\": {}, \"host_threads\": {}, \
             \"checks\": [{}], \"schedule_seed\": {}, \"streams\": \"{}\", \"poison\": {}}}",
            json_string(&super::device::name(config)),
            config.options.sm_count,
            config.memory_bytes,
            config.capability.l2_bytes(),
            config.driver_version,
            config.options.threads,
            checks.join(", "),
            config.options.schedule_seed.map_or("null".to_string(), |s| s.to_string()),
            format!("{:?}", config.timing).to_lowercase(),
            config.options.poison,
        );
        let kernels: Vec<String> = self
            .kernels
            .iter()
            .map(|(name, stats)| format!("    {}: {}", json_string(name), stats.to_json()))
            .collect();
        let t = self.totals();
        format!(
            "{{\n  \"device\": {device},\n  \"kernels\": {{\n{}\n  }},\n  \"totals\": {{\"launches\": {}, \
             \"thread_insts\": {}, \"seconds\": {:.6}, \"thread_insts_per_second\": {:.0}, \
             \"requested_bytes\": {}, \"dram_bytes\": {}, \"pageable_async_uploads\": {}, \"graph_launches\": {}, \
             \"graph_nodes\": {}}}\n}}\n",
            kernels.join(",\n"),
            t.launches,
            t.thread_insts,
            t.seconds,
            t.rate(),
            t.requested_bytes,
            t.dram_bytes,
            self.pageable_async_uploads,
            self.graph_launches,
            self.graph_nodes
        )
    }

    /// The one-line summary.
    pub fn summary(&self) -> String {
        let t = self.totals();
        format!(
            "glov-emu: {} launches, {} thread instructions in {:.3} s ({:.3e} thread instructions/s), {} bytes \
             requested, {} estimated from DRAM, {} asynchronous uploads from pageable memory, {} graph launches ({} \
             nodes)",
            t.launches,
            t.thread_insts,
            t.seconds,
            t.rate(),
            t.requested_bytes,
            t.dram_bytes,
            self.pageable_async_uploads,
            self.graph_launches,
            self.graph_nodes
        )
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Appends one launch's line to the launch log: `{"kernel", "grid", "block", "stats"}`. A log that cannot be written
/// is reported and the launch goes on.
pub fn log_launch(path: &std::path::Path, kernel: &str, grid: [u32; 3], block: [u32; 3], stats: &Stats) {
    use std::io::Write;
    let line = format!(
        "{{\"kernel\": {}, \"grid\": {grid:?}, \"block\": {block:?}, \"stats\": {}}}\n",
        json_string(kernel),
        stats.to_json()
    );
    let written =
        std::fs::OpenOptions::new().create(true).append(true).open(path).and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!("glov-emu: writing the launch log {}: {e}", path.display());
    }
}

/// Writes `text` to `path` through a temporary file beside it and a rename.
fn write_atomically(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

extern "C" fn write_at_exit() {
    let Some(d) = initialized() else { return };
    // A panic must not unwind into the C runtime's exit.
    let _ = std::panic::catch_unwind(|| {
        let counters = lock(&d.counters);
        if let Some(path) = &d.config.counters
            && let Err(e) = write_atomically(path, &counters.to_json(d.config))
        {
            eprintln!("glov-emu: writing the counters to {}: {e}", path.display());
        }
        if d.config.summary {
            eprintln!("{}", counters.summary());
        }
    });
}

/// Registers the exit hook (once, at `cuInit`).
pub fn at_exit() {
    // SAFETY: registers a function with no arguments that the C runtime calls at `exit`; the library stays loaded.
    if unsafe { libc::atexit(write_at_exit) } != 0 {
        eprintln!("glov-emu: the counters cannot be written at exit (atexit failed)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counters_file_is_json_with_device_kernels_and_totals() {
        let config = Config::from_vars(|_| None).unwrap();
        let mut counters = Counters::default();
        let mut one =
            Stats { launches: 1, seconds: 0.5, global_load_bytes: 64, dram_read_bytes: 32, ..Stats::default() };
        one.thread_insts[1] = 1000;
        counters.add("vadd", &one);
        counters.add("vadd", &one);
        counters.add("odd \"name\"", &one);
        counters.pageable_async_uploads = 2;
        counters.graph_launch(5);
        let json: serde_json::Value = serde_json::from_str(&counters.to_json(&config)).unwrap();
        assert_eq!(json["device"]["compute_capability"], "9.0");
        assert_eq!(json["kernels"]["vadd"]["launches"], 2);
        assert_eq!(json["kernels"]["odd \"name\""]["launches"], 1);
        assert_eq!(json["totals"]["launches"], 3);
        assert_eq!(json["totals"]["thread_insts"], 3000);
        assert_eq!(json["totals"]["thread_insts_per_second"], 2000.0);
        assert_eq!(json["totals"]["pageable_async_uploads"], 2);
        assert_eq!(
            (json["totals"]["requested_bytes"].as_u64(), json["totals"]["dram_bytes"].as_u64()),
            (Some(192), Some(96))
        );
        assert_eq!(json["device"]["l2_bytes"], 50 << 20);
        assert_eq!(json["kernels"]["vadd"]["dram"]["read_bytes"], 64);
        assert!(counters.summary().contains("3 launches, 3000 thread instructions"));
        assert_eq!(json["totals"]["graph_launches"], 1);
        assert_eq!(json["totals"]["graph_nodes"], 5);
        assert!(
            counters.summary().ends_with("2 asynchronous uploads from pageable memory, 1 graph launches (5 nodes)")
        );
    }
}
