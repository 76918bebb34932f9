//! `glov-cuda sweep`: a plan's grid of runs, one run directory per cell, run here or as a Slurm job array.

use crate::backend::Device;
use crate::backend::runtime_options::RuntimeOptions;
use crate::sweep::cell::{self, State};
use crate::sweep::plan::{Cell, Plan, SlurmSettings};
use crate::sweep::{self, Manifest, local, preflight, slurm};
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Executor {
    /// Here: one process per visible GPU with --device cuda, one at a time on the CPU.
    Local,
    /// A Slurm job array, one task per cell, submitted with sbatch.
    Slurm,
}

#[derive(Args)]
#[command(after_long_help = "A plan is a TOML file: fixed settings (any optimize setting, under its flag's name, and \
    the global options device, kernels, gpu-memory, no-cuda-graphs, threads), [grid] with an array of values per \
    axis (clip, llm, seed, or any other setting), [[datasets]] entries (dataset, split-file, dataset-name, \
    description, id), and optional [slurm] (gpus, cpus, mem, time, partition, account, job-name, max-parallel, \
    sbatch = [extra #SBATCH options]) and [local] (parallel). Relative paths are taken from the plan's folder. \
    Cells run on the device the flags or the plan name; a Slurm plan that asks for GPUs runs them on CUDA (and \
    one that says device = \"cpu\" while asking for GPUs is refused). Before anything runs, every cell's models \
    (their config, not their weights), datasets, split files and meta-prompt are checked, and all problems are \
    reported at once. Each cell gets DIR/<clip>/<llm>/<dataset>/<other axes>/seed<N>/ (only the axes the grid \
    names) with its cell.toml written first: `glov-cuda optimize --config DIR/.../cell.toml` runs it alone. \
    Running a sweep again skips finished cells, resumes interrupted ones and retries failed ones. See docs/sweeps.md.")]
pub struct SweepArgs {
    /// The plan (TOML); not needed with --status.
    #[arg(value_name = "PLAN.toml", required_unless_present = "status")]
    plan: Option<PathBuf>,
    /// The sweep's folder (or `out = ...` in the plan).
    #[arg(short = 'o', long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print the cells and their states (pending, running, interrupted, finished, failed); run nothing.
    #[arg(long)]
    list: bool,
    /// Print the states of the sweep in --out (with Slurm's view of its tasks where squeue/sacct answer).
    #[arg(long, conflicts_with_all = ["list", "dry_run"])]
    status: bool,
    /// Where the cells run.
    #[arg(long, value_enum, default_value = "local")]
    executor: Executor,
    /// Skip the checks of every cell's models, datasets, split files and meta-prompt before anything runs (for
    /// paths that only the compute nodes see).
    #[arg(long)]
    no_check: bool,
    /// Check the plan and show what would run without running it. Local: each cell's command, nothing written;
    /// Slurm: the cells' cell.toml and the job script written and printed, nothing submitted.
    #[arg(long)]
    dry_run: bool,
    /// Local: cells run at once [default: one per visible GPU with --device cuda, else 1].
    #[arg(long, value_name = "N")]
    parallel: Option<usize>,
    /// Slurm: GPUs per task [default: 1 with --device cuda, else 0; more than 0 runs the cells on CUDA].
    #[arg(long, value_name = "N")]
    gpus: Option<u32>,
    /// Slurm: CPUs per task.
    #[arg(long, value_name = "N")]
    cpus: Option<u32>,
    /// Slurm: memory per task (e.g. 64G).
    #[arg(long, value_name = "SIZE")]
    mem: Option<String>,
    /// Slurm: time limit per task (e.g. 04:00:00).
    #[arg(long, value_name = "TIME")]
    time: Option<String>,
    /// Slurm: the partition to submit to.
    #[arg(long, value_name = "NAME")]
    partition: Option<String>,
    /// Slurm: the account charged.
    #[arg(long, value_name = "NAME")]
    account: Option<String>,
    /// Slurm: the job's name [default: glov-sweep].
    #[arg(long, value_name = "NAME")]
    job_name: Option<String>,
    /// Slurm: the most tasks running at once.
    #[arg(long, value_name = "N")]
    max_parallel: Option<u32>,
    /// Slurm: one more #SBATCH option (e.g. --sbatch=--qos=high); repeatable, added to the plan's.
    #[arg(long = "sbatch", value_name = "OPTION")]
    sbatch: Vec<String>,
}

pub fn run(args: SweepArgs, flags: RuntimeOptions) -> Result<()> {
    let plan = args.plan.as_deref().map(Plan::read).transpose()?;
    let Some(out) = args.out.clone().or_else(|| plan.as_ref().and_then(|p| p.out.clone())) else {
        bail!("--out is required (as a flag, or as out = ... in the plan): the sweep's folder");
    };
    let out = std::path::absolute(&out).with_context(|| format!("cannot make {} absolute", out.display()))?;
    if args.status {
        let manifest = Manifest::read(&out)?;
        let jobs = slurm::read_jobs(&out)?;
        print!("{}", states_table(&out, &manifest.cells, (!jobs.is_empty()).then(|| slurm::cell_states(&jobs)))?);
        return Ok(());
    }
    let plan = plan.expect("clap requires the plan without --status");
    let cells = plan.cells(&out)?;
    let ids: Vec<String> = cells.iter().map(|c| c.id.clone()).collect();
    if args.list {
        print!("{}", states_table(&out, &ids, None)?);
    }
    let problems = if args.no_check { Vec::new() } else { preflight::problems(&cells) };
    if !problems.is_empty() {
        bail!(
            "plan {}: {} found before anything ran:\n  {}",
            plan.path.display(),
            if problems.len() == 1 { "1 problem".to_string() } else { format!("{} problems", problems.len()) },
            problems.join("\n  ") + "\n(--no-check skips these checks, for paths only the compute nodes see)"
        );
    }
    if args.list {
        return Ok(());
    }
    let runtime = flags.or(plan.runtime.clone());
    match args.executor {
        Executor::Local => run_local(&args, &plan, runtime, &out, &cells),
        Executor::Slurm => run_slurm(&args, &plan, runtime, &out, &cells),
    }
}

/// One line per cell (state, completed steps of the planned ones, Slurm's state where known) and a count.
fn states_table(out: &Path, ids: &[String], slurm: Option<HashMap<String, String>>) -> Result<String> {
    let mut rows = Vec::new();
    let mut counts: Vec<(State, usize)> = Vec::new();
    for id in ids {
        let dir = out.join(id);
        let progress = cell::progress(&dir).with_context(|| format!("cell {id}"))?;
        let planned = planned_steps(&dir);
        let steps = match (progress.completed_steps, planned) {
            (Some(done), Some(total)) => format!("{done}/{total}"),
            (None, Some(total)) => format!("-/{total}"),
            _ => "-".to_string(),
        };
        let mut row = vec![id.clone(), progress.state.name().to_string(), steps];
        if let Some(states) = &slurm {
            row.push(states.get(id).cloned().unwrap_or_else(|| "-".to_string()));
        }
        rows.push(row);
        match counts.iter_mut().find(|(s, _)| *s == progress.state) {
            Some((_, n)) => *n += 1,
            None => counts.push((progress.state, 1)),
        }
    }
    let mut header = vec!["cell".to_string(), "state".to_string(), "steps".to_string()];
    if slurm.is_some() {
        header.push("slurm".to_string());
    }
    rows.insert(0, header);
    let widths: Vec<usize> =
        (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut text = String::new();
    for row in &rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(t, w)| format!("{t:<w$}")).collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {}", s.name())).collect();
    text.push_str(&format!("{} in {}: {}\n", sweep::count_cells(ids.len()), out.display(), parts.join(", ")));
    Ok(text)
}

/// The steps a cell's configuration asks for, from its cell.toml.
fn planned_steps(dir: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(dir.join(cell::CELL_CONFIG)).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    table.get("steps")?.as_integer().map(|n| n as usize)
}

/// Visible GPUs: the entries of CUDA_VISIBLE_DEVICES when set, else the /dev/nvidiaN device files.
fn visible_gpus() -> usize {
    if let Ok(list) = std::env::var("CUDA_VISIBLE_DEVICES") {
        return list.split(',').map(str::trim).take_while(|d| !d.is_empty() && !d.starts_with('-')).count();
    }
    std::fs::read_dir("/dev")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_prefix("nvidia").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                })
                .count()
        })
        .unwrap_or(0)
}

fn run_local(args: &SweepArgs, plan: &Plan, runtime: RuntimeOptions, out: &Path, cells: &[Cell]) -> Result<()> {
    let parallel = args.parallel.or(plan.local.parallel);
    let devices: Vec<String> = match runtime.device.unwrap_or(Device::Cpu) {
        Device::Cpu => vec!["cpu".to_string(); parallel.unwrap_or(1)],
        Device::Cuda(_) => {
            let gpus = visible_gpus();
            if gpus == 0 {
                bail!("--device cuda: no GPU is visible (CUDA_VISIBLE_DEVICES, /dev/nvidiaN)");
            }
            (0..parallel.unwrap_or(gpus)).map(|i| format!("cuda:{}", i % gpus)).collect()
        }
    };
    if devices.is_empty() {
        bail!("--parallel must be at least 1");
    }
    let ids: Vec<String> = cells.iter().map(|c| c.id.clone()).collect();
    let exe = std::env::current_exe().context("cannot find the glov-cuda binary")?;
    if args.dry_run {
        println!("{} in {}, {} at a time; each runs:", sweep::count_cells(ids.len()), out.display(), devices.len());
        for (i, id) in ids.iter().enumerate() {
            let config = out.join(id).join(cell::CELL_CONFIG);
            let device = &devices[i % devices.len()];
            println!("  {} --device {device} optimize --config {}", exe.display(), config.display());
        }
        println!("(dry run: nothing written; the cells would take {})", describe_runtime(&runtime));
        return Ok(());
    }
    sweep::prepare(out, plan, cells, &runtime.to_table()?)?;
    let launch = local::Launch { exe, devices };
    println!("sweep: {} in {}, {} at a time", sweep::count_cells(ids.len()), out.display(), launch.devices.len());
    let summary = local::run(out, &ids, &launch)?;
    print!("{}", summary.text(out));
    if summary.stopped {
        bail!("stopped on request; run the same command again to resume");
    }
    let failed = summary.count(local::Outcome::Failed);
    if failed > 0 {
        bail!("{failed} of {} cells failed; run the same command again to retry them", ids.len());
    }
    println!("report: glov-cuda report {}", out.display());
    Ok(())
}

/// The runtime options, as flags would give them.
fn describe_runtime(runtime: &RuntimeOptions) -> String {
    match runtime.to_table() {
        Ok(table) if !table.is_empty() => {
            table.iter().map(|(k, v)| format!("{k} = {v}")).collect::<Vec<_>>().join(", ")
        }
        _ => "the defaults".to_string(),
    }
}

/// Whether extra `#SBATCH` options ask for GPUs themselves (`--gres=gpu...`, `--gpus...`).
fn sbatch_asks_for_gpus(options: &[String]) -> bool {
    options.iter().any(|o| o.contains("gres=gpu") || o.contains("--gpus"))
}

/// The device of every task and the GPUs each asks for: a plan that asks for GPUs runs its cells on them.
fn slurm_device(runtime: &RuntimeOptions, gpus: Option<u32>, sbatch: &[String]) -> Result<(Device, u32)> {
    let extra = sbatch_asks_for_gpus(sbatch);
    let asks = gpus.is_some_and(|n| n > 0) || extra;
    match runtime.device {
        Some(Device::Cpu) if asks => bail!(
            "the plan asks Slurm for GPUs ([slurm] gpus, --gpus or a --gres/--gpus sbatch option) but its cells \
             would run with --device cpu: say --device cuda (or device = \"cuda\" in the plan), or ask for no GPU \
             (gpus = 0)"
        ),
        Some(Device::Cpu) => Ok((Device::Cpu, 0)),
        Some(Device::Cuda(_)) if gpus == Some(0) && !extra => bail!(
            "--device cuda, but the plan asks Slurm for no GPU (gpus = 0): ask for at least one ([slurm] gpus or --gpus)"
        ),
        // Each task sees its own GPUs from cuda:0 on (Slurm sets CUDA_VISIBLE_DEVICES).
        Some(Device::Cuda(_)) => Ok((Device::Cuda(0), gpus.unwrap_or(u32::from(!extra)))),
        None if asks => Ok((Device::Cuda(0), gpus.unwrap_or(0))),
        None => Ok((Device::Cpu, 0)),
    }
}

fn run_slurm(args: &SweepArgs, plan: &Plan, runtime: RuntimeOptions, out: &Path, cells: &[Cell]) -> Result<()> {
    let from_plan = &plan.slurm;
    let sbatch: Vec<String> = from_plan.sbatch.iter().chain(&args.sbatch).cloned().collect();
    let (device, gpus) = slurm_device(&runtime, args.gpus.or(from_plan.gpus), &sbatch)?;
    let runtime = RuntimeOptions { device: Some(device), ..runtime };
    let settings = SlurmSettings {
        gpus: Some(gpus),
        cpus: args.cpus.or(from_plan.cpus),
        mem: args.mem.clone().or_else(|| from_plan.mem.clone()),
        time: args.time.clone().or_else(|| from_plan.time.clone()),
        partition: args.partition.clone().or_else(|| from_plan.partition.clone()),
        account: args.account.clone().or_else(|| from_plan.account.clone()),
        job_name: args.job_name.clone().or_else(|| from_plan.job_name.clone()),
        max_parallel: args.max_parallel.or(from_plan.max_parallel),
        sbatch,
    };
    slurm::sweep_folder(out)?;
    sweep::prepare(out, plan, cells, &runtime.to_table()?)?;
    let ids: Vec<String> = cells.iter().map(|c| c.id.clone()).collect();
    let mut tasks = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        match cell::progress(&out.join(id))?.state {
            State::Finished | State::Running => {}
            State::Pending | State::Interrupted | State::Failed => tasks.push(i),
        }
    }
    if tasks.is_empty() {
        println!("every cell of {} is finished or running: nothing to submit", out.display());
        return Ok(());
    }
    let exe = std::env::current_exe().context("cannot find the glov-cuda binary")?;
    let cell_dirs: Vec<PathBuf> = ids.iter().map(|id| out.join(id)).collect();
    let task_flags = ["--device".to_string(), device.to_string()];
    let job = slurm::Job {
        settings: &settings,
        exe: &exe,
        global: &task_flags,
        sweep_dir: out,
        cells: &cell_dirs,
        tasks: &tasks,
    };
    let text = slurm::script(&job)?;
    let script_path = out.join(slurm::SLURM_DIR).join(slurm::SCRIPT);
    crate::atomic_file::write(&script_path, text.as_bytes())?;
    if args.dry_run {
        print!("{text}");
        eprintln!(
            "dry run: wrote the {} cells' cell.toml and {} ({} of them to submit, on {device}); nothing submitted; \
             submit it with: sbatch {1}",
            ids.len(),
            script_path.display(),
            tasks.len(),
        );
        return Ok(());
    }
    let job_id = slurm::submit(out, &script_path, ids.to_vec(), tasks.clone())?;
    println!(
        "submitted job {job_id}: array {} ({} of {} cells, on {device}); follow it with: glov-cuda sweep --status \
         --out {}",
        slurm::array_spec(&tasks, settings.max_parallel),
        tasks.len(),
        ids.len(),
        out.display()
    );
    Ok(())
}
