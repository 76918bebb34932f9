//! Helpers shared by the integration tests: fixture paths, reading reference tensors, comparing features.

#![allow(dead_code)]

use std::path::PathBuf;

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

/// The largest, over rows, of `max |got - want| / max |want|` within the row.
pub fn max_row_relative_error(got: &[f32], want: &[f32], cols: usize) -> f32 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    got.chunks(cols)
        .zip(want.chunks(cols))
        .map(|(g, w)| {
            let scale = w.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
            let diff = g.iter().zip(w).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            diff / scale
        })
        .fold(0.0, f32::max)
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
