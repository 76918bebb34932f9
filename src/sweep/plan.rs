//! A sweep plan: a TOML file naming the fixed settings of every run, the datasets, the axes of the grid, and how
//! to run the cells on Slurm.
//!
//! ```toml
//! llm = "meta-llama/Meta-Llama-3-8B-Instruct"   # fixed settings: any `optimize` setting, by its flag's name
//! steps = 100
//!
//! [grid]                                        # axes: every combination of these values is one cell
//! clip = ["openai/clip-vit-base-patch32", "openai/clip-vit-large-patch14"]
//! seed = [1, 2, 3]
//!
//! [[datasets]]                                  # one entry per dataset (an axis of its own)
//! id = "eurosat"                                # the cell folder's name [default: from dataset-name]
//! dataset-name = "EuroSAT"
//! dataset = "/data/eurosat/2750"
//! split-file = "/data/eurosat/split_zhou_EuroSAT.json"
//!
//! [methods.llm-opt]                             # settings of the cells of one method (with a method axis)
//! alphas = [0.0]
//!
//! [slurm]                                       # the slurm executor's resources (flags override them)
//! partition = "gpu"
//! time = "04:00:00"
//! ```
//!
//! A cell's folder is `<clip>/<llm>/<dataset id>/<other axes>/seed<N>` below the sweep's folder, with only the
//! axes the grid names (a model axis by the model's last path component, any other axis as its name and value).
//! Relative paths are taken from the plan's folder, as `optimize --config` takes them from its file's, and every
//! cell's configuration is written with absolute ones. The runtime options (`device`, `kernels`, `gpu-memory`,
//! `no-cuda-graphs`, `threads`) may stand among the fixed settings; they are not axes.

use crate::backend::runtime_options::{self, RuntimeOptions};
use crate::glov::settings::{Settings, parse_settings};
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Settings that describe a dataset: they belong in a `[[datasets]]` entry, not among the fixed ones or the axes.
const DATASET_KEYS: [&str; 4] = ["dataset", "split-file", "dataset-name", "description"];
/// Axes whose values name models: a cell folder shows the model's last path component.
const MODEL_AXES: [&str; 4] = ["clip", "vlm", "matcher", "llm"];

/// What the `[slurm]` table (or the flags) ask of each array task.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SlurmSettings {
    pub gpus: Option<u32>,
    pub cpus: Option<u32>,
    pub mem: Option<String>,
    pub time: Option<String>,
    pub partition: Option<String>,
    pub account: Option<String>,
    pub job_name: Option<String>,
    /// The most array tasks running at once (`--array=...%N`).
    pub max_parallel: Option<u32>,
    /// Further `#SBATCH` lines, e.g. `"--qos=high"`.
    #[serde(default)]
    pub sbatch: Vec<String>,
}

/// What the `[local]` table asks of the local executor.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LocalSettings {
    /// Cells run at once [default: one per visible GPU with --device cuda, one on the CPU].
    pub parallel: Option<usize>,
}

#[derive(Debug)]
pub struct Plan {
    pub path: PathBuf,
    /// The sweep's folder, when the plan names it (`out = "..."`).
    pub out: Option<PathBuf>,
    fixed: toml::Table,
    /// Settings of the cells of one method (`[methods.NAME]`), over the fixed ones.
    methods: BTreeMap<String, toml::Table>,
    datasets: Vec<DatasetEntry>,
    /// The axes in the order of a cell's folder path (models first, seed last); the datasets come after the models.
    axes: Vec<(String, Vec<toml::Value>)>,
    pub slurm: SlurmSettings,
    pub local: LocalSettings,
    /// Where and how the cells compute, as the plan says (flags of `sweep` win).
    pub runtime: RuntimeOptions,
}

#[derive(Debug)]
struct DatasetEntry {
    id: String,
    settings: toml::Table,
}

/// One run of the grid.
#[derive(Clone, Debug)]
pub struct Cell {
    /// The folder below the sweep's, with `/` between components.
    pub id: String,
    /// Each axis and the value this cell takes (`dataset` is the dataset's id).
    pub values: Vec<(String, String)>,
    pub settings: Settings,
    /// Every setting of the cell, as its `cell.toml` holds them (without `out`).
    pub config: toml::Table,
}

impl Plan {
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the plan {}", path.display()))?;
        Self::parse(&text, path)
    }

    /// Parses a plan; every error names `path` and the table or field it is about.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let at = |what: String| format!("plan {}: {what}", path.display());
        let mut table: toml::Table = toml::from_str(text).with_context(|| at("not valid TOML".into()))?;
        let folder = path.parent().unwrap_or(Path::new(""));
        let out = match table.remove("out") {
            Some(toml::Value::String(dir)) => Some(folder.join(dir)),
            Some(other) => bail!(at(format!("out must be a string (a folder), not {other}"))),
            None => None,
        };
        if table.contains_key("resume") {
            bail!(at("resume is not a plan setting: a sweep resumes every interrupted cell by itself".into()));
        }
        let slurm = match table.remove("slurm") {
            Some(value) => value.try_into().with_context(|| at("[slurm]".into()))?,
            None => SlurmSettings::default(),
        };
        let local = match table.remove("local") {
            Some(value) => value.try_into().with_context(|| at("[local]".into()))?,
            None => LocalSettings::default(),
        };
        let mut methods = BTreeMap::new();
        match table.remove("methods") {
            Some(toml::Value::Table(tables)) => {
                for (name, settings) in tables {
                    let field = format!("methods.{name}");
                    let toml::Value::Table(settings) = settings else {
                        bail!(at(format!("{field} must be a table of settings ([{field}]), not {settings}")));
                    };
                    let method = toml::Table::from_iter([("method".to_string(), toml::Value::String(name.clone()))]);
                    check_settings(&method).with_context(|| at(field.clone()))?;
                    check_settings(&settings).with_context(|| at(field.clone()))?;
                    if let Some(key) = settings.keys().find(|k| DATASET_KEYS.contains(&k.as_str()) || *k == "method") {
                        bail!(at(format!("{field}: {key} cannot differ by method")));
                    }
                    methods.insert(name, settings);
                }
            }
            Some(other) => bail!(at(format!("methods must be a table of [methods.NAME] tables, not {other}"))),
            None => {}
        }
        let grid = match table.remove("grid") {
            Some(toml::Value::Table(grid)) => grid,
            Some(other) => bail!(at(format!("grid must be a table of axes ([grid]), not {other}"))),
            None => toml::Table::new(),
        };
        let datasets = match table.remove("datasets") {
            Some(toml::Value::Array(entries)) => entries,
            Some(other) => bail!(at(format!("datasets must be an array of tables ([[datasets]]), not {other}"))),
            None => bail!(at("no [[datasets]] entry: a plan names at least one dataset".into())),
        };

        for key in table.keys() {
            if DATASET_KEYS.contains(&key.as_str()) {
                bail!(at(format!("{key} belongs in a [[datasets]] entry, not among the fixed settings")));
            }
        }
        let runtime = RuntimeOptions::take_from(&mut table, &at("runtime options".into()))?;
        check_settings(&table).with_context(|| at("fixed settings".into()))?;

        let mut entries = Vec::new();
        for (i, entry) in datasets.into_iter().enumerate() {
            let toml::Value::Table(mut settings) = entry else {
                bail!(at(format!("datasets[{i}] must be a table")));
            };
            let name = settings.get("dataset-name").and_then(|v| v.as_str()).map(str::to_string);
            let what = format!("datasets[{i}]{}", name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default());
            let id = match settings.remove("id") {
                Some(toml::Value::String(id)) => {
                    if id.is_empty() || id != slug(&id) {
                        bail!(at(format!("{what}: id {id:?} is not a folder name (letters, digits, '.', '_', '-')")));
                    }
                    id
                }
                Some(other) => bail!(at(format!("{what}: id must be a string, not {other}"))),
                None => match &name {
                    Some(name) => slug(&name.to_lowercase()),
                    None => bail!(at(format!("{what}: dataset-name is required"))),
                },
            };
            for key in ["dataset", "dataset-name"] {
                if !settings.contains_key(key) {
                    bail!(at(format!("{what}: {key} is required")));
                }
            }
            for key in settings.keys() {
                if table.contains_key(key) {
                    bail!(at(format!("{what}: {key} is also a fixed setting; give it in one place")));
                }
            }
            runtime_options::refuse_in(&settings, &at(what.clone()))?;
            check_settings(&settings).with_context(|| at(what.clone()))?;
            if let Some(other) = entries.iter().find(|e: &&DatasetEntry| e.id == id) {
                bail!(at(format!("{what}: the id {:?} is taken by another entry; give each an id", other.id)));
            }
            entries.push(DatasetEntry { id, settings });
        }

        let mut axes = Vec::new();
        for (key, values) in grid {
            let field = format!("grid.{key}");
            if DATASET_KEYS.contains(&key.as_str()) {
                bail!(at(format!("{field}: datasets are an axis of their own: list them as [[datasets]] entries")));
            }
            runtime_options::refuse_in(&toml::Table::from_iter([(key.clone(), values.clone())]), &at(field.clone()))?;
            if key == "out" || key == "resume" {
                bail!(at(format!("{field}: {key} is not a setting of a run")));
            }
            if table.contains_key(&key) {
                bail!(at(format!("{field}: {key} is also a fixed setting; give it in one place")));
            }
            if let Some(entry) = entries.iter().find(|e| e.settings.contains_key(&key)) {
                bail!(at(format!("{field}: the dataset entry {:?} sets {key} too; give it in one place", entry.id)));
            }
            let toml::Value::Array(values) = values else {
                bail!(at(format!("{field} must be an array of values, not {values}")));
            };
            if values.is_empty() {
                bail!(at(format!("{field} has no values")));
            }
            for (i, value) in values.iter().enumerate() {
                let single = toml::Table::from_iter([(key.clone(), value.clone())]);
                check_settings(&single).with_context(|| at(format!("{field}[{i}]")))?;
                if values[..i].contains(value) {
                    bail!(at(format!("{field}: {value} is given twice")));
                }
            }
            axes.push((key, values));
        }
        axes.sort_by_key(|(key, _)| axis_rank(key));

        Ok(Self {
            path: path.to_path_buf(),
            out,
            fixed: table,
            methods,
            datasets: entries,
            axes,
            slurm,
            local,
            runtime,
        })
    }

    /// Every cell of the grid, in the order of their folder paths' components (models, dataset, other axes, seed;
    /// the first axis varies slowest). Each cell's settings are resolved and checked as `optimize` would.
    pub fn cells(&self, sweep_dir: &Path) -> Result<Vec<Cell>> {
        let at = |what: String| format!("plan {}: {what}", self.path.display());
        let models = self.axes.iter().take_while(|(key, _)| MODEL_AXES.contains(&key.as_str())).count();
        // The datasets are an axis too, placed after the models.
        let mut order: Vec<(&str, usize)> = self.axes[..models].iter().map(|(k, v)| (k.as_str(), v.len())).collect();
        order.push(("dataset", self.datasets.len()));
        order.extend(self.axes[models..].iter().map(|(k, v)| (k.as_str(), v.len())));
        let axis_values = |position: usize| -> &Vec<toml::Value> {
            let index = if position < models { position } else { position - 1 };
            &self.axes[index].1
        };

        let folder = self.path.parent().unwrap_or(Path::new(""));
        let mut cells: Vec<Cell> = Vec::new();
        let mut choice = vec![0usize; order.len()];
        loop {
            let mut config = self.fixed.clone();
            let mut components = Vec::new();
            let mut values = Vec::new();
            // Settings the dataset entry or an axis gives: a method's settings do not replace them.
            let mut own: Vec<String> = Vec::new();
            for (position, &(key, _)) in order.iter().enumerate() {
                if key == "dataset" {
                    let entry = &self.datasets[choice[position]];
                    config.extend(entry.settings.clone());
                    own.extend(entry.settings.keys().cloned());
                    components.push(entry.id.clone());
                    values.push(("dataset".to_string(), entry.id.clone()));
                } else {
                    let value = &axis_values(position)[choice[position]];
                    config.insert(key.to_string(), value.clone());
                    own.push(key.to_string());
                    components.push(folder_component(key, value));
                    values.push((key.to_string(), display_value(value)));
                }
            }
            // The cell's method's settings go over the fixed ones; the dataset's and the axes' stay as given.
            let method = config.get("method").and_then(toml::Value::as_str).unwrap_or("glov");
            if let Some(settings) = self.methods.get(method) {
                for (key, value) in settings.iter().filter(|(k, _)| !own.contains(k)) {
                    config.insert(key.clone(), value.clone());
                }
            }
            let id = components.join("/");
            let settings = resolve(config, folder).with_context(|| at(format!("cell {id}")))?;
            let config = cell_table(&settings).with_context(|| at(format!("cell {id}")))?;
            if let Some(other) = cells.iter().find(|c| c.id == id) {
                bail!(at(format!(
                    "two cells would share the folder {}: {} and {}; give the datasets distinct ids or the models \
                     distinct names",
                    sweep_dir.join(&id).display(),
                    describe(&other.values),
                    describe(&values)
                )));
            }
            cells.push(Cell { id, values, settings, config });

            // The next combination: the last axis varies fastest.
            let mut position = order.len();
            loop {
                if position == 0 {
                    return Ok(cells);
                }
                position -= 1;
                choice[position] += 1;
                if choice[position] < order[position].1 {
                    break;
                }
                choice[position] = 0;
            }
        }
    }
}

/// Rejects unknown names, values of the wrong type and numbers that are not finite, as `optimize --config` would.
fn check_settings(table: &toml::Table) -> Result<()> {
    crate::glov::settings::check_finite(table)?;
    parse_settings(table.clone())?;
    Ok(())
}

/// Model axes first (the judge: clip or vlm and matcher, then llm), seed last, any other in between by name.
fn axis_rank(key: &str) -> (usize, String) {
    match key {
        "clip" | "vlm" => (0, String::new()),
        "matcher" => (0, "matcher".to_string()),
        "llm" => (1, String::new()),
        "seed" => (3, String::new()),
        other => (2, other.to_string()),
    }
}

/// Letters, digits, `.`, `_` and `-` kept; anything else becomes `-`; a leading `.` too.
fn slug(text: &str) -> String {
    let mut out: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '-' }).collect();
    if out.starts_with('.') {
        out.replace_range(..1, "-");
    }
    out
}

fn display_value(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(items) => items.iter().map(display_value).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn folder_component(key: &str, value: &toml::Value) -> String {
    if MODEL_AXES.contains(&key) {
        let text = display_value(value);
        let name = text.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
        return slug(if name.is_empty() { &text } else { name });
    }
    let text = match value {
        toml::Value::Array(items) => items.iter().map(display_value).collect::<Vec<_>>().join("-"),
        other => display_value(other),
    };
    slug(&format!("{key}{text}"))
}

fn describe(values: &[(String, String)]) -> String {
    values.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

/// A cell's settings, resolved and checked as a new `optimize` run resolves them, relative paths taken from the
/// plan's `folder`.
fn resolve(config: toml::Table, folder: &Path) -> Result<Settings> {
    parse_settings(config)?.rebase(folder).absolute()?.resolve()
}

/// The settings as a `--config` table (unset optional settings left out). Through JSON text, whose `f32`s are
/// written in their shortest form (`0.9`, not the `0.8999999761581421` of a widening to `f64`).
fn cell_table(settings: &Settings) -> Result<toml::Table> {
    let json: serde_json::Value = serde_json::from_str(&serde_json::to_string(settings)?)?;
    let serde_json::Value::Object(map) = json else { unreachable!("settings serialise to an object") };
    let kept: BTreeMap<String, serde_json::Value> = map.into_iter().filter(|(_, v)| !v.is_null()).collect();
    Ok(toml::Table::try_from(kept)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glov::method::Method;

    const PLAN: &str = r#"
        llm = "/models/llm"
        steps = 4
        alphas = [1.0, 0.0]

        [grid]
        seed = [1, 2]
        clip = ["openai/clip-vit-base-patch32", "/models/clip-large"]

        [[datasets]]
        dataset-name = "EuroSAT"
        dataset = "/data/eurosat"
        split-file = "/data/eurosat/split.json"

        [[datasets]]
        id = "dtd-1shot"
        dataset-name = "DTD"
        dataset = "/data/dtd"
        shots = 1

        [slurm]
        partition = "gpu"
        sbatch = ["--qos=high"]
    "#;

    fn parse(text: &str) -> Result<Plan> {
        Plan::parse(text, Path::new("plans/table1.toml"))
    }

    fn error(text: &str) -> String {
        format!("{:#}", parse(text).and_then(|p| p.cells(Path::new("/runs/t")).map(|_| p)).unwrap_err())
    }

    #[test]
    fn expands_models_then_datasets_then_seeds() {
        let plan = parse(PLAN).unwrap();
        assert_eq!(plan.slurm.partition.as_deref(), Some("gpu"));
        assert_eq!(plan.slurm.sbatch, ["--qos=high"]);
        let cells = plan.cells(Path::new("/runs/t")).unwrap();
        let ids: Vec<&str> = cells.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "clip-vit-base-patch32/eurosat/seed1",
                "clip-vit-base-patch32/eurosat/seed2",
                "clip-vit-base-patch32/dtd-1shot/seed1",
                "clip-vit-base-patch32/dtd-1shot/seed2",
                "clip-large/eurosat/seed1",
                "clip-large/eurosat/seed2",
                "clip-large/dtd-1shot/seed1",
                "clip-large/dtd-1shot/seed2",
            ]
        );
        let cell = &cells[6];
        assert_eq!(cell.settings.clip.as_deref(), Some("/models/clip-large"));
        assert_eq!(cell.settings.dataset, PathBuf::from("/data/dtd"));
        assert_eq!(cell.settings.dataset_name, "DTD");
        assert_eq!((cell.settings.seed, cell.settings.steps, cell.settings.shots), (1, 4, 1));
        assert_eq!(cell.settings.alphas, [1.0, 0.0]);
        assert_eq!(cell.settings.samples, 10, "a default fills what the plan leaves out");
        assert_eq!(
            cell.values,
            [
                ("clip".into(), "/models/clip-large".into()),
                ("dataset".into(), "dtd-1shot".into()),
                ("seed".into(), "1".into())
            ]
        );
        assert_eq!(cells[0].settings.split_file.as_deref(), Some(Path::new("/data/eurosat/split.json")));
        // The cell's table holds every setting, unset optional ones left out, and reads back as the same settings.
        assert_eq!(cell.config["samples"].as_integer(), Some(10));
        assert_eq!(cell.config["top-p"].as_float(), Some(0.9));
        assert!(!cell.config.contains_key("split-file") && !cell.config.contains_key("layer"));
        assert_eq!(resolve(cell.config.clone(), Path::new("plans")).unwrap(), cell.settings);
    }

    #[test]
    fn vlm_and_matcher_axes_name_the_cells_folders() {
        let plan = parse(
            "llm = \"org/Llama-3\"\n[grid]\nseed = [1]\nmatcher = [\"st/mpnet\", \"st/minilm\"]\n\
             vlm = [\"hf/llava-ov-7b\"]\n[[datasets]]\ndataset-name = \"DTD\"\ndataset = \"d\"\n",
        )
        .unwrap();
        let cells = plan.cells(Path::new("out")).unwrap();
        let ids: Vec<&str> = cells.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["llava-ov-7b/mpnet/dtd/seed1", "llava-ov-7b/minilm/dtd/seed1"]);
        assert_eq!(cells[1].settings.matcher.as_deref(), Some("st/minilm"));
        assert_eq!(cells[1].settings.samples, 5, "the VLM path's default");
    }

    #[test]
    fn other_axes_sit_between_the_dataset_and_the_seed() {
        let plan = parse(
            "clip = \"c\"\n[grid]\nseed = [3]\nllm = [\"org/Llama-3\"]\nalphas = [[1.0, 0.0], [0.5]]\nshots = [2]\n\
             [[datasets]]\ndataset-name = \"Food 101 (small)\"\ndataset = \"d\"\ndescription = \"food\"\n",
        )
        .unwrap();
        let ids: Vec<String> = plan.cells(Path::new("out")).unwrap().into_iter().map(|c| c.id).collect();
        assert_eq!(
            ids,
            ["Llama-3/food-101--small-/alphas1.0-0.0/shots2/seed3", "Llama-3/food-101--small-/alphas0.5/shots2/seed3"]
        );
    }

    #[test]
    fn a_method_axis_takes_each_methods_settings_over_the_fixed_ones() {
        let plan = parse(
            "llm = \"l\"\nclip = \"c\"\nalphas = [1.0, 0.0]\n[methods.llm-opt]\nalphas = [0.0]\ntop-bottom = 4\n\
             [grid]\nmethod = [\"glov\", \"llm-opt\"]\n[[datasets]]\ndataset-name = \"DTD\"\ndataset = \"d\"\n\
             [[datasets]]\ndataset-name = \"EuroSAT\"\ndataset = \"e\"\ntop-bottom = 2\n",
        )
        .unwrap();
        let cells = plan.cells(Path::new("/sweep")).unwrap();
        let ids: Vec<&str> = cells.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["dtd/methodglov", "dtd/methodllm-opt", "eurosat/methodglov", "eurosat/methodllm-opt"]);
        let summary: Vec<(Method, Vec<f32>, usize)> =
            cells.iter().map(|c| (c.settings.method, c.settings.alphas.clone(), c.settings.top_bottom)).collect();
        assert_eq!(
            summary,
            [
                (Method::Glov, vec![1.0, 0.0], 5),
                (Method::LlmOpt, vec![0.0], 4),
                (Method::Glov, vec![1.0, 0.0], 2),
                // The dataset entry's top-bottom stays.
                (Method::LlmOpt, vec![0.0], 2),
            ]
        );
        let e = error("[methods.llm-opt]\ndataset = \"x\"\n[[datasets]]\ndataset-name = \"DTD\"\ndataset = \"d\"\n");
        assert!(e.contains("methods.llm-opt: dataset cannot differ by method"), "{e}");
        let e = error("[methods.llm-opd]\nalphas = [0.0]\n[[datasets]]\ndataset-name = \"DTD\"\ndataset = \"d\"\n");
        assert!(e.contains("methods.llm-opd"), "{e}");
    }

    #[test]
    fn errors_name_the_plan_and_the_field() {
        let e = error("llm = 1\n[[datasets]]\ndataset-name = \"DTD\"\ndataset = \"d\"\n");
        assert!(e.contains("plan plans/table1.toml: fixed settings") && e.contains("llm"), "{e}");
        let e = error("stepz = 3\n[[datasets]]\ndataset-name = \"DTD\"\ndataset = \"d\"\n");
        assert!(e.contains("plans/table1.toml: fixed settings") && e.contains("stepz"), "{e}");
        let e = error("llm = \"l\"\nclip = \"c\"\n");
        assert!(e.contains("plans/table1.toml: no [[datasets]] entry"), "{e}");
        let e = error("[[datasets]]\ndataset-name = \"DTD\"\n");
        assert!(e.contains("datasets[0] (DTD): dataset is required"), "{e}");
        let e = error("[[datasets]]\ndataset-name = \"DTD\"\ndataset = \"d\"\ntop-p = \"x\"\n");
        assert!(e.contains("plans/table1.toml: datasets[0] (DTD)") && e.contains("top-p"), "{e}");
        let e = error("dataset = \"d\"\n[[datasets]]\ndataset-name = \"DTD\"\ndataset = \"d\"\n");
        assert!(e.contains("dataset belongs in a [[datasets]] entry"), "{e}");
        let e = error("[grid]\nseed = []\n[[datasets]]\ndataset-name = \"DTD\"\ndataset = \"d\"\n");
        assert!(e.contains("plans/table1.toml: grid.seed has no values"), "{e}");
        let e = error("[grid]\nseed = [1, \"two\"]\n[[datasets]]\ndataset-name = \"DTD\"\ndataset = \"d\"\n");
        assert!(e.contains("plans/table1.toml: grid.seed[1]"), "{e}");
        let e = error("[grid]\nseed = [1, 1]\n[[datasets]]\ndataset-name = \"DTD\"\ndataset = \"d\"\n");
        assert!(e.contains("grid.seed: 1 is given twice"), "{e}");
        let e = error("seed = 1\n[grid]\nseed = [2]\n[[datasets]]\ndataset-name = \"DTD\"\ndataset = \"d\"\n");
        assert!(e.contains("grid.seed: seed is also a fixed setting"), "{e}");
        let e = error("[grid]\ndataset = [\"a\"]\n[[datasets]]\ndataset-name = \"DTD\"\ndataset = \"d\"\n");
        assert!(e.contains("grid.dataset: datasets are an axis of their own"), "{e}");
        let e = error("top-p = nan\n[[datasets]]\ndataset-name = \"DTD\"\ndataset = \"d\"\n");
        assert!(e.contains("plans/table1.toml: fixed settings: top-p: NaN is not a finite number"), "{e}");
        let e = error("[grid]\nalphas = [[1.0], [inf]]\n[[datasets]]\ndataset-name = \"DTD\"\ndataset = \"d\"\n");
        assert!(e.contains("grid.alphas[1]: alphas[0]: inf is not a finite number"), "{e}");
        let e = error("[[datasets]]\ndataset-name = \"DTD\"\ndataset = \"d\"\ntemperature = -inf\n");
        assert!(e.contains("datasets[0] (DTD): temperature: -inf is not a finite number"), "{e}");
        let e = error("[slurm]\ngpu = 1\n[[datasets]]\ndataset-name = \"DTD\"\ndataset = \"d\"\n");
        assert!(e.contains("plans/table1.toml: [slurm]") && e.contains("gpu"), "{e}");
        let e = error(
            "[[datasets]]\ndataset-name = \"DTD\"\ndataset = \"d\"\n[[datasets]]\ndataset-name = \"dtd\"\ndataset = \"e\"\n",
        );
        assert!(e.contains("datasets[1] (dtd): the id \"dtd\" is taken"), "{e}");
        let e = error("[[datasets]]\nid = \"a/b\"\ndataset-name = \"DTD\"\ndataset = \"d\"\n");
        assert!(e.contains("id \"a/b\" is not a folder name"), "{e}");
        // Resolving a cell checks what `optimize` checks, and names the cell.
        let e = error("clip = \"c\"\n[[datasets]]\ndataset-name = \"DTD\"\ndataset = \"d\"\n");
        assert!(e.contains("plans/table1.toml: cell dtd") && e.contains("--llm is required"), "{e}");
        let e = error("llm = \"l\"\nclip = \"c\"\nsteps = 0\n[[datasets]]\ndataset-name = \"DTD\"\ndataset = \"d\"\n");
        assert!(e.contains("cell dtd") && e.contains("steps must be at least 1"), "{e}");
        let e = error(
            "llm = \"l\"\n[grid]\nclip = [\"a/clip\", \"b/clip\"]\n[[datasets]]\ndataset-name = \"DTD\"\ndataset = \"d\"\n",
        );
        assert!(
            e.contains("two cells would share the folder /runs/t/clip/dtd: clip=a/clip, dataset=dtd and clip=b/clip"),
            "{e}"
        );
    }
}
