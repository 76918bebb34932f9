//! `glov-cuda sweep` and `glov-cuda report` end to end on the tiny example models: a plan of three datasets (class
//! folders, the same images through a CoOp split file with the validation and test splits swapped, and a dataset
//! that does not exist) x two seeds run by the local executor; cell states; a failed cell that does not stop the
//! others; a cell's configuration run alone; an interrupted cell resumed by the next sweep to the history of an
//! uninterrupted run; the slurm executor's script (`--dry-run`); and the report of the sweep.
//!
//! The real Slurm test (a job array on a single-node cluster, and a requeued task) is `scripts/slurm-test.sh`.

#![cfg(unix)]

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_glov-cuda");
const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn glov(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(REPO)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("the glov-cuda binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn describe(output: &Output) -> String {
    format!("({})\nstdout:\n{}\nstderr:\n{}", output.status, text(&output.stdout), text(&output.stderr))
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

/// A CoOp split file of the tiny dataset with its validation and test images swapped: a second variant of it.
fn swapped_split_file(path: &Path) {
    let root = Path::new(REPO).join("examples/tiny-dataset");
    let mut classes: Vec<String> = std::fs::read_dir(root.join("train"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    classes.sort();
    let list = |split: &str| -> Vec<Value> {
        let mut items = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            let mut files: Vec<String> = std::fs::read_dir(root.join(split).join(class))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            files.sort();
            for file in files {
                items.push(json!([format!("{split}/{class}/{file}"), label, class.replace('_', " ")]));
            }
        }
        items
    };
    let split = json!({"train": list("train"), "val": list("test"), "test": list("val")});
    std::fs::write(path, split.to_string()).unwrap();
}

fn write_plan(dir: &Path, steps: usize) -> PathBuf {
    let split = dir.join("swapped_split.json");
    swapped_split_file(&split);
    let plan = format!(
        r#"llm = "{REPO}/examples/tiny-llm"
clip = "{REPO}/tests/fixtures/clip-tiny-quickgelu"
steps = {steps}
samples = 8
alphas = [1.0, 0.5, 0.0]
max-new-tokens = 24
layer = 2
no-cache = true

[grid]
seed = [1, 2]

[[datasets]]
id = "folders"
dataset-name = "tiny shapes"
dataset = "{REPO}/examples/tiny-dataset"
description = "Small synthetic pictures of coloured shapes."

[[datasets]]
id = "swapped"
dataset-name = "tiny shapes, swapped"
dataset = "{REPO}/examples/tiny-dataset"
split-file = "{}"
description = "Small synthetic pictures of coloured shapes."

[[datasets]]
id = "missing"
dataset-name = "missing"
dataset = "{REPO}/examples/no-such-dataset"
description = "Not there."

[slurm]
cpus = 2
mem = "2G"
sbatch = ["--qos=normal"]
"#,
        split.display()
    );
    let path = dir.join("plan.toml");
    std::fs::write(&path, plan).unwrap();
    path
}

/// `sweep --list` (or `--status`) as (cell, state, steps) rows.
fn states(args: &[&str]) -> Vec<(String, String, String)> {
    let output = glov(args);
    assert!(output.status.success(), "{args:?} {}", describe(&output));
    text(&output.stdout)
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with(|c: char| c.is_ascii_digit()))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[0].to_string(), w[1].to_string(), w[2].to_string())
        })
        .collect()
}

fn row(cell: &str, state: &str, steps: &str) -> (String, String, String) {
    (cell.to_string(), state.to_string(), steps.to_string())
}

#[test]
fn a_local_sweep_runs_every_cell_and_the_report_lays_them_out() {
    let dir = tempfile::tempdir().unwrap();
    let plan = write_plan(dir.path(), 3);
    let out = dir.path().join("sweep");
    let (plan_s, out_s) = (path_str(&plan), path_str(&out));

    // The missing dataset is found before anything runs; --no-check lets its cells fail one by one instead.
    let output = glov(&["sweep", plan_s, "--out", out_s]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let missing = format!("dataset {REPO}/examples/no-such-dataset: the dataset folder");
    assert!(
        text(&output.stderr).contains(&missing) && text(&output.stderr).contains("(2 cells)"),
        "{}",
        describe(&output)
    );
    assert!(!out.exists(), "a refused sweep writes nothing");
    let listed = states(&["sweep", plan_s, "--out", out_s, "--list", "--no-check"]);
    let ids = ["folders/seed1", "folders/seed2", "swapped/seed1", "swapped/seed2", "missing/seed1", "missing/seed2"];
    assert_eq!(listed, ids.iter().map(|id| row(id, "pending", "-")).collect::<Vec<_>>());
    assert!(!out.exists(), "--list must not write anything");

    let output = glov(&["sweep", plan_s, "--out", out_s, "--no-check"]);
    assert_eq!(output.status.code(), Some(1), "two cells fail {}", describe(&output));
    let stdout = text(&output.stdout);
    let progress: Vec<&str> = stdout.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(progress.len(), 6, "{stdout}");
    for id in &ids[..4] {
        assert!(progress.iter().any(|l| l.contains(" finished ") && l.contains(id) && l.contains("test ")), "{stdout}");
    }
    for id in &ids[4..] {
        assert!(progress.iter().any(|l| l.contains(" failed ") && l.contains(id)), "{stdout}");
    }
    assert!(stdout.contains("6 cells: 4 finished, 2 failed\n"), "{stdout}");
    assert!(text(&output.stderr).contains("2 of 6 cells failed"), "{}", describe(&output));
    let error = std::fs::read_to_string(out.join("missing/seed1/error.txt")).unwrap();
    assert!(error.contains("no-such-dataset") && error.contains("does not exist"), "{error}");

    let mut want: Vec<_> = ids[..4].iter().map(|id| row(id, "finished", "3/3")).collect();
    want.extend(ids[4..].iter().map(|id| row(id, "failed", "-/3")));
    assert_eq!(states(&["sweep", "--status", "--out", out_s]), want);
    assert_eq!(states(&["sweep", plan_s, "--out", out_s, "--list", "--no-check"]), want);

    // The split-file variant really saw other validation and test images: its split sizes are swapped.
    let config = |id: &str| -> Value {
        serde_json::from_slice(&std::fs::read(out.join(id).join("config.json")).unwrap()).unwrap()
    };
    let (a, b) = (config("folders/seed1"), config("swapped/seed1"));
    assert_eq!(
        (a["images"]["val"].clone(), a["images"]["test"].clone()),
        (b["images"]["test"].clone(), b["images"]["val"].clone())
    );
    assert_ne!(a["images"]["val"], a["images"]["test"], "the variant must differ from the original");
    assert_eq!(b["settings"]["seed"], 1);

    // A cell's configuration runs alone, to the same history.
    let alone = dir.path().join("alone");
    let output = glov(&[
        "optimize",
        "--config",
        path_str(&out.join("swapped/seed2/cell.toml")),
        "--out",
        path_str(&alone),
        "-q",
    ]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        std::fs::read(alone.join("history.jsonl")).unwrap(),
        std::fs::read(out.join("swapped/seed2/history.jsonl")).unwrap()
    );

    // Again: the finished cells are skipped, the failed ones tried again.
    let output = glov(&["sweep", plan_s, "--out", out_s, "--no-check"]);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("6 cells: 4 finished earlier, 2 failed\n"), "{}", describe(&output));

    // The slurm executor's script asks only for the cells that are not finished.
    let slurm = ["--executor", "slurm", "--dry-run", "--time", "00:10:00", "--no-check"];
    let output = glov(&[&["sweep", plan_s, "--out", out_s][..], &slurm].concat());
    assert!(output.status.success(), "{}", describe(&output));
    let script = text(&output.stdout);
    assert_eq!(std::fs::read_to_string(out.join("slurm/job.sh")).unwrap(), script);
    for line in [
        "#SBATCH --array=4-5\n",
        "#SBATCH --cpus-per-task=2\n",
        "#SBATCH --mem=2G\n",
        "#SBATCH --time=00:10:00\n",
        "#SBATCH --qos=normal\n",
    ] {
        assert!(script.contains(line), "no {line:?} in\n{script}");
    }
    assert!(!script.contains("--gres"), "no GPU on --device cpu:\n{script}");
    assert!(script.contains("args=('--device' 'cpu' optimize"), "{script}");
    assert!(script.contains(&format!("  '{}'\n", out.join("missing/seed2").display())), "{script}");
    assert!(!out.join("slurm/jobs.json").exists(), "--dry-run submits nothing");

    // The report: one block, a row per dataset variant with two seeds each, the failed cells named.
    let output = glov(&["report", out_s, "--plot", path_str(&dir.path().join("gain.png"))]);
    assert!(output.status.success(), "{}", describe(&output));
    let report = text(&output.stdout);
    let lines: Vec<String> = report.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("CLIP clip-tiny-quickgelu (") && l.ends_with("2 dataset(s), 4 run(s), seeds 1, 2")),
        "{report}"
    );
    for dataset in ["tiny shapes 2 ", "tiny shapes, swapped 2 ", "mean 4 "] {
        assert_eq!(lines.iter().filter(|l| l.starts_with(dataset)).count(), 1, "{dataset:?} in\n{report}");
    }
    for id in &ids[4..] {
        assert!(
            report.contains(&format!(
                "{}: not started (no config.json); the last attempt failed: error:",
                out.join(id).display()
            )),
            "{report}"
        );
    }
    assert!(std::fs::read(dir.path().join("gain.png")).unwrap().starts_with(b"\x89PNG"));
    // The table's numbers are the runs' own: the folders row's GLOV column is the mean of the two results.json.
    let test = |id: &str| -> f64 {
        let r: Value = serde_json::from_slice(&std::fs::read(out.join(id).join("results.json")).unwrap()).unwrap();
        r["test_accuracy"].as_f64().unwrap()
    };
    let mean = (test("folders/seed1") + test("folders/seed2")) / 2.0;
    let csv = text(&glov(&["report", out_s, "--format", "csv"]).stdout);
    let glov_line = csv.lines().find(|l| l.contains(",tiny shapes,glov,")).unwrap_or_else(|| panic!("{csv}"));
    let recorded: f64 = glov_line.split(',').nth(5).unwrap().parse().unwrap();
    assert!((recorded - mean).abs() < 1e-9, "{glov_line} vs {mean}");
}

fn completed_steps(run: &Path) -> usize {
    std::fs::read(run.join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|s| s["completed_steps"].as_u64())
        .unwrap_or(0) as usize
}

#[test]
fn an_interrupted_cell_is_resumed_by_the_next_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        format!(
            "llm = \"{REPO}/examples/tiny-llm\"\nclip = \"{REPO}/tests/fixtures/clip-tiny-quickgelu\"\nsteps = 30\n\
             samples = 8\nalphas = [1.0, 0.0]\nmax-new-tokens = 24\nlayer = 2\nno-cache = true\nseed = 3\n\
             [[datasets]]\ndataset-name = \"tiny shapes\"\ndataset = \"{REPO}/examples/tiny-dataset\"\n\
             description = \"Shapes.\"\n"
        ),
    )
    .unwrap();
    let out = dir.path().join("sweep");
    let (plan_s, out_s) = (path_str(&plan), path_str(&out));
    let output = glov(&["sweep", plan_s, "--out", out_s, "--executor", "slurm", "--dry-run"]);
    assert!(output.status.success(), "writing the cells {}", describe(&output));
    let cell = out.join("tiny-shapes");
    let config = path_str(&cell.join("cell.toml")).to_string();

    // The cell's run, killed after a few steps: interrupted.
    let mut child = Command::new(BIN)
        .args(["optimize", "--config", &config, "-q"])
        .current_dir(REPO)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while completed_steps(&cell) < 3 {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it was killed");
        assert!(start.elapsed() < Duration::from_secs(60), "no third step within a minute");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed_at = completed_steps(&cell);
    assert!((3..30).contains(&killed_at), "{killed_at} steps");
    assert_eq!(
        states(&["sweep", plan_s, "--out", out_s, "--list"]),
        [row("tiny-shapes", "interrupted", &format!("{killed_at}/30"))]
    );

    let output = glov(&["sweep", plan_s, "--out", out_s]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(text(&output.stdout).contains("1 cell: 1 finished\n"), "{}", describe(&output));
    let log = std::fs::read_to_string(cell.join("optimize.log")).unwrap();
    assert!(log.contains(&format!("optimize --config {config} --resume\n")), "{log}");
    assert!(log.contains(&format!("INFO step {}/30: best a=1: ", killed_at + 1)), "a line per step in the log: {log}");

    let whole = dir.path().join("whole");
    let output = glov(&["optimize", "--config", &config, "--out", path_str(&whole), "-q"]);
    assert!(output.status.success(), "{}", describe(&output));
    for name in ["history.jsonl", "results.json"] {
        assert_eq!(std::fs::read(whole.join(name)).unwrap(), std::fs::read(cell.join(name)).unwrap(), "{name}");
    }
}

#[test]
fn plan_errors_name_the_file_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("bad.toml");
    std::fs::write(&plan, "[grid]\nseeds = [1]\n[[datasets]]\ndataset-name = \"DTD\"\ndataset = \"d\"\n").unwrap();
    let output = glov(&["sweep", path_str(&plan), "--out", path_str(&dir.path().join("o")), "--list"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let err = text(&output.stderr);
    assert!(err.contains(&format!("plan {}: grid.seeds[0]", plan.display())) && err.contains("seeds"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let output = glov(&["sweep", "--status", "--out", path_str(dir.path())]);
    assert!(text(&output.stderr).contains("sweep.json"), "{}", describe(&output));
}

#[test]
fn the_table_1_plan_expands_to_192_cells_and_runs_them_on_the_gpus_it_asks_for() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("table1");
    let out_s = path_str(&out);
    // Without the data, the cells are listed and every missing thing is named once, with the cells it concerns.
    let output = glov(&["sweep", "examples/table1.toml", "--out", out_s, "--list"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert_eq!(text(&output.stdout).lines().count(), 1 + 192 + 1, "{}", describe(&output));
    let err = text(&output.stderr);
    assert!(err.contains("problems found before anything ran:"), "{err}");
    assert!(
        err.contains("\n  dataset /data/imagenet: the dataset folder /data/imagenet does not exist (12 cells)"),
        "{err}"
    );
    assert!(err.contains("\n  clip openai/clip-vit-large-patch14: ") && err.contains("(96 cells)"), "{err}");
    assert!(err.contains("--no-check"), "{err}");
    assert!(!out.exists(), "a failed check writes nothing");

    let listed = states(&["sweep", "examples/table1.toml", "--out", out_s, "--list", "--no-check"]);
    assert_eq!(listed.len(), 16 * 2 * 2 * 3);
    assert_eq!(listed[0], row("clip-vit-base-patch32/imagenet/methodglov/seed1", "pending", "-"));
    assert_eq!(listed[191], row("clip-vit-large-patch14/resisc45/methodllm-opt/seed3", "pending", "-"));

    // The plan asks Slurm for a GPU per task: its cells run on CUDA without --device.
    let slurm = ["sweep", "examples/table1.toml", "--out", out_s, "--executor", "slurm", "--dry-run", "--no-check"];
    let output = glov(&slurm);
    assert!(output.status.success(), "{}", describe(&output));
    let script = text(&output.stdout);
    for line in [
        "#SBATCH --array=0-191\n",
        "#SBATCH --gres=gpu:1\n",
        "#SBATCH --cpus-per-task=8\n",
        "#SBATCH --time=12:00:00\n",
    ] {
        assert!(script.contains(line), "no {line:?} in\n{script}");
    }
    assert!(script.contains("args=('--device' 'cuda:0' optimize"), "{script}");
    let cell: toml::Table = toml::from_str(
        &std::fs::read_to_string(out.join("clip-vit-large-patch14/eurosat/methodglov/seed2/cell.toml")).unwrap(),
    )
    .unwrap();
    assert_eq!(cell["clip"].as_str(), Some("openai/clip-vit-large-patch14"));
    assert_eq!(cell["split-file"].as_str(), Some("/data/eurosat/split_zhou_EuroSAT.json"));
    assert_eq!((cell["seed"].as_integer(), cell["steps"].as_integer()), (Some(2), Some(100)));
    assert_eq!(cell["device"].as_str(), Some("cuda:0"), "the cell runs alone where the sweep runs it");
    let baselines: Vec<&str> = cell["baselines"].as_array().unwrap().iter().filter_map(|b| b.as_str()).collect();
    assert_eq!(baselines, ["cupl", "dclip", "waffle"], "the GLOV cells score the description baselines");
    let llm_opt: toml::Table = toml::from_str(
        &std::fs::read_to_string(out.join("clip-vit-large-patch14/eurosat/methodllm-opt/seed2/cell.toml")).unwrap(),
    )
    .unwrap();
    assert_eq!(llm_opt["method"].as_str(), Some("llm-opt"));
    assert_eq!(llm_opt["alphas"].as_array().map(Vec::len), Some(1));
    assert_eq!(llm_opt["top-bottom"].as_integer(), Some(3));
    assert_eq!(llm_opt["baselines"].as_array().map(Vec::len), Some(0), "the LLM-OPT cells do not score them again");

    // Asking for GPUs and computing on the CPU is refused; so is CUDA without a GPU.
    let output = glov(&[&["--device", "cpu"][..], &slurm].concat());
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(text(&output.stderr).contains("asks Slurm for GPUs") && text(&output.stderr).contains("--device cpu"));
    let output = glov(&[&["--device", "cuda"][..], &slurm, &["--gpus", "0"]].concat());
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(text(&output.stderr).contains("asks Slurm for no GPU"), "{}", describe(&output));
    // Other runtime options of the sweep are the cells' too.
    let output = glov(&[&["--kernels", "plain", "--gpu-memory", "0.8"][..], &slurm].concat());
    assert!(output.status.success(), "{}", describe(&output));
    let cell: toml::Table = toml::from_str(
        &std::fs::read_to_string(out.join("clip-vit-base-patch32/dtd/methodglov/seed1/cell.toml")).unwrap(),
    )
    .unwrap();
    assert_eq!((cell["kernels"].as_str(), cell["gpu-memory"].as_float()), (Some("plain"), Some(0.8)));
}

#[test]
fn the_tiny_table_plan_fills_every_column_the_runs_can_give() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tiny-table");
    let output = glov(&["sweep", "examples/tiny-table.toml", "--out", path_str(&out)]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(text(&output.stdout).contains("8 cells: 8 finished\n"), "{}", describe(&output));
    let output = glov(&["report", path_str(&out)]);
    assert!(output.status.success(), "{}", describe(&output));
    let report = text(&output.stdout);
    let header = report.lines().find(|l| l.starts_with("dataset") && l.contains("GLOV")).expect("a header");
    let columns: Vec<&str> = header.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
    let want = ["dataset", "runs", "baseline", "CuPL", "DCLIP", "Waffle", "LLM-OPT", "GLOV alpha=0", "GLOV", "gain"];
    assert_eq!(columns, want, "{report}");
    // One block: the LLM-OPT cells joined the GLOV cells' rows; the values are the runs' own.
    let json: Value = serde_json::from_slice(&glov(&["report", path_str(&out), "--format", "json"]).stdout).unwrap();
    assert_eq!(json["blocks"].as_array().map(Vec::len), Some(1), "{json}");
    let shapes = json["blocks"][0]["rows"].as_array().unwrap().iter().find(|r| r["dataset"] == "tiny shapes").unwrap();
    let results = |id: &str| -> Value {
        serde_json::from_slice(&std::fs::read(out.join(id).join("results.json")).unwrap()).unwrap()
    };
    for (column, field) in [("cupl", "cupl"), ("dclip", "dclip"), ("waffle", "waffle")] {
        let runs: Vec<Value> = ["shapes/methodglov/seed1", "shapes/methodglov/seed2"]
            .iter()
            .map(|id| results(id)["descriptions"][field]["test_accuracy"].clone())
            .collect();
        assert_eq!(shapes["comparisons"][column]["values"], Value::Array(runs), "{column}");
    }
    let llm_opt: Vec<Value> = ["shapes/methodllm-opt/seed1", "shapes/methodllm-opt/seed2"]
        .iter()
        .map(|id| results(id)["test_accuracy"].clone())
        .collect();
    assert_eq!(shapes["llm_opt"]["values"], Value::Array(llm_opt));
}
