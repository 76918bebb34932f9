//! The Slurm job script of a hostile plan: every string field of the plan, the flags, the sweep's folder and the
//! binary's own path hold quotes, `$(...)`, backticks and `;`. Where such a value reaches the script, a control
//! character (a newline above all) is refused with an error naming the field; everything else is quoted, so that
//! the script is valid bash, and run with stub Slurm commands on PATH it passes every value on as itself and runs
//! nothing injected. A task also refuses to write through a link planted in its cell's folder.

#![cfg(unix)]

mod common;

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_glov-cuda");
const MEMORY_MIB: u64 = 2048;
const SECONDS: u64 = 60;

/// A value that ends a bash word, a quoted string and a command in every way it can, without a line end: each
/// command it injects would create a file named `injected-<tag>...` in the folder the script runs in or in `dir`.
fn hostile(tag: &str, dir: &Path) -> String {
    format!(
        "{tag}'\"$(touch injected-{tag}-1)\"'`touch injected-{tag}-2`;touch injected-{tag}-3;\"$(touch {}/injected-{tag}-4)",
        dir.display()
    )
}

/// [`hostile`] without white space, for the fields that must be one word.
fn hostile_word(tag: &str) -> String {
    format!("{tag}'\"$(touch${{IFS}}injected-{tag}-1)\"'`touch${{IFS}}injected-{tag}-2`;touch${{IFS}}injected-{tag}-3")
}

/// The plan's string fields that reach no script (written to each cell's TOML) hold line ends as well.
fn plan(dir: &Path, slurm: &str) -> String {
    let value = |tag: &str| toml::Value::String(format!("{}\n{}", hostile(tag, dir), hostile(&format!("{tag}b"), dir)));
    let mut table = toml::Table::new();
    for key in ["llm", "clip", "meta-prompt", "cache-dir"] {
        table.insert(key.into(), value(key));
    }
    table.insert("baseline".into(), toml::Value::String(format!("{{}} {}", hostile("baseline", dir))));
    let mut dataset = toml::Table::from_iter([("id".to_string(), toml::Value::String("hostile".into()))]);
    for key in ["dataset", "split-file", "dataset-name", "description"] {
        dataset.insert(key.into(), value(key));
    }
    table.insert("datasets".into(), toml::Value::Array(vec![toml::Value::Table(dataset)]));
    format!("{}\n[slurm]\n{slurm}", toml::to_string(&table).unwrap())
}

/// A `[slurm]` table whose every string field is hostile (one word where the field must be one).
fn slurm_table(dir: &Path) -> String {
    let quoted = |text: &str| toml::Value::String(text.to_string()).to_string();
    let mut lines: Vec<String> = ["mem", "time", "partition", "account"]
        .iter()
        .map(|key| format!("{key} = {}", quoted(&hostile_word(key))))
        .collect();
    lines.push(format!("job-name = {}", quoted(&hostile("job-name", dir))));
    let sbatch = [
        format!("--comment={}", sbatch_quoted(&hostile("comment", dir))),
        format!("#SBATCH --constraint={}", sbatch_quoted(&hostile("constraint", dir))),
    ];
    lines.push(format!("sbatch = [{}]", sbatch.iter().map(|s| quoted(s)).collect::<Vec<_>>().join(", ")));
    lines.join("\n") + "\n"
}

/// `"text"` as sbatch reads it on an `#SBATCH` line, with `\\` and `"` escaped.
fn sbatch_quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', r"\\").replace('"', "\\\""))
}

/// Stub Slurm commands and `flock`: each appends its name and arguments (NUL-separated) to `calls` and exits 0.
fn stubs(dir: &Path, calls: &Path) -> PathBuf {
    let bin = dir.join("stub-bin");
    std::fs::create_dir_all(&bin).unwrap();
    for name in ["sbatch", "srun", "scontrol", "squeue", "sacct", "flock"] {
        let path = bin.join(name);
        let text = format!(
            "#!/bin/bash\nprintf '%s\\0' {name} \"$@\" >>'{}'\nprintf '\\n' >>'{}'\n",
            calls.display(),
            calls.display()
        );
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

/// Runs the job script as task 0 from `cwd`, with the stubs first on PATH.
fn run_task(script: &Path, cwd: &Path, stubs: &Path) -> Output {
    let path = format!("{}:{}", stubs.display(), std::env::var("PATH").unwrap_or_default());
    Command::new("bash")
        .arg(script)
        .current_dir(cwd)
        .env("PATH", path)
        .env("SLURM_ARRAY_TASK_ID", "0")
        .env("SLURM_ARRAY_JOB_ID", "7")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Every path below `dir` whose name holds `injected`.
fn injected(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("injected") {
            found.push(path.clone());
        }
        if path.symlink_metadata().unwrap().is_dir() {
            found.extend(injected(&path));
        }
    }
    found
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_hostile_plan_s_script_is_valid_bash_that_runs_nothing_injected() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // The binary under a hostile name: the script names it as its task's program.
    let bin_dir = root.join(hostile("exe", root).replace('/', "|"));
    std::fs::create_dir(&bin_dir).unwrap();
    let exe = bin_dir.join("glov-cuda");
    if std::fs::hard_link(BIN, &exe).is_err() {
        std::fs::copy(BIN, &exe).unwrap();
    }
    let plan_path = root.join("plan.toml");
    std::fs::write(&plan_path, plan(root, &slurm_table(root))).unwrap();
    let out = root.join(hostile("out", root).replace('/', "|"));
    let output = Command::new(&exe)
        .args(["sweep", plan_path.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .args(["--executor", "slurm", "--dry-run", "--no-check", "--job-name", &hostile("flag", root)])
        .arg(format!("--sbatch=--mail-user={}", sbatch_quoted(&hostile("mail", root))))
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}\n{}", text(&output.stdout), text(&output.stderr));
    let script = out.join("slurm/job.sh");
    let syntax = Command::new("bash").arg("-n").arg(&script).output().unwrap();
    assert!(syntax.status.success(), "bash -n: {}\n{}", text(&syntax.stderr), text(&output.stdout));

    let calls = root.join("calls");
    let stub_bin = stubs(root, &calls);
    let cwd = root.join("task-cwd");
    std::fs::create_dir(&cwd).unwrap();
    let task = run_task(&script, &cwd, &stub_bin);
    assert!(task.status.success(), "the task: {}\n{}", text(&task.stdout), text(&task.stderr));
    assert_eq!(injected(root), Vec::<PathBuf>::new(), "injected commands ran");

    // The one call: flock on the cell's lock, running the hostile-named binary on the cell's config.
    let cell = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("cell.toml").is_file())
        .expect("one cell folder");
    let recorded = std::fs::read(&calls).unwrap();
    let words: Vec<String> =
        text(&recorded).trim_end().split('\0').filter(|w| !w.is_empty()).map(String::from).collect();
    let cell_str = cell.to_str().unwrap();
    let want: Vec<String> = [
        "flock",
        "-w",
        "5",
        "-E",
        "75",
        &format!("{cell_str}/.lock"),
        exe.to_str().unwrap(),
        "--device",
        "cpu",
        "optimize",
        "--config",
        &format!("{cell_str}/cell.toml"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(words, want);
    let log = std::fs::read_to_string(cell.join("optimize.log")).unwrap();
    assert!(log.starts_with("== ") && log.trim_end().ends_with(&format!("--config {cell_str}/cell.toml")), "{log}");
}

#[test]
fn a_line_end_in_any_field_that_reaches_the_script_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let bad = |tag: &str| format!("{tag}\n$(touch injected-{tag})");
    let quoted = |text: String| toml::Value::String(text).to_string();
    let out = root.join("sweep");
    let out_str = out.to_str().unwrap().to_string();
    let plain = "llm = \"l\"\nclip = \"c\"\n[[datasets]]\ndataset-name = \"d\"\ndataset = \"d\"\n";
    let flag = |name: &str, value: String| vec![format!("--{name}={value}")];
    // (the plan's top lines, its [slurm] table, flags, the field the error names)
    let cases: Vec<(String, String, Vec<String>, &str)> = vec![
        (String::new(), format!("job-name = {}", quoted(bad("job"))), vec![], "slurm job-name"),
        (String::new(), format!("partition = {}", quoted(bad("partition"))), vec![], "slurm partition"),
        (String::new(), format!("account = {}", quoted(bad("account"))), vec![], "slurm account"),
        (String::new(), format!("mem = {}", quoted(bad("mem"))), vec![], "slurm mem"),
        (String::new(), format!("time = {}", quoted(bad("time"))), vec![], "slurm time"),
        (
            String::new(),
            format!("sbatch = [\"--qos=high\", {}]", quoted(format!("--comment={}", bad("c")))),
            vec![],
            "slurm sbatch[1]",
        ),
        (String::new(), format!("sbatch = [{}]", quoted("--qos=high\r--comment=x".into())), vec![], "slurm sbatch[0]"),
        (String::new(), String::new(), flag("job-name", bad("flag")), "slurm job-name"),
        (String::new(), String::new(), flag("partition", bad("flag")), "slurm partition"),
        (String::new(), String::new(), flag("sbatch", format!("--comment={}", bad("flag"))), "slurm sbatch[0]"),
        (String::new(), String::new(), flag("out", format!("{}/{}", root.display(), bad("out"))), "--out"),
        (
            format!("out = {}\n", quoted(format!("{}/{}", root.display(), bad("plan-out")))),
            String::new(),
            vec![],
            "--out",
        ),
        (format!("out = {}\n", quoted(format!("{}/nul\0", root.display()))), String::new(), vec![], "--out"),
    ];
    for (i, (top, slurm, flags, field)) in cases.iter().enumerate() {
        let plan_path = root.join(format!("plan{i}.toml"));
        std::fs::write(&plan_path, format!("{top}{plain}[slurm]\n{slurm}\n")).unwrap();
        let mut args = vec!["sweep", plan_path.to_str().unwrap(), "--executor", "slurm", "--dry-run", "--no-check"];
        if top.is_empty() && !flags.iter().any(|f| f.starts_with("--out=")) {
            args.extend(["--out", &out_str]);
        }
        args.extend(flags.iter().map(String::as_str));
        let run = common::run_bounded(root, &args, MEMORY_MIB, SECONDS);
        common::assert_clear_error(&run, &[field, "control character"]);
        assert!(!out.join("slurm/job.sh").exists(), "case {i}: a refused script is not written");
    }
    assert_eq!(injected(root), Vec::<PathBuf>::new());
}

#[test]
fn a_task_writes_nothing_through_links_in_its_cell() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let plan_path = root.join("plan.toml");
    std::fs::write(&plan_path, "llm = \"l\"\nclip = \"c\"\n[[datasets]]\ndataset-name = \"d\"\ndataset = \"d\"\n")
        .unwrap();
    let out = root.join("sweep");
    let out_str = out.to_str().unwrap();
    let args =
        ["sweep", plan_path.to_str().unwrap(), "--out", out_str, "--executor", "slurm", "--dry-run", "--no-check"];
    let run = common::run_bounded(root, &args, MEMORY_MIB, SECONDS);
    assert!(run.output.status.success(), "{}", text(&run.output.stderr));
    let cell = out.join("d");
    let outside = root.join("outside.txt");
    std::fs::write(&outside, b"not the sweep's\n").unwrap();
    let calls = root.join("calls");
    let stub_bin = stubs(root, &calls);

    for (name, target) in [("optimize.log", outside.clone()), (".lock", root.join("dangling-target"))] {
        let link = cell.join(name);
        symlink(&target, &link).unwrap();
        // At submission: refused by name.
        let run = common::run_bounded(root, &args, MEMORY_MIB, SECONDS);
        common::assert_clear_error(&run, &[link.to_str().unwrap(), "symbolic link"]);
        // In a task (the link planted after submission): refused, nothing run, the error left in error.txt.
        let task = run_task(&out.join("slurm/job.sh"), root, &stub_bin);
        assert_eq!(task.status.code(), Some(1), "{}", text(&task.stderr));
        assert!(text(&task.stderr).contains("is a symbolic link"), "{}", text(&task.stderr));
        let error = std::fs::read_to_string(cell.join("error.txt")).unwrap();
        assert!(error.contains(&format!("{} is a symbolic link", link.display())), "{error}");
        assert!(!calls.exists(), "nothing ran");
        std::fs::remove_file(&link).unwrap();
        std::fs::remove_file(cell.join("error.txt")).unwrap();
    }
    assert_eq!(std::fs::read(&outside).unwrap(), b"not the sweep's\n");
    assert!(!root.join("dangling-target").exists());

    // error.txt behind a link is replaced, not written through, when the task fails.
    std::fs::write(
        stub_bin.join("flock"),
        format!("#!/bin/bash\necho failing >&2\nprintf x >>'{}'\nexit 3\n", calls.display()),
    )
    .unwrap();
    symlink(&outside, cell.join("error.txt")).unwrap();
    let task = run_task(&out.join("slurm/job.sh"), root, &stub_bin);
    assert_eq!(task.status.code(), Some(3), "{}", text(&task.stderr));
    assert!(cell.join("error.txt").symlink_metadata().unwrap().is_file());
    assert!(std::fs::read_to_string(cell.join("error.txt")).unwrap().contains("exited with status 3"));
    assert_eq!(std::fs::read(&outside).unwrap(), b"not the sweep's\n");
}
