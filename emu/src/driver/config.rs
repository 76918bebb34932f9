//! The emulated device and how kernels run, read once from the `GLOV_EMU_*` environment variables (see the
//! module doc of `driver` for each).

use crate::exec::Options;

/// A compute capability the emulator can pose as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    /// 9.0: an H100 SXM.
    Hopper,
    /// 8.0: an A100 SXM.
    Ampere,
}

impl Capability {
    pub fn major_minor(self) -> (u32, u32) {
        match self {
            Capability::Hopper => (9, 0),
            Capability::Ampere => (8, 0),
        }
    }

    /// The L2 cache of the card posed as: 50 MiB on an H100 SXM, 40 MiB on an A100 SXM.
    pub fn l2_bytes(self) -> u64 {
        match self {
            Capability::Hopper => 50 << 20,
            Capability::Ampere => 40 << 20,
        }
    }

    /// `major * 10 + minor`, as in `sm_90`.
    pub fn sm(self) -> u32 {
        let (major, minor) = self.major_minor();
        major * 10 + minor
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub capability: Capability,
    pub memory_bytes: u64,
    pub driver_version: i32,
    pub options: Options,
    /// Where the counters go at exit.
    pub counters: Option<std::path::PathBuf>,
    /// One line of totals on stderr at exit.
    pub summary: bool,
    /// A file that gets one JSON line per kernel launch (name, geometry, counters), in launch order.
    pub launch_log: Option<std::path::PathBuf>,
    /// A folder of PTX files that replace loaded modules declaring the same kernels (mutation testing).
    pub ptx_override: Option<std::path::PathBuf>,
    /// When queued stream work runs.
    pub timing: Timing,
}

/// When work queued on a stream runs (`GLOV_EMU_STREAMS`). Whatever the choice, it runs in stream order, and
/// before any call that must wait for it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// As late as the rules allow: only when something waits for it (a synchronisation, an event wait, a
    /// synchronous copy, a query), so that a missing wait on the host shows. The default.
    Late,
    /// When it is enqueued (the order a host program that forgets every wait would still get away with).
    Eager,
    /// Chosen at each enqueue from the schedule seed: at once, later, or at the last moment.
    Seeded,
}

const CHECKS: [&str; 4] = ["memcheck", "racecheck", "synccheck", "initcheck"];

/// The oldest driver version the emulator poses as (CUDA 11.0).
const OLDEST_DRIVER: i32 = 11000;

impl Config {
    /// The configuration of this process, read on first use (`cuInit` or `cuDriverGetVersion`); the error says
    /// which variable holds what.
    pub fn get() -> std::result::Result<&'static Config, &'static str> {
        static CONFIG: std::sync::OnceLock<std::result::Result<Config, String>> = std::sync::OnceLock::new();
        CONFIG.get_or_init(|| Config::from_vars(|name| std::env::var(name).ok())).as_ref().map_err(|e| e.as_str())
    }

    /// The configuration that `var` (the environment, or a test's map) describes.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> std::result::Result<Config, String> {
        let capability = match var("GLOV_EMU_CC").as_deref().map(str::trim) {
            None | Some("9.0") => Capability::Hopper,
            Some("8.0") => Capability::Ampere,
            Some(other) => return Err(format!("GLOV_EMU_CC={other}: the emulated compute capability is 9.0 or 8.0")),
        };
        let memory_gib: f64 = parse(&var, "GLOV_EMU_MEMORY", "a size in GiB such as 4 or 0.5")?.unwrap_or(4.0);
        if !(memory_gib > 0.0 && memory_gib <= 1024.0) {
            return Err(format!("GLOV_EMU_MEMORY={memory_gib}: the device memory is between 0 and 1024 GiB"));
        }
        let driver_version: i32 =
            parse(&var, "GLOV_EMU_DRIVER_VERSION", "a CUDA driver version such as 13000 (13.0)")?.unwrap_or(13000);
        if driver_version < OLDEST_DRIVER {
            return Err(format!(
                "GLOV_EMU_DRIVER_VERSION={driver_version}: the emulator poses as a CUDA {}.0 driver ({OLDEST_DRIVER}) \
                 or newer",
                OLDEST_DRIVER / 1000
            ));
        }
        let default_sms = match capability {
            Capability::Hopper => 132,
            Capability::Ampere => 108,
        };
        let sm_count: u32 = parse(&var, "GLOV_EMU_SM_COUNT", "a number of multiprocessors")?.unwrap_or(default_sms);
        if sm_count == 0 || sm_count > 1024 {
            return Err(format!("GLOV_EMU_SM_COUNT={sm_count}: between 1 and 1024 multiprocessors"));
        }
        let threads: usize = parse(&var, "GLOV_EMU_THREADS", "a number of host threads")?
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if threads == 0 {
            return Err("GLOV_EMU_THREADS=0: at least one host thread runs the blocks".into());
        }
        let checks = checks(var("GLOV_EMU_CHECKS").as_deref())?;
        let schedule_seed = parse(&var, "GLOV_EMU_SCHEDULE_SEED", "an unsigned 64-bit seed")?;
        let counters = var("GLOV_EMU_COUNTERS").filter(|p| !p.is_empty()).map(std::path::PathBuf::from);
        let path = |name: &str| var(name).filter(|p| !p.is_empty()).map(std::path::PathBuf::from);
        let (launch_log, ptx_override) = (path("GLOV_EMU_LAUNCH_LOG"), path("GLOV_EMU_PTX_OVERRIDE"));
        if let Some(dir) = ptx_override.as_ref().filter(|d| !d.is_dir()) {
            return Err(format!("GLOV_EMU_PTX_OVERRIDE={}: not a folder", dir.display()));
        }
        let timing = match (var("GLOV_EMU_STREAMS").as_deref().map(str::trim), schedule_seed) {
            (None | Some(""), None) | (Some("late"), _) => Timing::Late,
            (None | Some(""), Some(_)) | (Some("seeded"), Some(_)) => Timing::Seeded,
            (Some("eager"), _) => Timing::Eager,
            (Some("seeded"), None) => {
                return Err(
                    "GLOV_EMU_STREAMS=seeded: set GLOV_EMU_SCHEDULE_SEED too (the seed decides the timing)".into()
                );
            }
            (Some(other), _) => {
                return Err(format!("GLOV_EMU_STREAMS={other}: late (the default), eager, or seeded"));
            }
        };
        let poison = match var("GLOV_EMU_POISON").as_deref().map(str::trim) {
            None | Some("") | Some("1") => true,
            Some("0") => false,
            Some(other) => {
                return Err(format!(
                    "GLOV_EMU_POISON={other}: 1 (the default) fills new device memory, registers and local memory \
                     with NaN bytes, 0 leaves them zero"
                ));
            }
        };
        let summary = match var("GLOV_EMU_SUMMARY").as_deref() {
            None | Some("") | Some("0") => false,
            Some("1") => true,
            Some(other) => return Err(format!("GLOV_EMU_SUMMARY={other}: 1 prints a summary at exit, 0 does not")),
        };
        Ok(Config {
            capability,
            memory_bytes: (memory_gib * (1u64 << 30) as f64) as u64,
            driver_version,
            options: Options {
                memcheck: checks[0],
                racecheck: checks[1],
                synccheck: checks[2],
                initcheck: checks[3],
                schedule_seed,
                threads,
                sm_count,
                poison,
            },
            counters,
            summary,
            launch_log,
            ptx_override,
            timing,
        })
    }

    /// The checks in effect, by name.
    pub fn check_names(&self) -> Vec<&'static str> {
        let o = &self.options;
        let on = [o.memcheck, o.racecheck, o.synccheck, o.initcheck];
        CHECKS.iter().zip(on).filter(|(_, on)| *on).map(|(name, _)| *name).collect()
    }
}

fn parse<T: std::str::FromStr>(
    var: &impl Fn(&str) -> Option<String>,
    name: &str,
    what: &str,
) -> std::result::Result<Option<T>, String> {
    match var(name) {
        None => Ok(None),
        Some(text) if text.trim().is_empty() => Ok(None),
        Some(text) => text.trim().parse().map(Some).map_err(|_| format!("{name}={text}: expected {what}")),
    }
}

/// `[memcheck, racecheck, synccheck, initcheck]` from `GLOV_EMU_CHECKS` (unset: all four).
fn checks(text: Option<&str>) -> std::result::Result<[bool; 4], String> {
    let text = match text.map(str::trim) {
        None | Some("") | Some("all") => return Ok([true; 4]),
        Some("none") => return Ok([false; 4]),
        Some(text) => text,
    };
    let mut on = [false; 4];
    for name in text.split(',').map(str::trim) {
        let Some(i) = CHECKS.iter().position(|c| *c == name) else {
            return Err(format!(
                "GLOV_EMU_CHECKS={text}: unknown check {name:?}; the checks are {} (comma-separated), all, or none",
                CHECKS.join(", ")
            ));
        };
        on[i] = true;
    }
    Ok(on)
}

/// The newest PTX ISA version a driver of `version` (e.g. 12020) JIT-compiles, per NVIDIA's release notes.
pub fn max_ptx_isa(version: i32) -> (u32, u32) {
    const ISA: [(i32, (u32, u32)); 19] = [
        (11000, (7, 0)),
        (11010, (7, 1)),
        (11020, (7, 2)),
        (11030, (7, 3)),
        (11040, (7, 4)),
        (11050, (7, 5)),
        (11060, (7, 6)),
        (11070, (7, 7)),
        (11080, (7, 8)),
        (12000, (8, 0)),
        (12010, (8, 1)),
        (12020, (8, 2)),
        (12030, (8, 3)),
        (12040, (8, 4)),
        (12050, (8, 5)),
        (12060, (8, 5)),
        (12080, (8, 7)),
        (12090, (8, 8)),
        (13000, (9, 0)),
    ];
    ISA.iter().rev().find(|(v, _)| *v <= version).map_or((7, 0), |(_, isa)| *isa)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> std::result::Result<Config, String> {
        Config::from_vars(|name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn defaults_pose_as_an_h100_with_every_check() {
        let c = config(&[]).unwrap();
        assert_eq!(c.capability, Capability::Hopper);
        assert_eq!(c.memory_bytes, 4 << 30);
        assert_eq!(c.driver_version, 13000);
        assert_eq!(c.options.sm_count, 132);
        assert_eq!(c.check_names(), CHECKS);
        assert_eq!(c.options.schedule_seed, None);
        assert_eq!(c.timing, Timing::Late);
        assert!(c.options.poison);
    }

    #[test]
    fn a_schedule_seed_shuffles_stream_timing_unless_told_otherwise() {
        assert_eq!(config(&[("GLOV_EMU_SCHEDULE_SEED", "7")]).unwrap().timing, Timing::Seeded);
        let late = config(&[("GLOV_EMU_SCHEDULE_SEED", "7"), ("GLOV_EMU_STREAMS", "late")]).unwrap();
        assert_eq!(late.timing, Timing::Late);
        assert_eq!(config(&[("GLOV_EMU_STREAMS", "eager")]).unwrap().timing, Timing::Eager);
        assert!(!config(&[("GLOV_EMU_POISON", "0")]).unwrap().options.poison);
    }

    #[test]
    fn an_a100_with_a_subset_of_checks() {
        let c = config(&[("GLOV_EMU_CC", "8.0"), ("GLOV_EMU_CHECKS", "memcheck,initcheck")]).unwrap();
        assert_eq!(c.options.sm_count, 108);
        assert_eq!(c.check_names(), ["memcheck", "initcheck"]);
        assert!(config(&[("GLOV_EMU_CHECKS", "none")]).unwrap().check_names().is_empty());
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (name, value) in [
            ("GLOV_EMU_CC", "7.5"),
            ("GLOV_EMU_MEMORY", "lots"),
            ("GLOV_EMU_DRIVER_VERSION", "9000"),
            ("GLOV_EMU_CHECKS", "memcheck,bogus"),
            ("GLOV_EMU_THREADS", "0"),
            ("GLOV_EMU_SCHEDULE_SEED", "-1"),
            ("GLOV_EMU_SUMMARY", "yes"),
            ("GLOV_EMU_STREAMS", "soon"),
            ("GLOV_EMU_STREAMS", "seeded"),
            ("GLOV_EMU_POISON", "yes"),
        ] {
            let e = config(&[(name, value)]).unwrap_err();
            assert!(e.starts_with(name), "{e}");
        }
    }

    #[test]
    fn ptx_isa_per_driver() {
        assert_eq!(max_ptx_isa(13000), (9, 0));
        assert_eq!(max_ptx_isa(12020), (8, 2));
        assert_eq!(max_ptx_isa(12070), (8, 5));
        assert_eq!(max_ptx_isa(12090), (8, 8));
    }
}
