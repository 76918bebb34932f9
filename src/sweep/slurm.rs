//! The slurm executor: one job-array script for the sweep, one array task per cell, submitted with `sbatch`.
//!
//! Each task starts its cell with `optimize --config cell.toml`, or continues it with `--resume` when the cell has
//! begun (a preempted or requeued task, or a new submission after a failure), holding the cell's lock with
//! `flock(1)` while it runs. Its output goes to the cell's `optimize.log`; a failure leaves `error.txt` there, as
//! the local executor does. The scripts and the submitted jobs are kept under `<sweep>/slurm/`.
//!
//! Every value the script holds reaches it through [`super::job_script`]. A task refuses to append to a log or
//! lock a lock file that is a link, and writes `error.txt` to a new file renamed into place, so that a cell's
//! folder cannot make it write elsewhere.

use super::job_script;
use super::plan::SlurmSettings;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const SLURM_DIR: &str = "slurm";
pub const SCRIPT: &str = "job.sh";
pub const JOBS: &str = "jobs.json";

/// The job-array script's inputs.
pub struct Job<'a> {
    pub settings: &'a SlurmSettings,
    /// The glov-cuda binary every task runs (on a cluster: a path all nodes see).
    pub exe: &'a Path,
    /// Global flags for every task (`--device` included).
    pub global: &'a [String],
    pub sweep_dir: &'a Path,
    /// The cells' folders, indexed by array task id.
    pub cells: &'a [PathBuf],
    /// The task ids to run.
    pub tasks: &'a [usize],
}

/// Task ids as Slurm's `--array` takes them: runs of consecutive ids as ranges (`0-3,5,7-8`), and `%N` for the
/// most tasks at once.
pub fn array_spec(tasks: &[usize], max_parallel: Option<u32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < tasks.len() {
        let mut j = i;
        while j + 1 < tasks.len() && tasks[j + 1] == tasks[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { tasks[i].to_string() } else { format!("{}-{}", tasks[i], tasks[j]) });
        i = j + 1;
    }
    let mut spec = parts.join(",");
    if let Some(n) = max_parallel {
        let _ = write!(spec, "%{n}");
    }
    spec
}

/// The sweep's folder as the script names it (checked before anything is written there).
pub fn sweep_folder(dir: &Path) -> Result<&str> {
    let sweep = job_script::path("--out", dir)?;
    if sweep.contains(['%', '\\']) {
        bail!("--out: {sweep:?} holds '%' or '\\', which Slurm reads as file-name patterns in --output");
    }
    Ok(sweep)
}

/// The job-array script's text. Every value from the plan, the flags and the paths reaches it through
/// [`job_script`], which refuses what would end a line and quotes the rest.
pub fn script(job: &Job) -> Result<String> {
    let s = job.settings;
    let sweep = sweep_folder(job.sweep_dir)?;
    let job_name = s.job_name.as_deref().unwrap_or("glov-sweep");
    let mut options = vec![
        job_script::directive("slurm job-name", "job-name", job_name)?,
        format!("--array={}", array_spec(job.tasks, s.max_parallel)),
        job_script::directive("--out", "output", &format!("{sweep}/{SLURM_DIR}/%A_%a.out"))?,
        "--requeue".to_string(),
        "--open-mode=append".to_string(),
    ];
    if let Some(gpus) = s.gpus.filter(|&g| g > 0) {
        options.push(format!("--gres=gpu:{gpus}"));
    }
    for (name, value) in [
        ("cpus-per-task", s.cpus.map(|c| c.to_string())),
        ("mem", s.mem.clone()),
        ("time", s.time.clone()),
        ("partition", s.partition.clone()),
        ("account", s.account.clone()),
    ] {
        if let Some(value) = value {
            let field = format!("slurm {name}");
            if value.is_empty() || job_script::text(&field, &value)?.contains(char::is_whitespace) {
                bail!("{field}: {value:?} is not a single word");
            }
            options.push(job_script::directive(&field, name, &value)?);
        }
    }
    for (i, line) in s.sbatch.iter().enumerate() {
        options.push(job_script::sbatch_option(&format!("slurm sbatch[{i}]"), line)?);
    }
    let mut cells = String::new();
    for cell in job.cells {
        let _ =
            writeln!(cells, "  {}", job_script::word("a cell's folder", job_script::path("a cell's folder", cell)?)?);
    }
    let global: Vec<String> = job.global.iter().map(|a| job_script::word("a global flag", a)).collect::<Result<_>>()?;
    let exe = job_script::word("the glov-cuda binary", job_script::path("the glov-cuda binary", job.exe)?)?;

    let mut text = String::from("#!/bin/bash\n");
    let _ = writeln!(text, "# The glov-cuda sweep in {sweep}: one array task per cell (task i runs cells[i]).");
    let _ =
        writeln!(text, "# A task starts its cell, or resumes it when it has begun (requeued, preempted, resubmitted).");
    for option in &options {
        let _ = writeln!(text, "#SBATCH {option}");
    }
    let _ = write!(
        text,
        r#"set -uo pipefail

cells=(
{cells})
cell=${{cells[$SLURM_ARRAY_TASK_ID]}}
args=({global} optimize --config "$cell/cell.toml")
if [ -e "$cell/config.json" ]; then args+=(--resume); fi

# Writes error.txt: its lines go to a new file (mktemp) renamed over the old one, never through a link.
fail() {{
  local partial
  partial=$(mktemp "$cell/error.txt.XXXXXX") && printf '%s\n' "$@" >"$partial" && mv -fT "$partial" "$cell/error.txt"
}}
# The files the task appends to or locks must be regular files or absent: a link there is refused, not followed.
for file in "$cell/optimize.log" "$cell/.lock"; do
  if [ -L "$file" ] || {{ [ -e "$file" ] && [ ! -f "$file" ]; }}; then
    echo "$file is a symbolic link or not a regular file: the task writes nothing through it" >&2
    fail "$file is a symbolic link or not a regular file: the task writes nothing through it"
    exit 1
  fi
done
echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) slurm job ${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}} (restart ${{SLURM_RESTART_COUNT:-0}}) on $(hostname), CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES:-}}: ${{args[*]}}" >>"$cell/optimize.log"
rm -f "$cell/error.txt"
flock -w 5 -E 75 "$cell/.lock" {exe} "${{args[@]}}" >>"$cell/optimize.log" 2>&1
status=$?
case $status in
  0 | 130 | 137 | 143) ;;
  75) echo "cell $cell is held by another process; not run" >&2 ;;
  *)
    fail "glov-cuda optimize exited with status $status in slurm job ${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}} on $(hostname)" \
      "last lines of $cell/optimize.log:" "$(tail -n 20 "$cell/optimize.log")"
    ;;
esac
exit $status
"#,
        global = global.join(" "),
    );
    Ok(text)
}

/// A submitted job: its id and the cells its array tasks run (task i: cells[i]).
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct Submitted {
    pub job_id: String,
    pub cells: Vec<String>,
    pub tasks: Vec<usize>,
}

pub fn read_jobs(sweep_dir: &Path) -> Result<Vec<Submitted>> {
    let path = sweep_dir.join(SLURM_DIR).join(JOBS);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).with_context(|| format!("{} is damaged", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Submits the script with `sbatch --parsable` and records the job; returns its id.
pub fn submit(sweep_dir: &Path, script: &Path, cells: Vec<String>, tasks: Vec<usize>) -> Result<String> {
    let output = Command::new("sbatch")
        .arg("--parsable")
        .arg(script)
        .output()
        .context("cannot run sbatch (is Slurm installed here? --dry-run writes the script without submitting)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "sbatch {} failed ({}): {}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    // --parsable prints `id` or `id;cluster`.
    let job_id = stdout.trim().split(';').next().unwrap_or_default().to_string();
    if job_id.is_empty() || !job_id.bytes().all(|b| b.is_ascii_digit()) {
        bail!("sbatch printed {:?}, not a job id", stdout.trim());
    }
    let mut jobs = read_jobs(sweep_dir)?;
    jobs.push(Submitted { job_id: job_id.clone(), cells, tasks });
    crate::atomic_file::write(
        &sweep_dir.join(SLURM_DIR).join(JOBS),
        (serde_json::to_string_pretty(&jobs)? + "\n").as_bytes(),
    )?;
    Ok(job_id)
}

/// Parses `JOBID_TASK|STATE` lines (squeue `-o %i|%T`, sacct `-P -o JobID,State`) into (job, task) -> state;
/// other lines (a job's steps, a pending array's unexpanded range) are skipped.
fn parse_task_states(text: &str) -> HashMap<(String, usize), String> {
    let mut states = HashMap::new();
    for line in text.lines() {
        let Some((id, state)) = line.trim().split_once('|') else { continue };
        let Some((job, task)) = id.split_once('_') else { continue };
        let Ok(task) = task.parse::<usize>() else { continue };
        // sacct writes `CANCELLED by 0`; the first word is the state.
        let state = state.split_whitespace().next().unwrap_or_default();
        states.insert((job.to_string(), task), state.to_string());
    }
    states
}

/// Each cell's Slurm state in its latest job: from `squeue` while the task is queued or running, else from
/// `sacct` where accounting is on. Cells the scheduler says nothing about are left out.
pub fn cell_states(jobs: &[Submitted]) -> HashMap<String, String> {
    let mut cells = HashMap::new();
    if jobs.is_empty() {
        return cells;
    }
    let ids: Vec<&str> = jobs.iter().map(|j| j.job_id.as_str()).collect();
    let ids = ids.join(",");
    let run = |program: &str, args: &[&str]| -> String {
        match Command::new(program).args(args).output() {
            Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout).into_owned(),
            _ => String::new(),
        }
    };
    let mut states = parse_task_states(&run("sacct", &["-n", "-P", "-X", "-j", &ids, "-o", "JobID,State"]));
    states.extend(parse_task_states(&run("squeue", &["-h", "-r", "-j", &ids, "-o", "%i|%T"])));
    for job in jobs {
        for &task in &job.tasks {
            if let (Some(state), Some(cell)) = (states.get(&(job.job_id.clone(), task)), job.cells.get(task)) {
                cells.insert(cell.clone(), state.clone());
            }
        }
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_specs_compress_runs() {
        assert_eq!(array_spec(&[0, 1, 2, 3], None), "0-3");
        assert_eq!(array_spec(&[0, 1, 2, 3, 5, 7, 8], Some(4)), "0-3,5,7-8%4");
        assert_eq!(array_spec(&[4], None), "4");
    }

    #[test]
    fn the_script_asks_for_the_resources_and_runs_each_cell() {
        let settings = SlurmSettings {
            gpus: Some(1),
            cpus: Some(8),
            mem: Some("64G".into()),
            time: Some("04:00:00".into()),
            partition: Some("gpu".into()),
            account: Some("vision".into()),
            job_name: None,
            max_parallel: Some(2),
            sbatch: vec!["--qos=high".into(), "#SBATCH --constraint=h100".into()],
        };
        let cells = [PathBuf::from("/runs/t/clip/dtd/seed1"), PathBuf::from("/runs/t/clip/it's/seed2")];
        let global = ["--device".to_string(), "cuda".to_string()];
        let job = Job {
            settings: &settings,
            exe: Path::new("/opt/glov/glov-cuda"),
            global: &global,
            sweep_dir: Path::new("/runs/t"),
            cells: &cells,
            tasks: &[0, 1],
        };
        let text = script(&job).unwrap();
        let header: Vec<&str> = text.lines().filter(|l| l.starts_with("#SBATCH")).collect();
        assert_eq!(
            header,
            [
                "#SBATCH --job-name=glov-sweep",
                "#SBATCH --array=0-1%2",
                "#SBATCH --output=/runs/t/slurm/%A_%a.out",
                "#SBATCH --requeue",
                "#SBATCH --open-mode=append",
                "#SBATCH --gres=gpu:1",
                "#SBATCH --cpus-per-task=8",
                "#SBATCH --mem=64G",
                "#SBATCH --time=04:00:00",
                "#SBATCH --partition=gpu",
                "#SBATCH --account=vision",
                "#SBATCH --qos=high",
                "#SBATCH --constraint=h100",
            ]
        );
        assert!(text.starts_with("#!/bin/bash\n"));
        assert!(text.contains("cells=(\n  '/runs/t/clip/dtd/seed1'\n  '/runs/t/clip/it'\\''s/seed2'\n)\n"), "{text}");
        assert!(text.contains("args=('--device' 'cuda' optimize --config \"$cell/cell.toml\")\n"), "{text}");
        assert!(text.contains("if [ -e \"$cell/config.json\" ]; then args+=(--resume); fi\n"), "{text}");
        assert!(text.contains("flock -w 5 -E 75 \"$cell/.lock\" '/opt/glov/glov-cuda' \"${args[@]}\""), "{text}");

        let no_gpu = SlurmSettings { gpus: Some(0), ..SlurmSettings::default() };
        let text = script(&Job { settings: &no_gpu, ..job }).unwrap();
        assert!(
            !text.contains("--gres") && !text.contains("--mem") && text.contains("#SBATCH --array=0-1\n"),
            "{text}"
        );
        let bad = SlurmSettings { mem: Some("64 G".into()), ..SlurmSettings::default() };
        let e = script(&Job { settings: &bad, ..job }).unwrap_err().to_string();
        assert!(e.contains("slurm mem: \"64 G\""), "{e}");
        let bad = SlurmSettings { sbatch: vec!["--qos=high".into(), "qos=high".into()], ..SlurmSettings::default() };
        let e = script(&Job { settings: &bad, ..job }).unwrap_err().to_string();
        assert!(e.contains("slurm sbatch[1]: \"qos=high\" is not one sbatch option"), "{e}");
    }

    #[test]
    fn values_are_refused_or_quoted_never_run() {
        let cells = [PathBuf::from("/runs/t/a")];
        let job = |settings: &SlurmSettings, sweep: &'static str| -> Result<String> {
            script(&Job {
                settings,
                exe: Path::new("/opt/glov-cuda"),
                global: &[],
                sweep_dir: Path::new(sweep),
                cells: &cells,
                tasks: &[0],
            })
        };
        let named = SlurmSettings { job_name: Some("it's \"$(id)\" `id`".into()), ..SlurmSettings::default() };
        let text = job(&named, "/runs/t").unwrap();
        assert!(text.contains("#SBATCH --job-name=\"it's \\\"$(id)\\\" `id`\"\n"), "{text}");
        let newline = SlurmSettings { job_name: Some("x\nid".into()), ..SlurmSettings::default() };
        let e = job(&newline, "/runs/t").unwrap_err().to_string();
        assert!(e.starts_with("slurm job-name: \"x\\nid\" holds the control character"), "{e}");
        let e = job(&SlurmSettings::default(), "/runs/t\nid").unwrap_err().to_string();
        assert!(e.starts_with("--out: "), "{e}");
        let e = job(&SlurmSettings::default(), "/runs/100%").unwrap_err().to_string();
        assert!(e.contains("file-name patterns"), "{e}");
    }

    #[test]
    fn task_states_come_from_squeue_and_sacct_lines() {
        let states = parse_task_states(
            "12_0|COMPLETED\n12_1|CANCELLED by 0\n12.batch|COMPLETED\n13_[2-4]|PENDING\n13_5|RUNNING\n",
        );
        assert_eq!(states.len(), 3);
        assert_eq!(states[&("12".to_string(), 1)], "CANCELLED");
        assert_eq!(states[&("13".to_string(), 5)], "RUNNING");
    }
}
