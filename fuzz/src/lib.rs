//! What the fuzz targets share: a scratch folder of this process for the readers that take a path.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// This process's scratch folder (in the system's temporary folder), made once.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("glov-cuda-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the scratch folder");
        dir
    })
}

/// Writes `bytes` to `name` in the scratch folder and returns its path.
pub fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    std::fs::write(&path, bytes).expect("writing a scratch file");
    path
}

/// Lets a panic that the code under test catches itself (at the boundary with a third-party crate, where it
/// becomes an error) pass as that error: libFuzzer's hook would abort on it. A panic that escapes the target still
/// ends the run as a crash (the runner aborts on it).
pub fn contained_panics_are_errors() {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}
