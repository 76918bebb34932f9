//! Helpers shared by the integration tests: fixture paths, reading reference tensors, comparing features.

#![allow(dead_code)]

use std::path::PathBuf;

/// The glov-cuda binary with `args`, run from the repository root with `cache` as its feature cache and no
/// `RUST_LOG`.
pub fn glov_with_cache(args: &[&str], cache: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_glov-cuda"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("GLOV_CUDA_CACHE", cache)
        .env_remove("RUST_LOG")
        .output()
        .expect("the glov-cuda binary runs")
}

/// A finished command's stderr, as text.
pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

/// A float32 tensor from a safetensors file: (shape, values).
pub fn read_tensor(file: &std::path::Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = tensors.tensor(name).unwrap_or_else(|e| panic!("{name} in {}: {e}", file.display()));
    assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name} is not float32");
    let values = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    (view.shape().to_vec(), values)
}

/// The larger of two errors, NaN where either is (unlike `f32::max`, which drops a NaN).
pub fn worse(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() { f32::NAN } else { a.max(b) }
}

/// `max |got - want|`: NaN where a value of either is, infinite where one is infinite and the other finite, so
/// that `error <= limit` fails for them. Panics, naming both lengths, where the lengths differ.
pub fn max_abs_error(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "an output of {} values against a reference of {}", got.len(), want.len());
    got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, worse)
}

/// The largest, over rows, of `max |got - want| / max |want|` within the row; NaN where an output is (see
/// [`max_abs_error`]), so that `error < tolerance` fails.
pub fn max_row_relative_error(got: &[f32], want: &[f32], cols: usize) -> f32 {
    assert_eq!(got.len(), want.len(), "an output of {} values against a reference of {}", got.len(), want.len());
    got.chunks(cols)
        .zip(want.chunks(cols))
        .map(|(g, w)| {
            let scale = w.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
            max_abs_error(g, w) / scale
        })
        .fold(0.0, worse)
}

/// Whether a prerequisite that a group of tests needs beyond the repository (a fetched model, the emulator
/// library) is here. `missing` is why it is not. Where it is missing, `GLOV_REQUIRE_<name>=1` (as in CI) fails the
/// test; otherwise the group is reported skipped, once per test binary, on a line written straight to stderr
/// (the test harness captures `eprintln!` of passing tests) that names the group, the reason and the command that
/// enables it.
pub fn prerequisite(name: &str, group: &str, missing: Option<String>, enable: &str) -> bool {
    use std::io::Write;
    static REPORTED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let Some(reason) = missing else { return true };
    let variable = format!("GLOV_REQUIRE_{name}");
    assert!(std::env::var(&variable).as_deref() != Ok("1"), "{variable}=1 but {reason}");
    let mut reported = REPORTED.lock().unwrap_or_else(|e| e.into_inner());
    if !reported.iter().any(|g| g == group) {
        reported.push(group.to_string());
        let line = format!("skipped: {group}: {reason}; to run: {enable}\n");
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
    false
}

/// The real Gemma-3-270M file that `GLOV_GEMMA3_GGUF` names, or `None` (the group reported skipped).
pub fn gemma3_270m(group: &str) -> Option<PathBuf> {
    let file = std::env::var_os("GLOV_GEMMA3_GGUF").map(PathBuf::from);
    if let Some(path) = &file {
        assert!(path.is_file(), "GLOV_GEMMA3_GGUF names {}, which is not a file", path.display());
    }
    let enable = "GLOV_GEMMA3_GGUF=\"$(bash scripts/fetch-gemma3-270m.sh | tail -n 1)\" cargo test --release --locked";
    let missing = file.is_none().then(|| "GLOV_GEMMA3_GGUF is not set".to_string());
    prerequisite("GEMMA3", group, missing, enable).then(|| file.unwrap())
}

/// The result of a bounded run: the output, and how long it took.
pub struct Bounded {
    pub output: std::process::Output,
    pub seconds: f64,
}

/// Runs glov-cuda with `args` (in `cwd`) under an address-space limit of `memory_mib` MiB and a wall-clock limit of
/// `seconds`: a hostile input must end with an error within both. Panics, naming the arguments, when the process
/// outlives the time limit (it is killed).
pub fn run_bounded(cwd: &std::path::Path, args: &[&str], memory_mib: u64, seconds: u64) -> Bounded {
    use std::os::unix::process::CommandExt;
    let limit = memory_mib << 20;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_glov-cuda"));
    command
        .current_dir(cwd)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe and touches no state of the parent.
    unsafe {
        command.pre_exec(move || {
            let rlimit = libc::rlimit { rlim_cur: limit, rlim_max: limit };
            if libc::setrlimit(libc::RLIMIT_AS, &rlimit) == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
        });
    }
    let start = std::time::Instant::now();
    let mut child = command.spawn().expect("glov-cuda starts");
    // Drain the pipes on threads so that a chatty child cannot block on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut v).ok();
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut v).ok();
        v
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed().as_secs() >= seconds {
            let _ = child.kill();
            let _ = child.wait();
            panic!("glov-cuda {args:?} did not finish within {seconds} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let output = std::process::Output { status, stdout: out.join().unwrap(), stderr: err.join().unwrap() };
    Bounded { output, seconds: start.elapsed().as_secs_f64() }
}

/// Asserts that a bounded run ended as a clear error: exit status 1, no panic, and stderr naming every one of
/// `names` (the file, the field or tensor).
#[track_caller]
pub fn assert_clear_error(run: &Bounded, names: &[&str]) {
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    assert_eq!(run.output.status.code(), Some(1), "exit status {:?}, stderr:\n{stderr}", run.output.status);
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "a panic:\n{stderr}");
    for name in names {
        assert!(stderr.contains(name), "the error does not name {name:?}:\n{stderr}");
    }
}
