//! What the kernels counted, per kernel name, written at process exit: the JSON counters file
//! (`GLOV_EMU_COUNTERS`, written to a temporary file and renamed, so a reader never sees half of it) and the
//! one-line summary (`GLOV_EMU_SUMMARY=1`).

use super::config::Config;
use super::state::{initialized, lock};
use crate::exec::Stats;
use std::collections::BTreeMap;

/// Each kernel's merged counters and the host seconds its launches took.
#[derive(Default)]
pub struct Counters {
    kernels: BTreeMap<String, (Stats, f64)>,
}

impl Counters {
    pub fn add(&mut self, kernel: &str, stats: &Stats, seconds: f64) {
        let (merged, total) = self.kernels.entry(kernel.to_string()).or_default();
        merged.merge(stats);
        *total += seconds;
    }

    fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for (stats, seconds) in self.kernels.values() {
            t.launches += stats.launches;
            t.seconds += seconds;
        }
        t
    }

    /// The counters file: the device, each kernel's counters, and the totals.
    pub fn to_json(&self, config: &Config) -> String {
        let (major, minor) = config.capability.major_minor();
        let checks: Vec<String> = config.check_names().iter().map(|c| format!("\"{c}\"")).collect();
        let device = format!(
            "{{\"name\": {}, \"compute_capability\": \"{major}.{minor}\", \"multiprocessors\": {}, \
             \"memory_bytes\": {}, \"driver_version\": {}, \"host_threads\": {}, \"checks\": [{}], \
             \"schedule_seed\": {}}}",
            json_string(&super::device::name(config)),
            config.options.sm_count,
            config.memory_bytes,
            config.driver_version,
            config.options.threads,
            checks.join(", "),
            config.options.schedule_seed.map_or("null".to_string(), |s| s.to_string()),
        );
        let kernels: Vec<String> = self
            .kernels
            .iter()
            .map(|(name, (stats, _))| format!("    {}: {}", json_string(name), stats.to_json()))
            .collect();
        let t = self.totals();
        format!(
            "{{\n  \"device\": {device},\n  \"kernels\": {{\n{}\n  }},\n  \"totals\": {{\"launches\": {}, \"seconds\": {}}}\n}}\n",
            kernels.join(",\n"),
            t.launches,
            t.seconds
        )
    }
}

#[derive(Default)]
struct Totals {
    launches: u64,
    seconds: f64,
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
            let t = counters.totals();
            eprintln!("glov-emu: {} launches, {:.3} s in kernels", t.launches, t.seconds);
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
