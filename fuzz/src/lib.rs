//! The fuzz targets' bodies ([`cases`]) and what the targets need around them.

pub mod cases;

/// Lets a panic that the code under test catches itself (at the boundary with a third-party crate, where it
/// becomes an error) pass as that error: libFuzzer's hook would abort on it. Every panic is still printed, and one
/// that escapes the target still ends the run as a crash (the runner aborts on it), its message in the log.
pub fn contained_panics_are_errors() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("{info}"))));
}
