//! The fuzz targets' bodies ([`cases`]) and what the targets need around them.

pub mod cases;

/// Lets a panic that the code under test catches itself (at the boundary with a third-party crate, where it
/// becomes an error) pass as that error: libFuzzer's hook would abort on it. A panic that escapes the target still
/// ends the run as a crash (the runner aborts on it).
pub fn contained_panics_are_errors() {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}
