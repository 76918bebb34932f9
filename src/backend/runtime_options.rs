//! Where and how a command computes: `--device`, `--kernels`, `--gpu-memory`, `--no-cuda-graphs` and `--threads`.
//! They are flags of every command and keys of the same names in an `optimize --config` file and among a sweep
//! plan's fixed settings; a flag wins over the file. A sweep writes the options its cells run with into each
//! `cell.toml`, so that a cell run alone computes where the sweep ran it.

use super::Device;
use super::cuda::ops::Variant;
use anyhow::{Result, bail};
use clap::Args;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The long flags of a group of arguments: the keys a config file spells them with.
pub fn flag_names<A: Args>() -> Vec<String> {
    let command = A::augment_args(clap::Command::new("keys"));
    command.get_arguments().filter_map(|a| a.get_long()).map(str::to_string).collect()
}

/// The keys of a config file or plan that are runtime options, not settings of a run.
pub fn keys() -> Vec<String> {
    flag_names::<RuntimeOptions>()
}

#[derive(Args, Clone, Debug, Default, Deserialize, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[command(next_help_heading = "Global options (also keys of a --config file or sweep plan)")]
pub struct RuntimeOptions {
    /// Where to compute: cpu, or cuda / cuda:N [default: cpu; selftest: cuda].
    #[arg(long, global = true, value_name = "DEVICE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,

    /// Which CUDA kernel of each pair runs: fast (tiled, tensor cores), or plain (simple, for checking)
    /// [default: fast].
    #[arg(long, global = true, value_enum)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernels: Option<Variant>,

    /// Device memory the CUDA backend takes as one arena for both models, the KV cache and all activations: a
    /// fraction of the card's memory (0.9, as vLLM's --gpu-memory-utilization) or a size with its binary unit
    /// (20GiB, 512MiB) [default: 90% of the memory free at start].
    #[arg(long, global = true, value_name = "FRACTION|SIZE")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_memory: Option<GpuMemory>,

    /// Run every CUDA decode step eagerly instead of recording it once as a CUDA graph and replaying it.
    #[arg(long, global = true, num_args = 0, default_missing_value = "true")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_cuda_graphs: Option<bool>,

    /// CPU worker threads [default, or 0: all cores].
    #[arg(long, global = true, value_name = "N")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
}

impl RuntimeOptions {
    /// `self` where set, else `other`.
    pub fn or(self, other: RuntimeOptions) -> RuntimeOptions {
        RuntimeOptions {
            device: self.device.or(other.device),
            kernels: self.kernels.or(other.kernels),
            gpu_memory: self.gpu_memory.or(other.gpu_memory),
            no_cuda_graphs: self.no_cuda_graphs.or(other.no_cuda_graphs),
            threads: self.threads.or(other.threads),
        }
    }

    /// Takes the runtime options out of a config file's or plan's table; `what` names the table in errors.
    pub fn take_from(table: &mut toml::Table, what: &str) -> Result<RuntimeOptions> {
        let mut options = toml::Table::new();
        for key in keys() {
            if let Some(value) = table.remove(&key) {
                options.insert(key, value);
            }
        }
        toml::Value::Table(options).try_into().map_err(|e| anyhow::anyhow!("{what}: {e}"))
    }

    /// The options that are set, as TOML keys.
    pub fn to_table(&self) -> Result<toml::Table> {
        Ok(toml::Table::try_from(self)?)
    }

    pub fn kernels(&self) -> Variant {
        self.kernels.unwrap_or(Variant::Fast)
    }

    pub fn cuda_graphs(&self) -> bool {
        !self.no_cuda_graphs.unwrap_or(false)
    }
}

/// `--gpu-memory`: a fraction of the card's memory, or a size in bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GpuMemory {
    /// Of the card's total memory, in (0, 1].
    Fraction(f64),
    Bytes(u64),
}

const UNITS: [(&str, u32); 9] =
    [("tib", 40), ("gib", 30), ("mib", 20), ("kib", 10), ("t", 40), ("g", 30), ("m", 20), ("k", 10), ("b", 0)];

impl FromStr for GpuMemory {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let lower = text.trim().to_ascii_lowercase();
        if let Ok(fraction) = lower.parse::<f64>() {
            return if fraction > 0.0 && fraction <= 1.0 {
                Ok(GpuMemory::Fraction(fraction))
            } else {
                Err(format!(
                    "{text:?}: a number alone is a fraction of the card's memory, in (0, 1]; give a size with its \
                     unit (e.g. {text}GiB)"
                ))
            };
        }
        if lower.ends_with("gb") || lower.ends_with("mb") || lower.ends_with("tb") || lower.ends_with("kb") {
            return Err(format!("{text:?}: say GiB, MiB, ... (binary units: 1GiB = 2^30 bytes)"));
        }
        let Some((digits, shift)) =
            UNITS.iter().find_map(|(unit, shift)| lower.strip_suffix(unit).map(|d| (d, *shift)))
        else {
            return Err(format!("{text:?} is neither a fraction (0.9) nor a size with its unit (20GiB, 512MiB)"));
        };
        let bytes = digits.trim().parse::<f64>().map(|n| n * 2f64.powi(shift as i32));
        match bytes {
            Ok(bytes) if (1.0..2f64.powi(63)).contains(&bytes) => Ok(GpuMemory::Bytes(bytes as u64)),
            _ => Err(format!("{text:?} is not a size from 1 byte to 8 EiB")),
        }
    }
}

impl fmt::Display for GpuMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            GpuMemory::Fraction(fraction) => write!(f, "{fraction}"),
            GpuMemory::Bytes(bytes) => match UNITS[..4].iter().find(|(_, shift)| bytes % (1u64 << shift) == 0) {
                Some((unit, shift)) => {
                    let unit = format!("{}iB", unit[..1].to_ascii_uppercase());
                    write!(f, "{}{unit}", bytes >> shift)
                }
                None => write!(f, "{bytes}B"),
            },
        }
    }
}

impl GpuMemory {
    /// The arena's size on a card of `total` bytes.
    pub fn bytes(self, total: u64) -> u64 {
        match self {
            GpuMemory::Fraction(fraction) => (total as f64 * fraction) as u64,
            GpuMemory::Bytes(bytes) => bytes,
        }
    }
}

/// In a TOML file: a fraction as a number (`gpu-memory = 0.9`), a size as a string (`gpu-memory = "20GiB"`).
impl<'de> Deserialize<'de> for GpuMemory {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            Number(f64),
            Text(String),
        }
        let text = match Given::deserialize(deserializer)? {
            Given::Number(n) => n.to_string(),
            Given::Text(text) => text,
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for GpuMemory {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            GpuMemory::Fraction(fraction) => serializer.serialize_f64(fraction),
            GpuMemory::Bytes(_) => serializer.serialize_str(&self.to_string()),
        }
    }
}

/// Refuses a runtime option where only settings of a run may stand (a plan's grid or dataset entries).
pub fn refuse_in(table: &toml::Table, what: &str) -> Result<()> {
    if let Some(key) = keys().into_iter().find(|k| table.contains_key(k)) {
        bail!(
            "{what}: {key} says where the cells run, not what they compute: set it among the fixed settings or as a flag"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_memory_is_a_fraction_or_a_size_with_its_unit() {
        assert_eq!("0.9".parse(), Ok(GpuMemory::Fraction(0.9)));
        assert_eq!("1".parse(), Ok(GpuMemory::Fraction(1.0)));
        assert_eq!("20GiB".parse(), Ok(GpuMemory::Bytes(20 << 30)));
        assert_eq!("20g".parse(), Ok(GpuMemory::Bytes(20 << 30)));
        assert_eq!("1.5 GiB".parse(), Ok(GpuMemory::Bytes(3 << 29)));
        assert_eq!("512MiB".parse(), Ok(GpuMemory::Bytes(512 << 20)));
        let e = "20".parse::<GpuMemory>().unwrap_err();
        assert!(e.contains("fraction") && e.contains("20GiB"), "{e}");
        assert!("20GB".parse::<GpuMemory>().unwrap_err().contains("binary units"));
        for bad in ["0", "-0.5", "nan", "inf", "GiB", "-2GiB", "1e30TiB", "x"] {
            assert!(bad.parse::<GpuMemory>().is_err(), "{bad}");
        }
        assert_eq!(GpuMemory::Bytes(20 << 30).to_string(), "20GiB");
        assert_eq!(GpuMemory::Bytes(1536 << 20).to_string(), "1536MiB");
        assert_eq!(GpuMemory::Bytes(1000).to_string(), "1000B");
        assert_eq!(GpuMemory::Fraction(0.5).bytes(80 << 30), 40 << 30);
    }

    #[test]
    fn options_come_from_a_table_and_go_back_to_one() {
        let mut table: toml::Table =
            toml::from_str("device = \"cuda:1\"\ngpu-memory = 0.8\nkernels = \"plain\"\nsteps = 3\n").unwrap();
        let options = RuntimeOptions::take_from(&mut table, "config").unwrap();
        assert_eq!(table.keys().collect::<Vec<_>>(), ["steps"]);
        assert_eq!(keys(), ["device", "kernels", "gpu-memory", "no-cuda-graphs", "threads"]);
        assert_eq!(options.device, Some(Device::Cuda(1)));
        assert_eq!(options.gpu_memory, Some(GpuMemory::Fraction(0.8)));
        assert_eq!(options.kernels(), Variant::Plain);
        let back = options.to_table().unwrap();
        assert_eq!(back["device"].as_str(), Some("cuda:1"));
        assert_eq!(RuntimeOptions::take_from(&mut back.clone(), "again").unwrap(), options);
        let mut bad: toml::Table = toml::from_str("device = \"tpu\"").unwrap();
        let e = RuntimeOptions::take_from(&mut bad, "config x.toml").unwrap_err().to_string();
        assert!(e.contains("config x.toml") && e.contains("tpu"), "{e}");
        let flags = RuntimeOptions { device: Some(Device::Cpu), ..Default::default() };
        assert_eq!(flags.or(options).device, Some(Device::Cpu));
    }
}
