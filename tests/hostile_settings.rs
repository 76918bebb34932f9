//! NaN and the infinities in settings: in every number key of an `optimize --config` file, a sweep plan (its fixed
//! settings, a dataset entry, a grid axis) and the number flags. Each must end with a clear error naming the key
//! (and the file), not a panic and not a silent default.

#![cfg(unix)]

mod common;

use std::path::Path;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const MEMORY_MIB: u64 = 2048;
const SECONDS: u64 = 30;
const NOT_FINITE: [&str; 3] = ["nan", "inf", "-inf"];

/// The tiny example's settings without `alphas`, and a dataset entry.
fn tiny_settings() -> (String, String) {
    let tiny = std::fs::read_to_string(Path::new(REPO).join("examples/tiny.toml")).unwrap();
    let keep = |line: &&str| !line.starts_with("alphas") && !line.starts_with('#');
    let (dataset, fixed): (Vec<&str>, Vec<&str>) =
        tiny.lines().filter(keep).partition(|l| l.starts_with("dataset") || l.starts_with("description"));
    (fixed.join("\n") + "\n", dataset.join("\n") + "\n")
}

#[test]
fn optimize_config_files_refuse_numbers_that_are_not_finite() {
    let dir = tempfile::tempdir().unwrap();
    let (fixed, dataset) = tiny_settings();
    for value in NOT_FINITE {
        for (line, key) in [
            (format!("alphas = [{value}]"), "alphas[0]"),
            (format!("alphas = [1.0, {value}]"), "alphas[1]"),
            (format!("temperature = {value}"), "temperature"),
            (format!("top-p = {value}"), "top-p"),
        ] {
            let config = dir.path().join("config.toml");
            std::fs::write(&config, format!("{fixed}{dataset}{line}\n")).unwrap();
            let out = dir.path().join("run");
            let args = ["optimize", "--config", config.to_str().unwrap(), "--out", out.to_str().unwrap()];
            let run = common::run_bounded(Path::new(REPO), &args, MEMORY_MIB, SECONDS);
            let shown = value.replace("nan", "NaN");
            common::assert_clear_error(&run, &[config.to_str().unwrap(), &format!("{key}: {shown} is not a finite")]);
            assert!(!out.exists(), "{line}: a refused run created its folder");
        }
    }
}

#[test]
fn sweep_plans_refuse_numbers_that_are_not_finite() {
    let dir = tempfile::tempdir().unwrap();
    let (fixed, dataset) = tiny_settings();
    for value in NOT_FINITE {
        let shown = value.replace("nan", "NaN");
        for (top, entry, grid, named) in [
            (
                format!("temperature = {value}\n"),
                String::new(),
                String::new(),
                "fixed settings: temperature".to_string(),
            ),
            (
                String::new(),
                format!("top-p = {value}\n"),
                String::new(),
                "datasets[0] (tiny shapes): top-p".to_string(),
            ),
            (
                String::new(),
                String::new(),
                format!("[grid]\nalphas = [[1.0], [{value}]]\n"),
                "grid.alphas[1]".to_string(),
            ),
        ] {
            let plan = dir.path().join("plan.toml");
            std::fs::write(&plan, format!("{fixed}{top}{grid}[[datasets]]\n{dataset}{entry}")).unwrap();
            let out = dir.path().join("sweep");
            let args = ["sweep", plan.to_str().unwrap(), "--out", out.to_str().unwrap(), "--list"];
            let run = common::run_bounded(Path::new(REPO), &args, MEMORY_MIB, SECONDS);
            common::assert_clear_error(
                &run,
                &[&format!("plan {}: {named}", plan.display()), &format!("{shown} is not a finite")],
            );
        }
    }
}

#[test]
fn number_flags_refuse_numbers_that_are_not_finite() {
    let dir = tempfile::tempdir().unwrap();
    for value in NOT_FINITE {
        for flag in ["--temperature", "--top-p", "--alphas"] {
            let out = dir.path().join("run");
            let arg = format!("{flag}={value}");
            let args = ["optimize", "--config", "examples/tiny.toml", &arg, "--out", out.to_str().unwrap()];
            let run = common::run_bounded(Path::new(REPO), &args, MEMORY_MIB, SECONDS);
            let stderr = String::from_utf8_lossy(&run.output.stderr);
            assert_eq!(run.output.status.code(), Some(2), "{arg}: a usage error: {stderr}");
            assert!(stderr.contains(flag) && stderr.contains("not a finite number"), "{arg}: {stderr}");
            assert!(!stderr.contains("panicked") && !out.exists(), "{arg}: {stderr}");
        }
    }
}
